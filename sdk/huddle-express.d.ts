// Type definitions for the Huddle Express Web SDK (sdk/huddle-express.js).
// The names follow the ZEGO Express Web SDK so that pages written for it type-check here.
//
// ZEGO compatibility (the README's table, generated from this file by scripts/zego-compat): a
// ZEGO method or event declared here is supported, unless its JSDoc carries
//   @zegoPartial <how it differs>  supported with differences, noted in the table;
//   @zegoUnsupported <why>         declared so that pages written for ZEGO do not crash, but it
//                                  answers as ZEGO answers an unsupported call: not offered.
// Events take the tag on their key in the interface `on()` names (ZegoEvent, StreamViewEvent).

/** A user in a room. */
export interface ZegoUser {
  userID: string;
  userName?: string;
}

/** Options of `loginRoom`. */
export interface ZegoRoomConfig {
  /** Receive `roomUserUpdate` (default false: only the online count). */
  userUpdate?: boolean;
  /** Accepted for compatibility; room size is the app's `max_users_per_room` on the server. */
  maxMemberCount?: number;
}

/** A stream announced in a room. */
export interface ZegoStreamList {
  streamID: string;
  user: ZegoUser;
  extraInfo: string;
  /** Empty: Huddle delivers media over WebRTC only, there are no CDN playback URLs. */
  urlsFLV: string;
  urlsRTMP: string;
  urlsHLS: string;
  urlsHttpsFLV: string;
  urlsHttpsHLS: string;
}

/** ZEGO's `roomStateUpdate` states. */
export type ZegoRoomConnectionState = "DISCONNECTED" | "CONNECTING" | "CONNECTED";

/** ZEGO's `QualityGrade`: -1 unknown, 0 excellent, 1 good, 2 middle, 3 poor, 4 die (unusable). */
export type QualityGrade = -1 | 0 | 1 | 2 | 3 | 4;

/** One stream's sound level in `soundLevelUpdate`. */
export interface ZegoSoundLevelInfo {
  streamID: string;
  /** 0–100 (-60 dBFS and below is 0). */
  soundLevel: number;
  /** `push`: a stream this page publishes; `pull`: one it plays. */
  type: "push" | "pull";
}

/**
 * `exceptionUpdate` data, with ZEGO's codes: 1003/2003 video bitrate sent too low/normal
 * again, 1004/2004 frames sent, 1005/2005 audio bitrate sent, 1009/2009 frames decoded.
 */
export interface ExceptionData {
  code: number;
  message: string;
}

/** ZEGO's log settings (`setLogConfig`). */
export interface ZegoLogConfig {
  logLevel?: "debug" | "info" | "warn" | "error" | "report" | "disable";
  remoteLogLevel?: "debug" | "info" | "warn" | "error" | "disable";
  logURL?: string;
  logCount?: number;
  logSize?: number;
}

/** What `checkSystemRequirements` may check alone (ZEGO's, plus `videoCodec` and `VP9`). */
export type ZegoCheckSingleType =
  | "webRTC"
  | "customCapture"
  | "camera"
  | "microphone"
  | "screenSharing"
  | "videoCodec"
  | "H264"
  | "H265"
  | "VP8"
  | "VP9";

/** A room extra info entry. */
export interface ZegoRoomExtraInfo {
  key: string;
  value: string;
  updateUser: ZegoUser;
  /** Unix milliseconds. */
  updateTime: number;
}

/** A broadcast or barrage message. */
export interface ZegoBroadcastMessageInfo {
  message: string;
  fromUser: ZegoUser;
  /** Unix milliseconds. */
  sendTime: number;
  messageID: number;
}
export type ZegoBarrageMessageInfo = ZegoBroadcastMessageInfo;

/** What room requests resolve with: `errorCode` 0 on success. They never reject. */
export interface ZegoServerResponse {
  errorCode: number;
  extendedData?: string;
  messageID?: number;
}

export type ZegoRoomStateChangedReason =
  | "LOGINING"
  | "LOGINED"
  | "LOGIN_FAILED"
  | "RECONNECTING"
  | "RECONNECTED"
  | "RECONNECT_FAILED"
  | "KICKOUT"
  | "LOGOUT"
  | "LOGOUT_FAILED";

export interface ZegoPublisherState {
  streamID: string;
  state: "PUBLISHING" | "NO_PUBLISH" | "PUBLISH_REQUESTING";
  errorCode: number;
  extendedData: string;
}

export interface ZegoPlayerState {
  streamID: string;
  state: "PLAYING" | "NO_PLAY" | "PLAY_REQUESTING";
  errorCode: number;
  extendedData: string;
}

export interface ZegoPublishVideoStats {
  /** kbit/s over the last interval. */
  videoBitrate: number;
  videoFPS: number;
  videoTransferFPS: number;
  frameWidth: number;
  frameHeight: number;
  googCodecName: string;
  videoPacketsLost: number;
  /** 0–1, as reported back by the relay. */
  videoPacketsLostRate: number;
  /** 0 excellent … 4 bad, from the loss rate. */
  videoQuality: number;
  muteState: "0" | "1";
}

export interface ZegoPublishAudioStats {
  audioBitrate: number;
  audioCodec: string;
  audioPacketsLost: number;
  audioPacketsLostRate: number;
  audioQuality: number;
  audioJitter: number;
  muteState: "0" | "1";
}

export interface ZegoPublishStats {
  video: ZegoPublishVideoStats;
  audio: ZegoPublishAudioStats;
  /** Milliseconds, from the selected ICE candidate pair. */
  currentRoundTripTime?: number;
  totalRoundTripTime?: number;
}

export interface ZegoPlayVideoStats extends ZegoPublishVideoStats {
  videoRenderFPS: number;
  videoFramesDecoded: number;
  videoFramesDropped: number;
  /** Seconds. */
  videoCumulativeDecodeTime: number;
  /** Seconds of freezes. */
  videoCumulativeBreakTime: number;
  videoCumulativeBreakRate: number;
}

