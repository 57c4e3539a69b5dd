// One login to one room, from `loginRoom` to its end: the signaling connection, the login,
// the reconnect (resume, or log in again), the logout, and the server's room events applied
// to the room state. Its life is a RoomMachine: every asynchronous step checks
// `machine.ended` (the session was logged out, kicked out or failed meanwhile) instead of
// comparing itself with whatever the engine holds now.
//
// It talks to the engine only through `host`:
//   appID, signalingUrl()             where and as whom to log in
//   emit(event, ...args), logger
//   onLogined()                        the session is up (start quality reports)
//   onEnded()                          the session is over (stop media and reports)
//   onReconnected(relogged)            restore media after a reconnect
//   onMediaState(kind, data)           publisherStateUpdate / playerStateUpdate from the relay
//   onNetworkQuality(qualityList)      the room's network quality levels (`networkQuality`)
//   onServerTime(sentAt, time, receivedAt)   a ping reply's server time (`getNetworkTimeInfo`)
//   failover()                         the server could not be reached: use the next one
//   serverCount                        how many servers a login may try

import {
  SdkError,
  RoomState,
  MediaKind,
  EngineEvent,
  ServerEvent,
  SignalingRequest,
  RECONNECT_BACKOFF_MS,
  DEFAULT_RECONNECT_GRACE_MS,
  LOGOUT_TIMEOUT_MS,
  DRAIN_SPREAD_MAX_MS,
} from "./constants.js";
import {
  sdkError,
  closeOutcome,
  resumeFailure,
  isFinalLoginError,
  isLogoutRaceError,
  kickoutError,
} from "./errors.js";
import { RoomMachine, LOGGING_OUT } from "./room-machine.js";
import {
  createRoomState,
  applyUserUpdate,
  applyStreamUpdate,
  applyStreamExtraInfo,
  applyRoomExtraInfo,
  applyOnlineCount,
  applyMuteFlags,
  applySnapshot,
} from "./room-state.js";
import { roomStateEvents } from "./room-state-update.js";
import { SignalingConnection } from "./signaling.js";
import { now, sleep } from "./util.js";

const ROOM_EVENTS = new Set(Object.values(ServerEvent));

export class RoomSession {
  /**
   * @param {object} host see above
   * @param {{roomID: string, token: string, user: {userID: string, userName: string}, userUpdate: boolean}} login
   */
  constructor(host, { roomID, token, user, userUpdate }) {
    this.host = host;
    this.roomID = roomID;
    this.token = token; // the page's latest token (renewToken), also for a login again
    this.user = user;
    this.userUpdate = userUpdate;
    this.machine = new RoomMachine();
    this.state = createRoomState(roomID, { userUpdate });
    this.conn = null;
    this.server = null; // the login reply: sessionID, resumeToken, reconnectGraceMs, …
    this.sessionToken = null; // the token the server's session runs on
    this.reconnect = null; // the running reconnect, if any
    this.kickedOut = null; // {code, message} of a `kickout` event, applied when the socket closes
    this.leaving = false; // the page is being closed
  }

  /** Over (logged out, kicked out, failed): nothing of it may act any more. */
  get ended() {
    return this.machine.ended;
  }

  /** The ZEGO-style state (reason of the last `roomStateChanged`). */
  get roomState() {
    return this.machine.state;
  }

  /** A reconnect is running: requests wait for it, media is restored after it. */
  get reconnecting() {
    return !!this.reconnect || this.machine.is(RoomState.RECONNECTING);
  }

  knowsStream(streamID) {
    return this.state.streams.has(streamID);
  }

  _emitState(reason, errorCode, extendedData) {
    this._raise(roomStateEvents(this.roomID, reason, errorCode, extendedData));
  }

  /** Raises the events a room-state reducer returned. */
  _raise(events) {
    for (const { event, args } of events) this.host.emit(event, ...args);
  }

  // ----- login and logout ----------------------------------------------------------------

