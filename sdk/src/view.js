// Stream views: a managed <video> in a page element, with the click-to-play prompt that
// answers a blocked autoplay.

import { SdkError } from "./constants.js";
import { sdkError } from "./errors.js";
import { Emitter } from "./emitter.js";

/** Events of a view (and of a local stream's preview). */
export const ViewEvent = Object.freeze({
  AUTOPLAY_FAILED: "autoplayFailed",
  CAN_PLAY_VIDEO: "canPlayVideo",
  CAN_PLAY_AUDIO: "canPlayAudio",
});

/** An element, or the element with that id. */
export function resolveElement(container) {
  const element = typeof container === "string" ? document.getElementById(container) : container;
  if (!element) throw sdkError(SdkError.INVALID_ARGUMENT, `no element ${container}`);
  return element;
}

/**
 * The frame a `<video>` shows now, as a data URI (ZEGO's `ZegoSnapshotOptions`: `imageType`
 * "png" (default) or "jpeg", `quality` 0–1, default 1); "" before the first frame.
 */
export function snapshotOf(video, option) {
  if (!video || !video.videoWidth) return "";
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const { type, quality } = snapshotFormat(option);
  return canvas.toDataURL(type, quality);
}

/** The image type and quality `toDataURL` takes for ZEGO's snapshot options. */
export function snapshotFormat(option) {
  const o = option && typeof option === "object" ? option : {};
  const type = /^(image\/)?jpe?g$/i.test(o.imageType || "") ? "image/jpeg" : "image/png";
  const quality = typeof o.quality === "number" && o.quality >= 0 && o.quality <= 1 ? o.quality : 1;
  return { type, quality };
}

/** A "click to play" button over `container`; `onClick` retries playback. */
export function autoplayPrompt(container, onClick) {
  const prompt = document.createElement("button");
  prompt.type = "button";
  prompt.textContent = "▶ Click to play";
  prompt.setAttribute("aria-label", "Start playback");
  Object.assign(prompt.style, {
    position: "absolute",
    inset: "0",
    margin: "auto",
    width: "fit-content",
    height: "fit-content",
    padding: "10px 18px",
    border: "0",
    borderRadius: "999px",
    background: "rgba(0,0,0,.7)",
    color: "#fff",
    font: "600 14px system-ui, sans-serif",
    cursor: "pointer",
    zIndex: "2",
  });
  prompt.addEventListener("click", onClick);
  container.appendChild(prompt);
  return prompt;
}

/**
 * Plays a MediaStream in a page element. Created with `createLocalStreamView` or
 * `createRemoteStreamView`.
 */
export class ZegoStreamView {
  /**
   * @param {MediaStream} stream
   * @param {boolean} local a preview of this page's own capture (muted, mirrored by default)
   * @param {{onAutoplayFailed?: (video: HTMLVideoElement, err: Error) => void, onCanPlay?: (event: Event) => void}} [hooks]
   *   tell the owner (the engine, a local stream) too
   */
  constructor(stream, local, hooks = {}) {
    this._stream = stream;
    this._local = local;
    this._onAutoplayFailed = hooks.onAutoplayFailed || (() => {});
    this._onCanPlay = hooks.onCanPlay || (() => {});
    this._video = null;
    this._prompt = null;
    this._container = null;
    this._emitter = new Emitter(null);
    this._audioMuted = false;
    this._videoMuted = false;
    this._audio = null; // the <audio> of playAudio
    this._volume = 1;
    this._videoOnly = false; // playVideo: the <video> stays muted, sound is playAudio's
    this._sinkId = null; // useAudioOutputDevice, for an <audio> made later
  }

  /**
   * Renders the stream in `container` (an element or its id): creates a `<video>` filling it.
   * If the browser blocks autoplay with sound, shows a click-to-play prompt
   * (`enableAutoplayDialog`, default true) or only raises `autoplayFailed`.
   * @param {string|HTMLElement} container
   * @param {{enableAutoplayDialog?: boolean, mirror?: boolean, objectFit?: 'cover'|'contain'|'fill', muted?: boolean}} [options]
   */
  play(container, options = {}) {
    const element = resolveElement(container);
    this.stopVideo();
    this._container = element;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("playsinline", "");
    // Local previews never play their own microphone back (echo).
    video.muted = this._local || options.muted === true || this._audioMuted;
    video.style.width = "100%";
    video.style.height = "100%";
    video.style.objectFit = options.objectFit || "cover";
    video.style.display = "block";
    video.style.background = "#000";
    const mirror = options.mirror !== undefined ? options.mirror : this._local;
    if (mirror) video.style.transform = "scaleX(-1)";
    video.srcObject = this._stream;
    if (getComputedStyle(element).position === "static") element.style.position = "relative";
    element.appendChild(video);
    this._video = video;
    video.addEventListener(
      "loadedmetadata",
      (event) => {
        this._emitter.emit(ViewEvent.CAN_PLAY_VIDEO);
        this._onCanPlay(event);
      },
      { once: true },
    );
    this._tryPlay(options.enableAutoplayDialog !== false);
  }

