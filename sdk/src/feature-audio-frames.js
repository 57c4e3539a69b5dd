// Engine feature area: the raw audio of a played stream (`setAudioFrameCallback`) or of a
// local stream (`setCaptureAudioFrameCallback`), as ZEGO's `ZegoAudioFrame`s (audio-frames.js).
// A played stream's tap follows its audio track when the stream is played again (after a
// reconnect the relay sends a new track).

import { SdkError } from "./constants.js";
import { AudioFrameTap, frameOptions } from "./audio-frames.js";
import { SUCCESS } from "./errors.js";

function failure(errorCode, extendedData) {
  return { errorCode, extendedData };
}

export class AudioFramesFeature {
  static setup(engine) {
    engine._playTaps = new Map(); // streamID → {tap, callback, options}
    engine._captureTaps = new Map(); // MediaStream → AudioFrameTap
    engine._media.observe({
      onPlayerTrack: (session, track) => engine._retapPlayer(session.streamID, track),
      onState: (session, state) => {
        if (state === "NO_PLAY" && session.kind === "play") engine._untap(engine._playTaps, session.streamID);
      },
    });
  }

  static teardown(engine) {
    for (const key of [...engine._playTaps.keys()]) engine._untap(engine._playTaps, key);
    for (const key of [...engine._captureTaps.keys()]) engine._untap(engine._captureTaps, key);
  }

  /**
   * PCM of a played stream's audio to `callback` (`null` stops it), after it started playing.
   * @param {string} streamID
   * @param {((frame: {channels: Float32Array[]|Int16Array[], channelCount: number, sampleRate: number}) => void)|null} callback
   * @param {{frameSize?: number, sampleRate?: number, channelCount?: 1|2, bitDepth?: 16|32}} [options]
   * @returns {Promise<{errorCode: number, extendedData: string}>}
   */
  async setAudioFrameCallback(streamID, callback, options) {
    if (callback === null) {
      this._untap(this._playTaps, streamID);
      return SUCCESS;
    }
    const session = this._media.players.get(streamID);
    if (!session) return failure(SdkError.INVALID_ARGUMENT, `not playing ${streamID}`);
    const track = session.remoteStream.getAudioTracks()[0];
    return this._tap(this._playTaps, streamID, track, callback, options, true);
  }

  /**
   * PCM of a local stream's microphone (what is sent) to `callback` (`null` stops it).
   * @param {MediaStream|object} stream a `createStream` stream or a ZegoLocalStream
   * @returns {Promise<{errorCode: number, extendedData: string}>}
   */
  async setCaptureAudioFrameCallback(stream, callback, options) {
    const media = this._mediaStreamOf(stream);
    if (!media || typeof media.getAudioTracks !== "function") return failure(SdkError.INVALID_ARGUMENT, "a MediaStream or ZegoLocalStream is needed");
    if (callback === null) {
      this._untap(this._captureTaps, media);
      return SUCCESS;
    }
    return this._tap(this._captureTaps, media, media.getAudioTracks()[0], callback, options, false);
  }

  _tap(taps, key, track, callback, options, remote) {
    if (typeof callback !== "function") return failure(SdkError.INVALID_ARGUMENT, "callback must be a function or null");
    const shape = frameOptions(options);
    if (shape.error) return failure(SdkError.INVALID_ARGUMENT, shape.error);
    if (!track) return failure(SdkError.INVALID_ARGUMENT, "the stream has no audio track");
    this._untap(taps, key);
    try {
      taps.set(key, { tap: new AudioFrameTap(track, callback, shape, { remote }), callback, shape });
    } catch (err) {
      return failure(SdkError.UNSUPPORTED, `cannot read the audio: ${err.message}`);
    }
    return SUCCESS;
  }

  _untap(taps, key) {
    const entry = taps.get(key);
    if (!entry) return;
    entry.tap.dispose();
    taps.delete(key);
  }

  /** A played stream got a new audio track: its tap reads that one from now on. */
  _retapPlayer(streamID, track) {
    const entry = this._playTaps.get(streamID);
    if (!entry || track.kind !== "audio") return;
    this._tap(this._playTaps, streamID, track, entry.callback, entry.shape, true);
  }
}