export interface ZegoPlayStats {
  video: ZegoPlayVideoStats;
  audio: ZegoPublishAudioStats;
  currentRoundTripTime?: number;
  totalRoundTripTime?: number;
  peerToPeerDelay: number | undefined;
  peerToPeerPacketLostRate: number | undefined;
}

export interface ZegoVideoCodec {
  H264: boolean;
  H265: boolean;
  VP8: boolean;
  VP9: boolean;
}

export interface ZegoCapabilityDetection {
  webRTC?: boolean;
  customCapture?: boolean;
  camera?: boolean;
  microphone?: boolean;
  screenSharing?: boolean;
  videoCodec?: ZegoVideoCodec;
  errInfo: {
    webRTC?: { name?: string; message?: string };
    customCapture?: { name?: string; message?: string };
    camera?: { name?: string; message?: string };
    microphone?: { name?: string; message?: string };
    extendedDate?: string;
  };
  /** The single check asked for; without one: WebRTC works and the browser can send VP8 or H.264. */
  result?: boolean;
}

export interface ZegoCamera {
  audio?: boolean;
  video?: boolean;
  /** Device id from `getMicrophones`. */
  audioInput?: string;
  /** Device id from `getCameras`. */
  videoInput?: string;
  /** 1: 320×240@15 300 kbit/s, 2 (default): 640×480@15 800 kbit/s, 3: 1280×720@20 1500 kbit/s, 4: width/height/frameRate/bitrate below. */
  videoQuality?: 1 | 2 | 3 | 4;
  width?: number;
  height?: number;
  frameRate?: number;
  /** Video kbit/s. */
  bitrate?: number;
  /** Audio kbit/s (default 48). */
  audioBitrate?: number;
  facingMode?: "user" | "environment";
  channelCount?: 1 | 2;
  ANS?: boolean;
  AGC?: boolean;
  AEC?: boolean;
}

export interface ZegoScreen {
  audio?: boolean;
  videoQuality?: 1 | 2 | 3 | 4;
  width?: number;
  height?: number;
  frameRate?: number;
  bitrate?: number;
}

export interface ZegoCustom {
  source: MediaStream | HTMLMediaElement;
  bitrate?: number;
  audioBitrate?: number;
}

export interface ZegoLocalStreamConfig {
  camera?: ZegoCamera;
  screen?: boolean | ZegoScreen;
  custom?: ZegoCustom;
}

export interface ZegoWebPublishOption {
  /** Announced with the stream (`roomStreamUpdate`), at most 4096 bytes. */
  extraInfo?: string;
  videoCodec?: "VP8" | "H264" | "VP9";
}

export interface ZegoWebPlayOption {
  video?: boolean;
  audio?: boolean;
  videoCodec?: "VP8" | "H264" | "VP9";
  /** The layer of a dual stream to receive: 0 small, 1 big, 2 (default) by bandwidth. */
  streamType?: 0 | 1 | 2;
}

export interface ZegoStreamViewOptions {
  /** Show a click-to-play prompt when autoplay is blocked (default true). */
  enableAutoplayDialog?: boolean;
  /** Mirror the picture (default: true for local views). */
  mirror?: boolean;
  objectFit?: "cover" | "contain" | "fill";
  muted?: boolean;
}

export interface ZegoDeviceInfo {
  deviceID: string;
  deviceName: string;
}

/** A capture constraint: a number (ideal) or the browser's `{exact, ideal, min, max}`. */
export interface ConstraintExtend {
  exact?: number;
  ideal?: number;
  max?: number;
  min?: number;
}

/** Camera capture options of `createZegoStream` and `ZegoLocalStream.startCaptureCamera`. */
export interface ZegoCaptureCamera {
  /** Device id from `getCameras`. */
  input?: string;
  /** 1: 320×240@15, 2 (default): 640×480@15, 3: 1280×720@20, 4: width/height/frameRate below. */
  quality?: 1 | 2 | 3 | 4;
  facingMode?: "user" | "environment";
  width?: number | ConstraintExtend;
  height?: number | ConstraintExtend;
  frameRate?: number | ConstraintExtend;
  /** Accepted for compatibility; the browser's encoder decides. */
  optimizationMode?: "default" | "motion" | "detail";
  /** Accepted for compatibility; the browser's encoder decides. */
  keyFrameInterval?: number;
}

/** Microphone capture options. */
export interface ZegoCaptureMicrophone {
  /** Device id from `getMicrophones`. */
  input?: string;
  channelCount?: 1 | 2;
  ANS?: boolean;
  AGC?: boolean;
  AEC?: boolean;
}

/** Screen capture options. */
export interface ZegoCaptureScreenVideo {
  /** 1: 640×480@10, 2 (default): 1280×720@15, 3: 1920×1080@15, 4: width/height/frameRate below. */
  quality?: 1 | 2 | 3 | 4;
  width?: number | ConstraintExtend;
  height?: number | ConstraintExtend;
  frameRate?: number | ConstraintExtend;
  optimizationMode?: "default" | "motion" | "detail";
  /** Accepted for compatibility; the browser's picker chooses the source. */
  sourceID?: string;
  keyFrameInterval?: number;
  captureElement?: HTMLElement;
}

/** Audio of a screen capture (tab or system audio where the browser offers it). */
export interface ZegoCaptureScreenAudio {
  ANS?: boolean;
  AGC?: boolean;
  AEC?: boolean;
}

/** A page's own video source. */
export interface ZegoCustomVideo {
  source: HTMLMediaElement | MediaStream;
  optimizationMode?: "default" | "motion" | "detail";
  keyFrameInterval?: number;
}

/** A page's own audio source. */
export interface ZegoCustomAudio {
  source: HTMLMediaElement | MediaStream;
  channelCount?: 1 | 2;
}

