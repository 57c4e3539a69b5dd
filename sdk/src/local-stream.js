// ZegoLocalStream: a local stream as ZEGO's createZegoStream returns it. It keeps two things
// apart, as ZEGO does: what is being captured (the latest camera/screen/custom video and
// microphone/screen/custom audio) and what is sent (the stream a publish uses and
// `playVideo` shows). Before it is published, what is sent follows what is captured; while
// it is published, a new capture is sent only after `updatePublishingStream`. A track that
// changes under a running publish is swapped into its sender, without renegotiation.
//
// It talks to the engine only through `link`:
//   isPublishing(stream) → boolean     a publish of this stream runs
//   setSenderTrack(stream, kind, track) → Promise   swap a track into its running publishes
//   outputAudio(zegoStream, track) → MediaStreamTrack   the track to send for a captured one
//   onTrackEnded(track)                a capture ended without the page asking (deviceError)
//   onAutoplayFailed(element, err), logger

import { SdkError } from "./constants.js";
import { sdkError, captureError, SUCCESS } from "./errors.js";
import { Emitter } from "./emitter.js";
import { ZegoStreamView, resolveElement, snapshotOf } from "./view.js";
import { cameraVideoConstraints, microphoneConstraints, screenShareConstraints } from "./stream-options.js";

/** Events of a ZegoLocalStream. */
export const LocalStreamEvent = Object.freeze({
  AUTOPLAY_FAILED: "autoplayFailed",
  CAN_PLAY_AUDIO: "canPlayAudio",
  CAN_PLAY_VIDEO: "canPlayVideo",
  CAN_PLAY_CAPTURE_VIDEO: "canPlayCaptureVideo",
  CAN_PLAY_CAPTURE_AUDIO: "canPlayCaptureAudio",
  AUTOPLAY_CAPTURE_FAILED: "autoplayCaptureFailed",
  VIDEO_TRACK_CHANGED: "videoTrackChanged",
  AUDIO_TRACK_CHANGED: "audioTrackChanged",
  CAPTURE_VIDEO_TRACK_CHANGED: "captureVideoTrackChanged",
  CAPTURE_AUDIO_TRACK_CHANGED: "captureAudioTrackChanged",
});


/** `{errorCode, extendedData}` of a failed capture. */
function captureFailure(err) {
  const error = captureError(err);
  return { errorCode: error.code, extendedData: error.msg || String(error) };
}

/** A MediaStream track of a custom source (a MediaStream or a media element). */
function customTrack(source, kind) {
  let stream = source;
  if (typeof HTMLMediaElement !== "undefined" && source instanceof HTMLMediaElement) {
    const capture = source.captureStream || source.mozCaptureStream;
    if (!capture) throw sdkError(SdkError.UNSUPPORTED, "this browser cannot capture a media element");
    stream = capture.call(source);
  }
  if (typeof MediaStream === "undefined" || !(stream instanceof MediaStream)) {
    throw sdkError(SdkError.INVALID_ARGUMENT, "a custom source must be a MediaStream or an HTMLMediaElement");
  }
  const track = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
  if (!track) throw sdkError(SdkError.INVALID_ARGUMENT, `the custom source has no ${kind} track`);
  return track;
}

export class ZegoLocalStream {
  /**
   * Made by `createZegoStream`, not by pages.
   * @param {object} link see above
   * @param {{bitrate: number, audioBitrate: number}} settings send bitrates (kbit/s)
   */
  constructor(link, settings) {
    this._link = link;
    this._emitter = new Emitter(null);
    this._stream = new MediaStream(); // what is sent and what playVideo shows
    this._capture = { video: null, audio: null }; // the latest captured tracks
    this._captureStreams = { video: new MediaStream(), audio: new MediaStream() };
    this._sources = { video: null, audio: null }; // "camera" | "screen" | "custom", per kind
    this._constraints = { video: null, audio: null }; // what the current capture asked for
    this.settings = settings;
    this._videoView = null;
    this._captureView = null;
    this._audioPlayer = null;
    this._captureAudioPlayer = null;
    this._volume = 100;
    this._cameraOff = null; // the camera's constraints while enableVideoCaptureDevice turned it off
    this._audioGain = null; // a CaptureGain the engine puts in front of the sent audio (setCaptureVolume)
    this.zegoStream = this; // ZEGO exposes its internal stream object here
  }

  // ----- what it holds -------------------------------------------------------------------

  /** True while a track of the stream is live. */
  get active() {
    return this._stream.getTracks().some((t) => t.readyState === "live");
  }