  /** Resolves true once LOGINED, false after LOGIN_FAILED (or a logout meanwhile). */
  async login() {
    this._emitState(RoomState.LOGINING, 0, "");
    try {
      await this._connectAndLogin();
    } catch (err) {
      this._dropConnection();
      // Logged out meanwhile: logout has reported LOGOUT, nothing more to say.
      if (!this.machine.transition(RoomState.LOGIN_FAILED)) return false;
      this.host.logger.warn("login failed", err.code, err.msg);
      this._emitState(RoomState.LOGIN_FAILED, err.code || SdkError.CONNECT_FAILED, err.msg || String(err));
      return false;
    }
    if (!this.machine.transition(RoomState.LOGINED)) {
      // logout ran while the login was in flight: do not leave a session behind.
      if (this.conn) this.conn.sendNow(SignalingRequest.LOGOUT, { roomID: this.roomID });
      this._dropConnection();
      return false;
    }
    this.host.onLogined();
    this._emitState(RoomState.LOGINED, 0, "");
    this._sendToken();
    // The server's time, at once rather than with the first heartbeat.
    if (this.conn) this.conn.ping();
    return true;
  }

  /**
   * Opens a websocket and sends `login`; the pushed events then build the room state. A
   * server that cannot be connected to hands over to the next of the engine's servers, each
   * tried once.
   */
  async _connectAndLogin() {
    const tries = this.host.serverCount || 1;
    let conn;
    for (let attempt = 1; ; attempt++) {
      conn = this._newConnection();
      try {
        await conn.open();
        break;
      } catch (err) {
        if (this.ended || err.code !== SdkError.CONNECT_FAILED || attempt >= tries) throw err;
        this.host.logger.warn("cannot reach", conn.url, "; trying the next server");
        this.host.failover();
      }
    }
    if (this.ended) throw sdkError(SdkError.CANCELLED, "logged out during login");
    return this._login(conn);
  }

  /** Sends `login` on `conn` with the page's latest token; keeps the session. */
  async _login(conn) {
    const token = this.token;
    const reply = await conn.request(SignalingRequest.LOGIN, {
      appID: this.host.appID,
      roomID: this.roomID,
      token,
      user: this.user,
      userUpdate: this.userUpdate,
    });
    this.server = reply;
    this.sessionToken = token;
    return reply;
  }

  /**
   * Leaves the room: stops media, tells the server, closes the connection, then reports
   * LOGOUT (or LOGOUT_FAILED with the server's code).
   */
  async logout() {
    const wasConnected = this.machine.connected;
    if (!this.machine.transition(LOGGING_OUT)) return;
    this.host.onEnded();
    const conn = this.conn;
    let errorCode = 0;
    if (conn && wasConnected) {
      try {
        await conn.request(SignalingRequest.LOGOUT, { roomID: this.roomID }, LOGOUT_TIMEOUT_MS);
      } catch (err) {
        if (!isLogoutRaceError(err)) errorCode = err.code;
      }
    } else if (conn) {
      // Logging in or reconnecting: a login or resume may already have succeeded on the
      // server; a logout queued behind it (if the socket is open) leaves at once.
      conn.sendNow(SignalingRequest.LOGOUT, { roomID: this.roomID });
    }
    this._dropConnection(conn);
    const reason = errorCode ? RoomState.LOGOUT_FAILED : RoomState.LOGOUT;
    this.machine.transition(reason);
    this._emitState(reason, errorCode, "");
  }

  /** The page is being closed: leave at once, or the user stays for the reconnect grace period. */
  leaveOnUnload() {
    if (this.ended || !this.conn || this.machine.is(RoomState.RECONNECTING)) return;
    this.leaving = true;
    this.conn.sendNow(SignalingRequest.LOGOUT, { roomID: this.roomID });
  }

  /** Ends the session on this side with `reason` (KICKOUT, RECONNECT_FAILED, LOGOUT). */
  _end(reason, errorCode, message) {
    this.reconnect = null;
    if (!this.machine.transition(reason)) return;
    this.host.onEnded();
    this._dropConnection();
    this._emitState(reason, errorCode, message || "");
  }

  // ----- requests and tokens -------------------------------------------------------------

  /** Sends a request on the current connection; waits through a reconnect if one is running. */
  async request(type, data) {
    if (this.reconnect) await this.reconnect.catch(() => {});
    if (!this.conn || this.ended) throw sdkError(SdkError.NOT_LOGGED_IN, `not logged in (${type})`);
    return this.conn.request(type, data);
  }

  /** A request whose reply nobody waits for, if the session is connected at all. */
  notify(type, data) {
    if (this.conn && !this.ended) this.conn.request(type, data).catch(() => {});
  }

