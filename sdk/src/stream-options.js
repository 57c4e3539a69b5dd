// ZEGO's capture and publish configuration (createZegoStream's options, ZegoLocalStream's
// capture options, setVideoConfig/setAudioConfig) turned into getUserMedia/getDisplayMedia
// constraints and send bitrates. Pure: config in, constraints out; unit-tested in Node.

import { VIDEO_PRESETS, SCREEN_PRESETS, CUSTOM_QUALITY, DEFAULT_QUALITY, DEFAULT_VIDEO_KBPS, DEFAULT_AUDIO_KBPS } from "./constants.js";

/** `updatePublishingStream`'s update types, with ZEGO's names (`ZegoStreamUpdateType`). */
export const ZegoStreamUpdateType = Object.freeze({ video: 0, audio: 1, videoAndAudio: 2 });

/** Track kinds an update type covers (empty for an unknown type). */
export function kindsOfUpdate(updateType) {
  if (updateType === ZegoStreamUpdateType.video) return ["video"];
  if (updateType === ZegoStreamUpdateType.audio) return ["audio"];
  if (updateType === ZegoStreamUpdateType.videoAndAudio) return ["video", "audio"];
  return [];
}

/** A number becomes `{ideal: n}`; ZEGO's `{exact, ideal, min, max}` passes as given. */
export function constraintValue(value) {
  if (typeof value === "number") return { ideal: value };
  if (value && typeof value === "object") {
    const out = {};
    for (const key of ["exact", "ideal", "min", "max"]) if (typeof value[key] === "number") out[key] = value[key];
    return Object.keys(out).length ? out : undefined;
  }
  return undefined;
}

function sizeConstraints(options, preset) {
  const quality = options.quality !== undefined ? options.quality : options.videoQuality;
  const own = quality === CUSTOM_QUALITY || options.width !== undefined || options.height !== undefined || options.frameRate !== undefined;
  const pick = (field) => (own && constraintValue(options[field])) || { ideal: preset[field] };
  return { width: pick("width"), height: pick("height"), frameRate: pick("frameRate") };
}

/** Camera constraints of a `ZegoCaptureCamera` (`true`: the defaults). */
export function cameraVideoConstraints(options) {
  const camera = options && typeof options === "object" ? options : {};
  const quality = camera.quality !== undefined ? camera.quality : camera.videoQuality;
  const preset = VIDEO_PRESETS[quality] || VIDEO_PRESETS[DEFAULT_QUALITY];
  const video = sizeConstraints(camera, preset);
  const input = camera.input || camera.videoInput;
  if (input) video.deviceId = { exact: input };
  else if (camera.facingMode) video.facingMode = camera.facingMode;
  return { video, bitrate: camera.bitrate || preset.bitrate };
}

/** Microphone constraints of a `ZegoCaptureMicrophone` (`true`: the defaults). */
export function microphoneConstraints(options) {
  const mic = options && typeof options === "object" ? options : {};
  const audio = {
    echoCancellation: mic.AEC !== false,
    noiseSuppression: mic.ANS !== false,
    autoGainControl: mic.AGC !== false,
    channelCount: mic.channelCount || 1,
  };
  const input = mic.input || mic.audioInput;
  if (input) audio.deviceId = { exact: input };
  return { audio };
}

/** Screen constraints of a `ZegoCaptureScreenVideo` and `ZegoCaptureScreenAudio`. */
export function screenShareConstraints(videoOptions, audioOptions) {
  const screen = videoOptions && typeof videoOptions === "object" ? videoOptions : {};
  const quality = screen.quality !== undefined ? screen.quality : screen.videoQuality;
  const preset = SCREEN_PRESETS[quality] || SCREEN_PRESETS[DEFAULT_QUALITY];
  const video = sizeConstraints(screen, preset);
  let audio = false;
  if (audioOptions) {
    const a = typeof audioOptions === "object" ? audioOptions : {};
    audio = { echoCancellation: a.AEC === true, noiseSuppression: a.ANS === true, autoGainControl: a.AGC === true };
  }
  return { video, audio, bitrate: screen.bitrate || screen.bitRate || preset.bitrate };
}

/**
 * What `createZegoStream(options)` captures: `{source, video, audio, bitrate, audioBitrate}`
 * with `video`/`audio` the constraints to capture with (false: none) — or for `custom` the
 * page's sources.
 */
export function planZegoStream(options) {
  const opts = options && typeof options === "object" ? options : {};
  const videoBitrate = typeof opts.videoBitrate === "number" ? opts.videoBitrate : opts.videoBitrate && opts.videoBitrate.bitrate;
  const audioBitrate = opts.audioBitrate || DEFAULT_AUDIO_KBPS;
  if (opts.custom) {
    return {
      source: "custom",
      video: opts.custom.video ? { source: opts.custom.video.source } : false,
      audio: opts.custom.audio ? { source: opts.custom.audio.source } : false,
      bitrate: videoBitrate || DEFAULT_VIDEO_KBPS,
      audioBitrate,
    };
  }
  if (opts.screen) {
    const screen = opts.screen === true ? {} : opts.screen;
    const wantVideo = screen.video !== false;
    const { video, audio, bitrate } = screenShareConstraints(wantVideo ? screen.video : {}, screen.audio);
    return { source: "screen", video: wantVideo ? video : false, audio, bitrate: videoBitrate || bitrate, audioBitrate };
  }
  const camera = opts.camera || {};
  const wantVideo = camera.video !== false;
  const wantAudio = camera.audio !== false;
  const { video, bitrate } = cameraVideoConstraints(camera.video);
  const { audio } = microphoneConstraints(camera.audio);
  return {
    source: "camera",
    video: wantVideo ? video : false,
    audio: wantAudio ? audio : false,
    bitrate: videoBitrate || bitrate,
    audioBitrate,
  };
}

/**
 * `setVideoConfig`'s `ZegoPublishStreamConfig` as track constraints (for applyConstraints)
 * and a bitrate (kbit/s, undefined to keep the current one).
 */
export function videoConfigConstraints(config) {
  const c = config || {};
  const preset = c.videoQuality !== undefined && c.videoQuality !== CUSTOM_QUALITY ? VIDEO_PRESETS[c.videoQuality] : null;
  const constraints = {};
  for (const field of ["width", "height", "frameRate"]) {
    const value = constraintValue(c[field]) || (preset && { ideal: preset[field] });
    if (value) constraints[field] = value;
  }
  return { constraints, bitrate: c.maxBitrate || (preset && preset.bitrate) || undefined };
}

/** `setAudioConfig`'s `ZegoPublishStreamAudioConfig` as track constraints. */
export function audioConfigConstraints(config) {
  const c = config || {};
  const constraints = {};
  if (typeof c.AEC === "boolean") constraints.echoCancellation = c.AEC;
  if (typeof c.ANS === "boolean") constraints.noiseSuppression = c.ANS;
  if (typeof c.AGC === "boolean") constraints.autoGainControl = c.AGC;
  return constraints;
}

/** True when a track's settings carry every boolean constraint as asked. */
export function settingsMatch(settings, constraints) {
  return Object.keys(constraints).every((key) => typeof constraints[key] !== "boolean" || settings[key] === constraints[key]);
}
