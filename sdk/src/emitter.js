// Listener registry and console logger shared by the engine, views and local streams.

import { isNonEmptyString } from "./util.js";

export class Emitter {
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
  /** True when someone listens to `event` (lets costly work be skipped otherwise). */
  has(event) {
    const list = this._handlers.get(event);
    return !!(list && list.length);
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
  clear() {
    this._handlers.clear();
  }
}

/** Log levels of `setLogConfig`, most verbose first. */
export const LogLevel = Object.freeze({ DEBUG: "debug", INFO: "info", WARN: "warn", ERROR: "error", DISABLE: "disable" });

export class Logger {
  constructor() {
    this.verbose = false;
    this.level = LogLevel.WARN;
    this._once = new Set();
  }
  debug(...args) {
    if (this.verbose || this.level === LogLevel.DEBUG) console.debug("[huddle]", ...args);
  }
  info(...args) {
    if (this.verbose || this.level === LogLevel.DEBUG || this.level === LogLevel.INFO) console.info("[huddle]", ...args);
  }
  warn(...args) {
    if (this.level !== LogLevel.ERROR && this.level !== LogLevel.DISABLE) console.warn("[huddle]", ...args);
  }
  error(...args) {
    if (this.level !== LogLevel.DISABLE) console.error("[huddle]", ...args);
  }
  /** A warning logged the first time `key` comes up only. */
  warnOnce(key, ...args) {
    if (this._once.has(key)) return;
    this._once.add(key);
    this.warn(...args);
  }
}
