// The engine core: what every feature area shares — settings, logger, events, the current
// room session and the media controller — and the few methods that belong to no area.
// Feature areas (feature-*.js) are classes whose methods are attached to the engine's
// prototype (`attachFeature`); one that keeps state of its own has a static `setup(engine)`,
// run by the constructor, and may have a static `teardown(engine)`, run by destroyEngine.

import { SdkError, VERSION } from "./constants.js";
import { sdkError } from "./errors.js";
import { Emitter, Logger } from "./emitter.js";
import { MediaController } from "./media-controller.js";
import { QualityReporter } from "./quality.js";
import { hasWindow, isNonEmptyString, signalingUrl, attachFeature } from "./util.js";

/** Feature areas attached so far, in order (their `setup`/`teardown` hooks run in it). */
const ENGINE_FEATURES = [];

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
    this._session = null; // the last room session (see `_room`)
    this._turnOnly = false; // setEngineConfig({turnOnly}): media through TURN only
    this._media = new MediaController({
      request: (type, data) => this._request(type, data),
      notify: (type, data) => this._room && this._room.notify(type, data),
      rtcConfiguration: (reply) => this._rtcConfiguration(reply),
      room: () => this._room,
      streamSettings: (localStream) => this._streamSettings(localStream),
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
      signalingUrl: () => signalingUrl(this.server, hasWindow ? window.location.href : undefined),
      logger: this._logger,
      emit: (event, ...args) => this._emitter.emit(event, ...args),
      onLogined: () => this._quality.start(),
      onEnded: () => {
        this._media.stopAll();
        this._quality.stop();
      },
      onReconnected: (relogged) => this._media.restore(relogged),
      onMediaState: (kind, data) => this._media.onServerState(kind, data),
    };
  }

  /** Sends a request in the current room; waits through a reconnect if one is running. */
  async _request(type, data) {
    const room = this._room;
    if (!room) throw sdkError(SdkError.NOT_LOGGED_IN, `not logged in (${type})`);
    return room.request(type, data);
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
   * Console log level: `debug`, `info`, `warn` (default), `error` or `disable`.
   * @param {{logLevel?: string}} config
   */
  setLogConfig(config) {
    if (config && typeof config.logLevel === "string") this._logger.level = config.logLevel;
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
}


/** Attaches a feature area's methods to the engine (see the top of this file). */
export function addEngineFeature(feature) {
  attachFeature(HuddleExpressEngine, feature);
  ENGINE_FEATURES.push(feature);
}
