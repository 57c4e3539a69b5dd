/*!
 * Huddle Express Web SDK — the browser side of Huddle (https://github.com/…/huddle).
 *
 * One file, no dependencies, no bundler. Load it with a classic script tag
 * (`<script src="https://huddle.example.com/sdk/huddle-express.js"></script>`, which defines
 * `HuddleExpressEngine` and its alias `ZegoExpressEngine` on `window`) or import the ES module
 * beside it (`import { ZegoExpressEngine } from ".../sdk/huddle-express.mjs"`).
 *
 * The method and event names, argument orders and value names follow the ZEGO Express Web
 * SDK, so a page written for it runs against Huddle with the script tag, app id, server URL
 * and token changed. Underneath: Huddle's websocket signaling (docs/PROTOCOL.md) and one
 * RTCPeerConnection per published or played stream to Huddle's relay (WHIP/WHEP style).
 */
(function (root) {
  "use strict";

  const VERSION = "1.0.0";
  const PROTOCOL_VERSION = 1;

  /**
   * Error codes raised by the SDK itself (the server's codes are 1000–6999, see the README).
   * They appear as `errorCode` in events and as `code` of rejected promises.
   */
  const SdkError = Object.freeze({
    /** The browser lacks a needed API (WebRTC, getUserMedia, websockets). */
    UNSUPPORTED: 7001,
    /** The websocket to the server could not be opened or closed before login finished. */
    CONNECT_FAILED: 7002,
    /** An argument is missing or has the wrong type. */
    INVALID_ARGUMENT: 7003,
    /** The call needs a logged-in room (call loginRoom first, or wait for LOGINED). */
    NOT_LOGGED_IN: 7004,
    /** This engine is already in (or logging in to) another room; log out first. */
    ALREADY_IN_ROOM: 7005,
    /** A request got no reply in time. */
    TIMEOUT: 7006,
    /** WebRTC negotiation with the relay failed (offer/answer or ICE/DTLS). */
    MEDIA_FAILED: 7007,
    /** Camera, microphone or screen capture failed (permission denied, no device, …). */
    CAPTURE_FAILED: 7008,
    /** The connection dropped and could not be restored within the reconnect grace period. */
    RECONNECT_FAILED: 7009,
    /** The operation was cancelled (stopped, logged out) before it finished. */
    CANCELLED: 7010,
  });

  const REQUEST_TIMEOUT_MS = 10000;
  const CONNECT_TIMEOUT_MS = 10000;
  const QUALITY_INTERVAL_MS = 3000;
  const RECONNECT_BACKOFF_MS = [250, 500, 1000, 2000, 3000, 5000];
  /** The server's code for "this worker (or relay) is shutting down; go elsewhere". */
  const SERVER_DRAINING = 1010;
  /** Below these, media is allowed to recover by itself before the SDK renegotiates. */
  const MEDIA_RECOVERY_GRACE_MS = 3000;

  /** Capture presets for `camera.videoQuality` (1–3; 4 means "use width/height/…"). */
  const VIDEO_PRESETS = {
    1: { width: 320, height: 240, frameRate: 15, bitrate: 300 },
    2: { width: 640, height: 480, frameRate: 15, bitrate: 800 },
    3: { width: 1280, height: 720, frameRate: 20, bitrate: 1500 },
  };
  const SCREEN_PRESETS = {
    1: { width: 640, height: 480, frameRate: 10, bitrate: 600 },
    2: { width: 1280, height: 720, frameRate: 15, bitrate: 1500 },
    3: { width: 1920, height: 1080, frameRate: 15, bitrate: 2000 },
  };

  const hasWindow = typeof window !== "undefined";
  const now = () => Date.now();
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function sdkError(code, msg, extra) {
    const error = new Error(msg);
    error.code = code;
    error.msg = msg;
    if (extra) Object.assign(error, extra);
    return error;
  }

  /** A server `{code, message}` error as the thrown/rejected value. */
  function serverError(error) {
    const code = (error && error.code) || 1000;
    const msg = (error && error.message) || "server error";
    return sdkError(code, msg);
  }

  function isNonEmptyString(value) {
    return typeof value === "string" && value.length > 0;
  }

  /** The websocket URL with the protocol version in its query. */
  function signalingUrl(server) {
    const url = new URL(server, hasWindow ? window.location.href : undefined);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (!url.searchParams.has("v")) url.searchParams.set("v", String(PROTOCOL_VERSION));
    return url.toString();
  }

  // ---------------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------------

  class Emitter {
    constructor(logger) {
      this._handlers = new Map();
      this._logger = logger;
    }
    on(event, callback) {
      if (!isNonEmptyString(event) || typeof callback !== "function") return false;
      if (!this._handlers.has(event)) this._handlers.set(event, []);
      this._handlers.get(event).push(callback);
      return true;
    }
    off(event, callback) {
      const list = this._handlers.get(event);
      if (!list) return false;
      if (!callback) {
        this._handlers.delete(event);
        return true;
      }
      const index = list.indexOf(callback);
      if (index < 0) return false;
      list.splice(index, 1);
      return true;
    }
    emit(event, ...args) {
      const list = this._handlers.get(event);
      if (this._logger) this._logger.debug("event", event, ...args);
      if (!list) return;
      for (const callback of list.slice()) {
        // A throwing listener must not break the SDK's own state handling.
        try {
          callback(...args);
        } catch (err) {
          console.error(`[huddle] a '${event}' listener threw`, err);
        }
      }
    }
  }

  class Logger {
    constructor() {
      this.verbose = false;
      this.level = "warn";
    }
    debug(...args) {
      if (this.verbose || this.level === "debug") console.debug("[huddle]", ...args);
    }
    info(...args) {
      if (this.verbose || this.level === "debug" || this.level === "info") console.info("[huddle]", ...args);
    }
    warn(...args) {
      if (this.level !== "error" && this.level !== "disable") console.warn("[huddle]", ...args);
    }
    error(...args) {
      if (this.level !== "disable") console.error("[huddle]", ...args);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Signaling connection: one websocket, requests with ids and replies, pushed events.
  // ---------------------------------------------------------------------------------------

  class SignalingConnection {
    /**
     * @param {string} url websocket URL (with ?v=1)
     * @param {{onEvent: Function, onClose: Function, logger: Logger}} hooks
     */
    constructor(url, hooks) {
      this.url = url;
      this.hooks = hooks;
      this.pending = new Map();
      this.nextId = 1;
      this.heartbeatMs = 10000;
      this.lastReceived = now();
      this.closed = false;
      this.ws = null;
      this.heartbeatTimer = null;
    }

    /** Opens the socket; resolves once it is open, rejects on failure or timeout. */
    open() {
      return new Promise((resolve, reject) => {
        let settled = false;
        let ws;
        try {
          ws = new WebSocket(this.url);
        } catch (err) {
          reject(sdkError(SdkError.CONNECT_FAILED, `cannot open ${this.url}: ${err.message}`));
          return;
        }
        this.ws = ws;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          ws.close();
          reject(sdkError(SdkError.CONNECT_FAILED, `no websocket connection to ${this.url} within ${CONNECT_TIMEOUT_MS} ms`));
        }, CONNECT_TIMEOUT_MS);
        // abandon() settles a pending open at once, so nothing waits for the timeout.
        this._cancelOpen = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(sdkError(SdkError.CANCELLED, "connection abandoned"));
        };
        ws.onopen = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.lastReceived = now();
          this._startHeartbeat();
          resolve();
        };
        ws.onmessage = (message) => this._onMessage(message);
        ws.onclose = (close) => {
          clearTimeout(timer);
          if (!settled) {
            settled = true;
            reject(sdkError(SdkError.CONNECT_FAILED, `websocket to ${this.url} closed (${close.code}) before it opened`));
          }
          this._onClose(close.code, close.reason);
        };
        ws.onerror = () => {
          // Always followed by onclose, which carries what there is to know.
        };
      });
    }

    /**
     * Sends a request; resolves with the reply's `data`, rejects with `{code, msg}`.
     * @param {string} type
     * @param {object} data
     */
    request(type, data, timeoutMs = REQUEST_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
          reject(sdkError(SdkError.NOT_LOGGED_IN, `not connected (cannot send ${type})`));
          return;
        }
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(sdkError(SdkError.TIMEOUT, `no reply to ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        this.pending.set(id, { resolve, reject, timer, type });
        this.hooks.logger.debug("→", type, type === "login" || type === "renewToken" ? "(token hidden)" : data);
        this.ws.send(JSON.stringify({ id, type, data: data || {} }));
      });
    }

    /** Sends a request without waiting for its reply (page unload). */
    sendNow(type, data) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ id: this.nextId++, type, data: data || {} }));
      }
    }

    close(code = 1000, reason = "") {
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
        try {
          this.ws.close(code, reason);
        } catch (_) {
          this.ws.close();
        }
      }
    }

    /**
     * Leaves this connection as if it had dropped (the owner reconnects): the server keeps the
     * session for a resume, or lets it go once it was logged in again elsewhere.
     */
    drop(reason) {
      if (this.closed) return;
      if (this.ws) this.ws.onclose = null;
      this.close(4000, reason);
      this._onClose(1006, reason);
    }

    /** Detaches from the socket without telling the owner (used when replacing it). */
    abandon() {
      this.closed = true;
      if (this._cancelOpen) this._cancelOpen();
      this._stopHeartbeat();
      this._failPending(sdkError(SdkError.CANCELLED, "connection replaced"));
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.onmessage = null;
        this.close();
      }
    }

    _onMessage(message) {
      this.lastReceived = now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (_) {
        this.hooks.logger.warn("unparsable frame from the server");
        return;
      }
      if (frame.type === "reply") {
        const waiter = this.pending.get(frame.id);
        if (!waiter) return;
        this.pending.delete(frame.id);
        clearTimeout(waiter.timer);
        this.hooks.logger.debug("←", waiter.type, frame.ok ? "ok" : frame.error);
        if (frame.ok) waiter.resolve(frame.data || {});
        else waiter.reject(serverError(frame.error));
      } else if (frame.type === "event") {
        this.hooks.onEvent(frame.event, frame.data || {});
      } else if (frame.type === "hello") {
        if (typeof frame.heartbeatMs === "number" && frame.heartbeatMs > 0) {
          this.heartbeatMs = frame.heartbeatMs;
          this._startHeartbeat();
        }
      } else if (frame.type === "error") {
        this.lastError = frame.error;
        this.hooks.logger.warn("server error", frame.error && frame.error.code, frame.error && frame.error.message);
      }
    }

    _onClose(code, reason) {
      if (this.closed) return;
      this.closed = true;
      this._stopHeartbeat();
      this._failPending(sdkError(SdkError.CONNECT_FAILED, `connection closed (${code})`));
      this.hooks.onClose(code, reason, this.lastError);
    }

    _failPending(error) {
      for (const [id, waiter] of this.pending) {
        clearTimeout(waiter.timer);
        waiter.reject(error);
        this.pending.delete(id);
      }
    }

    /**
     * The server's protocol pings are invisible to page scripts, so liveness is checked with
     * `ping` requests: silence for 2.5 heartbeats means the path is dead even if the socket
     * has not noticed yet (a sleeping laptop, a dropped Wi-Fi).
     */
    _startHeartbeat() {
      this._stopHeartbeat();
      const period = Math.max(1000, this.heartbeatMs);
      this.heartbeatTimer = setInterval(() => {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
        if (now() - this.lastReceived > period * 2.5) {
          this.hooks.logger.warn("no frame from the server for", now() - this.lastReceived, "ms; reconnecting");
          // Closing from our side fires onclose with 1000; report it as the drop it is.
          this.ws.onclose = null;
          this.close(4000, "heartbeat");
          this._onClose(1006, "heartbeat timeout (client side)");
          return;
        }
        this.request("ping", {}, period * 2).catch(() => {});
      }, period);
    }

    _stopHeartbeat() {
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Media: one RTCPeerConnection per published or played stream, offer/answer over HTTP.
  // ---------------------------------------------------------------------------------------

  /** POSTs the offer to the relay; returns the SDP answer and the session URL for DELETE. */
  async function exchangeOffer(url, grant, offerSdp) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        mode: "cors",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${grant}` },
        body: offerSdp,
      });
    } catch (err) {
      throw sdkError(SdkError.MEDIA_FAILED, `cannot reach the relay at ${url}: ${err.message}`);
    }
    const body = await response.text();
    if (response.status !== 201) {
      let error = { code: SdkError.MEDIA_FAILED, message: `relay answered HTTP ${response.status}` };
      try {
        error = JSON.parse(body);
      } catch (_) {
        /* not JSON: keep the HTTP status */
      }
      throw serverError(error);
    }
    const location = response.headers.get("Location");
    return { answer: body, sessionUrl: location ? new URL(location, url).toString() : null };
  }

  /** Ends a relay session (its `Location`); resolves when done or after 2 s, never rejects. */
  function endRelaySession(sessionUrl) {
    if (!sessionUrl) return Promise.resolve();
    const request = fetch(sessionUrl, { method: "DELETE", mode: "cors" }).catch(() => {});
    return Promise.race([request, sleep(2000)]);
  }

  function preferCodec(transceiver, codecName) {
    if (!codecName || typeof RTCRtpReceiver === "undefined" || !RTCRtpReceiver.getCapabilities) return;
    if (typeof transceiver.setCodecPreferences !== "function") return;
    const caps = RTCRtpReceiver.getCapabilities("video");
    if (!caps) return;
    const wanted = `video/${codecName}`.toLowerCase();
    const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (!first.length) return;
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
    try {
      transceiver.setCodecPreferences(first.concat(rest));
    } catch (_) {
      /* older browsers: keep the default order */
    }
  }

  /**
   * One publish or play session with the relay. Knows how to (re)negotiate itself; the
   * engine decides when.
   */
  class MediaSession {
    constructor(engine, kind, streamID) {
      this.engine = engine;
      this.kind = kind; // "publish" | "play"
      this.streamID = streamID;
      this.pc = null;
      this.sessionUrl = null;
      this.stopped = false;
      this.failedSince = 0;
      this.lastStats = null;
      this.prevCounters = null;
    }

    /** Asks signaling for a grant, then negotiates a fresh peer connection with the relay. */
    async negotiate(signalingRequest, setupPc) {
      this.retry = false;
      const reply = await this.engine._request(signalingRequest.type, signalingRequest.data);
      if (this.stopped) throw sdkError(SdkError.CANCELLED, "stopped");
      // The relay must have let go of the old session before a new one takes the stream.
      await this.close();
      if (this.stopped) throw sdkError(SdkError.CANCELLED, "stopped");
      let pc;
      try {
        pc = new RTCPeerConnection(this.engine._rtcConfiguration(reply));
      } catch (err) {
        throw sdkError(SdkError.MEDIA_FAILED, `the browser refused the ICE servers: ${err.message}`);
      }
      this.pc = pc;
      this.failedSince = 0;
      setupPc(pc);
      pc.addEventListener("connectionstatechange", () => this._onConnectionState(pc));
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      // No wait for ICE gathering: the relay is ICE-lite and learns this side's address from
      // its connectivity checks (peer-reflexive), so candidates in the offer are not needed;
      // through TURN that address is the TURN server's relayed one.
      if (this.stopped || this.pc !== pc) throw sdkError(SdkError.CANCELLED, "stopped");
      const { answer, sessionUrl } = await exchangeOffer(reply.url, reply.grant, pc.localDescription.sdp);
      if (this.stopped || this.pc !== pc) {
        endRelaySession(sessionUrl);
        throw sdkError(SdkError.CANCELLED, "stopped");
      }
      this.sessionUrl = sessionUrl;
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      return reply;
    }

    _onConnectionState(pc) {
      if (pc !== this.pc || this.stopped) return;
      const state = pc.connectionState;
      this.engine._logger.debug(this.kind, this.streamID, "peer connection", state);
      if (state === "failed" || state === "disconnected") {
        if (!this.failedSince) this.failedSince = now();
        this.engine._scheduleMediaCheck();
      } else if (state === "connected") {
        this.failedSince = 0;
      }
    }

    /** True when the media path has been down long enough that it should be renegotiated. */
    needsRecovery() {
      if (this.stopped) return false;
      if (this.retry) return true;
      if (!this.pc) return false;
      const state = this.pc.connectionState;
      if (state === "failed" || state === "closed") return true;
      return state === "disconnected" && this.failedSince && now() - this.failedSince > MEDIA_RECOVERY_GRACE_MS;
    }

    /** Closes the peer connection and ends the relay session; resolves once the relay knows. */
    close() {
      if (this.pc) {
        const pc = this.pc;
        this.pc = null;
        try {
          pc.close();
        } catch (_) {
          /* already closed */
        }
      }
      const sessionUrl = this.sessionUrl;
      this.sessionUrl = null;
      return endRelaySession(sessionUrl);
    }

    /** Reads `getStats` and turns it into the ZEGO-shaped quality record. */
    async sampleQuality() {
      if (!this.pc) return null;
      let report;
      try {
        report = await this.pc.getStats();
      } catch (_) {
        return null;
      }
      const rtpType = this.kind === "publish" ? "outbound-rtp" : "inbound-rtp";
      const counters = { time: now(), video: null, audio: null };
      const codecs = new Map();
      const remoteInbound = new Map();
      let roundTrip;
      report.forEach((entry) => {
        if (entry.type === "codec") codecs.set(entry.id, entry.mimeType);
        if (entry.type === "remote-inbound-rtp") remoteInbound.set(entry.kind, entry);
        if (entry.type === "candidate-pair" && entry.nominated && typeof entry.currentRoundTripTime === "number") {
          roundTrip = entry.currentRoundTripTime * 1000;
        }
      });
      report.forEach((entry) => {
        if (entry.type !== rtpType || (entry.kind !== "video" && entry.kind !== "audio")) return;
        counters[entry.kind] = entry;
      });
      const prev = this.prevCounters;
      this.prevCounters = counters;
      const seconds = prev ? Math.max(0.001, (counters.time - prev.time) / 1000) : 0;
      const rate = (kind, field) => {
        const cur = counters[kind];
        const old = prev && prev[kind];
        if (!cur || !old || !seconds || typeof cur[field] !== "number" || typeof old[field] !== "number") return 0;
        return Math.max(0, cur[field] - old[field]) / seconds;
      };
      const codecName = (entry) => {
        const mime = entry && codecs.get(entry.codecId);
        return mime ? mime.split("/")[1] : "";
      };
      const lossRate = (kind) => {
        const cur = counters[kind];
        if (this.kind === "publish") {
          const remote = remoteInbound.get(kind);
          return remote && typeof remote.fractionLost === "number" ? remote.fractionLost : 0;
        }
        const old = prev && prev[kind];
        if (!cur || !old) return 0;
        const lost = Math.max(0, (cur.packetsLost || 0) - (old.packetsLost || 0));
        const received = Math.max(0, (cur.packetsReceived || 0) - (old.packetsReceived || 0));
        return lost + received ? lost / (lost + received) : 0;
      };
      const quality = (loss) => (loss < 0.01 ? 0 : loss < 0.03 ? 1 : loss < 0.08 ? 2 : loss < 0.2 ? 3 : 4);
      const video = counters.video || {};
      const audio = counters.audio || {};
      const bytesField = this.kind === "publish" ? "bytesSent" : "bytesReceived";
      const videoLoss = lossRate("video");
      const audioLoss = lossRate("audio");
      const stats = {
        video: {
          videoBitrate: (rate("video", bytesField) * 8) / 1000,
          videoFPS: video.framesPerSecond || rate("video", this.kind === "publish" ? "framesEncoded" : "framesDecoded"),
          videoTransferFPS: rate("video", this.kind === "publish" ? "framesSent" : "framesReceived"),
          frameWidth: video.frameWidth || 0,
          frameHeight: video.frameHeight || 0,
          googCodecName: codecName(video),
          videoPacketsLost: video.packetsLost || 0,
          videoPacketsLostRate: videoLoss,
          videoQuality: quality(videoLoss),
          muteState: "0",
        },
        audio: {
          audioBitrate: (rate("audio", bytesField) * 8) / 1000,
          audioCodec: codecName(audio),
          audioPacketsLost: audio.packetsLost || 0,
          audioPacketsLostRate: audioLoss,
          audioQuality: quality(audioLoss),
          audioJitter: typeof audio.jitter === "number" ? audio.jitter * 1000 : 0,
          muteState: "0",
        },
        currentRoundTripTime: roundTrip,
        totalRoundTripTime: roundTrip,
      };
      if (this.kind === "play") {
        stats.video.videoFramesDecoded = video.framesDecoded || 0;
        stats.video.videoFramesDropped = video.framesDropped || 0;
        stats.video.videoRenderFPS = video.framesPerSecond || 0;
        stats.video.videoCumulativeDecodeTime = video.totalDecodeTime || 0;
        stats.video.videoCumulativeBreakTime = video.totalFreezesDuration || 0;
        stats.video.videoCumulativeBreakRate = 0;
        stats.peerToPeerDelay = undefined;
        stats.peerToPeerPacketLostRate = undefined;
      } else {
        stats.video.muteState = this.localStream && this.localStream.getVideoTracks().some((t) => !t.enabled) ? "1" : "0";
        stats.audio.muteState = this.localStream && this.localStream.getAudioTracks().some((t) => !t.enabled) ? "1" : "0";
      }
      this.lastStats = stats;
      return prev ? stats : null;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Stream views: a managed <video> in a page element.
  // ---------------------------------------------------------------------------------------

  /**
   * Plays a MediaStream in a page element. Created with `createLocalStreamView` or
   * `createRemoteStreamView`.
   */
  class ZegoStreamView {
    constructor(engine, stream, local) {
      this._engine = engine;
      this._stream = stream;
      this._local = local;
      this._video = null;
      this._prompt = null;
      this._container = null;
      this._emitter = new Emitter(null);
      this._audioMuted = false;
      this._videoMuted = false;
    }

    /**
     * Renders the stream in `container` (an element or its id): creates a `<video>` filling it.
     * If the browser blocks autoplay with sound, shows a click-to-play prompt
     * (`enableAutoplayDialog`, default true) or only raises `autoplayFailed`.
     * @param {string|HTMLElement} container
     * @param {{enableAutoplayDialog?: boolean, mirror?: boolean, objectFit?: 'cover'|'contain'|'fill', muted?: boolean}} [options]
     */
    play(container, options = {}) {
      const element = typeof container === "string" ? document.getElementById(container) : container;
      if (!element) throw sdkError(SdkError.INVALID_ARGUMENT, `no element ${container}`);
      this.stop();
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
      video.addEventListener("loadedmetadata", () => this._emitter.emit("canPlayVideo"), { once: true });
      this._tryPlay(options.enableAutoplayDialog !== false);
    }

    _tryPlay(withDialog) {
      const video = this._video;
      if (!video) return;
      const attempt = video.play();
      if (!attempt || typeof attempt.catch !== "function") return;
      attempt.catch((err) => {
        if (!err || err.name !== "NotAllowedError" || video !== this._video) return;
        this._emitter.emit("autoplayFailed");
        this._engine._emitter.emit("autoplayFailed", video, err);
        if (withDialog) this._showPrompt();
      });
    }

    _showPrompt() {
      if (this._prompt || !this._container) return;
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
      prompt.addEventListener("click", () => this.resume());
      this._container.appendChild(prompt);
      this._prompt = prompt;
    }

    /** Retries playback after an autoplay block (call it from a user gesture). */
    resume() {
      if (this._prompt) {
        this._prompt.remove();
        this._prompt = null;
      }
      if (this._video) this._tryPlay(true);
    }

    /** Removes the `<video>` this view created. */
    stop() {
      if (this._prompt) this._prompt.remove();
      this._prompt = null;
      if (this._video) {
        this._video.srcObject = null;
        this._video.remove();
      }
      this._video = null;
    }

    /** Mutes or unmutes playback of the audio (remote views). */
    setAudioMuted(muted) {
      this._audioMuted = !!muted;
      if (this._video && !this._local) this._video.muted = this._audioMuted;
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
      if (this._video) this._video.volume = volume / 100;
      return true;
    }

    /** Routes the audio to an output device (where `setSinkId` exists). */
    async useAudioOutputDevice(deviceID) {
      if (this._video && typeof this._video.setSinkId === "function") await this._video.setSinkId(deviceID);
    }

    /** Width of the decoded picture in pixels (0 before the first frame). */
    getVideoWidth() {
      return this._video ? this._video.videoWidth : 0;
    }

    /** Height of the decoded picture in pixels (0 before the first frame). */
    getVideoHeight() {
      return this._video ? this._video.videoHeight : 0;
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

  // ---------------------------------------------------------------------------------------
  // The engine
  // ---------------------------------------------------------------------------------------

  const ROOM_EVENTS = new Set([
    "roomUserUpdate",
    "roomOnlineUserCountUpdate",
    "roomStreamUpdate",
    "streamExtraInfoUpdate",
    "roomExtraInfoUpdate",
    "IMRecvBroadcastMessage",
    "IMRecvBarrageMessage",
    "IMRecvCustomCommand",
    "kickout",
    "streamMuteUpdate",
    "tokenWillExpire",
    "resync",
    "publisherStateUpdate",
    "playerStateUpdate",
    "goaway",
  ]);

  /**
   * The Huddle engine: one per page (or per room the page is in).
   *
   * ```js
   * const zg = new ZegoExpressEngine(appID, "wss://huddle.example.com/ws");
   * zg.on("roomStreamUpdate", async (roomID, updateType, streamList) => { … });
   * await zg.loginRoom(roomID, token, { userID, userName }, { userUpdate: true });
   * ```
   */
  class HuddleExpressEngine {
    /**
     * @param {number} appID your app id (from `huddle app create`, or 1 in dev mode)
     * @param {string} server the websocket URL, e.g. `wss://huddle.example.com/ws`
     */
    constructor(appID, server) {
      if (typeof appID !== "number" || !Number.isInteger(appID) || appID <= 0) {
        throw sdkError(SdkError.INVALID_ARGUMENT, "appID must be a positive integer");
      }
      if (!isNonEmptyString(server)) throw sdkError(SdkError.INVALID_ARGUMENT, "server must be the websocket URL");
      this.appID = appID;
      this.server = server;
      this._logger = new Logger();
      this._emitter = new Emitter(this._logger);
      this._room = null; // the room this engine is in or logging in to
      this._conn = null;
      this._publishers = new Map(); // streamID → MediaSession (+ localStream)
      this._players = new Map(); // streamID → MediaSession (+ remote MediaStream)
      this._publisherStates = new Map();
      this._playerStates = new Map();
      this._streamConfigs = new WeakMap(); // MediaStream → bitrate etc. from createStream
      this._qualityTimer = null;
      this._mediaCheckTimer = null;
      this._turnOnly = false; // setEngineConfig({turnOnly}): media through TURN only
      // A closed tab would otherwise stay in the room for the reconnect grace period.
      this._onPageHide = () => this._leaveOnUnload();
      if (hasWindow) window.addEventListener("pagehide", this._onPageHide);
    }

    _leaveOnUnload() {
      const room = this._room;
      if (!room || !this._conn || room.state === "RECONNECTING") return;
      room.leaving = true;
      this._conn.sendNow("logout", { roomID: room.roomID });
    }

    /** The SDK version. */
    getVersion() {
      return VERSION;
    }

    /**
     * Leaves the room (if in one), stops all media and timers and drops every listener.
     * The engine cannot be used afterwards; create a new one.
     */
    destroyEngine() {
      if (this._room) this.logoutRoom().catch(() => {});
      this._stopAllMedia();
      this._stopQualityReports();
      if (this._mediaCheckTimer) clearTimeout(this._mediaCheckTimer);
      if (hasWindow) window.removeEventListener("pagehide", this._onPageHide);
      this._emitter = new Emitter(this._logger);
    }

    // ----- events ------------------------------------------------------------------------

    /**
     * Registers a listener. Register before `loginRoom` so nothing is missed.
     * @param {string} event e.g. `roomStateChanged`, `roomStreamUpdate`
     * @param {Function} callback
     * @returns {boolean}
     */
    on(event, callback) {
      return this._emitter.on(event, callback);
    }

    /**
     * Removes one listener, or all listeners of the event when `callback` is omitted.
     * @returns {boolean}
     */
    off(event, callback) {
      return this._emitter.off(event, callback);
    }

    /** Logs every request, reply and event to the console when true. */
    setDebugVerbose(enable) {
      this._logger.verbose = !!enable;
    }

    /**
     * Advanced engine settings, as in ZEGO's SDK; keys Huddle does not know are ignored.
     * `turnOnly: true` sends all media through the TURN servers Huddle hands out with each
     * publish and play (`iceTransportPolicy: "relay"`): for networks that must not see direct
     * traffic, and for testing a TURN deployment. Applies to publishes and plays started
     * after the call.
     * @param {{turnOnly?: boolean}} config
     */
    setEngineConfig(config) {
      if (config && typeof config.turnOnly === "boolean") this._turnOnly = config.turnOnly;
    }

    /**
     * The peer connection settings for a publish or play: the TURN servers of the signaling
     * reply (`iceServers`, absent from older servers), relayed-only with `turnOnly`.
     */
    _rtcConfiguration(reply) {
      const iceServers = Array.isArray(reply && reply.iceServers) ? reply.iceServers : [];
      if (this._turnOnly && !iceServers.length) {
        this._logger.warn("turnOnly is set but the server handed out no TURN servers: media cannot connect");
      }
      return {
        bundlePolicy: "max-bundle",
        rtcpMuxPolicy: "require",
        iceServers,
        iceTransportPolicy: this._turnOnly ? "relay" : "all",
      };
    }

    /**
     * Console log level: `debug`, `info`, `warn` (default), `error` or `disable`.
     * @param {{logLevel?: string}} config
     */
    setLogConfig(config) {
      if (config && typeof config.logLevel === "string") this._logger.level = config.logLevel;
      return true;
    }

    // ----- capabilities and devices -------------------------------------------------------

    /**
     * Detects what this browser supports: WebRTC, capture from a MediaStream, camera and
     * microphone presence, video codecs the browser can send, screen sharing.
     * @param {'webRTC'|'customCapture'|'camera'|'microphone'|'videoCodec'|'screenSharing'} [checkType] only this one
     * @returns {Promise<{webRTC: boolean, customCapture: boolean, camera: boolean, microphone: boolean, videoCodec: {H264: boolean, H265: boolean, VP8: boolean, VP9: boolean}, screenSharing: boolean, errInfo: object, result: boolean}>}
     */
    async checkSystemRequirements(checkType) {
      const errInfo = {};
      const result = { errInfo };
      const want = (name) => !checkType || checkType === name;
      const webRTC = typeof RTCPeerConnection === "function" && typeof WebSocket === "function";
      if (want("webRTC")) {
        result.webRTC = webRTC;
        if (!webRTC) errInfo.webRTC = { name: "NotSupported", message: "RTCPeerConnection or WebSocket is missing" };
      }
      if (want("customCapture")) {
        result.customCapture =
          typeof MediaStream === "function" &&
          typeof HTMLCanvasElement !== "undefined" &&
          typeof HTMLCanvasElement.prototype.captureStream === "function";
      }
      if (want("camera") || want("microphone")) {
        let devices = [];
        try {
          devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
        } catch (err) {
          errInfo.camera = errInfo.microphone = { name: err.name, message: err.message };
        }
        const hasGum = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
        if (want("camera")) result.camera = hasGum && devices.some((d) => d.kind === "videoinput");
        if (want("microphone")) result.microphone = hasGum && devices.some((d) => d.kind === "audioinput");
        if (!hasGum) errInfo.camera = errInfo.microphone = { name: "NotSupported", message: "getUserMedia is missing (a secure context is needed)" };
      }
      if (want("videoCodec")) {
        const codec = { H264: false, H265: false, VP8: false, VP9: false };
        const caps = typeof RTCRtpSender !== "undefined" && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
        for (const c of (caps && caps.codecs) || []) {
          const name = c.mimeType.split("/")[1].toUpperCase();
          if (name in codec) codec[name] = true;
        }
        result.videoCodec = codec;
      }
      if (want("screenSharing")) {
        result.screenSharing = !!(navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === "function");
      }
      result.result = webRTC && (!result.videoCodec || result.videoCodec.VP8 || result.videoCodec.H264);
      return result;
    }

    /**
     * Lists cameras, microphones and speakers.
     * @returns {Promise<{cameras: Array<{deviceID: string, deviceName: string}>, microphones: Array<{deviceID: string, deviceName: string}>, speakers: Array<{deviceID: string, deviceName: string}>}>}
     */
    async enumDevices() {
      const devices = await navigator.mediaDevices.enumerateDevices();
      const of = (kind) =>
        devices.filter((d) => d.kind === kind).map((d) => ({ deviceID: d.deviceId, deviceName: d.label || d.kind }));
      return { cameras: of("videoinput"), microphones: of("audioinput"), speakers: of("audiooutput") };
    }

    /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
    async getCameras() {
      return (await this.enumDevices()).cameras;
    }

    /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
    async getMicrophones() {
      return (await this.enumDevices()).microphones;
    }

    /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
    async getSpeakers() {
      return (await this.enumDevices()).speakers;
    }

    // ----- room --------------------------------------------------------------------------

    /**
     * Logs in to a room. Resolves `true` on success (after `roomStateChanged` LOGINED) and
     * `false` on failure (after `roomStateChanged` LOGIN_FAILED with the error code).
     * @param {string} roomID
     * @param {string} token a user token from your business server (`POST /v1/tokens`)
     * @param {{userID: string, userName?: string}} user
     * @param {{userUpdate?: boolean, maxMemberCount?: number}} [config] `userUpdate: true` to receive `roomUserUpdate`
     * @returns {Promise<boolean>}
     */
    async loginRoom(roomID, token, user, config = {}) {
      if (!isNonEmptyString(roomID) || !isNonEmptyString(token) || !user || !isNonEmptyString(user.userID)) {
        this._logger.error("loginRoom needs roomID, token and user.userID");
        this._emitter.emit("roomStateChanged", roomID, "LOGIN_FAILED", SdkError.INVALID_ARGUMENT, "loginRoom needs roomID, token and user.userID");
        return false;
      }
      if (this._room) {
        const msg = `already in room ${this._room.roomID}; call logoutRoom first`;
        this._emitter.emit("roomStateChanged", roomID, "LOGIN_FAILED", SdkError.ALREADY_IN_ROOM, msg);
        return false;
      }
      const room = {
        roomID,
        token,
        user: { userID: user.userID, userName: isNonEmptyString(user.userName) ? user.userName : user.userID },
        userUpdate: !!(config && config.userUpdate),
        state: "LOGINING",
        session: null,
        users: new Map(),
        streams: new Map(),
        // streamID → {audio, video}: what the business server muted, as this page last heard.
        muted: new Map(),
        extraInfo: new Map(),
        count: 0,
        reconnect: null,
      };
      this._room = room;
      this._emitter.emit("roomStateChanged", roomID, "LOGINING", 0, "");
      try {
        await this._connectAndLogin(room);
      } catch (err) {
        this._dropConnection(room.conn);
        // Logged out meanwhile: logoutRoom has reported LOGOUT, nothing more to say.
        if (this._room !== room) return false;
        this._room = null;
        this._logger.warn("login failed", err.code, err.msg);
        this._emitter.emit("roomStateChanged", roomID, "LOGIN_FAILED", err.code || SdkError.CONNECT_FAILED, err.msg || String(err));
        return false;
      }
      if (this._room !== room) {
        // logoutRoom ran while the login was in flight: do not leave a session behind.
        room.conn.sendNow("logout", { roomID });
        this._dropConnection(room.conn);
        return false;
      }
      room.state = "LOGINED";
      this._startQualityReports();
      this._emitter.emit("roomStateChanged", roomID, "LOGINED", 0, "");
      this._sendToken(room);
      return true;
    }

    /** Opens a websocket and sends `login`; the pushed events then build the room state. */
    async _connectAndLogin(room) {
      const conn = this._newConnection();
      room.conn = conn;
      await conn.open();
      if (this._room !== room) throw sdkError(SdkError.CANCELLED, "logged out during login");
      return this._login(conn, room);
    }

    /** Sends `login` for `room` on `conn` with the page's latest token; keeps the session. */
    async _login(conn, room) {
      const token = room.token;
      const reply = await conn.request("login", {
        appID: this.appID,
        roomID: room.roomID,
        token,
        user: room.user,
        userUpdate: room.userUpdate,
      });
      room.session = reply;
      room.sessionToken = token;
      return reply;
    }

    _newConnection() {
      if (this._conn) this._conn.abandon();
      const conn = new SignalingConnection(signalingUrl(this.server), {
        logger: this._logger,
        onEvent: (event, data) => {
          if (this._conn === conn) this._onServerEvent(event, data);
        },
        onClose: (code, reason, lastError) => {
          if (this._conn === conn) this._onConnectionClosed(code, reason, lastError);
        },
      });
      this._conn = conn;
      return conn;
    }

    _closeConnection() {
      if (this._conn) this._conn.abandon();
      this._conn = null;
    }

    /** Abandons `conn`, and forgets it if it is the current one (never someone else's). */
    _dropConnection(conn) {
      if (!conn) return;
      conn.abandon();
      if (this._conn === conn) this._conn = null;
    }

    /**
     * Leaves the room: stops publishing and playing, tells the server, closes the connection.
     * Raises `roomStateChanged` LOGOUT.
     * @param {string} [roomID]
     */
    async logoutRoom(roomID) {
      const room = this._room;
      if (!room || (roomID && roomID !== room.roomID)) return;
      this._room = null;
      this._stopAllMedia();
      this._stopQualityReports();
      const conn = this._conn;
      let errorCode = 0;
      if (conn && (room.state === "LOGINED" || room.state === "RECONNECTED")) {
        try {
          await conn.request("logout", { roomID: room.roomID }, 3000);
        } catch (err) {
          // The connection closing right after the reply can race with it; only real errors count.
          if (err.code && err.code !== SdkError.CONNECT_FAILED && err.code !== SdkError.CANCELLED) errorCode = err.code;
        }
      } else if (conn) {
        // Logging in or reconnecting: a login or resume may already have succeeded on the
        // server; a logout queued behind it (if the socket is open) leaves at once.
        conn.sendNow("logout", { roomID: room.roomID });
      }
      this._dropConnection(conn);
      room.state = "LOGOUT";
      this._emitter.emit("roomStateChanged", room.roomID, errorCode ? "LOGOUT_FAILED" : "LOGOUT", errorCode, "");
    }

    /**
     * Replaces the token of the current session before it expires (answer `tokenWillExpire`).
     * Returns false when not logged in; the renewal itself is asynchronous.
     * @param {string} token
     * @param {string} [roomID]
     * @returns {boolean}
     */
    renewToken(token, roomID) {
      const room = this._room;
      if (!room || !isNonEmptyString(token) || (roomID && roomID !== room.roomID)) return false;
      room.token = token; // also used if the SDK has to log in again after a reconnect
      // While logging in or reconnecting, the token is sent once the session is back.
      if (room.state === "LOGINED" || room.state === "RECONNECTED") this._sendToken(room);
      return true;
    }

    /** Gives the server the page's latest token if the session still runs on an older one. */
    _sendToken(room) {
      const token = room.token;
      if (!room.session || room.sessionToken === token) return;
      this._request("renewToken", { token })
        .then((reply) => {
          room.sessionToken = token;
          if (room.session) room.session.tokenExpiresAt = reply.tokenExpiresAt;
        })
        .catch((err) => this._logger.error("renewToken failed", err.code, err.msg));
    }

    /** Current room state as the ZEGO-style reason of the last `roomStateChanged`. */
    getRoomState(roomID) {
      const room = this._room;
      if (!room || (roomID && roomID !== room.roomID)) return "LOGOUT";
      return room.state;
    }

    // ----- messages and extra info --------------------------------------------------------

    /**
     * Sends a chat message to everyone else in the room (`IMRecvBroadcastMessage`).
     * @returns {Promise<{errorCode: number, messageID?: number, extendedData?: string}>}
     */
    sendBroadcastMessage(roomID, message) {
      return this._roomCall(roomID, "sendBroadcastMessage", { message }, (reply) => ({ messageID: reply.messageID }));
    }

    /**
     * Sends a "bullet comment" to everyone else in the room (`IMRecvBarrageMessage`).
     * @returns {Promise<{errorCode: number, messageID?: number, extendedData?: string}>}
     */
    sendBarrageMessage(roomID, message) {
      return this._roomCall(roomID, "sendBarrageMessage", { message }, (reply) => ({ messageID: reply.messageID }));
    }

    /**
     * Sends a command to some users (empty/omitted `toUserIDs`: everyone else) (`IMRecvCustomCommand`).
     * @param {string} roomID
     * @param {string} command
     * @param {string[]} [toUserIDs]
     * @returns {Promise<{errorCode: number, messageID?: number, extendedData?: string}>}
     */
    sendCustomCommand(roomID, command, toUserIDs) {
      const data = { command, toUserIDs: Array.isArray(toUserIDs) ? toUserIDs : [] };
      return this._roomCall(roomID, "sendCustomCommand", data, (reply) => ({ messageID: reply.messageID }));
    }

    /**
     * Sets one key of the room's extra info (`roomExtraInfoUpdate` to the others).
     * @returns {Promise<{errorCode: number, extendedData?: string}>}
     */
    setRoomExtraInfo(roomID, key, value) {
      return this._roomCall(roomID, "setRoomExtraInfo", { key, value });
    }

    /**
     * Replaces the extra info of one of your published streams (`streamExtraInfoUpdate`).
     * @returns {Promise<{errorCode: number, extendedData?: string}>}
     */
    setStreamExtraInfo(streamID, extraInfo) {
      return this._roomCall(undefined, "setStreamExtraInfo", { streamID, extraInfo });
    }

    /** Room requests resolve `{errorCode: 0, …}` or `{errorCode, extendedData}`; they never reject. */
    async _roomCall(roomID, type, data, pick) {
      const room = this._room;
      if (!room) return { errorCode: SdkError.NOT_LOGGED_IN, extendedData: "not logged in" };
      if (roomID && roomID !== room.roomID) {
        return { errorCode: 5020, extendedData: `not in room ${roomID}` };
      }
      try {
        const reply = await this._request(type, data);
        return Object.assign({ errorCode: 0 }, pick ? pick(reply) : {});
      } catch (err) {
        return { errorCode: err.code || 1000, extendedData: err.msg || String(err) };
      }
    }

    /** Sends a request on the current connection; waits through a reconnect if one is running. */
    async _request(type, data) {
      const room = this._room;
      if (room && room.reconnect) await room.reconnect.catch(() => {});
      if (!this._conn || !this._room) throw sdkError(SdkError.NOT_LOGGED_IN, `not logged in (${type})`);
      return this._conn.request(type, data);
    }

    // ----- local streams -----------------------------------------------------------------

    /**
     * Captures a local stream: camera and microphone (default), the screen, or your own source.
     * @param {{camera?: {audio?: boolean, video?: boolean, audioInput?: string, videoInput?: string, width?: number, height?: number, frameRate?: number, bitrate?: number, audioBitrate?: number, videoQuality?: 1|2|3|4, facingMode?: 'user'|'environment', ANS?: boolean, AGC?: boolean, AEC?: boolean, channelCount?: 1|2}, screen?: boolean|{audio?: boolean, width?: number, height?: number, frameRate?: number, bitrate?: number, videoQuality?: 1|2|3|4}, custom?: {source: MediaStream|HTMLMediaElement, bitrate?: number, audioBitrate?: number}}} [source]
     * @returns {Promise<MediaStream>}
     */
    async createStream(source) {
      const config = source || { camera: { audio: true, video: true } };
      let stream;
      let settings;
      try {
        if (config.custom) {
          ({ stream, settings } = this._customStream(config.custom));
        } else if (config.screen) {
          ({ stream, settings } = await this._screenStream(config.screen === true ? {} : config.screen));
        } else {
          ({ stream, settings } = await this._cameraStream(config.camera || { audio: true, video: true }));
        }
      } catch (err) {
        if (err && err.code) throw err;
        throw sdkError(SdkError.CAPTURE_FAILED, `capture failed: ${err && err.name}: ${err && err.message}`, {
          name: err && err.name,
        });
      }
      this._streamConfigs.set(stream, settings);
      return stream;
    }

    async _cameraStream(camera) {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw sdkError(SdkError.UNSUPPORTED, "getUserMedia is not available (a secure context, https or localhost, is needed)");
      }
      const wantAudio = camera.audio !== false;
      const wantVideo = camera.video !== false;
      if (!wantAudio && !wantVideo) throw sdkError(SdkError.INVALID_ARGUMENT, "camera: audio and video are both off");
      const preset = VIDEO_PRESETS[camera.videoQuality] || VIDEO_PRESETS[2];
      const custom = camera.videoQuality === 4 || camera.width || camera.height || camera.frameRate;
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
      const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
      return { stream, settings: { bitrate: camera.bitrate || preset.bitrate, audioBitrate: camera.audioBitrate || 48, source: "camera" } };
    }

    async _screenStream(screen) {
      if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== "function") {
        throw sdkError(SdkError.UNSUPPORTED, "screen sharing is not available in this browser");
      }
      const preset = SCREEN_PRESETS[screen.videoQuality] || SCREEN_PRESETS[2];
      const stream = await navigator.mediaDevices.getDisplayMedia({
        audio: !!screen.audio,
        video: {
          width: { ideal: screen.width || preset.width },
          height: { ideal: screen.height || preset.height },
          frameRate: { ideal: screen.frameRate || preset.frameRate },
        },
      });
      for (const track of stream.getVideoTracks()) {
        track.addEventListener("ended", () => this._emitter.emit("screenSharingEnded", stream), { once: true });
      }
      return { stream, settings: { bitrate: screen.bitrate || screen.bitRate || preset.bitrate, audioBitrate: 48, source: "screen" } };
    }

    _customStream(custom) {
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
      return { stream, settings: { bitrate: custom.bitrate || 800, audioBitrate: custom.audioBitrate || 48, source: "custom" } };
    }

    /** Stops capture: ends every track of a stream made by `createStream`. */
    destroyStream(localStream) {
      if (!localStream || typeof localStream.getTracks !== "function") return;
      for (const track of localStream.getTracks()) track.stop();
    }

    /**
     * A view that plays a local stream (muted, mirrored by default).
     * @param {MediaStream} localStream
     * @returns {ZegoStreamView}
     */
    createLocalStreamView(localStream) {
      return new ZegoStreamView(this, localStream, true);
    }

    /**
     * A view that plays a stream from `startPlayingStream`.
     * @param {MediaStream} remoteStream
     * @returns {ZegoStreamView}
     */
    createRemoteStreamView(remoteStream) {
      return new ZegoStreamView(this, remoteStream, false);
    }

    /**
     * Stops or resumes sending video (the camera stays on; others see black frames).
     * @param {MediaStream} localStream
     * @param {boolean} mute
     * @returns {boolean}
     */
    mutePublishStreamVideo(localStream, mute) {
      if (!localStream || typeof localStream.getVideoTracks !== "function") return false;
      for (const track of localStream.getVideoTracks()) track.enabled = !mute;
      return true;
    }

    /**
     * Stops or resumes sending audio (silence is sent while muted).
     * @param {MediaStream} localStream
     * @param {boolean} mute
     * @returns {boolean}
     */
    mutePublishStreamAudio(localStream, mute) {
      if (!localStream || typeof localStream.getAudioTracks !== "function") return false;
      for (const track of localStream.getAudioTracks()) track.enabled = !mute;
      return true;
    }

    // ----- publishing --------------------------------------------------------------------

    /**
     * Publishes a local stream under `streamID` (unique within the app). Returns false at once
     * on bad arguments; the outcome comes as `publisherStateUpdate` (PUBLISH_REQUESTING, then
     * PUBLISHING or NO_PUBLISH with an error code) and the others get `roomStreamUpdate` ADD.
     * @param {string} streamID
     * @param {MediaStream} localStream
     * @param {{extraInfo?: string, videoCodec?: 'VP8'|'H264'|'VP9'}} [publishOption]
     * @returns {boolean}
     */
    startPublishingStream(streamID, localStream, publishOption = {}) {
      if (!isNonEmptyString(streamID) || !localStream || typeof localStream.getTracks !== "function") {
        this._logger.error("startPublishingStream needs a streamID and a MediaStream");
        return false;
      }
      if (!this._room) {
        this._logger.error("startPublishingStream: not logged in");
        return false;
      }
      if (this._publishers.has(streamID)) {
        this._logger.error(`already publishing ${streamID}`);
        return false;
      }
      const session = new MediaSession(this, "publish", streamID);
      session.localStream = localStream;
      session.options = {
        extraInfo: typeof publishOption.extraInfo === "string" ? publishOption.extraInfo : "",
        videoCodec: publishOption.videoCodec,
      };
      this._publishers.set(streamID, session);
      this._publish(session).catch(() => {});
      return true;
    }

    _publish(session) {
      const settings = this._streamConfigs.get(session.localStream) || { bitrate: 800, audioBitrate: 48 };
      const request = { type: "publishStream", data: { streamID: session.streamID, extraInfo: session.options.extraInfo } };
      // PUBLISHING comes from the server once the relay sees the media.
      return this._negotiate(session, request, (pc) => {
        const stream = session.localStream;
        for (const track of stream.getTracks()) {
          const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
          if (track.kind === "video") {
            preferCodec(transceiver, session.options.videoCodec);
            this._limitBitrate(transceiver.sender, settings.bitrate);
          } else {
            this._limitBitrate(transceiver.sender, settings.audioBitrate);
          }
        }
      });
    }

    /**
     * Negotiates a publish or play session (again). A failure ends it and reports why, except
     * when signaling dropped meanwhile (the reconnect negotiates it again) or a newer
     * negotiation of the same session took over.
     */
    async _negotiate(session, request, setupPc) {
      session.negotiating = true;
      this._setMediaState(session, session.kind === "publish" ? "PUBLISH_REQUESTING" : "PLAY_REQUESTING", 0);
      try {
        await session.negotiate(request, setupPc);
      } catch (err) {
        if (session.stopped) throw sdkError(SdkError.CANCELLED, "stopped");
        if (err.code === SdkError.CANCELLED || this._retryAfterReconnect(session, err)) return;
        this._logger.warn(session.kind, "failed", session.streamID, err.code, err.msg);
        this._endMedia(session, err.code || SdkError.MEDIA_FAILED, err.msg);
        throw err;
      } finally {
        session.negotiating = false;
      }
    }

    /** Ends a publish or play session on this side and reports NO_PUBLISH or NO_PLAY. */
    _endMedia(session, errorCode = 0, extendedData = "") {
      const sessions = session.kind === "publish" ? this._publishers : this._players;
      if (sessions.get(session.streamID) === session) sessions.delete(session.streamID);
      session.stopped = true;
      session.close();
      this._setMediaState(session, session.kind === "publish" ? "NO_PUBLISH" : "NO_PLAY", errorCode, extendedData);
    }

    _setMediaState(session, state, errorCode, extendedData = "") {
      if (session.kind === "publish") this._setPublisherState(session.streamID, state, errorCode, extendedData);
      else this._setPlayerState(session.streamID, state, errorCode, extendedData);
    }

    /**
     * Signaling dropped while a stream was being negotiated: keep the session; the reconnect
     * negotiates it again once the room is back (`_restoreMedia`).
     */
    _retryAfterReconnect(session, err) {
      const room = this._room;
      const transient = [SdkError.CONNECT_FAILED, SdkError.NOT_LOGGED_IN, SdkError.TIMEOUT].includes(err.code);
      if (!room || !transient || !(room.reconnect || room.state === "RECONNECTING")) return false;
      this._logger.info(session.kind, session.streamID, "waits for the reconnect");
      session.close();
      session.retry = true;
      return true;
    }

    _limitBitrate(sender, kbps) {
      if (!kbps || !sender.getParameters) return;
      // Applied once the transport exists; before that, encodings may be empty.
      const apply = () => {
        const params = sender.getParameters();
        if (!params.encodings || !params.encodings.length) params.encodings = [{}];
        params.encodings[0].maxBitrate = kbps * 1000;
        return sender.setParameters(params);
      };
      Promise.resolve()
        .then(apply)
        .catch(() => setTimeout(() => apply().catch(() => {}), 1000));
    }

    /**
     * Stops publishing `streamID`: the others get `roomStreamUpdate` DELETE. The local stream
     * keeps capturing (use `destroyStream` to stop it).
     * @param {string} streamID
     * @returns {boolean}
     */
    stopPublishingStream(streamID) {
      const session = this._publishers.get(streamID);
      if (!session) return false;
      this._endMedia(session);
      if (this._conn && this._room) this._conn.request("stopPublishingStream", { streamID }).catch(() => {});
      return true;
    }

    /**
     * Replaces the video or audio track of a published stream without renegotiating
     * (switch camera, start/stop screen share in the same stream).
     * @param {MediaStream} localStream
     * @param {MediaStreamTrack} track
     * @returns {Promise<{errorCode: number, extendedData?: string}>}
     */
    async replaceTrack(localStream, track) {
      if (!localStream || !track) return { errorCode: SdkError.INVALID_ARGUMENT, extendedData: "stream and track needed" };
      const old = track.kind === "video" ? localStream.getVideoTracks() : localStream.getAudioTracks();
      for (const t of old) localStream.removeTrack(t);
      localStream.addTrack(track);
      for (const session of this._publishers.values()) {
        if (session.localStream !== localStream || !session.pc) continue;
        for (const sender of session.pc.getSenders()) {
          if (sender.track && sender.track.kind === track.kind) await sender.replaceTrack(track);
        }
      }
      return { errorCode: 0 };
    }

    _setPublisherState(streamID, state, errorCode, extendedData = "") {
      if (this._publisherStates.get(streamID) === state) return;
      this._publisherStates.set(streamID, state);
      this._emitter.emit("publisherStateUpdate", { state, streamID, errorCode, extendedData });
    }

    // ----- playing -----------------------------------------------------------------------

    /**
     * Plays another user's stream. Resolves with a MediaStream (its tracks arrive from the
     * relay) for `createRemoteStreamView` or a `<video>`'s `srcObject`. The same MediaStream
     * keeps playing across reconnects. State comes as `playerStateUpdate`.
     * @param {string} streamID
     * @param {{video?: boolean, audio?: boolean, videoCodec?: string}} [playOption]
     * @returns {Promise<MediaStream>}
     */
    async startPlayingStream(streamID, playOption = {}) {
      if (!isNonEmptyString(streamID)) throw sdkError(SdkError.INVALID_ARGUMENT, "startPlayingStream needs a streamID");
      if (!this._room) throw sdkError(SdkError.NOT_LOGGED_IN, "startPlayingStream: not logged in");
      const existing = this._players.get(streamID);
      if (existing) return existing.remoteStream;
      const session = new MediaSession(this, "play", streamID);
      session.remoteStream = new MediaStream();
      session.options = { video: playOption.video !== false, audio: playOption.audio !== false, videoCodec: playOption.videoCodec };
      this._players.set(streamID, session);
      await this._play(session);
      return session.remoteStream;
    }

    _play(session) {
      // The page keeps its MediaStream whatever happens; new tracks are swapped into it.
      return this._negotiate(session, { type: "playStream", data: { streamID: session.streamID } }, (pc) => {
        if (session.options.audio) pc.addTransceiver("audio", { direction: "recvonly" });
        if (session.options.video) {
          const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
          preferCodec(transceiver, session.options.videoCodec);
        }
        pc.addEventListener("track", (event) => this._attachRemoteTrack(session, event.track));
      });
    }

    /** Swaps a new track into the stream the page already holds (so its `<video>` keeps going). */
    _attachRemoteTrack(session, track) {
      const stream = session.remoteStream;
      for (const old of stream.getTracks()) {
        if (old.kind === track.kind && old !== track) stream.removeTrack(old);
      }
      if (!stream.getTracks().includes(track)) stream.addTrack(track);
    }

    /**
     * Stops playing `streamID` and ends its relay session.
     * @param {string} streamID
     */
    stopPlayingStream(streamID) {
      const session = this._players.get(streamID);
      if (!session) return;
      this._endMedia(session);
      if (this._conn && this._room) this._conn.request("stopPlayingStream", { streamID }).catch(() => {});
    }

    _setPlayerState(streamID, state, errorCode, extendedData = "") {
      if (this._playerStates.get(streamID) === state) return;
      this._playerStates.set(streamID, state);
      this._emitter.emit("playerStateUpdate", { state, streamID, errorCode, extendedData });
    }

    /**
     * The last quality record of a played stream (as in `playQualityUpdate`), or null.
     * @returns {object|null}
     */
    getPlayingStreamQuality(streamID) {
      const session = this._players.get(streamID);
      return (session && session.lastStats) || null;
    }

    _stopAllMedia() {
      for (const session of [...this._publishers.values(), ...this._players.values()]) this._endMedia(session);
    }

    // ----- quality -----------------------------------------------------------------------

    _startQualityReports() {
      this._stopQualityReports();
      this._qualityTimer = setInterval(() => this._reportQuality(), QUALITY_INTERVAL_MS);
    }

    _stopQualityReports() {
      if (this._qualityTimer) clearInterval(this._qualityTimer);
      this._qualityTimer = null;
    }

    async _reportQuality() {
      for (const session of Array.from(this._publishers.values())) {
        const stats = await session.sampleQuality();
        if (stats && this._publishers.get(session.streamID) === session) {
          this._emitter.emit("publishQualityUpdate", session.streamID, stats);
        }
      }
      for (const session of Array.from(this._players.values())) {
        const stats = await session.sampleQuality();
        if (stats && this._players.get(session.streamID) === session) {
          this._emitter.emit("playQualityUpdate", session.streamID, stats);
        }
      }
    }

    // ----- server events -----------------------------------------------------------------

    _onServerEvent(event, data) {
      const room = this._room;
      if (!room || !ROOM_EVENTS.has(event)) {
        this._logger.debug("ignored event", event);
        return;
      }
      const roomID = room.roomID;
      switch (event) {
        case "roomUserUpdate": {
          const list = this._applyUsers(room, data.updateType, data.userList || []);
          if (list.length && room.userUpdate) this._emitter.emit("roomUserUpdate", roomID, data.updateType, list);
          break;
        }
        case "roomOnlineUserCountUpdate":
          // After a login again, the pushed count can repeat what the snapshot diff reported.
          if (data.count === room.count) break;
          room.count = data.count;
          this._emitter.emit("roomOnlineUserCountUpdate", roomID, data.count);
          break;
        case "roomStreamUpdate": {
          const list = this._applyStreams(room, data.updateType, data.streamList || []);
          if (list.length) this._emitter.emit("roomStreamUpdate", roomID, data.updateType, list, "");
          if (data.updateType === "ADD") this._applyMuteFlags(room, data.streamList || []);
          break;
        }
        case "streamExtraInfoUpdate": {
          const list = (data.streamList || []).map(publicStream);
          for (const s of list) room.streams.set(s.streamID, s);
          this._emitter.emit("streamExtraInfoUpdate", roomID, list);
          break;
        }
        case "roomExtraInfoUpdate": {
          const list = this._applyExtraInfo(room, data.roomExtraInfoList || []);
          if (list.length) this._emitter.emit("roomExtraInfoUpdate", roomID, list);
          break;
        }
        case "IMRecvBroadcastMessage":
        case "IMRecvBarrageMessage":
          this._emitter.emit(event, roomID, data.messageList || []);
          break;
        case "IMRecvCustomCommand":
          this._emitter.emit("IMRecvCustomCommand", roomID, data.fromUser, data.command);
          break;
        case "tokenWillExpire":
          this._emitter.emit("tokenWillExpire", roomID);
          break;
        case "kickout": {
          const error = data.error || { code: 5009, message: "kicked out" };
          // Removed by the business server (5023) or the room closed (5024): ZEGO hands the
          // server's reason to roomStateChanged's extendedData as custom_kickout_message.
          const message =
            typeof data.reason === "string" && data.reason
              ? JSON.stringify({ custom_kickout_message: data.reason })
              : error.message;
          room.kickedOut = { code: error.code, message };
          break;
        }
        case "streamMuteUpdate": {
          // The business server muted or unmuted a stream (the relay stops forwarding it):
          // ZEGO's remoteMicStatusUpdate / remoteCameraStatusUpdate with MUTE or OPEN, for the
          // remote streams this page knows (its own stream is not "remote").
          this._applyMuteFlags(room, [data]);
          break;
        }
        case "resync":
          this._applySnapshot(room, data);
          break;
        case "goaway":
          this._moveToAnotherWorker(data);
          break;
        case "publisherStateUpdate":
        case "playerStateUpdate":
          this._onMediaStateEvent(event === "publisherStateUpdate" ? this._publishers : this._players, data);
          break;
        default:
          break;
      }
    }

    /**
     * PUBLISHING/PLAYING and NO_PUBLISH/NO_PLAY from the relay (through signaling). An end
     * with an error code is final. An end without one while this side's peer connection is
     * down is a broken path: recovered by renegotiating. An end while this side is connected
     * or negotiating concerns an older relay session of the stream and is ignored.
     */
    _onMediaStateEvent(sessions, data) {
      const session = sessions.get(data.streamID);
      if (!session) return;
      const ended = data.state === "NO_PUBLISH" || data.state === "NO_PLAY";
      if (!ended) {
        this._setMediaState(session, data.state, data.errorCode || 0);
        return;
      }
      if (data.errorCode === SERVER_DRAINING && session.kind === "publish") {
        // Its relay is shutting down: publish again, which signaling sends to another relay.
        this._logger.info("the relay of", data.streamID, "is draining; publishing through another one");
        this._renegotiate(session);
        return;
      }
      const room = this._room;
      const streamGone = session.kind === "play" && !(room && room.streams.has(data.streamID));
      if (data.errorCode || streamGone) {
        this._endMedia(session, data.errorCode || 0);
        return;
      }
      if (session.negotiating || !session.pc || session.pc.connectionState === "connected") return;
      if (!session.failedSince) session.failedSince = now();
      this._setMediaState(session, data.state, 0);
      this._scheduleMediaCheck();
    }

    /** Upserts room extra info by key; returns the entries that are new or changed. */
    _applyExtraInfo(room, list) {
      const changed = list.filter((info) => {
        const known = room.extraInfo.get(info.key);
        return !known || known.value !== info.value || known.updateTime !== info.updateTime;
      });
      for (const info of list) room.extraInfo.set(info.key, info);
      return changed;
    }

    /** ADD = upsert, DELETE = remove-if-present; returns what really changed. */
    _applyUsers(room, updateType, userList) {
      const changed = [];
      for (const user of userList) {
        const known = room.users.get(user.userID);
        if (updateType === "ADD") {
          if (!known || known.userName !== user.userName) changed.push(user);
          room.users.set(user.userID, user);
        } else if (updateType === "DELETE" && known) {
          room.users.delete(user.userID);
          changed.push(user);
        }
      }
      return changed.map((u) => ({ userID: u.userID, userName: u.userName }));
    }

    _applyStreams(room, updateType, streamList) {
      const changed = [];
      for (const raw of streamList) {
        const stream = publicStream(raw);
        const known = room.streams.get(stream.streamID);
        if (updateType === "ADD") {
          if (!known) changed.push(stream);
          room.streams.set(stream.streamID, stream);
        } else if (updateType === "DELETE" && known) {
          room.streams.delete(stream.streamID);
          room.muted.delete(stream.streamID);
          changed.push(stream);
        }
      }
      return changed;
    }

    /**
     * The server's mute flags of known remote streams (`audioMuted`/`videoMuted` on a stream
     * as it arrives, or on `streamMuteUpdate`): ZEGO's remoteMicStatusUpdate /
     * remoteCameraStatusUpdate (MUTE or OPEN) for each flag that differs from what the page
     * knew, a stream first seen counting as open. So a page that joins after a mute hears it.
     */
    _applyMuteFlags(room, streamList) {
      for (const raw of streamList) {
        if (!room.streams.has(raw.streamID)) continue; // its own stream, or one already gone
        const before = room.muted.get(raw.streamID) || { audio: false, video: false };
        const muted = { audio: !!raw.audioMuted, video: !!raw.videoMuted };
        room.muted.set(raw.streamID, muted);
        if (before.audio !== muted.audio) {
          this._emitter.emit("remoteMicStatusUpdate", raw.streamID, muted.audio ? "MUTE" : "OPEN", 0);
        }
        if (before.video !== muted.video) {
          this._emitter.emit("remoteCameraStatusUpdate", raw.streamID, muted.video ? "MUTE" : "OPEN", 0);
        }
      }
    }

    /** Replaces the room state with a server snapshot (resume reply, resync) and emits the diff. */
    _applySnapshot(room, view) {
      const roomID = room.roomID;
      if (room.userUpdate && Array.isArray(view.userList)) {
        const next = new Map(view.userList.map((u) => [u.userID, u]));
        const gone = Array.from(room.users.values()).filter((u) => !next.has(u.userID));
        const added = view.userList.filter((u) => {
          const known = room.users.get(u.userID);
          return !known || known.userName !== u.userName;
        });
        room.users = next;
        if (gone.length) this._emitter.emit("roomUserUpdate", roomID, "DELETE", gone);
        if (added.length) this._emitter.emit("roomUserUpdate", roomID, "ADD", added);
      }
      const nextStreams = new Map((view.streamList || []).map((s) => [s.streamID, publicStream(s)]));
      const goneStreams = Array.from(room.streams.values()).filter((s) => !nextStreams.has(s.streamID));
      const addedStreams = Array.from(nextStreams.values()).filter((s) => !room.streams.has(s.streamID));
      const changedInfo = Array.from(nextStreams.values()).filter((s) => {
        const known = room.streams.get(s.streamID);
        return known && known.extraInfo !== s.extraInfo;
      });
      room.streams = nextStreams;
      for (const gone of goneStreams) room.muted.delete(gone.streamID);
      if (goneStreams.length) this._emitter.emit("roomStreamUpdate", roomID, "DELETE", goneStreams, "");
      if (addedStreams.length) this._emitter.emit("roomStreamUpdate", roomID, "ADD", addedStreams, "");
      this._applyMuteFlags(room, view.streamList || []);
      if (changedInfo.length) this._emitter.emit("streamExtraInfoUpdate", roomID, changedInfo);
      const changedKeys = this._applyExtraInfo(room, view.roomExtraInfoList || []);
      if (changedKeys.length) this._emitter.emit("roomExtraInfoUpdate", roomID, changedKeys);
      if (typeof view.onlineCount === "number" && view.onlineCount !== room.count) {
        room.count = view.onlineCount;
        this._emitter.emit("roomOnlineUserCountUpdate", roomID, view.onlineCount);
      }
    }

    // ----- connection loss and reconnect -------------------------------------------------

    _onConnectionClosed(code, reason, lastError) {
      const room = this._room;
      this._conn = null;
      if (!room || room.state === "LOGINING") return; // loginRoom reports its own failure
      if (room.state === "RECONNECTING") return; // a failed attempt: the running reconnect goes on
      const roomID = room.roomID;
      if (room.leaving) {
        this._endSession(room, "LOGOUT", 0, "page closed");
        return;
      }
      // The session ended on the server's side: no reconnect.
      if (code === 4009 || room.kickedOut) {
        this._endSession(room, "KICKOUT", (room.kickedOut && room.kickedOut.code) || 5009, (room.kickedOut && room.kickedOut.message) || reason);
        return;
      }
      // 1000 follows a logout, 4003 token expiry, 1009 an oversized frame: the session is over.
      if (code === 4003 || code === 1009 || code === 1000) {
        const error = lastError || { code: code === 1000 ? 0 : 4003, message: reason };
        this._endSession(room, "KICKOUT", error.code, error.message || reason);
        return;
      }
      this._logger.info("connection lost", code, reason, "; reconnecting");
      room.state = "RECONNECTING";
      this._emitter.emit("roomStateChanged", roomID, "RECONNECTING", 0, `connection closed (${code})`);
      room.reconnect = this._reconnect(room);
      room.reconnect.catch(() => {});
    }

    /**
     * The server drains (it is being shut down or replaced): reconnect now, which reaches
     * another worker; logging in there replaces the session here without the room seeing the
     * user leave, and media is published and played again through that worker's relay.
     * Spread over a moment so that a worker's clients do not all arrive at once.
     */
    _moveToAnotherWorker(data) {
      const conn = this._conn;
      if (!conn) return;
      const within = typeof data.reconnectWithinMs === "number" ? data.reconnectWithinMs : 0;
      const delay = Math.floor(Math.random() * Math.min(1000, within / 4));
      this._logger.info("the server is draining; reconnecting to another worker in", delay, "ms");
      setTimeout(() => {
        if (this._conn === conn) conn.drop("server draining");
      }, delay);
    }

    _endSession(room, reason, errorCode, message) {
      if (this._room === room) this._room = null;
      this._stopAllMedia();
      this._stopQualityReports();
      this._closeConnection();
      room.state = reason;
      this._emitter.emit("roomStateChanged", room.roomID, reason, errorCode, message || "");
    }

    /**
     * Retries until the server's reconnect grace period is over: `resume` keeps the session
     * (nobody in the room notices); if the server no longer has it, `login` again with the
     * same token and publish again. Media whose peer connection died is renegotiated.
     */
    async _reconnect(room) {
      const graceMs = (room.session && room.session.reconnectGraceMs) || 30000;
      const deadline = now() + graceMs;
      let attempt = 0;
      while (this._room === room && now() < deadline) {
        await sleep(RECONNECT_BACKOFF_MS[Math.min(attempt, RECONNECT_BACKOFF_MS.length - 1)]);
        attempt++;
        if (this._room !== room) return;
        const conn = this._newConnection();
        try {
          await conn.open();
        } catch (err) {
          this._logger.debug("reconnect attempt failed", err.msg);
          continue;
        }
        if (this._room !== room) return;
        let relogged = false;
        try {
          const reply = await conn.request("resume", {
            sessionID: room.session.sessionID,
            resumeToken: room.session.resumeToken,
          });
          room.session = Object.assign(room.session, reply);
          this._applySnapshot(room, reply.room || {});
        } catch (err) {
          if (err.code === 5009) {
            room.reconnect = null;
            this._endSession(room, "KICKOUT", 5009, err.msg);
            return;
          }
          if (err.code === 4003) {
            room.reconnect = null;
            this._endSession(room, "RECONNECT_FAILED", 4003, err.msg);
            return;
          }
          if (err.code !== 5010) {
            this._logger.debug("resume failed", err.code, err.msg);
            continue;
          }
          // The session is gone on the server (another worker, restart, grace over): log in
          // again. Events then rebuild the room state; diff it against what the page knew.
          try {
            const reply = await this._login(conn, room);
            relogged = true;
            this._applySnapshot(room, reply.room || {});
          } catch (loginErr) {
            this._logger.warn("login after reconnect failed", loginErr.code, loginErr.msg);
            if (loginErr.code >= 2000 && loginErr.code < 5000) {
              room.reconnect = null;
              this._endSession(room, "RECONNECT_FAILED", loginErr.code, loginErr.msg);
              return;
            }
            continue;
          }
        }
        if (this._room !== room) return;
        room.reconnect = null;
        room.state = "RECONNECTED";
        this._emitter.emit("roomStateChanged", room.roomID, "RECONNECTED", 0, relogged ? "logged in again" : "resumed");
        this._sendToken(room); // renewed while away: a resumed session still has the old token
        this._restoreMedia(relogged);
        return;
      }
      if (this._room === room) {
        room.reconnect = null;
        this._endSession(room, "RECONNECT_FAILED", SdkError.RECONNECT_FAILED, `could not reconnect within ${graceMs} ms`);
      }
    }

    /**
     * After a reconnect: a fresh login lost the streams on the server, so publish them all
     * again; after a resume only media whose peer connection broke is renegotiated.
     */
    _restoreMedia(relogged) {
      for (const session of this._publishers.values()) {
        if (relogged || session.needsRecovery()) this._renegotiate(session);
      }
      for (const session of this._players.values()) {
        if (session.needsRecovery()) this._renegotiate(session);
      }
      // Paths that went down just before (not yet due for recovery) are checked again later.
      this._scheduleMediaCheck();
    }

    _scheduleMediaCheck() {
      if (this._mediaCheckTimer) return;
      this._mediaCheckTimer = setTimeout(() => {
        this._mediaCheckTimer = null;
        const room = this._room;
        if (!room) return;
        if (room.reconnect) {
          // The reconnect restores media when it is done; look again after it.
          this._scheduleMediaCheck();
          return;
        }
        let pending = false;
        for (const session of [...this._publishers.values(), ...this._players.values()]) {
          if (session.kind === "play" && !room.streams.has(session.streamID) && session.needsRecovery()) {
            this.stopPlayingStream(session.streamID);
          } else if (session.needsRecovery()) this._renegotiate(session);
          else if (session.failedSince) pending = true;
        }
        if (pending) this._scheduleMediaCheck();
      }, MEDIA_RECOVERY_GRACE_MS + 100);
    }

    _renegotiate(session) {
      if (session.negotiating || session.stopped) return;
      this._logger.info("renegotiating", session.kind, session.streamID);
      const run = session.kind === "publish" ? this._publish(session) : this._play(session);
      run.catch((err) => this._logger.warn("could not restore", session.kind, session.streamID, err.code, err.msg));
    }
  }

  /** The stream shape of events: `{streamID, user, extraInfo}` (the relay URL stays inside). */
  function publicStream(stream) {
    return { streamID: stream.streamID, user: stream.user, extraInfo: stream.extraInfo || "" };
  }

  HuddleExpressEngine.SdkError = SdkError;
  HuddleExpressEngine.VERSION = VERSION;
  HuddleExpressEngine.ZegoStreamView = ZegoStreamView;

  root.HuddleExpressEngine = HuddleExpressEngine;
  root.ZegoExpressEngine = HuddleExpressEngine;
  if (typeof module === "object" && module && module.exports) {
    module.exports = {
      HuddleExpressEngine,
      ZegoExpressEngine: HuddleExpressEngine,
      ZegoStreamView,
      SdkError,
      default: HuddleExpressEngine,
    };
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