  get id() {
    return this._stream.id;
  }

  /** The stream being sent (or to be sent) and shown by `playVideo`. */
  get stream() {
    return this._stream;
  }

  /** The latest captured video, as a MediaStream (null when none is captured). */
  get videoCaptureStream() {
    return this._capture.video ? this._captureStreams.video : null;
  }

  /** The latest captured audio, as a MediaStream (null when none is captured). */
  get audioCaptureStream() {
    return this._capture.audio ? this._captureStreams.audio : null;
  }

  getAudioTracks() {
    return this._stream.getAudioTracks();
  }

  getVideoTracks() {
    return this._stream.getVideoTracks();
  }

  getTracks() {
    return this._stream.getTracks();
  }

  get videoDeviceId() {
    return deviceIdOf(this._capture.video);
  }

  get audioDeviceId() {
    return deviceIdOf(this._capture.audio);
  }

  on(event, callback) {
    return this._emitter.on(event, callback);
  }

  off(event, callback) {
    return this._emitter.off(event, callback);
  }

  // ----- capture -------------------------------------------------------------------------

  /** Captures the camera (it is not sent until `updatePublishingStream` while publishing). */
  async startCaptureCamera(options) {
    return this._captureWith("video", "camera", cameraVideoConstraints(options).video);
  }

  async startCaptureMicrophone(options) {
    return this._captureWith("audio", "camera", microphoneConstraints(options).audio);
  }

  async startCaptureCameraAndMicrophone(cameraOptions, microphoneOptions) {
    const video = cameraVideoConstraints(cameraOptions).video;
    const audio = microphoneConstraints(microphoneOptions).audio;
    try {
      const stream = await getUserMedia({ video, audio });
      this._adoptCapture("video", stream.getVideoTracks()[0], "camera", video);
      this._adoptCapture("audio", stream.getAudioTracks()[0], "camera", audio);
      return SUCCESS;
    } catch (err) {
      return captureFailure(err);
    }
  }

  async startCaptureScreen(options) {
    return this._captureScreen(options, null);
  }

  async startCaptureScreenWithAudio(videoOptions, audioOptions) {
    return this._captureScreen(videoOptions, audioOptions || {});
  }

