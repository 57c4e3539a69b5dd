// Capturing local media: camera and microphone, the screen, or a page's own source, with
// ZEGO's quality presets, and the bitrates each capture is to be sent at.
// `cameraConstraints` is pure (config in, getUserMedia constraints out).

import {
  SdkError,
  VIDEO_PRESETS,
  SCREEN_PRESETS,
  CUSTOM_QUALITY,
  DEFAULT_QUALITY,
  DEFAULT_VIDEO_KBPS,
  DEFAULT_AUDIO_KBPS,
} from "./constants.js";
import { sdkError } from "./errors.js";

/** Where a local stream's media comes from. */
export const CaptureSource = Object.freeze({ CAMERA: "camera", SCREEN: "screen", CUSTOM: "custom" });

/** getUserMedia constraints and send bitrates for a `camera` config of `createStream`. */
export function cameraConstraints(camera) {
  const wantAudio = camera.audio !== false;
  const wantVideo = camera.video !== false;
  if (!wantAudio && !wantVideo) throw sdkError(SdkError.INVALID_ARGUMENT, "camera: audio and video are both off");
  const preset = VIDEO_PRESETS[camera.videoQuality] || VIDEO_PRESETS[DEFAULT_QUALITY];
  const custom = camera.videoQuality === CUSTOM_QUALITY || camera.width || camera.height || camera.frameRate;
  const video = wantVideo
    ? {
        width: { ideal: (custom && camera.width) || preset.width },
        height: { ideal: (custom && camera.height) || preset.height },
        frameRate: { ideal: (custom && camera.frameRate) || preset.frameRate },
      }
    : false;
  if (video && camera.videoInput) video.deviceId = { exact: camera.videoInput };
  if (video && camera.facingMode) video.facingMode = camera.facingMode;
  const audio = wantAudio
    ? {
        echoCancellation: camera.AEC !== false,
        noiseSuppression: camera.ANS !== false,
        autoGainControl: camera.AGC !== false,
        channelCount: camera.channelCount || 1,
      }
    : false;
  if (audio && camera.audioInput) audio.deviceId = { exact: camera.audioInput };
  return {
    constraints: { audio, video },
    settings: {
      bitrate: camera.bitrate || preset.bitrate,
      audioBitrate: camera.audioBitrate || DEFAULT_AUDIO_KBPS,
      source: CaptureSource.CAMERA,
      // To capture again the same way (switching devices, turning the camera back on).
      constraints: { audio, video },
    },
  };
}

function requireGetUserMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw sdkError(SdkError.UNSUPPORTED, "getUserMedia is not available (a secure context, https or localhost, is needed)");
  }
}

/** Camera and/or microphone. */
export async function captureCamera(camera) {
  requireGetUserMedia();
  const { constraints, settings } = cameraConstraints(camera);
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  return { stream, settings };
}

/** getDisplayMedia video constraints for a `screen` config. */
export function screenConstraints(screen) {
  const preset = SCREEN_PRESETS[screen.videoQuality] || SCREEN_PRESETS[DEFAULT_QUALITY];
  return {
    constraints: {
      audio: !!screen.audio,
      video: {
        width: { ideal: screen.width || preset.width },
        height: { ideal: screen.height || preset.height },
        frameRate: { ideal: screen.frameRate || preset.frameRate },
      },
    },
    settings: {
      bitrate: screen.bitrate || screen.bitRate || preset.bitrate,
      audioBitrate: DEFAULT_AUDIO_KBPS,
      source: CaptureSource.SCREEN,
    },
  };
}

/** The screen (or a window or tab); `onEnded(stream)` once the user stops sharing. */
export async function captureScreen(screen, onEnded) {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== "function") {
    throw sdkError(SdkError.UNSUPPORTED, "screen sharing is not available in this browser");
  }
  const { constraints, settings } = screenConstraints(screen);
  const stream = await navigator.mediaDevices.getDisplayMedia(constraints);
  for (const track of stream.getVideoTracks()) {
    track.addEventListener("ended", () => onEnded(stream), { once: true });
  }
  return { stream, settings };
}

/** A MediaStream or media element of the page's own, as a stream of its own. */
export function customStream(custom) {
  let source = custom.source;
  if (typeof HTMLMediaElement !== "undefined" && source instanceof HTMLMediaElement) {
    const capture = source.captureStream || source.mozCaptureStream;
    if (!capture) throw sdkError(SdkError.UNSUPPORTED, "this browser cannot capture a media element");
    source = capture.call(source);
  }
  if (typeof MediaStream === "undefined" || !(source instanceof MediaStream)) {
    throw sdkError(SdkError.INVALID_ARGUMENT, "custom.source must be a MediaStream or an HTMLMediaElement");
  }
  // A stream of its own, so destroyStream does not reach into the caller's object.
  const stream = new MediaStream(source.getTracks());
  return {
    stream,
    settings: {
      bitrate: custom.bitrate || DEFAULT_VIDEO_KBPS,
      audioBitrate: custom.audioBitrate || DEFAULT_AUDIO_KBPS,
      source: CaptureSource.CUSTOM,
    },
  };
}
