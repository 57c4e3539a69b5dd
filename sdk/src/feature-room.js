// Engine feature area: logging in to and out of a room, tokens, the room state.

import { SdkError, RoomState } from "./constants.js";
import { RoomSession } from "./room-session.js";
import { roomStateEvents } from "./room-state-update.js";
import { isNonEmptyString } from "./util.js";

export class RoomFeature {
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
      const msg = "loginRoom needs roomID, token and user.userID";
      this._logger.error(msg);
      this._emitRoomState(roomID, RoomState.LOGIN_FAILED, SdkError.INVALID_ARGUMENT, msg);
      return false;
    }
    if (this._room) {
      const msg = `already in room ${this._room.roomID}; call logoutRoom first`;
      this._emitRoomState(roomID, RoomState.LOGIN_FAILED, SdkError.ALREADY_IN_ROOM, msg);
      return false;
    }
    this._session = new RoomSession(this._roomHost(), {
      roomID,
      token,
      user: { userID: user.userID, userName: isNonEmptyString(user.userName) ? user.userName : user.userID },
      userUpdate: !!(config && config.userUpdate),
    });
    return this._session.login();
  }

  /**
   * Leaves `fromRoomID` and logs in to `toRoomID` as the same user with `config.token` (a
   * token for `toRoomID`). As with `logoutRoom`, the streams of the old room stop: the page
   * publishes and plays again in the new one. `isUserStatusNotify` is `loginRoom`'s
   * `userUpdate` (default false). Resolves like `loginRoom`; false at once (nothing changed)
   * when not in `fromRoomID` or without a token.
   * @param {string} fromRoomID
   * @param {string} toRoomID
   * @param {{token: string, maxMemberCount?: number, isUserStatusNotify?: boolean}} config
   * @returns {Promise<boolean>}
   */
  async switchRoom(fromRoomID, toRoomID, config) {
    const room = this._room;
    if (!room || room.roomID !== fromRoomID) {
      this._logger.error(`switchRoom: not in room ${fromRoomID}`);
      return false;
    }
    if (!isNonEmptyString(toRoomID) || toRoomID === fromRoomID || !config || !isNonEmptyString(config.token)) {
      this._logger.error("switchRoom needs another toRoomID and config.token");
      return false;
    }
    const user = room.user;
    await room.logout();
    return this.loginRoom(toRoomID, config.token, user, { userUpdate: !!config.isUserStatusNotify, maxMemberCount: config.maxMemberCount });
  }

  /**
   * Leaves the room: stops publishing and playing, tells the server, closes the connection.
   * Raises `roomStateChanged` LOGOUT.
   * @param {string} [roomID]
   */
  async logoutRoom(roomID) {
    const room = this._room;
    if (!room || (roomID && roomID !== room.roomID)) return;
    await room.logout();
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
    // Also used if the SDK has to log in again after a reconnect; while logging in or
    // reconnecting, the token is sent once the session is back.
    room.renewToken(token);
    return true;
  }

  /** `roomStateChanged` and `roomStateUpdate` of a login refused before any session exists. */
  _emitRoomState(roomID, reason, errorCode, extendedData) {
    for (const { event, args } of roomStateEvents(roomID, reason, errorCode, extendedData)) this._emitter.emit(event, ...args);
  }

  /** Current room state as the ZEGO-style reason of the last `roomStateChanged`. */
  getRoomState(roomID) {
    const room = this._room;
    if (!room || (roomID && roomID !== room.roomID)) return RoomState.LOGOUT;
    return room.roomState;
  }
}