/** Options of `createZegoStream` (default: camera and microphone). */
export interface ZegoStreamOptions {
  camera?: { video?: boolean | ZegoCaptureCamera; audio?: boolean | ZegoCaptureMicrophone };
  screen?: { video?: boolean | ZegoCaptureScreenVideo; audio?: boolean | ZegoCaptureScreenAudio };
  custom?: { video?: ZegoCustomVideo; audio?: ZegoCustomAudio };
  /** Video kbit/s (default from the quality preset). */
  videoBitrate?: number | { bitrate?: number; startBitrate?: "default" | "target"; minBitrate?: number };
  /** Audio kbit/s (default 48). */
  audioBitrate?: number;
  /** Play what is sent in this element once captured. */
  view?: HTMLElement;
  /** Play the latest capture in this element once captured. */
  captureView?: HTMLElement;
  autoCapture?: boolean;
  autoPlay?: boolean;
  multiplacePreview?: boolean;
}

/** Options of `ZegoLocalStream.playVideo` / `playCaptureVideo`. */
export interface ZegoLocalViewOptions {
  /** Mirror the picture (default false). */
  mirror?: boolean;
  /** Default "contain". */
  objectFit?: "cover" | "contain" | "fill";
  /** Show a click-to-play prompt when autoplay is blocked (default true). */
  enableAutoplayDialog?: boolean;
  clearLastFrame?: boolean;
}

/** Options of `ZegoLocalStream.playAudio` / `playCaptureAudio`. */
export interface ZegoLocalAudioOptions {
  enableAutoplayDialog?: boolean;
}
/** ZEGO's spelling of `ZegoLocalAudioOptions`. */
export type ZegoLocalAduioOptions = ZegoLocalAudioOptions;

/** Options of `takeStreamSnapshot`. */
export interface ZegoSnapshotOptions {
  /** "png" (default) or "jpeg". */
  imageType?: string;
  /** 0–1 (jpeg), default 1. */
  quality?: number;
  clearLastFrame?: boolean;
}

/** Events of a `ZegoLocalStream`. */
export interface ZegoLocalStreamEvent {
  autoplayFailed: (player: HTMLMediaElement, e?: any) => void;
  canPlayAudio: (e: Event) => void;
  canPlayVideo: (e: Event) => void;
  canPlayCaptureVideo: (e: Event) => void;
  canPlayCaptureAudio: (e: Event) => void;
  autoplayCaptureFailed: (player: HTMLMediaElement, e?: any) => void;
  /** What is sent changed (a new capture sent, a device switched). */
  videoTrackChanged: (videoTrack: MediaStreamTrack) => void;
  audioTrackChanged: (audioTrack: MediaStreamTrack) => void;
  /** A new capture (sent at once before publishing, after `updatePublishingStream` while publishing). */
  captureVideoTrackChanged: (videoTrack: MediaStreamTrack) => void;
  captureAudioTrackChanged: (audioTrack: MediaStreamTrack) => void;
}

/**
 * A local stream from `createZegoStream`: the latest capture, and what is sent (the stream a
 * publish uses and `playVideo` shows). While published, a new capture is sent after
 * `updatePublishingStream`; tracks are swapped into the senders without renegotiation.
 */
export declare class ZegoLocalStream {
  readonly active: boolean;
  readonly id: string;
  /** The latest captured video (null when none). */
  readonly videoCaptureStream: MediaStream | null;
  /** The latest captured audio (null when none). */
  readonly audioCaptureStream: MediaStream | null;
  /** What is sent (or to be sent). */
  readonly stream: MediaStream | null;
  readonly videoDeviceId: string;
  readonly audioDeviceId: string;
  zegoStream: any;
  getAudioTracks(): MediaStreamTrack[];
  getVideoTracks(): MediaStreamTrack[];
  getTracks(): MediaStreamTrack[];
  on<K extends keyof ZegoLocalStreamEvent>(event: K, callBack: ZegoLocalStreamEvent[K]): boolean;
  off<K extends keyof ZegoLocalStreamEvent>(event: K, callBack?: ZegoLocalStreamEvent[K]): boolean;
  startCaptureMicrophone(options?: ZegoCaptureMicrophone): Promise<ZegoServerResponse>;
  startCaptureCamera(options?: ZegoCaptureCamera): Promise<ZegoServerResponse>;
  startCaptureCameraAndMicrophone(cameraOptions?: ZegoCaptureCamera, microphoneOptions?: ZegoCaptureMicrophone): Promise<ZegoServerResponse>;
  startCaptureCustomAudio(options: ZegoCustomAudio): Promise<ZegoServerResponse>;
  startCaptureCustomVideo(options: ZegoCustomVideo): Promise<ZegoServerResponse>;
  startCaptureCustomVideoAndAudio(videoOptions: ZegoCustomVideo, audioOptions: ZegoCustomAudio): Promise<ZegoServerResponse>;
  startCaptureScreen(options?: ZegoCaptureScreenVideo): Promise<ZegoServerResponse>;
  startCaptureScreenWithAudio(screenVideoOptions?: ZegoCaptureScreenVideo, screenAudioOptions?: ZegoCaptureScreenAudio): Promise<ZegoServerResponse>;
  /** Stops capturing audio; a publish of the stream sends no audio from then on. */
  stopCaptureAudio(): Promise<boolean>;
  /** Stops capturing video (the camera light goes out); a publish sends no video from then on. */
  stopCaptureVideo(): Promise<boolean>;
  playAudio(config?: ZegoLocalAudioOptions): void;
  playCaptureAudio(config?: ZegoLocalAudioOptions): void;
  /** Shows what is sent in `view` (an element or its id). */
  playVideo(view: HTMLElement | string, config?: ZegoLocalViewOptions): void;
  playCaptureVideo(view: HTMLElement | string, config?: ZegoLocalViewOptions): void;
  /** A data URI of what `playVideo` shows ("" before the first frame). */
  takeStreamSnapshot(option?: ZegoSnapshotOptions): string;
  resumeVideo(): Promise<void> | void;
  resumeAudio(): Promise<void> | void;
  stopVideo(): void;
  stopAudio(): void;
  stopPlayCaptureVideo(): void;
  stopPlayCaptureAudio(): void;
  /** Volume 0–100 of `playAudio` on this page (not of what is sent: see `setCaptureVolume`). */
  setVolume(volume: number): boolean;
  useAudioOutputDevice(deviceID: string): Promise<void>;
  /** "monitor", "window" or "browser" for a screen capture, else "unknown". */
  getScreenDisplaySurface(): string;
}

