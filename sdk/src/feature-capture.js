// Engine feature area: ZEGO's local-stream capture and device surface — createZegoStream,
// updatePublishingStream, addTrack/removeTrack, track checks, turning the camera off and on,
// microphone mute, device switching (by id, front/back, automatically when one goes away),
// video and audio capture settings, capture volume, and device events. Every method takes a
// ZegoLocalStream or a MediaStream from createStream, as ZEGO's do.

import { SdkError, EngineEvent, DEFAULT_VIDEO_KBPS, DEFAULT_AUDIO_KBPS } from "./constants.js";
import { sdkError, captureError, SUCCESS } from "./errors.js";
import { ZegoLocalStream } from "./local-stream.js";
import {
  planZegoStream,
  kindsOfUpdate,
  cameraVideoConstraints,
  microphoneConstraints,
  videoConfigConstraints,
  audioConfigConstraints,
  settingsMatch,
} from "./stream-options.js";
import { CaptureGain, LevelMeter } from "./sound-level.js";
import { DeviceWatcher, DeviceKind, AudioDirection, DeviceUpdate } from "./devices.js";
import { sleep } from "./util.js";

/** Capture-side events of the engine (ZEGO's names). */
export const CaptureEvent = Object.freeze({
  VIDEO_DEVICE_STATE_CHANGED: "videoDeviceStateChanged",
  AUDIO_DEVICE_STATE_CHANGED: "audioDeviceStateChanged",
  DEVICE_ERROR: "deviceError",
  CAPTURED_SOUND_LEVEL_UPDATE: "capturedSoundLevelUpdate",
});

/** How long a track check watches for frames or sound. */
const TRACK_CHECK_MS = 2000;
const TRACK_CHECK_STEP_MS = 50;

const fail = (code, message) => ({ errorCode: code, extendedData: message });
const failWith = (err) => {
  const error = captureError(err);
  return fail(error.code, error.msg || String(error));
};

export class CaptureFeature {
  static setup(engine) {
    engine._micMuted = false;
    engine._localStreams = new Set(); // live local streams (ZegoLocalStream or MediaStream), newest last
    engine._captureGains = new WeakMap(); // createStream's MediaStream → CaptureGain (setCaptureVolume)
    engine._captureVolumes = new WeakMap(); // ZegoLocalStream → capture volume 0–100
    engine._autoSwitch = { camera: false, microphone: false };
    engine._deviceWatcher = new DeviceWatcher((changes) => engine._onDevicesChanged(changes));
  }

  static teardown(engine) {
    engine._deviceWatcher.dispose();
  }

  /** What a ZegoLocalStream needs from the engine (see local-stream.js). */
  _localStreamLink() {
    return {
      isPublishing: (stream) => this._media.publishersOf(stream).length > 0,
      setSenderTrack: (stream, kind, track) => this._media.setSenderTrack(stream, kind, track),
      outputAudio: (zegoStream, capture) => this._outputAudio(zegoStream, capture),
      onAutoplayFailed: (element, err) => this._emitter.emit(EngineEvent.AUTOPLAY_FAILED, element, err),
      onTrackEnded: (track) => this._onCaptureEnded(track),
      logger: this._logger,
    };
  }

  /** The MediaStream a ZegoLocalStream sends, or the MediaStream itself. */
  _mediaStreamOf(localStream) {
    return localStream instanceof ZegoLocalStream ? localStream.stream : localStream;
  }