  /** Replaces the token; sent now if the session is up, else once it is back. */
  renewToken(token) {
    this.token = token;
    if (this.machine.connected) this._sendToken();
  }

  /** Gives the server the page's latest token if the session still runs on an older one. */
  _sendToken() {
    const token = this.token;
    if (!this.server || this.sessionToken === token) return;
    this.request(SignalingRequest.RENEW_TOKEN, { token })
      .then((reply) => {
        this.sessionToken = token;
        if (this.server) this.server.tokenExpiresAt = reply.tokenExpiresAt;
      })
      .catch((err) => this.host.logger.error("renewToken failed", err.code, err.msg));
  }

  // ----- the connection ------------------------------------------------------------------

  /** A new connection replacing the current one (an abandoned connection calls no hook). */
  _newConnection() {
    if (this.conn) this.conn.abandon();
    const conn = new SignalingConnection(this.host.signalingUrl(), {
      logger: this.host.logger,
      onEvent: (event, data) => this._onServerEvent(event, data),
      onClose: (code, reason, lastError) => this._onConnectionClosed(code, reason, lastError),
      onServerTime: (sentAt, time, receivedAt) => this.host.onServerTime && this.host.onServerTime(sentAt, time, receivedAt),
    });
    this.conn = conn;
    return conn;
  }

  _dropConnection(conn = this.conn) {
    if (!conn) return;
    conn.abandon();
    if (this.conn === conn) this.conn = null;
  }

  _onConnectionClosed(code, reason, lastError) {
    this.conn = null;
    if (this.ended || this.machine.is(RoomState.LOGINING)) return; // login reports its own failure
    if (this.machine.is(RoomState.RECONNECTING)) return; // a failed attempt: the running reconnect goes on
    const outcome = closeOutcome({ code, reason, lastError, kickedOut: this.kickedOut, leaving: this.leaving });
    if (outcome.end) {
      this._end(outcome.end, outcome.errorCode, outcome.message);
      return;
    }
    this.host.logger.info("connection lost", code, reason, "; reconnecting");
    this.machine.transition(RoomState.RECONNECTING);
    this._emitState(RoomState.RECONNECTING, 0, `connection closed (${code})`);
    this.reconnect = this._reconnect();
    this.reconnect.catch(() => {});
  }

  /**
   * Retries until the server's reconnect grace period is over: `resume` keeps the session
   * (nobody in the room notices); if the server no longer has it, `login` again with the
   * latest token and publish again. Media whose peer connection died is renegotiated.
   */
  async _reconnect() {
    const graceMs = (this.server && this.server.reconnectGraceMs) || DEFAULT_RECONNECT_GRACE_MS;
    const deadline = now() + graceMs;
    let attempt = 0;
    while (!this.ended && now() < deadline) {
      await sleep(RECONNECT_BACKOFF_MS[Math.min(attempt, RECONNECT_BACKOFF_MS.length - 1)]);
      attempt++;
      if (this.ended) return;
      const conn = this._newConnection();
      try {
        await conn.open();
      } catch (err) {
        this.host.logger.debug("reconnect attempt failed", err.msg);
        if (err.code === SdkError.CONNECT_FAILED) this.host.failover();
        continue;
      }
      if (this.ended) return;
      let relogged = false;
      try {
        const reply = await conn.request(SignalingRequest.RESUME, {
          sessionID: this.server.sessionID,
          resumeToken: this.server.resumeToken,
        });
        this.server = Object.assign(this.server, reply);
        this._raise(applySnapshot(this.state, reply.room || {}));
      } catch (err) {
        const failure = resumeFailure(err);
        if (failure.end) {
          this._end(failure.end, err.code, err.msg);
          return;
        }
        if (failure.retry) {
          this.host.logger.debug("resume failed", err.code, err.msg);
          continue;
        }
        // The session is gone on the server (another worker, restart, grace over): log in
        // again. Events then rebuild the room state; diff it against what the page knew.
        try {
          const reply = await this._login(conn);
          relogged = true;
          this._raise(applySnapshot(this.state, reply.room || {}));
        } catch (loginErr) {
          this.host.logger.warn("login after reconnect failed", loginErr.code, loginErr.msg);
          if (isFinalLoginError(loginErr)) {
            this._end(RoomState.RECONNECT_FAILED, loginErr.code, loginErr.msg);
            return;
          }
          continue;
        }
      }
      if (this.ended) return;
      this.reconnect = null;
      this.machine.transition(RoomState.RECONNECTED);
      this._emitState(RoomState.RECONNECTED, 0, relogged ? "logged in again" : "resumed");
      this._sendToken(); // renewed while away: a resumed session still has the old token
      this.host.onReconnected(relogged);
      return;
    }
    if (!this.ended) {
      this._end(RoomState.RECONNECT_FAILED, SdkError.RECONNECT_FAILED, `could not reconnect within ${graceMs} ms`);
    }
  }

