// The signaling connection: one websocket, requests with ids and their replies, pushed
// events, and a client-side liveness check. Knows nothing about rooms.

import {
  SdkError,
  CloseCode,
  SignalingRequest,
  REQUEST_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
  HEARTBEAT_SILENCE_FACTOR,
} from "./constants.js";
import { sdkError, serverError } from "./errors.js";
import { now } from "./util.js";

/** Frame types of the wire protocol (docs/PROTOCOL.md). */
const FrameType = Object.freeze({ REPLY: "reply", EVENT: "event", HELLO: "hello", ERROR: "error" });
/** Requests whose data is kept out of debug logs (they carry the token). */
const SECRET_REQUESTS = new Set([SignalingRequest.LOGIN, SignalingRequest.RENEW_TOKEN]);
const MIN_HEARTBEAT_MS = 1000;

export class SignalingConnection {
  /**
   * @param {string} url websocket URL (with ?v=1)
   * @param {{onEvent: Function, onClose: Function, onServerTime?: Function, logger: Logger}} hooks
   */
  constructor(url, hooks) {
    this.url = url;
    this.hooks = hooks;
    this.pending = new Map();
    this.nextId = 1;
    this.heartbeatMs = DEFAULT_HEARTBEAT_MS;
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
      this.hooks.logger.debug("→", type, SECRET_REQUESTS.has(type) ? "(token hidden)" : data);
      this.ws.send(JSON.stringify({ id, type, data: data || {} }));
    });
  }

  /** Sends a request without waiting for its reply (page unload). */
  sendNow(type, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ id: this.nextId++, type, data: data || {} }));
    }
  }

  close(code = CloseCode.NORMAL, reason = "") {
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
    this.close(CloseCode.CLIENT_DROP, reason);
    this._onClose(CloseCode.ABNORMAL, reason);
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
    if (frame.type === FrameType.REPLY) {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      this.hooks.logger.debug("←", waiter.type, frame.ok ? "ok" : frame.error);
      if (frame.ok) waiter.resolve(frame.data || {});
      else waiter.reject(serverError(frame.error));
    } else if (frame.type === FrameType.EVENT) {
      this.hooks.onEvent(frame.event, frame.data || {});
    } else if (frame.type === FrameType.HELLO) {
      if (typeof frame.heartbeatMs === "number" && frame.heartbeatMs > 0) {
        this.heartbeatMs = frame.heartbeatMs;
        this._startHeartbeat();
      }
    } else if (frame.type === FrameType.ERROR) {
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
    const period = Math.max(MIN_HEARTBEAT_MS, this.heartbeatMs);
    this.heartbeatTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (now() - this.lastReceived > period * HEARTBEAT_SILENCE_FACTOR) {
        this.hooks.logger.warn("no frame from the server for", now() - this.lastReceived, "ms; reconnecting");
        // Closing from our side fires onclose with NORMAL; report it as the drop it is.
        this.ws.onclose = null;
        this.close(CloseCode.CLIENT_DROP, "heartbeat");
        this._onClose(CloseCode.ABNORMAL, "heartbeat timeout (client side)");
        return;
      }
      this.ping(period * 2);
    }, period);
  }

  /** Sends a `ping`; its reply's server time goes to `hooks.onServerTime(sentAt, time, receivedAt)`. */
  ping(timeoutMs = REQUEST_TIMEOUT_MS) {
    const sentAt = now();
    this.request(SignalingRequest.PING, {}, timeoutMs)
      .then((reply) => this.hooks.onServerTime && this.hooks.onServerTime(sentAt, reply && reply.time, now()))
      .catch(() => {});
  }

  _stopHeartbeat() {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }
}
