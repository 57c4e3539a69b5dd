// Engine feature area: local streams (capture, views, mutes) and publishing and playing.

import { SdkError, EngineEvent } from "./constants.js";
import { sdkError, captureError } from "./errors.js";
import { captureCamera, captureScreen, customStream } from "./capture.js";
import { ZegoStreamView } from "./view.js";
import { ZegoLocalStream } from "./local-stream.js";
import { isNonEmptyString } from "./util.js";

export class StreamsFeature {
  static setup(engine) {
    engine._streamConfigs = new WeakMap(); // MediaStream → bitrates etc. from createStream
  }

  /** Send bitrates of a stream made by `createStream` (undefined for others). */
  _streamSettings(localStream) {
    return this._streamConfigs.get(localStream);
  }

  /**
   * Captures a local stream: camera and microphone (default), the screen, or your own source.
   * @param {{camera?: {audio?: boolean, video?: boolean, audioInput?: string, videoInput?: string, width?: number, height?: number, frameRate?: number, bitrate?: number, audioBitrate?: number, videoQuality?: 1|2|3|4, facingMode?: 'user'|'environment', ANS?: boolean, AGC?: boolean, AEC?: boolean, channelCount?: 1|2}, screen?: boolean|{audio?: boolean, width?: number, height?: number, frameRate?: number, bitrate?: number, videoQuality?: 1|2|3|4}, custom?: {source: MediaStream|HTMLMediaElement, bitrate?: number, audioBitrate?: number}}} [source]
   * @returns {Promise<MediaStream>}
   */
  async createStream(source) {
    const config = source || { camera: { audio: true, video: true } };
    let captured;
    try {
      if (config.custom) {
        captured = customStream(config.custom);
      } else if (config.screen) {
        const onEnded = (stream) => this._emitter.emit(EngineEvent.SCREEN_SHARING_ENDED, stream);
        captured = await captureScreen(config.screen === true ? {} : config.screen, onEnded);
      } else {
        captured = await captureCamera(config.camera || { audio: true, video: true });
      }
    } catch (err) {
      throw captureError(err);
    }
    this._streamConfigs.set(captured.stream, captured.settings);
    this._localStreams.add(captured.stream);
    return captured.stream;
  }

  /** Stops capture: ends every track of a stream made by `createStream` or `createZegoStream`. */
  destroyStream(localStream) {
    if (localStream instanceof ZegoLocalStream) {
      localStream._destroy();
      this._releaseLocalStream(localStream);
      return;
    }
    if (!localStream || typeof localStream.getTracks !== "function") return;
    for (const track of localStream.getTracks()) track.stop();
    this._releaseLocalStream(localStream);
  }

  /**
   * A view that plays a local stream (muted, mirrored by default).
   * @param {MediaStream} localStream
   * @returns {ZegoStreamView}
   */
  createLocalStreamView(localStream) {
    return new ZegoStreamView(this._mediaStreamOf(localStream), true, this._autoplayFailedHook());
  }

  /**
   * A view that plays a stream from `startPlayingStream`.
   * @param {MediaStream} remoteStream
   * @returns {ZegoStreamView}
   */
  createRemoteStreamView(remoteStream) {
    return new ZegoStreamView(remoteStream, false, this._autoplayFailedHook());
  }

  /** Views tell the engine's listeners too when the browser blocks their autoplay (view hooks). */
  _autoplayFailedHook() {
    return { onAutoplayFailed: (video, err) => this._emitter.emit(EngineEvent.AUTOPLAY_FAILED, video, err) };
  }

