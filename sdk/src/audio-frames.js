// Raw audio of a played or captured stream for the page (`setAudioFrameCallback`,
// `setCaptureAudioFrameCallback`): a Web Audio tap hands each block of PCM to the page in
// ZEGO's `ZegoAudioFrame` shape. The shaping (options, resampling, channel mixing, 16-bit
// conversion) is pure; `AudioFrameTap` is the browser part.

import { newAudioContext } from "./sound-level.js";

/** ZEGO's allowed values of `AudioFrameOptions`. */
export const FRAME_SIZES = Object.freeze([256, 512, 1024, 2048, 4096, 8192, 16384]);
export const FRAME_SAMPLE_RATES = Object.freeze([8000, 16000, 22050, 24000, 32000, 44100, 48000]);
const DEFAULT_FRAME_SIZE = 4096;

/**
 * ZEGO's `AudioFrameOptions` checked and completed: `{frameSize, sampleRate, channelCount,
 * bitDepth}` (`sampleRate`/`channelCount` null: as the source has them), or `{error}`.
 */
export function frameOptions(options) {
  const o = options && typeof options === "object" ? options : {};
  const frameSize = o.frameSize == null ? DEFAULT_FRAME_SIZE : o.frameSize;
  if (!FRAME_SIZES.includes(frameSize)) return { error: `frameSize must be one of ${FRAME_SIZES.join(", ")}` };
  if (o.sampleRate != null && !FRAME_SAMPLE_RATES.includes(o.sampleRate)) {
    return { error: `sampleRate must be one of ${FRAME_SAMPLE_RATES.join(", ")}` };
  }
  if (o.channelCount != null && o.channelCount !== 1 && o.channelCount !== 2) return { error: "channelCount must be 1 or 2" };
  if (o.bitDepth != null && o.bitDepth !== 16 && o.bitDepth !== 32) return { error: "bitDepth must be 16 or 32" };
  return { frameSize, sampleRate: o.sampleRate || null, channelCount: o.channelCount || null, bitDepth: o.bitDepth || 32 };
}

/** Linear resampling of one channel from `fromRate` to `toRate`. */
export function resample(samples, fromRate, toRate) {
  if (fromRate === toRate || !samples.length) return samples;
  const length = Math.max(1, Math.round((samples.length * toRate) / fromRate));
  const out = new Float32Array(length);
  const step = fromRate / toRate;
  for (let i = 0; i < length; i++) {
    const position = i * step;
    const index = Math.floor(position);
    const next = Math.min(index + 1, samples.length - 1);
    const fraction = position - index;
    out[i] = samples[Math.min(index, samples.length - 1)] * (1 - fraction) + samples[next] * fraction;
  }
  return out;
}

/** Mono from the average of the channels, stereo by copying a single channel. */
export function mixChannels(channels, count) {
  if (!count || count === channels.length) return channels;
  if (count === 1) {
    const out = new Float32Array(channels[0].length);
    for (const channel of channels) for (let i = 0; i < out.length; i++) out[i] += channel[i] / channels.length;
    return [out];
  }
  return [channels[0], channels.length > 1 ? channels[1] : Float32Array.from(channels[0])];
}

/** Float samples in [-1, 1] as 16-bit integers (clipped). */
export function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
  }
  return out;
}

/** One block of PCM (`channels` at `inputRate`) as ZEGO's `ZegoAudioFrame` under `options` (from `frameOptions`). */
export function audioFrame(channels, inputRate, options) {
  const sampleRate = options.sampleRate || inputRate;
  const mixed = mixChannels(channels, options.channelCount);
  const resampled = mixed.map((channel) => resample(channel, inputRate, sampleRate));
  return {
    channels: options.bitDepth === 16 ? resampled.map(toInt16) : resampled,
    channelCount: resampled.length,
    sampleRate,
  };
}

/**
 * Hands the PCM of one audio track to `callback`, `frameSize` samples per channel at a time.
 * A remote WebRTC track gives Web Audio nothing in Chromium unless a media element plays it
 * too: a muted, detached `<audio>` does.
 */
export class AudioFrameTap {
  constructor(track, callback, options, { remote }) {
    this.track = track;
    this.context = newAudioContext();
    if (!this.context) throw new Error("Web Audio is not available");
    const stream = new MediaStream([track]);
    if (remote && typeof Audio !== "undefined") {
      this.sink = new Audio();
      this.sink.muted = true;
      this.sink.srcObject = stream;
      this.sink.play().catch(() => {});
    }
    this.input = this.context.createMediaStreamSource(stream);
    const channels = Math.max(1, Math.min(2, track.getSettings ? track.getSettings().channelCount || 2 : 2));
    this.processor = this.context.createScriptProcessor(options.frameSize, channels, channels);
    this.processor.onaudioprocess = (event) => {
      const buffer = event.inputBuffer;
      const data = [];
      for (let c = 0; c < buffer.numberOfChannels; c++) data.push(Float32Array.from(buffer.getChannelData(c)));
      try {
        callback(audioFrame(data, buffer.sampleRate, options));
      } catch (err) {
        console.error("[huddle] an audio frame callback threw", err);
      }
    };
    this.input.connect(this.processor);
    // A script processor runs only while connected to the output; it writes silence there.
    this.processor.connect(this.context.destination);
  }

  dispose() {
    this.processor.onaudioprocess = null;
    this.input.disconnect();
    this.processor.disconnect();
    if (this.sink) this.sink.srcObject = null;
    this.context.close().catch(() => {});
  }
}
