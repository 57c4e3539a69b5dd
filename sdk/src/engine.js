// The engine core: what every feature area shares — settings, logger, events, the current
// room session and the media controller — and the few methods that belong to no area.
// Feature areas (feature-*.js) are classes whose methods are attached to the engine's
// prototype (`attachFeature`); one that keeps state of its own has a static `setup(engine)`,
// run by the constructor, and may have a static `teardown(engine)`, run by destroyEngine.

import { SdkError, VERSION } from "./constants.js";
import { sdkError } from "./errors.js";
import { Emitter, Logger, LogLevel } from "./emitter.js";
import { MediaController } from "./media-controller.js";
import { QualityReporter } from "./quality.js";
import { serverUrls, ServerRotation } from "./server-list.js";
import { mergeIceServers } from "./ice-servers.js";
import { NetworkClock } from "./network-time.js";
import { hasWindow, isNonEmptyString, signalingUrl, attachFeature } from "./util.js";

/** Feature areas attached so far, in order (their `setup`/`teardown` hooks run in it). */
const ENGINE_FEATURES = [];

/** `presetLogConfig`: the log config engines created afterwards start with. */
let presetLog = null;

/**
 * The Huddle engine: one per page (or per room the page is in).
 *
 * ```js
 * const zg = new ZegoExpressEngine(appID, "wss://huddle.example.com/ws");
 * zg.on("roomStreamUpdate", async (roomID, updateType, streamList) => { … });
 * await zg.loginRoom(roomID, token, { userID, userName }, { userUpdate: true });
 * ```
 */
export class HuddleExpressEngine {
  /**
   * @param {number} appID your app id (from `huddle app create`, or 1 in dev mode)
   * @param {string|string[]} server the websocket URL, e.g. `wss://huddle.example.com/ws`, or
   *   several: tried in order, the next one taking over when one cannot be connected to
   * @param {{scenario?: number}} [options] ZEGO's options; `scenario` is accepted and changes nothing
   */
  constructor(appID, server, options) {
    if (typeof appID !== "number" || !Number.isInteger(appID) || appID <= 0) {
      throw sdkError(SdkError.INVALID_ARGUMENT, "appID must be a positive integer");
    }
    this._servers = new ServerRotation(serverUrls(server));
    this.appID = appID;
    this.servers = this._servers.urls.slice();
    this.server = this.servers[0];
    this.options = Object.assign({}, options);
    this._logger = new Logger();
    if (presetLog) this.setLogConfig(presetLog);
    this._emitter = new Emitter(this._logger);
    this._clock = new NetworkClock(); // the server's time, from ping replies
    this._pageIceServers = []; // setTurnServer
    this._session = null; // the last room session (see `_room`)
    this._turnOnly = false; // setEngineConfig({turnOnly}): media through TURN only
    this._media = new MediaController({
      request: (type, data) => this._request(type, data),
      notify: (type, data) => this._room && this._room.notify(type, data),
      rtcConfiguration: (reply) => this._rtcConfiguration(reply),
      room: () => this._room,
      streamSettings: (localStream) => this._streamSettings(localStream),
      dualStream: (localStream) => this._dualStreamOf(localStream),
      emit: (event, ...args) => this._emitter.emit(event, ...args),
      logger: this._logger,
    });
    this._quality = new QualityReporter({
      media: this._media,
      emit: (event, ...args) => this._emitter.emit(event, ...args),
    });
    for (const feature of ENGINE_FEATURES) {
      if (typeof feature.setup === "function") feature.setup(this);
    }
    // A closed tab would otherwise stay in the room for the reconnect grace period.
    this._onPageHide = () => this._room && this._room.leaveOnUnload();
    if (hasWindow) window.addEventListener("pagehide", this._onPageHide);
  }

  /** The room session this engine is in or logging in to; null once it is over. */
  get _room() {
    return this._session && !this._session.ended ? this._session : null;
  }