/** `updatePublishingStream`'s update types. */
export declare const ZegoStreamUpdateType: { readonly video: 0; readonly audio: 1; readonly videoAndAudio: 2 };
export type ZegoStreamUpdateType = 0 | 1 | 2;

/** `setVideoConfig` settings. */
export interface ZegoPublishStreamConfig {
  width?: number | ConstraintExtend;
  height?: number | ConstraintExtend;
  frameRate?: number | ConstraintExtend;
  /** kbit/s. */
  maxBitrate?: number;
  /** 1–3: a capture preset (4: the values above). */
  videoQuality?: number;
}

/** `setAudioConfig` settings. */
export interface ZegoPublishStreamAudioConfig {
  ANS?: boolean;
  AGC?: boolean;
  AEC?: boolean;
}

/** `enableAutoSwitchDevice`: switch to the default device when the one in use goes away. */
export interface ZegoAutoSwitchDeviceConfig {
  camera?: boolean;
  microphone?: boolean;
}

/** `setSoundLevelDelegate` options (accepted for compatibility). */
export interface SoundLevelDelegateOptions {
  enableInBackground?: boolean;
}

export interface StreamViewEvent {
  autoplayFailed: () => void;
  canPlayVideo: () => void;
  /** `playAudio`'s sound can play. */
  canPlayAudio: () => void;
}

/** A managed `<video>` for a stream (from `createLocalStreamView`/`createRemoteStreamView`). */
export declare class ZegoStreamView {
  play(container: string | HTMLElement, options?: ZegoStreamViewOptions): void;
  /** The picture only (the `<video>` stays silent); the sound is `playAudio`'s. */
  playVideo(container: string | HTMLElement, options?: ZegoStreamViewOptions): void;
  /** The sound only, through an `<audio>` element outside the page; `canPlayAudio` when it can play. */
  playAudio(options?: ZegoStreamViewOptions): void;
  stopVideo(): void;
  stopAudio(): void;
  /** Removes the picture and stops the sound. */
  stop(): void;
  resume(): void;
  setAudioMuted(muted: boolean): boolean;
  setVideoMuted(muted: boolean): boolean;
  setVolume(volume: number): boolean;
  useAudioOutputDevice(deviceID: string): Promise<void>;
  getVideoWidth(): number;
  getVideoHeight(): number;
  /** The picture shown now as a data URI (PNG by default); "" before the first frame. */
  takeStreamSnapshot(option?: ZegoSnapshotOptions): string;
  readonly videoElement: HTMLVideoElement | null;
  on<K extends keyof StreamViewEvent>(event: K, callback: StreamViewEvent[K]): boolean;
  off<K extends keyof StreamViewEvent>(event: K, callback?: StreamViewEvent[K]): boolean;
}

/** `switchRoom`'s config: a token for the room switched to. */
export interface ZegoSwitchRoomConfig {
  token: string;
  /** Accepted; Huddle caps rooms on the server (`loginRoom` ignores it too). */
  maxMemberCount?: number;
  /** `roomUserUpdate` in the new room (`loginRoom`'s `userUpdate`); default false. */
  isUserStatusNotify?: boolean;
}

/** How `setAudioFrameCallback`/`setCaptureAudioFrameCallback` hand over PCM. */
export interface AudioFrameOptions {
  /** Samples per channel per callback, at the audio context's rate (default 4096). */
  frameSize?: 256 | 512 | 1024 | 2048 | 4096 | 8192 | 16384;
  /** Resampled to this rate (default: the audio context's). */
  sampleRate?: 8000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000;
  /** Mixed down to mono or up to stereo (default: as the source). */
  channelCount?: 1 | 2;
  /** 32: Float32Array samples (default); 16: Int16Array. */
  bitDepth?: 32 | 16;
}

/** One block of PCM. */
export interface ZegoAudioFrame {
  channels: Float32Array[] | Int16Array[];
  channelCount: number;
  sampleRate: number;
}