  async _captureScreen(videoOptions, audioOptions) {
    if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== "function") {
      return captureFailure(sdkError(SdkError.UNSUPPORTED, "screen sharing is not available in this browser"));
    }
    const { video, audio } = screenShareConstraints(videoOptions, audioOptions);
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video, audio });
      this._adoptCapture("video", stream.getVideoTracks()[0], "screen", video);
      const audioTrack = stream.getAudioTracks()[0];
      if (audioTrack) this._adoptCapture("audio", audioTrack, "screen", audio);
      return SUCCESS;
    } catch (err) {
      return captureFailure(err);
    }
  }

  async startCaptureCustomVideo(options) {
    return this._captureCustom(options, null);
  }

  async startCaptureCustomAudio(options) {
    return this._captureCustom(null, options);
  }

  async startCaptureCustomVideoAndAudio(videoOptions, audioOptions) {
    return this._captureCustom(videoOptions, audioOptions);
  }

  async _captureCustom(videoOptions, audioOptions) {
    try {
      const video = videoOptions ? customTrack(videoOptions.source, "video") : null;
      const audio = audioOptions ? customTrack(audioOptions.source, "audio") : null;
      if (video) this._adoptCapture("video", video, "custom", null);
      if (audio) this._adoptCapture("audio", audio, "custom", null);
      return SUCCESS;
    } catch (err) {
      return captureFailure(err);
    }
  }

  /** Stops capturing video; a publish of it sends no video from now on. */
  async stopCaptureVideo() {
    this._stopCapture("video");
    return true;
  }

  /** Stops capturing audio; a publish of it sends no audio from now on. */
  async stopCaptureAudio() {
    this._stopCapture("audio");
    return true;
  }

  async _captureWith(kind, source, constraints) {
    try {
      const stream = await getUserMedia({ [kind]: constraints });
      const track = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      this._adoptCapture(kind, track, source, constraints);
      return SUCCESS;
    } catch (err) {
      return captureFailure(err);
    }
  }

  /** Recaptures `kind` with `constraints` and sends it at once (device switches). */
  async _recapture(kind, constraints) {
    const stream = await getUserMedia({ [kind]: constraints });
    const track = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    this._adoptCapture(kind, track, this._sources[kind] || "camera", constraints);
    await this._send(kind);
  }

  /** What the current capture of `kind` asked for (to capture it again the same way). */
  _captureConstraints(kind) {
    return this._constraints[kind];
  }

  /** Makes `track` the capture of `kind`; sent at once unless a publish runs. */
  _adoptCapture(kind, track, source, constraints) {
    if (!track) return;
    const old = this._capture[kind];
    this._capture[kind] = track;
    this._sources[kind] = source;
    this._constraints[kind] = constraints;
    const captureStream = this._captureStreams[kind];
    for (const t of captureStream.getTracks()) captureStream.removeTrack(t);
    captureStream.addTrack(track);
    if (old && old !== track && !this._isSent(old)) old.stop();
    // Ended by the browser (device unplugged, permission revoked), not by a stop of ours.
    track.addEventListener(
      "ended",
      () => {
        if (this._capture[kind] === track) this._link.onTrackEnded(track);
      },
      { once: true },
    );
    this._emitter.emit(kind === "video" ? LocalStreamEvent.CAPTURE_VIDEO_TRACK_CHANGED : LocalStreamEvent.CAPTURE_AUDIO_TRACK_CHANGED, track);
    if (!this._link.isPublishing(this._stream)) this._send(kind).catch(() => {});
  }

  _stopCapture(kind) {
    const track = this._capture[kind];
    this._capture[kind] = null;
    const captureStream = this._captureStreams[kind];
    for (const t of captureStream.getTracks()) captureStream.removeTrack(t);
    if (track) track.stop();
    // What is sent stops too (ZEGO stops the published capture as well).
    for (const sent of this._sentTracks(kind)) {
      this._stream.removeTrack(sent);
      sent.stop();
    }
    this._link.setSenderTrack(this._stream, kind, null).catch(() => {});
  }

  _sentTracks(kind) {
    return kind === "video" ? this._stream.getVideoTracks() : this._stream.getAudioTracks();
  }

  _isSent(track) {
    return this._stream.getTracks().includes(track) || this._sentSource(track);
  }

  /** The processed audio sent for a raw capture (capture volume) counts as sending it. */
  _sentSource(track) {
    return !!this._audioGain && this._audioGain.source === track && this._stream.getTracks().includes(this._audioGain.track);
  }

  /**
   * Sends the current capture of `kind` (`updatePublishingStream`): it replaces what the
   * stream sent before, in the stream and in every running publish's sender.
   */
  async _send(kind) {
    const capture = this._capture[kind];
    if (!capture) return false;
    const track = kind === "audio" ? this._link.outputAudio(this, capture) : capture;
    const before = this._sentTracks(kind);
    if (before.length === 1 && before[0] === track) return true;
    for (const old of before) this._stream.removeTrack(old);
    this._stream.addTrack(track);
    this._emitter.emit(kind === "video" ? LocalStreamEvent.VIDEO_TRACK_CHANGED : LocalStreamEvent.AUDIO_TRACK_CHANGED, track);
    // The senders take the new track before the old one stops (a sender whose track ended
    // may stay silent after the swap).
    await this._link.setSenderTrack(this._stream, kind, track);
    for (const old of before) {
      if (old !== capture && old !== track && !this._isCapture(old)) old.stop();
    }
    return true;
  }

  _isCapture(track) {
    return track === this._capture.video || track === this._capture.audio;
  }

  // ----- playback on the page ------------------------------------------------------------

  /**
   * Shows what is sent (or to be sent) in `view` (an element, or its id): a `<video>` filling
   * it. Options: `mirror` (default false), `objectFit` (default "contain"), `enableAutoplayDialog`.
   */
  playVideo(view, config = {}) {
    const element = resolveElement(view);
    if (this._videoView) this._videoView.stop();
    this._videoView = this._newView(this._stream, LocalStreamEvent.CAN_PLAY_VIDEO, LocalStreamEvent.AUTOPLAY_FAILED);
    this._videoView.play(element, viewOptions(config));
  }

  /** Shows the latest capture in `view` (an element, or its id). */
  playCaptureVideo(view, config = {}) {
    const element = resolveElement(view);
    if (this._captureView) this._captureView.stop();
    this._captureView = this._newView(this._captureStreams.video, LocalStreamEvent.CAN_PLAY_CAPTURE_VIDEO, LocalStreamEvent.AUTOPLAY_CAPTURE_FAILED);
    this._captureView.play(element, viewOptions(config));
  }

  _newView(stream, canPlayEvent, failedEvent) {
    return new ZegoStreamView(stream, true, {
      onCanPlay: (event) => this._emitter.emit(canPlayEvent, event),
      onAutoplayFailed: (element, err) => {
        this._emitter.emit(failedEvent, element, err);
        this._link.onAutoplayFailed(element, err);
      },
    });
  }

  stopVideo() {
    if (this._videoView) this._videoView.stop();
    this._videoView = null;
  }

  stopPlayCaptureVideo() {
    if (this._captureView) this._captureView.stop();
    this._captureView = null;
  }

  resumeVideo() {
    if (this._videoView) this._videoView.resume();
  }

  /** Plays what is sent (or to be sent) as sound on this page (a blocked autoplay raises `autoplayFailed`). */
  playAudio() {
    this.stopAudio();
    this._audioPlayer = this._playSound(this._stream, LocalStreamEvent.CAN_PLAY_AUDIO, LocalStreamEvent.AUTOPLAY_FAILED);
  }

  /** Plays the latest captured audio on this page. */
  playCaptureAudio() {
    this.stopPlayCaptureAudio();
    this._captureAudioPlayer = this._playSound(this._captureStreams.audio, LocalStreamEvent.CAN_PLAY_CAPTURE_AUDIO, LocalStreamEvent.AUTOPLAY_CAPTURE_FAILED);
  }

  _playSound(stream, canPlayEvent, failedEvent) {
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.srcObject = stream;
    audio.volume = this._volume / 100;
    audio.addEventListener("loadedmetadata", (event) => this._emitter.emit(canPlayEvent, event), { once: true });
    const attempt = audio.play();
    if (attempt && typeof attempt.catch === "function") {
      attempt.catch((err) => {
        if (!err || err.name !== "NotAllowedError") return;
        this._emitter.emit(failedEvent, audio, err);
        this._link.onAutoplayFailed(audio, err);
      });
    }
    return audio;
  }

  stopAudio() {
    if (this._audioPlayer) {
      this._audioPlayer.pause();
      this._audioPlayer.srcObject = null;
    }
    this._audioPlayer = null;
  }

  stopPlayCaptureAudio() {
    if (this._captureAudioPlayer) {
      this._captureAudioPlayer.pause();
      this._captureAudioPlayer.srcObject = null;
    }
    this._captureAudioPlayer = null;
  }

  resumeAudio() {
    const player = this._audioPlayer;
    if (!player) return undefined;
    return player.play().catch(() => {});
  }

  /** Volume (0–100) of `playAudio`/`playCaptureAudio` on this page (not of what is sent). */
  setVolume(volume) {
    if (typeof volume !== "number" || volume < 0 || volume > 100) return false;
    this._volume = volume;
    for (const player of [this._audioPlayer, this._captureAudioPlayer]) if (player) player.volume = volume / 100;
    return true;
  }

  async useAudioOutputDevice(deviceID) {
    for (const player of [this._audioPlayer, this._captureAudioPlayer]) {
      if (player && typeof player.setSinkId === "function") await player.setSinkId(deviceID);
    }
  }

  /**
   * A picture of what `playVideo` shows, as a data URI (`imageType` "png" or "jpeg",
   * `quality` 0–1); "" before the first frame.
   */
  takeStreamSnapshot(option = {}) {
    return snapshotOf(this._videoView && this._videoView.videoElement, option);
  }

  /** "monitor", "window" or "browser" for a screen capture; "unknown" otherwise. */
  getScreenDisplaySurface() {
    const track = this._sources.video === "screen" ? this._capture.video : null;
    const settings = track && typeof track.getSettings === "function" ? track.getSettings() : {};
    return settings.displaySurface || "unknown";
  }

  /** Stops every capture and playback (`destroyStream`). */
  _destroy() {
    this.stopVideo();
    this.stopPlayCaptureVideo();
    this.stopAudio();
    this.stopPlayCaptureAudio();
    for (const track of [...this._stream.getTracks(), this._capture.video, this._capture.audio]) if (track) track.stop();
    this._capture = { video: null, audio: null };
    if (this._audioGain) this._audioGain.dispose();
    this._audioGain = null;
  }
}

function deviceIdOf(track) {
  if (!track || typeof track.getSettings !== "function") return "";
  return track.getSettings().deviceId || "";
}

function viewOptions(config) {
  return {
    mirror: config.mirror === true,
    objectFit: config.objectFit || "contain",
    enableAutoplayDialog: config.enableAutoplayDialog !== false,
  };
}

function getUserMedia(constraints) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return Promise.reject(sdkError(SdkError.UNSUPPORTED, "getUserMedia is not available (a secure context, https or localhost, is needed)"));
  }
  return navigator.mediaDevices.getUserMedia(constraints);
}