  /**
   * Creates a local stream and captures into it: camera and microphone by default, or
   * `camera: {video, audio}` (each `true`/false or its capture options), `screen: {video,
   * audio}`, `custom: {video: {source}, audio: {source}}`; `videoBitrate`/`audioBitrate`
   * in kbit/s. Rejects with CAPTURE_FAILED (and the browser's error name) if capture fails.
   * @returns {Promise<ZegoLocalStream>}
   */
  async createZegoStream(options) {
    const plan = planZegoStream(options);
    const zegoStream = new ZegoLocalStream(this._localStreamLink(), {
      bitrate: plan.bitrate || DEFAULT_VIDEO_KBPS,
      audioBitrate: plan.audioBitrate || DEFAULT_AUDIO_KBPS,
      source: plan.source,
    });
    try {
      if (plan.source === "custom") {
        const result = await zegoStream._captureCustom(plan.video || null, plan.audio || null);
        if (result.errorCode) throw sdkError(result.errorCode, result.extendedData);
      } else if (plan.source === "screen") {
        if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== "function") {
          throw sdkError(SdkError.UNSUPPORTED, "screen sharing is not available in this browser");
        }
        const stream = await navigator.mediaDevices.getDisplayMedia({ video: plan.video || true, audio: plan.audio });
        const video = stream.getVideoTracks()[0];
        if (video) video.addEventListener("ended", () => this._emitter.emit(EngineEvent.SCREEN_SHARING_ENDED, zegoStream.stream), { once: true });
        zegoStream._adoptCapture("video", video, "screen", plan.video);
        zegoStream._adoptCapture("audio", stream.getAudioTracks()[0], "screen", plan.audio);
      } else {
        if (!plan.video && !plan.audio) throw sdkError(SdkError.INVALID_ARGUMENT, "camera: video and audio are both off");
        if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
          throw sdkError(SdkError.UNSUPPORTED, "getUserMedia is not available (a secure context, https or localhost, is needed)");
        }
        const stream = await navigator.mediaDevices.getUserMedia({ video: plan.video, audio: plan.audio });
        zegoStream._adoptCapture("video", stream.getVideoTracks()[0], "camera", plan.video);
        zegoStream._adoptCapture("audio", stream.getAudioTracks()[0], "camera", plan.audio);
      }
    } catch (err) {
      zegoStream._destroy();
      throw captureError(err);
    }
    this._streamConfigs.set(zegoStream.stream, zegoStream.settings);
    this._localStreams.add(zegoStream);
    const opts = options || {};
    if (opts.view) zegoStream.playVideo(opts.view);
    if (opts.captureView) zegoStream.playCaptureVideo(opts.captureView);
    return zegoStream;
  }

  /** Ends what a local stream holds beyond its tracks (capture volume stages), and forgets it. */
  _releaseLocalStream(localStream) {
    this._localStreams.delete(localStream);
    const gain = this._captureGains.get(localStream);
    if (gain) {
      gain.source.stop();
      gain.dispose();
      this._captureGains.delete(localStream);
    }
  }

  /** The audio track to send for `capture` (after the capture volume stage and microphone mute). */
  _outputAudio(zegoStream, capture) {
    const volume = this._captureVolumes.get(zegoStream);
    let track = capture;
    if (volume !== undefined) {
      if (!zegoStream._audioGain || zegoStream._audioGain.source !== capture) {
        if (zegoStream._audioGain) zegoStream._audioGain.dispose();
        zegoStream._audioGain = new CaptureGain(capture);
      }
      zegoStream._audioGain.setVolume(volume);
      track = zegoStream._audioGain.track;
    }
    if (this._micMuted) track.enabled = false;
    return track;
  }

  /**
   * Sends the stream's latest capture (`updateType` 0 video, 1 audio, 2 both) in its running
   * publishes: swapped into the senders, no renegotiation.
   */
  async updatePublishingStream(zegoStream, updateType) {
    if (!(zegoStream instanceof ZegoLocalStream)) return fail(SdkError.INVALID_ARGUMENT, "updatePublishingStream needs a ZegoLocalStream");
    const kinds = kindsOfUpdate(updateType);
    if (!kinds.length) return fail(SdkError.INVALID_ARGUMENT, `unknown update type ${updateType}`);
    try {
      for (const kind of kinds) await zegoStream._send(kind);
      return SUCCESS;
    } catch (err) {
      return fail(SdkError.MEDIA_FAILED, String(err && err.message));
    }
  }

  /** Adds a track of a kind the stream lacks; a running publish starts sending it. */
  async addTrack(localStream, track) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || !track || typeof stream.addTrack !== "function") return fail(SdkError.INVALID_ARGUMENT, "addTrack needs a stream and a track");
    const same = track.kind === "video" ? stream.getVideoTracks() : stream.getAudioTracks();
    if (same.length) return fail(SdkError.INVALID_ARGUMENT, `the stream has a ${track.kind} track already (use replaceTrack)`);
    stream.addTrack(track);
    await this._media.setSenderTrack(stream, track.kind, track);
    return SUCCESS;
  }

  /** Removes a track from the stream; a running publish stops sending it. */
  async removeTrack(localStream, track) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || !track || !stream.getTracks().includes(track)) return fail(SdkError.INVALID_ARGUMENT, "the track is not in the stream");
    stream.removeTrack(track);
    await this._media.setSenderTrack(stream, track.kind, null);
    return SUCCESS;
  }

  /** True when the stream's video track delivers frames (within about 2 s). */
  async checkVideoTrackIsActive(localStream) {
    const stream = this._mediaStreamOf(localStream);
    const track = stream && stream.getVideoTracks().find((t) => t.readyState === "live");
    if (!track || !track.enabled) return false;
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = new MediaStream([track]);
    try {
      await video.play().catch(() => {});
      const deadline = Date.now() + TRACK_CHECK_MS;
      let first = -1;
      while (Date.now() < deadline) {
        if (video.videoWidth > 0) {
          if (first < 0) first = video.currentTime;
          else if (video.currentTime > first) return true;
        }
        await sleep(TRACK_CHECK_STEP_MS);
      }
      return false;
    } finally {
      video.pause();
      video.srcObject = null;
    }
  }

  /** True when the stream's audio track carries sound (within about 2 s). */
  async checkAudioTrackIsActive(localStream) {
    const stream = this._mediaStreamOf(localStream);
    const track = stream && stream.getAudioTracks().find((t) => t.readyState === "live");
    if (!track || !track.enabled) return false;
    let meter;
    try {
      meter = new LevelMeter(track);
    } catch (_) {
      return false;
    }
    try {
      const deadline = Date.now() + TRACK_CHECK_MS;
      while (Date.now() < deadline) {
        if (meter.hasSignal()) return true;
        await sleep(TRACK_CHECK_STEP_MS);
      }
      return false;
    } finally {
      meter.dispose();
    }
  }

  /**
   * Turns the camera off (`enable` false: its capture stops, the light goes out, a publish
   * sends no video) or on again (captured as before and sent).
   * @returns {Promise<boolean>}
   */
  async enableVideoCaptureDevice(localStream, enable = true) {
    try {
      if (localStream instanceof ZegoLocalStream) {
        if (!enable) {
          localStream._cameraOff = localStream._captureConstraints("video") || cameraVideoConstraints(true).video;
          await localStream.stopCaptureVideo();
          return true;
        }
        if (localStream.videoCaptureStream) return true;
        await localStream._recapture("video", localStream._cameraOff || cameraVideoConstraints(true).video);
        return true;
      }
      const stream = localStream;
      if (!stream || typeof stream.getVideoTracks !== "function") return false;
      const settings = this._streamConfigs.get(stream) || {};
      if (!enable) {
        for (const track of stream.getVideoTracks()) {
          stream.removeTrack(track);
          track.stop();
        }
        await this._media.setSenderTrack(stream, "video", null);
        return true;
      }
      if (stream.getVideoTracks().some((t) => t.readyState === "live")) return true;
      const constraints = (settings.constraints && settings.constraints.video) || cameraVideoConstraints(true).video;
      await this._swapCapture(stream, "video", constraints);
      return true;
    } catch (err) {
      this._logger.warn("enableVideoCaptureDevice failed", err && err.name, err && err.message);
      return false;
    }
  }

  /** Mutes (or unmutes) the microphone of every local stream: silence is sent while muted. */
  muteMicrophone(mute) {
    this._micMuted = !!mute;
    for (const local of this._localStreams) {
      for (const track of this._mediaStreamOf(local).getAudioTracks()) track.enabled = !this._micMuted;
    }
    return true;
  }

  isMicrophoneMuted() {
    return this._micMuted;
  }

  /** Captures video from another camera and sends it in place of the current one. */
  async useVideoDevice(localStream, deviceID) {
    const constraints = Object.assign({}, this._currentConstraints(localStream, "video"), { deviceId: { exact: deviceID } });
    delete constraints.facingMode;
    return this._switchCapture(localStream, "video", constraints);
  }

  /** Captures audio from another microphone and sends it in place of the current one. */
  async useAudioDevice(localStream, deviceID) {
    const constraints = Object.assign({}, this._currentConstraints(localStream, "audio"), { deviceId: { exact: deviceID } });
    return this._switchCapture(localStream, "audio", constraints);
  }

  /** Switches to the front (`enable` true) or back camera. */
  async useFrontCamera(localStream, enable) {
    const constraints = Object.assign({}, this._currentConstraints(localStream, "video"), { facingMode: enable ? "user" : "environment" });
    delete constraints.deviceId;
    return this._switchCapture(localStream, "video", constraints);
  }

  /** Switches capture to the default device when the camera or microphone in use goes away. */
  enableAutoSwitchDevice(config) {
    this._autoSwitch = { camera: !!(config && config.camera), microphone: !!(config && config.microphone) };
  }

  /** Applies width/height/frameRate to the camera and a maximum bitrate to the sender. */
  async setVideoConfig(localStream, config) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || typeof stream.getVideoTracks !== "function") return fail(SdkError.INVALID_ARGUMENT, "setVideoConfig needs a local stream");
    const { constraints, bitrate } = videoConfigConstraints(config);
    const track = localStream instanceof ZegoLocalStream ? localStream.videoCaptureStream && localStream.videoCaptureStream.getVideoTracks()[0] : stream.getVideoTracks()[0];
    try {
      if (track && Object.keys(constraints).length) await track.applyConstraints(Object.assign({}, track.getConstraints(), constraints));
    } catch (err) {
      return fail(SdkError.CAPTURE_FAILED, `${err && err.name}: ${err && err.message}`);
    }
    if (bitrate) {
      const settings = this._streamConfigs.get(stream);
      if (settings) settings.bitrate = bitrate;
      this._media.setSenderBitrate(stream, "video", bitrate);
    }
    return SUCCESS;
  }

  /** Turns echo cancellation, noise suppression and gain control on or off (captured again if need be). */
  async setAudioConfig(localStream, config) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || typeof stream.getAudioTracks !== "function") return fail(SdkError.INVALID_ARGUMENT, "setAudioConfig needs a local stream");
    const constraints = audioConfigConstraints(config);
    const track = this._rawAudioTrack(localStream);
    if (!track) return fail(SdkError.INVALID_ARGUMENT, "the stream has no audio");
    try {
      await track.applyConstraints(Object.assign({}, track.getConstraints(), constraints));
    } catch (_) {
      /* some browsers refuse these on a live track: capture again below */
    }
    if (settingsMatch(track.getSettings(), constraints)) return SUCCESS;
    return this._switchCapture(localStream, "audio", Object.assign({}, this._currentConstraints(localStream, "audio"), constraints));
  }

  /** Capture volume 0–100 of what is sent (100: as captured, 0: silence). */
  async setCaptureVolume(localStream, volume) {
    if (typeof volume !== "number" || !(volume >= 0 && volume <= 100)) return fail(SdkError.INVALID_ARGUMENT, "volume must be 0–100");
    try {
      if (localStream instanceof ZegoLocalStream) {
        this._captureVolumes.set(localStream, volume);
        if (localStream._audioGain) localStream._audioGain.setVolume(volume);
        else await localStream._send("audio");
        return SUCCESS;
      }
      const stream = localStream;
      if (!stream || typeof stream.getAudioTracks !== "function") return fail(SdkError.INVALID_ARGUMENT, "setCaptureVolume needs a local stream");
      let gain = this._captureGains.get(stream);
      if (!gain) {
        const raw = stream.getAudioTracks()[0];
        if (!raw) return fail(SdkError.INVALID_ARGUMENT, "the stream has no audio");
        gain = new CaptureGain(raw);
        this._captureGains.set(stream, gain);
        stream.removeTrack(raw);
        stream.addTrack(gain.track);
        gain.track.enabled = !this._micMuted;
        await this._media.setSenderTrack(stream, "audio", gain.track);
      }
      gain.setVolume(volume);
      return SUCCESS;
    } catch (err) {
      return fail(SdkError.UNSUPPORTED, `capture volume needs Web Audio: ${err && err.message}`);
    }
  }

  // ----- helpers -------------------------------------------------------------------------

  /** The captured (unprocessed) audio track of a local stream. */
  _rawAudioTrack(localStream) {
    if (localStream instanceof ZegoLocalStream) return localStream.audioCaptureStream && localStream.audioCaptureStream.getAudioTracks()[0];
    const gain = this._captureGains.get(localStream);
    return gain ? gain.source : localStream.getAudioTracks()[0];
  }

  /** What the current capture of `kind` asked for, or the defaults. */
  _currentConstraints(localStream, kind) {
    let constraints = null;
    if (localStream instanceof ZegoLocalStream) constraints = localStream._captureConstraints(kind);
    else {
      const settings = this._streamConfigs.get(localStream);
      constraints = settings && settings.constraints && settings.constraints[kind];
    }
    if (constraints && typeof constraints === "object") return constraints;
    return kind === "video" ? cameraVideoConstraints(true).video : microphoneConstraints(true).audio;
  }

  async _switchCapture(localStream, kind, constraints) {
    try {
      if (localStream instanceof ZegoLocalStream) await localStream._recapture(kind, constraints);
      else if (localStream && typeof localStream.getTracks === "function") await this._swapCapture(localStream, kind, constraints);
      else return fail(SdkError.INVALID_ARGUMENT, "a local stream is needed");
      return SUCCESS;
    } catch (err) {
      return failWith(err);
    }
  }

  /** Captures `kind` again into a MediaStream from createStream and sends the new track. */
  async _swapCapture(stream, kind, constraints) {
    const captured = await navigator.mediaDevices.getUserMedia({ [kind]: constraints });
    const raw = kind === "video" ? captured.getVideoTracks()[0] : captured.getAudioTracks()[0];
    let track = raw;
    const gain = kind === "audio" ? this._captureGains.get(stream) : null;
    if (gain) {
      const volume = gain.gain.gain.value * 100;
      gain.source.stop();
      gain.dispose();
      const next = new CaptureGain(raw);
      next.setVolume(volume);
      this._captureGains.set(stream, next);
      track = next.track;
    }
    if (kind === "audio" && this._micMuted) track.enabled = false;
    const before = kind === "video" ? stream.getVideoTracks() : stream.getAudioTracks();
    for (const old of before) stream.removeTrack(old);
    stream.addTrack(track);
    const settings = this._streamConfigs.get(stream);
    if (settings) settings.constraints = Object.assign({}, settings.constraints, { [kind]: constraints });
    // The senders take the new track before the old one stops.
    await this._media.setSenderTrack(stream, kind, track);
    for (const old of before) old.stop();
  }

  /** A captured track ended without the page asking (unplugged, revoked): ZEGO's deviceError. */
  _onCaptureEnded(track) {
    this._emitter.emit(CaptureEvent.DEVICE_ERROR, SdkError.CAPTURE_FAILED, track.label || track.kind);
  }

  /** Device events, and a switch to the default device when the one in use went away. */
  _onDevicesChanged(changes) {
    for (const { updateType, kind, info } of changes) {
      if (kind === DeviceKind.CAMERA) this._emitter.emit(CaptureEvent.VIDEO_DEVICE_STATE_CHANGED, updateType, info);
      else {
        const direction = kind === DeviceKind.SPEAKER ? AudioDirection.OUTPUT : AudioDirection.INPUT;
        this._emitter.emit(CaptureEvent.AUDIO_DEVICE_STATE_CHANGED, updateType, direction, info);
      }
    }
    const gone = new Set(changes.filter((c) => c.updateType === DeviceUpdate.DELETE).map((c) => c.info.deviceID));
    if (!gone.size) return;
    for (const local of this._localStreams) {
      for (const kind of ["video", "audio"]) {
        if (!(kind === "video" ? this._autoSwitch.camera : this._autoSwitch.microphone)) continue;
        const track = kind === "video" ? this._mediaStreamOf(local).getVideoTracks()[0] : this._rawAudioTrack(local);
        const deviceId = track && typeof track.getSettings === "function" ? track.getSettings().deviceId : "";
        if (!deviceId || !gone.has(deviceId)) continue;
        const constraints = Object.assign({}, this._currentConstraints(local, kind));
        delete constraints.deviceId;
        this._switchCapture(local, kind, constraints).then((result) => {
          if (result.errorCode) this._logger.warn("automatic device switch failed", kind, result.extendedData);
        });
      }
    }
  }
}
