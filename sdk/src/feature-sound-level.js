// Engine feature area: sound levels while `setSoundLevelDelegate(true, interval)` is on, on
// one timer: `capturedSoundLevelUpdate`, the local capture's level (the microphone of the
// local stream being published, else the newest one, before capture volume; Web Audio), and
// `soundLevelUpdate`, the level of every stream this page publishes ("push") and plays
// ("pull"), from the peer connections' statistics (stream-sound-level.js).

import { EngineEvent, MediaKind } from "./constants.js";
import { LevelMeter } from "./sound-level.js";
import { soundLevelBetween, audioLevelStat } from "./stream-sound-level.js";
import { CaptureEvent } from "./feature-capture.js";

const SOUND_LEVEL_DEFAULT_MS = 1000;
/** ZEGO's bounds of the interval. */
const SOUND_LEVEL_MIN_MS = 500;
const SOUND_LEVEL_MAX_MS = 3000;

/** ZEGO's interval bounds applied to a requested interval. */
export function soundLevelInterval(interval) {
  if (typeof interval !== "number" || !Number.isFinite(interval)) return SOUND_LEVEL_DEFAULT_MS;
  return Math.min(SOUND_LEVEL_MAX_MS, Math.max(SOUND_LEVEL_MIN_MS, interval));
}

export class SoundLevelFeature {
  static setup(engine) {
    engine._soundLevelTimer = null;
    engine._captureMeter = null; // LevelMeter of the track measured last
    engine._streamLevelSamples = new WeakMap(); // MediaSession → its last audio statistic
  }

  static teardown(engine) {
    engine.setSoundLevelDelegate(false);
  }

  /**
   * Starts (true) or stops (false) `capturedSoundLevelUpdate` and `soundLevelUpdate` every
   * `interval` ms (default 1000, from 500 to 3000).
   * @param {boolean} enable
   * @param {number} [interval]
   * @param {{enableInBackground?: boolean}} [options] accepted; levels are measured in the background too
   */
  setSoundLevelDelegate(enable, interval, options) {
    void options;
    if (this._soundLevelTimer) clearInterval(this._soundLevelTimer);
    this._soundLevelTimer = null;
    if (!enable) {
      if (this._captureMeter) this._captureMeter.dispose();
      this._captureMeter = null;
      return;
    }
    this._soundLevelTimer = setInterval(() => {
      this._reportCapturedSoundLevel();
      this._reportStreamLevels();
    }, soundLevelInterval(interval));
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

  async _reportStreamLevels() {
    const sessions = [...this._media.publishers.values(), ...this._media.players.values()];
    const list = [];
    for (const session of sessions) {
      if (!session.pc) continue;
      let report;
      try {
        report = await session.pc.getStats();
      } catch (_) {
        continue;
      }
      const stat = audioLevelStat(session.kind, report.values());
      if (!stat || session.stopped) continue;
      const level = soundLevelBetween(this._streamLevelSamples.get(session), stat);
      this._streamLevelSamples.set(session, stat);
      list.push({ streamID: session.streamID, soundLevel: level, type: session.kind === MediaKind.PUBLISH ? "push" : "pull" });
    }
    if (list.length && this._soundLevelTimer) this._emitter.emit(EngineEvent.SOUND_LEVEL_UPDATE, list);
  }
}