  /** What a room session needs from the engine (see room-session.js). */
  _roomHost() {
    return {
      appID: this.appID,
      signalingUrl: () => signalingUrl(this._servers.current, hasWindow ? window.location.href : undefined),
      serverCount: this._servers.size,
      failover: () => this._servers.failover(),
      logger: this._logger,
      emit: (event, ...args) => this._emitter.emit(event, ...args),
      onLogined: () => this._quality.start(),
      onEnded: () => {
        this._media.stopAll();
        this._quality.stop();
      },
      onReconnected: (relogged) => this._media.restore(relogged),
      onMediaState: (kind, data) => this._media.onServerState(kind, data),
      onNetworkQuality: (qualityList) => this._onNetworkQuality(qualityList),
      onServerTime: (sentAt, time, receivedAt) => this._clock.sample(sentAt, time, receivedAt),
    };
  }

  /** Sends a request in the current room; waits through a reconnect if one is running. */
  async _request(type, data) {
    const room = this._room;
    if (!room) throw sdkError(SdkError.NOT_LOGGED_IN, `not logged in (${type})`);
    return room.request(type, data);
  }

  /**
   * The log config (as `setLogConfig` takes it) every engine created after the call starts
   * with; false (and nothing changed) for a level the SDK does not know.
   * @param {{logLevel?: string, remoteLogLevel?: string, logURL?: string}} config
   * @returns {boolean}
   */
  static presetLogConfig(config) {
    if (!config || typeof config !== "object") return false;
    if (config.logLevel !== undefined && !consoleLogLevel(config.logLevel)) return false;
    presetLog = Object.assign({}, config);
    return true;
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
    if (this._room) this._room.logout().catch(() => {});
    this._media.stopAll();
    this._quality.stop();
    this._media.dispose();
    for (const feature of ENGINE_FEATURES) {
      if (typeof feature.teardown === "function") feature.teardown(this);
    }
    if (hasWindow) window.removeEventListener("pagehide", this._onPageHide);
    this._emitter = new Emitter(this._logger);
  }

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
   * Console log level: `debug`, `info`, `warn` (default), `error`, `report` (as `disable`: the
   * console stays quiet) or `disable`. Huddle uploads no logs: `remoteLogLevel` and `logURL`
   * are accepted, and a warning says so once. False for a level it does not know.
   * @param {{logLevel?: string, remoteLogLevel?: string, logURL?: string, logCount?: number, logSize?: number}} config
   * @returns {boolean}
   */
  setLogConfig(config) {
    if (!config || typeof config !== "object") return false;
    if (config.logLevel !== undefined) {
      const level = consoleLogLevel(config.logLevel);
      if (!level) return false;
      this._logger.level = level;
    }
    const remote = (config.remoteLogLevel !== undefined && config.remoteLogLevel !== LogLevel.DISABLE) || isNonEmptyString(config.logURL);
    if (remote) this._logger.warnOnce("remote-log", "setLogConfig: Huddle does not upload logs; remoteLogLevel and logURL are ignored");
    return true;
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
   * reply (`iceServers`, absent from older servers) and the page's (`setTurnServer`),
   * relayed-only with `turnOnly`.
   */
  _rtcConfiguration(reply) {
    const iceServers = mergeIceServers(reply && reply.iceServers, this._pageIceServers);
    if (this._turnOnly && !iceServers.length) {
      this._logger.warn("turnOnly is set but neither the server nor setTurnServer gave TURN servers: media cannot connect");
    }
    return {
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
      iceServers,
      iceTransportPolicy: this._turnOnly ? "relay" : "all",
    };
  }
}


/** ZEGO's `logLevel` as the console level; undefined for a level ZEGO does not have. */
export function consoleLogLevel(level) {
  if (level === "report") return LogLevel.DISABLE; // ZEGO's "report only": nothing for the console
  return Object.values(LogLevel).includes(level) ? level : undefined;
}

/** Attaches a feature area's methods to the engine (see the top of this file). */
export function addEngineFeature(feature) {
  attachFeature(HuddleExpressEngine, feature);
  ENGINE_FEATURES.push(feature);
}
