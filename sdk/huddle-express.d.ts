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
}

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
  errInfo: Record<string, { name?: string; message?: string }>;
  /** WebRTC works and the browser can send VP8 or H.264. */
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

export interface StreamViewEvent {
  autoplayFailed: () => void;
  canPlayVideo: () => void;
}

/** A managed `<video>` for a stream (from `createLocalStreamView`/`createRemoteStreamView`). */
export declare class ZegoStreamView {
  play(container: string | HTMLElement, options?: ZegoStreamViewOptions): void;
  stop(): void;
  resume(): void;
  setAudioMuted(muted: boolean): boolean;
  setVideoMuted(muted: boolean): boolean;
  setVolume(volume: number): boolean;
  useAudioOutputDevice(deviceID: string): Promise<void>;
  getVideoWidth(): number;
  getVideoHeight(): number;
  readonly videoElement: HTMLVideoElement | null;
  on<K extends keyof StreamViewEvent>(event: K, callback: StreamViewEvent[K]): boolean;
  off<K extends keyof StreamViewEvent>(event: K, callback?: StreamViewEvent[K]): boolean;
}

/** Events and their listener signatures. */
export interface ZegoEvent {
  roomStateChanged: (roomID: string, reason: ZegoRoomStateChangedReason, errorCode: number, extendedData: string) => void;
  roomUserUpdate: (roomID: string, updateType: "ADD" | "DELETE", userList: ZegoUser[]) => void;
  roomOnlineUserCountUpdate: (roomID: string, count: number) => void;
  roomStreamUpdate: (roomID: string, updateType: "ADD" | "DELETE", streamList: ZegoStreamList[], extendedData: string) => void;
  streamExtraInfoUpdate: (roomID: string, streamList: ZegoStreamList[]) => void;
  roomExtraInfoUpdate: (roomID: string, roomExtraInfoList: ZegoRoomExtraInfo[]) => void;
  IMRecvBroadcastMessage: (roomID: string, chatData: ZegoBroadcastMessageInfo[]) => void;
  IMRecvBarrageMessage: (roomID: string, messageInfo: ZegoBarrageMessageInfo[]) => void;
  IMRecvCustomCommand: (roomID: string, fromUser: ZegoUser, command: string) => void;
  tokenWillExpire: (roomID: string) => void;
  /** The business server muted (`MUTE`) or unmuted (`OPEN`) a stream's audio: the relay stops forwarding it. */
  remoteMicStatusUpdate: (streamID: string, status: "OPEN" | "MUTE", reason: number) => void;
  /** The business server muted (`MUTE`) or unmuted (`OPEN`) a stream's video: the relay stops forwarding it. */
  remoteCameraStatusUpdate: (streamID: string, status: "OPEN" | "MUTE", reason: number) => void;
  publisherStateUpdate: (result: ZegoPublisherState) => void;
  playerStateUpdate: (result: ZegoPlayerState) => void;
  publishQualityUpdate: (streamID: string, stats: ZegoPublishStats) => void;
  playQualityUpdate: (streamID: string, stats: ZegoPlayStats) => void;
  autoplayFailed: (player: HTMLMediaElement, error?: unknown) => void;
  screenSharingEnded: (stream: MediaStream) => void;
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
};

/** An error thrown or rejected by the SDK. */
export interface HuddleError extends Error {
  code: number;
  msg: string;
}

export declare class HuddleExpressEngine {
  /**
   * @param appID your app id (1 in dev mode)
   * @param server the websocket URL, e.g. `wss://huddle.example.com/ws`
   */
  constructor(appID: number, server: string);
  static readonly VERSION: string;
  static readonly SdkError: typeof SdkError;
  static readonly ZegoStreamView: typeof ZegoStreamView;
  readonly appID: number;
  readonly server: string;

  getVersion(): string;
  /** Leaves the room, stops media and timers, drops all listeners. */
  destroyEngine(): void;
  on<K extends keyof ZegoEvent>(event: K, callback: ZegoEvent[K]): boolean;
  off<K extends keyof ZegoEvent>(event: K, callback?: ZegoEvent[K]): boolean;
  setDebugVerbose(enable: boolean): void;
  /** @zegoPartial The console's `logLevel` only; no remote logging (`remoteLogLevel`, `logURL`). */
  setLogConfig(config: { logLevel?: "debug" | "info" | "warn" | "error" | "disable" }): boolean;
  /**
   * Advanced settings (ZEGO's `setEngineConfig`); unknown keys are ignored. `turnOnly: true`:
   * media only through the TURN servers the server hands out (`iceTransportPolicy: "relay"`),
   * for publishes and plays started afterwards.
   * @zegoPartial Knows only `turnOnly` (media through TURN only); ZEGO's other keys are ignored.
   */
  setEngineConfig(config: { turnOnly?: boolean; [key: string]: unknown }): void;

  checkSystemRequirements(
    checkType?: "webRTC" | "customCapture" | "camera" | "microphone" | "videoCodec" | "screenSharing",
  ): Promise<ZegoCapabilityDetection>;
  enumDevices(): Promise<{ cameras: ZegoDeviceInfo[]; microphones: ZegoDeviceInfo[]; speakers: ZegoDeviceInfo[] }>;
  getCameras(): Promise<ZegoDeviceInfo[]>;
  getMicrophones(): Promise<ZegoDeviceInfo[]>;
  getSpeakers(): Promise<ZegoDeviceInfo[]>;

  /** Resolves true once logged in (LOGINED), false on failure (LOGIN_FAILED with the code). */
  loginRoom(roomID: string, token: string, user: ZegoUser, config?: ZegoRoomConfig): Promise<boolean>;
  logoutRoom(roomID?: string): Promise<void>;
  renewToken(token: string, roomID?: string): boolean;
  getRoomState(roomID?: string): ZegoRoomStateChangedReason;

  sendBroadcastMessage(roomID: string, message: string): Promise<ZegoServerResponse>;
  sendBarrageMessage(roomID: string, message: string): Promise<ZegoServerResponse>;
  sendCustomCommand(roomID: string, command: string, toUserIDs?: string[]): Promise<ZegoServerResponse>;
  setRoomExtraInfo(roomID: string, key: string, value: string): Promise<ZegoServerResponse>;
  setStreamExtraInfo(streamID: string, extraInfo: string): Promise<ZegoServerResponse>;

  createStream(source?: ZegoLocalStreamConfig): Promise<MediaStream>;
  destroyStream(localStream: MediaStream): void;
  createLocalStreamView(localStream: MediaStream): ZegoStreamView;
  createRemoteStreamView(remoteStream: MediaStream): ZegoStreamView;
  /** @zegoPartial No `retain`: the local preview turns black too while video is muted. */
  mutePublishStreamVideo(localStream: MediaStream, mute: boolean): boolean;
  mutePublishStreamAudio(localStream: MediaStream, mute: boolean): boolean;
  replaceTrack(localStream: MediaStream, track: MediaStreamTrack): Promise<ZegoServerResponse>;

  /** False at once on bad arguments; the outcome comes as `publisherStateUpdate`. */
  startPublishingStream(streamID: string, localStream: MediaStream, publishOption?: ZegoWebPublishOption): boolean;
  stopPublishingStream(streamID: string): boolean;
  /** Rejects with a `HuddleError` when the stream cannot be played. */
  startPlayingStream(streamID: string, playOption?: ZegoWebPlayOption): Promise<MediaStream>;
  stopPlayingStream(streamID: string): void;
  getPlayingStreamQuality(streamID: string): ZegoPlayStats | null;
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
