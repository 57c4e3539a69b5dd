// Engine feature area: `soundLevelUpdate`, the sound level of every stream this page
// publishes ("push") and plays ("pull"), every `interval` ms while `setSoundLevelDelegate`
// is on. Levels come from the peer connections' statistics (stream-sound-level.js).

import { EngineEvent, MediaKind } from "./constants.js";
import { soundLevelBetween, audioLevelStat } from "./stream-sound-level.js";

const SOUND_LEVEL_DEFAULT_MS = 1000;
/** ZEGO's bounds of the interval. */
const SOUND_LEVEL_MIN_MS = 500;
const SOUND_LEVEL_MAX_MS = 3000;

/** ZEGO's interval bounds applied to a requested interval. */
export function soundLevelInterval(interval) {
  if (typeof interval !== "number" || !Number.isFinite(interval)) return SOUND_LEVEL_DEFAULT_MS;
  return Math.min(SOUND_LEVEL_MAX_MS, Math.max(SOUND_LEVEL_MIN_MS, interval));
}

export class StreamSoundLevelFeature {
  static setup(engine) {
    engine._streamLevelTimer = null;
    engine._streamLevelSamples = new WeakMap(); // MediaSession → its last audio statistic
  }

  static teardown(engine) {
    engine.setSoundLevelDelegate(false);
  }

  /**
   * Starts (true) or stops (false) `soundLevelUpdate`: the level (0–100) of each published
   * and played stream every `interval` ms (default 1000, from 500 to 3000).
   * @param {boolean} enable
   * @param {number} [interval]
   * @param {{enableInBackground?: boolean}} [options] accepted; levels are measured in the background too
   */
  setSoundLevelDelegate(enable, interval, options) {
    void options;
    if (this._streamLevelTimer) clearInterval(this._streamLevelTimer);
    this._streamLevelTimer = null;
    if (!enable) return;
    this._streamLevelTimer = setInterval(() => this._reportStreamLevels(), soundLevelInterval(interval));
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
    if (list.length && this._streamLevelTimer) this._emitter.emit(EngineEvent.SOUND_LEVEL_UPDATE, list);
  }
}