/** Events and their listener signatures. */
export interface ZegoEvent {
  roomStateChanged: (roomID: string, reason: ZegoRoomStateChangedReason, errorCode: number, extendedData: string) => void;
  /** Raised with every `roomStateChanged`: LOGINING and RECONNECTING are CONNECTING, LOGINED and RECONNECTED CONNECTED, every end DISCONNECTED. */
  roomStateUpdate: (roomID: string, state: ZegoRoomConnectionState, errorCode: number, extendedData: string) => void;
  roomUserUpdate: (roomID: string, updateType: "ADD" | "DELETE", userList: ZegoUser[]) => void;
  roomOnlineUserCountUpdate: (roomID: string, count: number) => void;
  roomStreamUpdate: (roomID: string, updateType: "ADD" | "DELETE", streamList: ZegoStreamList[], extendedData: string) => void;
  streamExtraInfoUpdate: (roomID: string, streamList: ZegoStreamList[]) => void;
  roomExtraInfoUpdate: (roomID: string, roomExtraInfoList: ZegoRoomExtraInfo[]) => void;
  IMRecvBroadcastMessage: (roomID: string, chatData: ZegoBroadcastMessageInfo[]) => void;
  IMRecvBarrageMessage: (roomID: string, messageInfo: ZegoBarrageMessageInfo[]) => void;
  IMRecvCustomCommand: (roomID: string, fromUser: ZegoUser, command: string) => void;
  tokenWillExpire: (roomID: string) => void;
  /** A remote stream's audio is off (`MUTE`: its publisher's `mutePublishStreamAudio`, or the business server's mute) or on again (`OPEN`). */
  remoteMicStatusUpdate: (streamID: string, status: "OPEN" | "MUTE", reason: number) => void;
  /** A remote stream's video is off (`MUTE`: its publisher's `mutePublishStreamVideo`, or the business server's mute) or on again (`OPEN`). */
  remoteCameraStatusUpdate: (streamID: string, status: "OPEN" | "MUTE", reason: number) => void;
  /** The sound level of each published and played stream, every interval of `setSoundLevelDelegate`. */
  soundLevelUpdate: (soundLevelList: ZegoSoundLevelInfo[]) => void;
  /** Every 3 s, for this page's user and every user the server reported a level of (the worse of the user's own view and the relay's measurements). */
  networkQuality: (userID: string, upstreamQuality: QualityGrade, downstreamQuality: QualityGrade) => void;
  /** A published or played stream stopped sending or decoding media it should (100x), or recovered (200x). */
  exceptionUpdate: (streamID: string, eventData: ExceptionData) => void;
  /** @zegoUnsupported Huddle's relay carries no SEI. */
  playerRecvSEI: (streamID: string, data: Uint8Array) => void;
  /** @zegoUnsupported Beauty effects are a ZEGO add-on Huddle does not offer. */
  beautyEffectError: (...args: unknown[]) => void;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  backgroundEffectError: (...args: unknown[]) => void;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  mixerSoundLevelUpdate: (soundLevels: Map<number, number>) => void;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  autoMixerSoundLevelUpdate: (soundLevels: Map<string, number>) => void;
  /** @zegoUnsupported Huddle pushes nothing to a CDN. */
  mixerRelayCDNStateUpdate: (taskID: string, infoList: unknown[]) => void;
  publisherStateUpdate: (result: ZegoPublisherState) => void;
  playerStateUpdate: (result: ZegoPlayerState) => void;
  publishQualityUpdate: (streamID: string, stats: ZegoPublishStats) => void;
  playQualityUpdate: (streamID: string, stats: ZegoPlayStats) => void;
  autoplayFailed: (player: HTMLMediaElement, error?: unknown) => void;
  screenSharingEnded: (stream: MediaStream) => void;
  /** The local capture's sound level 0–100, while `setSoundLevelDelegate(true)` is on. */
  capturedSoundLevelUpdate: (soundLevel: number) => void;
  /** A camera was plugged in (`ADD`) or removed (`DELETE`). */
  videoDeviceStateChanged: (updateType: "DELETE" | "ADD", deviceInfo: { deviceName: string; deviceID: string }) => void;
  /** A microphone (`Input`) or speaker (`Output`) was plugged in or removed. */
  audioDeviceStateChanged: (updateType: "DELETE" | "ADD", deviceType: "Input" | "Output", deviceInfo: { deviceName: string; deviceID: string }) => void;
  /** A captured track ended without the page asking (unplugged, permission revoked). */
  deviceError: (errorCode: number, deviceName: string) => void;
  /** A played stream's MediaStream got a new video track: first play, or played again (after a reconnect). */
  playerVideoTrackUpdate: (streamID: string, track: MediaStreamTrack) => void;
  /** A played stream's MediaStream got a new audio track: first play, or played again (after a reconnect). */
  playerAudioTrackUpdate: (streamID: string, track: MediaStreamTrack) => void;
  /** @zegoUnsupported Never raised: a publish keeps the codec it negotiated (the browser never switches it). */
  publisherVideoEncoderChanged: (fromCodecID: number, toCodecID: number, streamID: string) => void;
  /** @zegoUnsupported Never raised: ZEGO's experimental APIs are private to ZEGO's cloud. */
  recvExperimentalAPI: (content: Record<string, unknown>) => void;
  /** @zegoUnsupported Never raised: Huddle has no hall (lobby) connection apart from rooms. */
  hallStateUpdate: (state: "DISCONNECTED" | "CONNECTING" | "CONNECTED", errorCode: number, extendedData: string) => void;
  /** @zegoUnsupported Never raised: Huddle has no transparent messages (use `sendCustomCommand` / `IMRecvCustomCommand`). */
  recvRoomTransparentMessage: (roomID: string, message: unknown) => void;
}

/** Codes the SDK raises itself (server codes are 1000–6999, listed in Huddle's README). */
export declare const SdkError: {
  readonly UNSUPPORTED: 7001;
  readonly CONNECT_FAILED: 7002;
  readonly INVALID_ARGUMENT: 7003;
  readonly NOT_LOGGED_IN: 7004;
  readonly ALREADY_IN_ROOM: 7005;
  readonly TIMEOUT: 7006;
  readonly MEDIA_FAILED: 7007;
  readonly CAPTURE_FAILED: 7008;
  readonly RECONNECT_FAILED: 7009;
  readonly CANCELLED: 7010;
  readonly NOT_OFFERED: 7011;
};

/** An error thrown or rejected by the SDK. */
export interface HuddleError extends Error {
  code: number;
  msg: string;
}

export declare class HuddleExpressEngine {
  /**
   * @param appID your app id (1 in dev mode)
   * @param server the websocket URL, e.g. `wss://huddle.example.com/ws`, or several: tried in
   *   order, the next taking over when one cannot be connected to (at login and on reconnects)
   * @param options ZEGO's options; `scenario` is accepted and changes nothing
   */
  constructor(appID: number, server: string | string[], options?: { scenario?: number });
  static readonly VERSION: string;
  static readonly SdkError: typeof SdkError;
  static readonly ZegoStreamView: typeof ZegoStreamView;
  static readonly ZegoLocalStream: typeof ZegoLocalStream;
  static readonly ZegoStreamUpdateType: typeof ZegoStreamUpdateType;
  readonly appID: number;
  /** The first server. */
  readonly server: string;
  /** Every server, in the order they are tried. */
  readonly servers: string[];

