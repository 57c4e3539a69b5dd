// Engine feature area: the sound level of the local capture (`capturedSoundLevelUpdate`),
// reported while `setSoundLevelDelegate(true, interval)` is on. It meters the microphone of
// the local stream being published (the newest one when none is), before capture volume.
// (Levels of played and published streams, `soundLevelUpdate`, are not reported here.)

import { LevelMeter } from "./sound-level.js";
import { CaptureEvent } from "./feature-capture.js";

const DEFAULT_SOUND_LEVEL_INTERVAL_MS = 1000;
const MIN_SOUND_LEVEL_INTERVAL_MS = 100;

export class SoundLevelFeature {
  static setup(engine) {
    engine._soundLevelTimer = null;
    engine._captureMeter = null; // LevelMeter of the track measured last
  }

  static teardown(engine) {
    engine.setSoundLevelDelegate(false);
  }

  /**
   * Starts (or stops) sound level reports every `interval` ms (default 1000, at least 100).
   * @param {boolean} enable
   * @param {number} [interval]
   */
  setSoundLevelDelegate(enable, interval) {
    if (this._soundLevelTimer) clearInterval(this._soundLevelTimer);
    this._soundLevelTimer = null;
    if (!enable) {
      if (this._captureMeter) this._captureMeter.dispose();
      this._captureMeter = null;
      return;
    }
    const period = Math.max(MIN_SOUND_LEVEL_INTERVAL_MS, typeof interval === "number" ? interval : DEFAULT_SOUND_LEVEL_INTERVAL_MS);
    this._soundLevelTimer = setInterval(() => this._reportCapturedSoundLevel(), period);
  }

  /** The microphone track to meter: of a published local stream, else of the newest one. */
  _meteredTrack() {
    const locals = Array.from(this._localStreams).reverse();
    const live = (local) => {
      const track = this._rawAudioTrack(local);
      return track && track.readyState === "live" ? track : null;
    };
    const published = locals.find((local) => this._media.publishersOf(this._mediaStreamOf(local)).length && live(local));
    const chosen = published || locals.find(live);
    return chosen ? live(chosen) : null;
  }

  _reportCapturedSoundLevel() {
    const track = this._meteredTrack();
    if (!track) return;
    if (!this._captureMeter || this._captureMeter.track !== track) {
      if (this._captureMeter) this._captureMeter.dispose();
      try {
        this._captureMeter = new LevelMeter(track);
      } catch (err) {
        this._logger.warnOnce("sound-level", "capturedSoundLevelUpdate needs Web Audio:", err && err.message);
        return;
      }
    }
    this._emitter.emit(CaptureEvent.CAPTURED_SOUND_LEVEL_UPDATE, this._captureMeter.level());
  }
}
