// What the browser can do and which devices it has.

/** Checks of `checkSystemRequirements` (ZEGO's `ZegoCheckSingleType`, plus `videoCodec`: all codecs). */
export const SystemCheck = Object.freeze({
  WEBRTC: "webRTC",
  CUSTOM_CAPTURE: "customCapture",
  CAMERA: "camera",
  MICROPHONE: "microphone",
  VIDEO_CODEC: "videoCodec",
  SCREEN_SHARING: "screenSharing",
});

/** Video codecs a check reports, and may be asked about one at a time (`checkSystemRequirements("VP8")`). */
export const VIDEO_CODECS = Object.freeze(["H264", "H265", "VP8", "VP9"]);

/** `checkLevel` 1: the precise codec check (a real offer), slower. */
const PRECISE_CHECK = 1;

/** `MediaDeviceInfo.kind` values. */
export const DeviceKind = Object.freeze({ CAMERA: "videoinput", MICROPHONE: "audioinput", SPEAKER: "audiooutput" });

/** The codecs the browser says it can send (quick check). */
function codecsByCapabilities() {
  const codec = { H264: false, H265: false, VP8: false, VP9: false };
  const caps = typeof RTCRtpSender !== "undefined" && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
  for (const c of (caps && caps.codecs) || []) {
    const name = c.mimeType.split("/")[1].toUpperCase();
    if (name in codec) codec[name] = true;
  }
  return codec;
}

/** The codecs of a real video offer (precise check): what a publish would actually offer. */
async function codecsByOffer() {
  const codec = { H264: false, H265: false, VP8: false, VP9: false };
  const pc = new RTCPeerConnection();
  try {
    pc.addTransceiver("video", { direction: "sendonly" });
    const offer = await pc.createOffer();
    for (const match of offer.sdp.matchAll(/^a=rtpmap:\d+ ([A-Za-z0-9]+)\//gm)) {
      const name = match[1].toUpperCase();
      if (name in codec) codec[name] = true;
    }
  } finally {
    pc.close();
  }
  return codec;
}

/**
 * Detects what this browser supports: WebRTC, capture from a MediaStream, camera and
 * microphone presence, video codecs the browser can send, screen sharing — all of them, or
 * the one `checkType` names (a codec name checks that codec). `result` is the outcome of the
 * single check, or of all: WebRTC works and the browser can send VP8 or H.264.
 * @param {string} [checkType]
 * @param {0|1} [checkLevel] codecs: 0 from the browser's capabilities, 1 from a real offer
 */
export async function checkSystemRequirements(checkType, checkLevel) {
  const errInfo = {};
  const result = { errInfo };
  const codecCheck = VIDEO_CODECS.includes(checkType) ? checkType : null;
  const want = (name) => !checkType || checkType === name || (name === SystemCheck.VIDEO_CODEC && !!codecCheck);
  const webRTC = typeof RTCPeerConnection === "function" && typeof WebSocket === "function";
  if (want(SystemCheck.WEBRTC) || codecCheck) {
    result.webRTC = webRTC;
    if (!webRTC) errInfo.webRTC = { name: "NotSupported", message: "RTCPeerConnection or WebSocket is missing" };
  }
  if (want(SystemCheck.CUSTOM_CAPTURE)) {
    result.customCapture =
      typeof MediaStream === "function" &&
      typeof HTMLCanvasElement !== "undefined" &&
      typeof HTMLCanvasElement.prototype.captureStream === "function";
    if (!result.customCapture) errInfo.customCapture = { name: "NotSupported", message: "canvas/element captureStream is missing" };
  }
  if (want(SystemCheck.CAMERA) || want(SystemCheck.MICROPHONE)) {
    let devices = [];
    try {
      devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
    } catch (err) {
      errInfo.camera = errInfo.microphone = { name: err.name, message: err.message };
    }
    const hasGum = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    if (want(SystemCheck.CAMERA)) result.camera = hasGum && devices.some((d) => d.kind === DeviceKind.CAMERA);
    if (want(SystemCheck.MICROPHONE)) result.microphone = hasGum && devices.some((d) => d.kind === DeviceKind.MICROPHONE);
    if (!hasGum) errInfo.camera = errInfo.microphone = { name: "NotSupported", message: "getUserMedia is missing (a secure context is needed)" };
  }
  if (want(SystemCheck.VIDEO_CODEC)) {
    let codec = codecsByCapabilities();
    if (webRTC && checkLevel === PRECISE_CHECK) {
      try {
        codec = await codecsByOffer();
      } catch (err) {
        errInfo.extendedDate = `precise codec check failed: ${err && err.message}`;
      }
    }
    result.videoCodec = codec;
  }
  if (want(SystemCheck.SCREEN_SHARING)) {
    result.screenSharing = !!(navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === "function");
  }
  result.result = overallResult(checkType, codecCheck, result, webRTC);
  return result;
}

/** `result` of a check: that of the single check asked for, else WebRTC with VP8 or H.264. */
function overallResult(checkType, codecCheck, result, webRTC) {
  if (codecCheck) return webRTC && !!result.videoCodec[codecCheck];
  if (checkType && checkType !== SystemCheck.VIDEO_CODEC && typeof result[checkType] === "boolean") return result[checkType];
  return webRTC && (!result.videoCodec || result.videoCodec.VP8 || result.videoCodec.H264);
}

/** Cameras, microphones and speakers as ZEGO's `{deviceID, deviceName}` lists. */
export async function enumDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const of = (kind) =>
    devices.filter((d) => d.kind === kind).map((d) => ({ deviceID: d.deviceId, deviceName: d.label || d.kind }));
  return { cameras: of(DeviceKind.CAMERA), microphones: of(DeviceKind.MICROPHONE), speakers: of(DeviceKind.SPEAKER) };
}