  /**
   * Publishes a local stream under `streamID` (unique within the app). Returns false at once
   * on bad arguments; the outcome comes as `publisherStateUpdate` (PUBLISH_REQUESTING, then
   * PUBLISHING or NO_PUBLISH with an error code) and the others get `roomStreamUpdate` ADD.
   * @param {string} streamID
   * @param {MediaStream|ZegoLocalStream} zegoOrMediaStream
   * @param {{extraInfo?: string, videoCodec?: 'VP8'|'H264'|'VP9'}} [publishOption]
   * @returns {boolean}
   */
  startPublishingStream(streamID, zegoOrMediaStream, publishOption = {}) {
    const localStream = this._mediaStreamOf(zegoOrMediaStream);
    if (!isNonEmptyString(streamID) || !localStream || typeof localStream.getTracks !== "function") {
      this._logger.error("startPublishingStream needs a streamID and a MediaStream or ZegoLocalStream");
      return false;
    }
    if (!this._room) {
      this._logger.error("startPublishingStream: not logged in");
      return false;
    }
    if (this._media.isPublishing(streamID)) {
      this._logger.error(`already publishing ${streamID}`);
      return false;
    }
    if (this._micMuted) for (const track of localStream.getAudioTracks()) track.enabled = false;
    this._media.publish(streamID, localStream, {
      extraInfo: typeof publishOption.extraInfo === "string" ? publishOption.extraInfo : "",
      videoCodec: publishOption.videoCodec,
    });
    return true;
  }

  /**
   * Stops publishing `streamID`: the others get `roomStreamUpdate` DELETE. The local stream
   * keeps capturing (use `destroyStream` to stop it).
   * @param {string} streamID
   * @returns {boolean}
   */
  stopPublishingStream(streamID) {
    return this._media.stopPublishing(streamID);
  }

  /**
   * Replaces the video or audio track of a published stream without renegotiating
   * (switch camera, start/stop screen share in the same stream).
   * @param {MediaStream} localStream
   * @param {MediaStreamTrack} track
   * @returns {Promise<{errorCode: number, extendedData?: string}>}
   */
  async replaceTrack(zegoOrMediaStream, track) {
    const localStream = this._mediaStreamOf(zegoOrMediaStream);
    if (!localStream || !track) return { errorCode: SdkError.INVALID_ARGUMENT, extendedData: "stream and track needed" };
    const old = track.kind === "video" ? localStream.getVideoTracks() : localStream.getAudioTracks();
    for (const t of old) localStream.removeTrack(t);
    localStream.addTrack(track);
    await this._media.replaceSenderTrack(localStream, track);
    return { errorCode: 0 };
  }

  /**
   * Plays another user's stream. Resolves with a MediaStream (its tracks arrive from the
   * relay) for `createRemoteStreamView` or a `<video>`'s `srcObject`. The same MediaStream
   * keeps playing across reconnects. State comes as `playerStateUpdate`.
   * @param {string} streamID
   * `streamType` picks the layer of a dual stream: 0 small, 1 big, 2 (default) by bandwidth.
   * @param {{video?: boolean, audio?: boolean, videoCodec?: string, streamType?: 0|1|2}} [playOption]
   * @returns {Promise<MediaStream>}
   */
  async startPlayingStream(streamID, playOption = {}) {
    if (!isNonEmptyString(streamID)) throw sdkError(SdkError.INVALID_ARGUMENT, "startPlayingStream needs a streamID");
    if (!this._room) throw sdkError(SdkError.NOT_LOGGED_IN, "startPlayingStream: not logged in");
    if (playOption.streamType !== undefined) this._choosePlayLayer(streamID, playOption.streamType);
    return this._media.play(streamID, {
      video: playOption.video !== false,
      audio: playOption.audio !== false,
      videoCodec: playOption.videoCodec,
    });
  }

  /**
   * Stops playing `streamID` and ends its relay session.
   * @param {string} streamID
   */
  stopPlayingStream(streamID) {
    this._media.stopPlaying(streamID);
  }

  /**
   * The last quality record of a played stream (as in `playQualityUpdate`), or null.
   * @returns {object|null}
   */
  getPlayingStreamQuality(streamID) {
    return this._media.playQuality(streamID);
  }
}