  _tryPlay(withDialog) {
    const video = this._video;
    if (!video) return;
    const attempt = video.play();
    if (!attempt || typeof attempt.catch !== "function") return;
    attempt.catch((err) => {
      if (!err || err.name !== "NotAllowedError" || video !== this._video) return;
      this._emitter.emit(ViewEvent.AUTOPLAY_FAILED);
      this._onAutoplayFailed(video, err);
      if (withDialog && !this._prompt && this._container) {
        this._prompt = autoplayPrompt(this._container, () => this.resume());
      }
    });
  }

  /** Retries playback after an autoplay block (call it from a user gesture). */
  resume() {
    if (this._prompt) {
      this._prompt.remove();
      this._prompt = null;
    }
    if (this._video) this._tryPlay(true);
    if (this._audio) this._tryPlayAudio(false);
  }

  /**
   * Shows the stream's picture only, in `container` (an element or its id); its sound is
   * left to `playAudio`.
   * @param {string|HTMLElement} container
   * @param {{enableAutoplayDialog?: boolean, mirror?: boolean, objectFit?: 'cover'|'contain'|'fill'}} [options]
   */
  playVideo(container, options = {}) {
    this.play(container, Object.assign({}, options, { muted: true }));
    this._videoOnly = true;
  }

  /** Stops showing the picture (`playVideo` or `play`); `playAudio`'s sound goes on. */
  stopVideo() {
    this._videoOnly = false;
    if (this._prompt) this._prompt.remove();
    this._prompt = null;
    if (this._video) {
      this._video.srcObject = null;
      this._video.remove();
    }
    this._video = null;
  }

  /**
   * Plays the stream's sound only, through an `<audio>` element that is not in the page.
   * `canPlayAudio` once it can play; `autoplayFailed` if the browser blocks it (call
   * `resume` from a user gesture; with `enableAutoplayDialog` and a picture shown, the
   * click-to-play prompt appears over it).
   * @param {{enableAutoplayDialog?: boolean, muted?: boolean}} [options]
   */
  playAudio(options = {}) {
    this.stopAudio();
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.muted = options.muted === true || this._audioMuted;
    audio.volume = this._volume;
    audio.srcObject = this._stream;
    audio.addEventListener("canplay", () => this._emitter.emit(ViewEvent.CAN_PLAY_AUDIO), { once: true });
    this._audio = audio;
    if (this._sinkId && typeof audio.setSinkId === "function") audio.setSinkId(this._sinkId).catch(() => {});
    this._tryPlayAudio(options.enableAutoplayDialog !== false);
  }

  _tryPlayAudio(withDialog) {
    const audio = this._audio;
    const attempt = audio.play();
    if (!attempt || typeof attempt.catch !== "function") return;
    attempt.catch((err) => {
      if (!err || err.name !== "NotAllowedError" || audio !== this._audio) return;
      this._emitter.emit(ViewEvent.AUTOPLAY_FAILED);
      this._onAutoplayFailed(audio, err);
      if (withDialog && !this._prompt && this._container && this._video) {
        this._prompt = autoplayPrompt(this._container, () => this.resume());
      }
    });
  }

  /** Stops playing the sound of `playAudio`. */
  stopAudio() {
    if (this._audio) {
      this._audio.pause();
      this._audio.srcObject = null;
    }
    this._audio = null;
  }

  /** Removes the `<video>` this view created and stops `playAudio`'s sound. */
  stop() {
    this.stopAudio();
    this.stopVideo();
  }

  /** Mutes or unmutes playback of the audio (remote views). */
  setAudioMuted(muted) {
    this._audioMuted = !!muted;
    if (this._video && !this._local && !this._videoOnly) this._video.muted = this._audioMuted;
    if (this._audio) this._audio.muted = this._audioMuted;
    return true;
  }

  /** Hides or shows the picture. */
  setVideoMuted(muted) {
    this._videoMuted = !!muted;
    if (this._video) this._video.style.visibility = muted ? "hidden" : "visible";
    return true;
  }

  /** Playback volume 0–100. */
  setVolume(volume) {
    if (typeof volume !== "number" || volume < 0 || volume > 100) return false;
    this._volume = volume / 100;
    if (this._video) this._video.volume = this._volume;
    if (this._audio) this._audio.volume = this._volume;
    return true;
  }

  /** Routes the audio to an output device (where `setSinkId` exists). */
  async useAudioOutputDevice(deviceID) {
    this._sinkId = deviceID;
    if (this._video && typeof this._video.setSinkId === "function") await this._video.setSinkId(deviceID);
    if (this._audio && typeof this._audio.setSinkId === "function") await this._audio.setSinkId(deviceID);
  }

  /** Width of the decoded picture in pixels (0 before the first frame). */
  getVideoWidth() {
    return this._video ? this._video.videoWidth : 0;
  }

  /** Height of the decoded picture in pixels (0 before the first frame). */
  getVideoHeight() {
    return this._video ? this._video.videoHeight : 0;
  }

  /** The picture shown now as a data URI (`imageType` "png" or "jpeg", `quality` 0–1); "" before the first frame. */
  takeStreamSnapshot(option = {}) {
    return snapshotOf(this._video, option);
  }

  /** The `<video>` element (null before `play`). */
  get videoElement() {
    return this._video;
  }

  /** View events: `autoplayFailed`, `canPlayVideo`. */
  on(event, callback) {
    return this._emitter.on(event, callback);
  }

  /** Removes a view event listener (all of the event's listeners without `callback`). */
  off(event, callback) {
    return this._emitter.off(event, callback);
  }
}
