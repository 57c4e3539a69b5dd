// Capture volume and sound level of a local audio track, with Web Audio: a gain stage whose
// output track is what gets sent (`setCaptureVolume`), and a meter for
// `capturedSoundLevelUpdate`. `soundLevel` (samples to ZEGO's 0–100 scale) is pure.

import { levelOfAmplitude } from "./stream-sound-level.js";

/** Level (0–100) of PCM samples in [-1, 1], on the same scale as the streams' levels. */
export function soundLevel(samples) {
  if (!samples || !samples.length) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return levelOfAmplitude(Math.sqrt(sum / samples.length));
}

/** A capture volume (0–100) as a gain: 100 is unchanged, 0 is silence. */
export function volumeGain(volume) {
  return Math.max(0, Math.min(100, volume)) / 100;
}

const AudioContextClass = typeof AudioContext !== "undefined" ? AudioContext : null;

export function newAudioContext() {
  if (!AudioContextClass) return null;
  const context = new AudioContextClass();
  // Created outside a user gesture it may start suspended; a page capturing the microphone
  // is allowed to run it.
  if (context.state === "suspended") context.resume().catch(() => {});
  return context;
}

/** `source` track → gain → a new track to send in its place. */
export class CaptureGain {
  constructor(source) {
    this.source = source;
    this.context = newAudioContext();
    if (!this.context) throw new Error("Web Audio is not available");
    this.input = this.context.createMediaStreamSource(new MediaStream([source]));
    this.gain = this.context.createGain();
    this.output = this.context.createMediaStreamDestination();
    this.input.connect(this.gain);
    this.gain.connect(this.output);
    this.track = this.output.stream.getAudioTracks()[0];
  }

  setVolume(volume) {
    this.gain.gain.value = volumeGain(volume);
  }

  /** Stops the processed track and the Web Audio graph (the source track is the owner's). */
  dispose() {
    this.track.stop();
    this.input.disconnect();
    this.gain.disconnect();
    this.context.close().catch(() => {});
  }
}

/** How often a meter looks at its track: about one analyser window (2048 samples at 48 kHz). */
const METER_SAMPLE_MS = 40;

/**
 * Reads the level of one audio track: the loudest window since the last read, so that a
 * report every 500–3000 ms hears a short sound between two reads (one window read at report
 * time would hear only the ~43 ms around it).
 */
export class LevelMeter {
  constructor(track) {
    this.track = track;
    this.context = newAudioContext();
    if (!this.context) throw new Error("Web Audio is not available");
    this.input = this.context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 2048;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.input.connect(this.analyser);
    this.peak = 0;
    this.timer = setInterval(() => {
      this.peak = Math.max(this.peak, this._windowLevel());
    }, METER_SAMPLE_MS);
  }

  _windowLevel() {
    if (this.track.readyState !== "live" || !this.track.enabled) return 0;
    this.analyser.getFloatTimeDomainData(this.samples);
    return soundLevel(this.samples);
  }

  /** The loudest level (0–100) since the previous call (or since the meter started). */
  level() {
    const level = Math.max(this.peak, this._windowLevel());
    this.peak = 0;
    return level;
  }

  /** True when the last samples are not all silence. */
  hasSignal() {
    if (this.track.readyState !== "live") return false;
    this.analyser.getFloatTimeDomainData(this.samples);
    return this.samples.some((x) => x !== 0);
  }

  dispose() {
    clearInterval(this.timer);
    this.input.disconnect();
    this.context.close().catch(() => {});
  }
}