/** ZEGO's device update types and audio device directions. */
export const DeviceUpdate = Object.freeze({ ADD: "ADD", DELETE: "DELETE" });
export const AudioDirection = Object.freeze({ INPUT: "Input", OUTPUT: "Output" });

/**
 * The difference between two `enumerateDevices` lists as ZEGO's device events:
 * `{updateType: "ADD"|"DELETE", kind, info: {deviceName, deviceID}}`, removals first.
 * Devices are told apart by kind and id ("default"/"communications" aliases are skipped).
 */
export function diffDevices(before, after) {
  const key = (d) => `${d.kind}\u0000${d.deviceId}`;
  const real = (list) => (list || []).filter((d) => d.deviceId && d.deviceId !== "default" && d.deviceId !== "communications");
  const was = new Map(real(before).map((d) => [key(d), d]));
  const now = new Map(real(after).map((d) => [key(d), d]));
  const change = (updateType, d) => ({ updateType, kind: d.kind, info: { deviceName: d.label || d.kind, deviceID: d.deviceId } });
  const gone = [...was.values()].filter((d) => !now.has(key(d))).map((d) => change(DeviceUpdate.DELETE, d));
  const added = [...now.values()].filter((d) => !was.has(key(d))).map((d) => change(DeviceUpdate.ADD, d));
  return [...gone, ...added];
}

/** Calls `onChange(changes)` with `diffDevices` results whenever the browser's devices change. */
export class DeviceWatcher {
  constructor(onChange) {
    this._onChange = onChange;
    this._known = null;
    this._listener = () => this._refresh();
    this._media = typeof navigator !== "undefined" && navigator.mediaDevices && typeof navigator.mediaDevices.addEventListener === "function" ? navigator.mediaDevices : null;
    if (this._media) {
      this._media.addEventListener("devicechange", this._listener);
      this._media.enumerateDevices().then((list) => (this._known = list), () => {});
    }
  }

  async _refresh() {
    let list;
    try {
      list = await this._media.enumerateDevices();
    } catch (_) {
      return;
    }
    const changes = this._known ? diffDevices(this._known, list) : [];
    this._known = list;
    if (changes.length) this._onChange(changes);
  }

  dispose() {
    if (this._media) this._media.removeEventListener("devicechange", this._listener);
  }
}
