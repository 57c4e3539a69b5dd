// Sound levels of published and played streams from WebRTC statistics: the audio energy
// the browser measured (`media-source` of a sent track, `inbound-rtp` of a received one)
// over the last interval, on ZEGO's 0–100 scale. No Web Audio, so no audio context that a
// browser's autoplay policy could hold back. Pure: unit-tested in Node.

/** Below this level (dBFS) is 0; full scale is 100. */
const SILENCE_DBFS = -60;

/** ZEGO's 0–100 sound level of an RMS amplitude in [0, 1]. */
export function levelOfAmplitude(rms) {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(Math.min(1, rms));
  return Math.max(0, Math.min(100, Math.round(((db - SILENCE_DBFS) / -SILENCE_DBFS) * 100)));
}

/**
 * The level over the interval between two samples of one audio statistic
 * (`totalAudioEnergy`, `totalSamplesDuration`, `audioLevel`): the mean energy of the
 * interval, or the instantaneous `audioLevel` when there is no earlier sample. 0 when no
 * audio played out in between (nothing arrives, or the track is muted).
 * @param {{totalAudioEnergy?: number, totalSamplesDuration?: number}|null} prev
 * @param {{totalAudioEnergy?: number, totalSamplesDuration?: number, audioLevel?: number}} cur
 */
export function soundLevelBetween(prev, cur) {
  const energy = (s) => (s && typeof s.totalAudioEnergy === "number" ? s.totalAudioEnergy : null);
  const duration = (s) => (s && typeof s.totalSamplesDuration === "number" ? s.totalSamplesDuration : null);
  if (energy(prev) !== null && energy(cur) !== null && duration(prev) !== null && duration(cur) !== null) {
    const seconds = duration(cur) - duration(prev);
    if (seconds <= 0) return 0;
    return levelOfAmplitude(Math.sqrt(Math.max(0, energy(cur) - energy(prev)) / seconds));
  }
  return levelOfAmplitude(cur && typeof cur.audioLevel === "number" ? cur.audioLevel : 0);
}

/** The audio statistic a session's level comes from: what it sends, or what it receives. */
export function audioLevelStat(kind, entries) {
  const type = kind === "publish" ? "media-source" : "inbound-rtp";
  for (const entry of entries) {
    if (entry.type === type && entry.kind === "audio") return entry;
  }
  return null;
}