  /**
   * The server drains (it is being shut down or replaced): reconnect now, which reaches
   * another worker; logging in there replaces the session here without the room seeing the
   * user leave, and media is published and played again through that worker's relay.
   * Spread over a moment so that a worker's clients do not all arrive at once.
   */
  _moveToAnotherWorker(data) {
    const conn = this.conn;
    if (!conn) return;
    const within = typeof data.reconnectWithinMs === "number" ? data.reconnectWithinMs : 0;
    const delay = Math.floor(Math.random() * Math.min(DRAIN_SPREAD_MAX_MS, within / 4));
    this.host.logger.info("the server is draining; reconnecting to another worker in", delay, "ms");
    // A connection replaced or abandoned meanwhile ignores the drop.
    setTimeout(() => conn.drop("server draining"), delay);
  }

  // ----- server events -------------------------------------------------------------------

  _onServerEvent(event, data) {
    if (this.ended || !ROOM_EVENTS.has(event)) {
      this.host.logger.debug("ignored event", event);
      return;
    }
    const roomID = this.roomID;
    switch (event) {
      case ServerEvent.ROOM_USER_UPDATE:
        this._raise(applyUserUpdate(this.state, data.updateType, data.userList));
        break;
      case ServerEvent.ROOM_ONLINE_USER_COUNT_UPDATE:
        this._raise(applyOnlineCount(this.state, data.count));
        break;
      case ServerEvent.ROOM_STREAM_UPDATE:
        this._raise(applyStreamUpdate(this.state, data.updateType, data.streamList));
        break;
      case ServerEvent.STREAM_EXTRA_INFO_UPDATE:
        this._raise(applyStreamExtraInfo(this.state, data.streamList));
        break;
      case ServerEvent.ROOM_EXTRA_INFO_UPDATE:
        this._raise(applyRoomExtraInfo(this.state, data.roomExtraInfoList));
        break;
      case ServerEvent.IM_RECV_BROADCAST_MESSAGE:
      case ServerEvent.IM_RECV_BARRAGE_MESSAGE:
        this.host.emit(event, roomID, data.messageList || []);
        break;
      case ServerEvent.IM_RECV_CUSTOM_COMMAND:
        this.host.emit(EngineEvent.IM_RECV_CUSTOM_COMMAND, roomID, data.fromUser, data.command);
        break;
      case ServerEvent.TOKEN_WILL_EXPIRE:
        this.host.emit(EngineEvent.TOKEN_WILL_EXPIRE, roomID);
        break;
      case ServerEvent.KICKOUT:
        // Applied when the server closes the socket right after.
        this.kickedOut = kickoutError(data);
        break;
      case ServerEvent.STREAM_MUTE_UPDATE:
        // The business server muted or unmuted a stream (the relay stops forwarding it).
        this._raise(applyMuteFlags(this.state, [data]));
        break;
      case ServerEvent.RESYNC:
        this._raise(applySnapshot(this.state, data));
        break;
      case ServerEvent.GOAWAY:
        this._moveToAnotherWorker(data);
        break;
      case ServerEvent.NETWORK_QUALITY:
        this.host.onNetworkQuality(Array.isArray(data.qualityList) ? data.qualityList : []);
        break;
      case ServerEvent.PUBLISHER_STATE_UPDATE:
        this.host.onMediaState(MediaKind.PUBLISH, data);
        break;
      case ServerEvent.PLAYER_STATE_UPDATE:
        this.host.onMediaState(MediaKind.PLAY, data);
        break;
      default:
        break;
    }
  }
}