  /** The log config engines created afterwards start with; false for an unknown level. */
  static presetLogConfig(config: ZegoLogConfig): boolean;
  /** @zegoUnsupported ZEGO's plugin modules are its paid add-ons; Huddle's SDK has its features built in. */
  static use(module: unknown): void;
  /** @zegoUnsupported Huddle is self-hosted: there is no ZEGO cloud to fence by region. */
  static setGeoFence(type: number, areaList: number[]): void;
  /** @zegoUnsupported Options of ZEGO's cloud SDK; Huddle is self-hosted. */
  static setEngineOptions(options: unknown): void;
  /** @zegoUnsupported Huddle is self-hosted: no ZEGO cloud proxy (use `setTurnServer` for your own TURN servers). */
  static setCloudProxyConfig(proxyList: unknown[], token: string, enable: boolean): void;
  /** @zegoUnsupported Huddle is self-hosted: no ZEGO local proxy (use `setTurnServer` for your own TURN servers). */
  static setLocalProxyConfig(proxyConfig: unknown, enable: boolean): void;

  getVersion(): string;
  /** Leaves the room, stops media and timers, drops all listeners. */
  destroyEngine(): void;
  on<K extends keyof ZegoEvent>(event: K, callback: ZegoEvent[K]): boolean;
  off<K extends keyof ZegoEvent>(event: K, callback?: ZegoEvent[K]): boolean;
  setDebugVerbose(enable: boolean): void;
  /**
   * The console's log level (`report` keeps it quiet); false for an unknown level.
   * @zegoPartial The console's `logLevel` only: Huddle uploads no logs (`remoteLogLevel` and `logURL` are accepted, and a warning says so once).
   */
  setLogConfig(config: ZegoLogConfig): boolean;
  /**
   * Advanced settings (ZEGO's `setEngineConfig`); unknown keys are ignored. `turnOnly: true`:
   * media only through the TURN servers the server hands out (`iceTransportPolicy: "relay"`),
   * for publishes and plays started afterwards.
   * @zegoPartial Knows only `turnOnly` (media through TURN only); ZEGO's other keys are ignored.
   */
  setEngineConfig(config: { turnOnly?: boolean; [key: string]: unknown }): void;
  /** Your own TURN/STUN servers, used next to Huddle's by publishes and plays started afterwards; `[]` removes them. */
  setTurnServer(turnServerList: { url: string; username: string; credential: string }[]): void;
  /**
   * False for a value that is no scenario.
   * @zegoPartial Accepted and changes nothing: Huddle's capture defaults and relay are the same in every scenario.
   */
  setRoomScenario(scenario: number): boolean;
  /** @zegoPartial Accepted and changes nothing: the browser decides whether to encode in hardware. */
  enableHardwareEncoder(enable: boolean): void;
  /** The server's time (Unix ms) from the signaling connection's ping replies, and its error bound; `timestamp` 0 before the first login. */
  getNetworkTimeInfo(): { timestamp: number; maxDeviation: number };

  /** All checks, or the one `checkType` names (a codec: that codec); `checkLevel` 1 checks codecs with a real offer. */
  checkSystemRequirements(checkType?: ZegoCheckSingleType, checkLevel?: 0 | 1): Promise<ZegoCapabilityDetection>;
  enumDevices(): Promise<{ cameras: ZegoDeviceInfo[]; microphones: ZegoDeviceInfo[]; speakers: ZegoDeviceInfo[] }>;
  getCameras(): Promise<ZegoDeviceInfo[]>;
  getMicrophones(): Promise<ZegoDeviceInfo[]>;
  getSpeakers(): Promise<ZegoDeviceInfo[]>;

  /** Resolves true once logged in (LOGINED), false on failure (LOGIN_FAILED with the code). */
  loginRoom(roomID: string, token: string, user: ZegoUser, config?: ZegoRoomConfig): Promise<boolean>;
  logoutRoom(roomID?: string): Promise<void>;
  renewToken(token: string, roomID?: string): boolean;
  getRoomState(roomID?: string): ZegoRoomStateChangedReason;
  /** Leaves `fromRoomID` (its streams stop, as with `logoutRoom`) and logs in to `toRoomID` as the same user with `config.token`. */
  switchRoom(fromRoomID: string, toRoomID: string, config: ZegoSwitchRoomConfig): Promise<boolean>;

  sendBroadcastMessage(roomID: string, message: string): Promise<ZegoServerResponse>;
  sendBarrageMessage(roomID: string, message: string): Promise<ZegoServerResponse>;
  sendCustomCommand(roomID: string, command: string, toUserIDs?: string[]): Promise<ZegoServerResponse>;
  setRoomExtraInfo(roomID: string, key: string, value: string): Promise<ZegoServerResponse>;
  setStreamExtraInfo(streamID: string, extraInfo: string): Promise<ZegoServerResponse>;

  createStream(source?: ZegoLocalStreamConfig): Promise<MediaStream>;
  /** Rejects with a `HuddleError` (CAPTURE_FAILED with the browser's error name) when capture fails. */
  createZegoStream(options?: ZegoStreamOptions): Promise<ZegoLocalStream>;
  destroyStream(localStream: MediaStream | ZegoLocalStream): void;
  createLocalStreamView(localStream: MediaStream | ZegoLocalStream): ZegoStreamView;
  createRemoteStreamView(remoteStream: MediaStream): ZegoStreamView;
  /** Stops or resumes sending video and tells the room (`remoteCameraStatusUpdate`); `retain` keeps the local preview. */
  mutePublishStreamVideo(localStream: MediaStream | ZegoLocalStream, mute: boolean, retain?: boolean): boolean;
  /** Stops or resumes sending audio and tells the room (`remoteMicStatusUpdate`). */
  mutePublishStreamAudio(localStream: MediaStream | ZegoLocalStream, mute: boolean): boolean;
  replaceTrack(localStream: MediaStream, mediaStreamTrack: MediaStreamTrack): Promise<ZegoServerResponse>;
  /** Sends the stream's latest capture in its running publishes (no renegotiation). */
  updatePublishingStream(zegoStream: ZegoLocalStream, updateType: ZegoStreamUpdateType): Promise<ZegoServerResponse>;
  /** Adds a track of a kind the stream lacks; a running publish sends it. */
  addTrack(localStream: MediaStream, track: MediaStreamTrack): Promise<ZegoServerResponse>;
  /** Removes a track; a running publish stops sending it. */
  removeTrack(localStream: MediaStream, track: MediaStreamTrack): Promise<ZegoServerResponse>;
  /** True when the video track delivers frames (checked for up to 2 s). */
  checkVideoTrackIsActive(stream: MediaStream | ZegoLocalStream): Promise<boolean>;
  /** True when the audio track carries sound (checked for up to 2 s). */
  checkAudioTrackIsActive(stream: MediaStream | ZegoLocalStream): Promise<boolean>;
  /** Turns the camera off (capture stops, no video sent) or on again. */
  enableVideoCaptureDevice(localStream: MediaStream | ZegoLocalStream, enable?: boolean): Promise<boolean>;
  /** Mutes the microphone of every local stream (silence is sent). */
  muteMicrophone(mute: boolean): boolean;
  isMicrophoneMuted(): boolean;
  useVideoDevice(localStream: MediaStream | ZegoLocalStream, deviceID: string): Promise<ZegoServerResponse>;
  useAudioDevice(localStream: MediaStream | ZegoLocalStream, deviceID: string): Promise<ZegoServerResponse>;
  useFrontCamera(localStream: MediaStream | ZegoLocalStream, enable: boolean): Promise<ZegoServerResponse>;
  enableAutoSwitchDevice(config: ZegoAutoSwitchDeviceConfig): void;
  setVideoConfig(localStream: MediaStream | ZegoLocalStream, constraints: ZegoPublishStreamConfig): Promise<ZegoServerResponse>;
  setAudioConfig(localStream: MediaStream | ZegoLocalStream, constraints: ZegoPublishStreamAudioConfig): Promise<ZegoServerResponse>;
  /** Volume 0–100 of what is sent (0: silence). */
  setCaptureVolume(localStream: MediaStream | ZegoLocalStream, volume: number): Promise<ZegoServerResponse>;
  /** Starts (or stops) `capturedSoundLevelUpdate` and `soundLevelUpdate` every `interval` ms (default 1000, from 500 to 3000). */
  setSoundLevelDelegate(bool: boolean, interval?: number, options?: SoundLevelDelegateOptions): void;

  /** False at once on bad arguments; the outcome comes as `publisherStateUpdate`. */
  startPublishingStream(streamID: string, localStream: MediaStream | ZegoLocalStream, publishOption?: ZegoWebPublishOption): boolean;
  stopPublishingStream(streamID: string): boolean;
  /** Rejects with a `HuddleError` when the stream cannot be played. */
  startPlayingStream(streamID: string, playOption?: ZegoWebPlayOption): Promise<MediaStream>;
  stopPlayingStream(streamID: string): void;
  getPlayingStreamQuality(streamID: string): ZegoPlayStats | null;
  /** The last quality record of a published stream (as in `publishQualityUpdate`). */
  getPublishingStreamQuality(streamID: string): ZegoPublishStats | null;

  /** Sends the stream's video as two simulcast layers, big and small (before publishing it). */
  enableDualStream(localStream: MediaStream | ZegoLocalStream): void;
  /** The small layer of a dual stream (enables it); `bitRate` in kbit/s. Default 320 wide, 15 fps, 150 kbit/s. */
  setLowStreamParameter(localStream: MediaStream | ZegoLocalStream, param: { width: number; height: number; frameRate: number; bitRate: number }): void;
  /** Which layer of a dual stream the relay sends this page: 0 small, 1 big, 2 by bandwidth (the default); false when not playing it. */
  setPlayStreamVideoType(streamID: string, streamType: number): Promise<boolean>;
  /** The relay stops (or resumes) sending this page a played stream's video; false when not playing it. */
  mutePlayStreamVideo(streamID: string, mute: boolean): Promise<boolean>;
  /** The relay stops (or resumes) sending this page a played stream's audio; false when not playing it. */
  mutePlayStreamAudio(streamID: string, mute: boolean): Promise<boolean>;
  /** Audio of every played stream, streams played later included. */
  muteAllPlayAudioStreams(mute: boolean): Promise<boolean>;
  /** Video of every played stream, streams played later included. */
  muteAllPlayVideoStreams(mute: boolean): Promise<boolean>;
  /** Plays a media element's sound on a speaker (`getSpeakers`); false where the browser cannot. */
  useAudioOutputDevice(media: HTMLMediaElement, deviceID: string): Promise<boolean>;
  /** PCM of a played stream's audio (after `startPlayingStream`), through Web Audio; `null` stops it. */
  setAudioFrameCallback(streamID: string, callback: ((audioData: ZegoAudioFrame) => unknown) | null, options?: AudioFrameOptions): Promise<ZegoServerResponse>;
  /** PCM of a local stream's microphone (what is sent), through Web Audio; `null` stops it. */
  setCaptureAudioFrameCallback(stream: ZegoLocalStream | MediaStream, callback: ((audioData: ZegoAudioFrame) => unknown) | null, options?: AudioFrameOptions): Promise<ZegoServerResponse>;

  // ZEGO features Huddle does not offer: each answers as declared, with NOT_OFFERED (7011),
  // and its first call logs a warning naming the feature (README, "Not offered").
  /** @zegoUnsupported AI noise suppression is a ZEGO add-on Huddle does not offer. */
  enableAiDenoise(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported AI noise suppression is a ZEGO add-on Huddle does not offer. */
  setAiDenoiseMode(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported The voice changer is a ZEGO add-on Huddle does not offer. */
  setVoiceChangerPreset(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported The voice changer is a ZEGO add-on Huddle does not offer. */
  setVoiceChangerParam(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported The voice changer is a ZEGO add-on Huddle does not offer. */
  enableLiveAudioEffect(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported The voice changer is a ZEGO add-on Huddle does not offer. */
  setAudioChangerParam(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Reverb is a ZEGO add-on Huddle does not offer. */
  setReverbPreset(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Virtual stereo is a ZEGO add-on Huddle does not offer. */
  enableVirtualStereo(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Beauty effects are a ZEGO add-on Huddle does not offer. */
  setEffectsBeauty(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Low-light enhancement is a ZEGO add-on Huddle does not offer. */
  setLowlightEnhancement(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  initBackgroundModule(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  enableBackgroundProcess(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  setBackgroundBlurOptions(...args: unknown[]): Promise<boolean>;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  setVirtualBackgroundOptions(...args: unknown[]): Promise<boolean>;
  /** @zegoUnsupported Background processing is a ZEGO add-on Huddle does not offer. */
  setTransparentBackgroundOptions(...args: unknown[]): Promise<boolean>;
  /** @zegoUnsupported Copyrighted music is a ZEGO add-on Huddle does not offer (throws NOT_OFFERED). */
  createCopyrightedMusic(): never;
  /** @zegoUnsupported Copyrighted music is a ZEGO add-on Huddle does not offer. */
  destroyCopyrightedMusic(): void;
  /** @zegoUnsupported Range audio is a ZEGO add-on Huddle does not offer (throws NOT_OFFERED). */
  createRangeAudioInstance(): never;
  /** @zegoUnsupported Huddle delivers media over WebRTC only; it pushes nothing to a CDN. */
  addPublishCdnUrl(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle delivers media over WebRTC only; it pushes nothing to a CDN. */
  removePublishCdnUrl(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle's relay carries no SEI. */
  setSEIConfig(...args: unknown[]): void;
  /** @zegoUnsupported Huddle's relay carries no SEI. */
  sendSEI(...args: unknown[]): boolean;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  startMixerTask(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  stopMixerTask(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  setMixerTaskConfig(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  startAutoMixerTask(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  stopAutoMixerTask(...args: unknown[]): Promise<ZegoServerResponse>;
  /** @zegoUnsupported Huddle mixes no streams on the server. */
  setStreamAlignmentProperty(...args: unknown[]): Promise<boolean>;
  /** @zegoUnsupported Audio mixing into a published stream is a ZEGO add-on Huddle does not offer. */
  startMixingAudio(...args: unknown[]): boolean;
  /** @zegoUnsupported Audio mixing into a published stream is a ZEGO add-on Huddle does not offer. */
  stopMixingAudio(...args: unknown[]): boolean;
  /** @zegoUnsupported Audio mixing into a published stream is a ZEGO add-on Huddle does not offer. */
  setMixingAudioVolume(...args: unknown[]): boolean;
  /** @zegoUnsupported The audio effect player is a ZEGO add-on Huddle does not offer (throws NOT_OFFERED). */
  createAudioEffectPlayer(...args: unknown[]): never;
  /** @zegoUnsupported The audio effect player is a ZEGO add-on Huddle does not offer (rejects with NOT_OFFERED). */
  loadAudioEffect(...args: unknown[]): Promise<string>;
  /** @zegoUnsupported The audio effect player is a ZEGO add-on Huddle does not offer. */
  unloadAudioEffect(...args: unknown[]): boolean;
  /** @zegoUnsupported Real-time sequential data is a ZEGO add-on Huddle does not offer (throws NOT_OFFERED). */
  createRealTimeSequentialDataManager(...args: unknown[]): never;
  /** @zegoUnsupported Real-time sequential data is a ZEGO add-on Huddle does not offer. */
  destroyRealTimeSequentialDataManager(...args: unknown[]): void;
  /** @zegoUnsupported The stream compositor is a ZEGO add-on Huddle does not offer (throws NOT_OFFERED). */
  createStreamCompositor(): never;
  /** @zegoUnsupported Huddle's SDK logs to the console only. */
  uploadLog(): Promise<{ errorCode: number; extendedData: string }>;
  /** @zegoUnsupported Huddle's SDK runs in browsers, not Electron (rejects with NOT_OFFERED). */
  getElectronScreenSources(): Promise<unknown[]>;
  /** @zegoUnsupported A Huddle engine is in one room at a time: create one engine per room (returns false). */
  enableMultiRoom(enable: boolean): boolean;
  /** @zegoUnsupported Huddle's server forwards no binary messages: use `sendCustomCommand` (resolves NOT_OFFERED). */
  sendTransparentMessage(roomID: string, message: { sendMode: number; sendType: number; content: Uint8Array; recvUserList: ZegoUser[]; timeOut?: number }): Promise<ZegoServerResponse>;
  /** @zegoUnsupported ZEGO's experimental APIs are private to ZEGO's cloud (rejects with NOT_OFFERED). */
  callExperimentalAPI(params: Record<string, unknown>): Promise<unknown>;
  /** @zegoUnsupported Huddle sends no video while the camera is off (`enableVideoCaptureDevice(false)`); resolves false. */
  setDummyCaptureImagePath(filePath: string, localStream: MediaStream | ZegoLocalStream): Promise<boolean>;
}

/** The same class under the name pages written for ZEGO Express use. */
export declare const ZegoExpressEngine: typeof HuddleExpressEngine;
export type ZegoExpressEngine = HuddleExpressEngine;
export default HuddleExpressEngine;

declare global {
  interface Window {
    HuddleExpressEngine: typeof HuddleExpressEngine;
    ZegoExpressEngine: typeof HuddleExpressEngine;
  }
}
