// Engine feature area: IM messages, custom commands, room and stream extra info.

import { SdkError, ServerError, SignalingRequest } from "./constants.js";
import { failureResponse } from "./errors.js";

export class MessagesFeature {
  /**
   * Sends a chat message to everyone else in the room (`IMRecvBroadcastMessage`).
   * @returns {Promise<{errorCode: number, messageID?: number, extendedData?: string}>}
   */
  sendBroadcastMessage(roomID, message) {
    return this._roomCall(roomID, SignalingRequest.SEND_BROADCAST_MESSAGE, { message }, (reply) => ({ messageID: reply.messageID }));
  }

  /**
   * Sends a "bullet comment" to everyone else in the room (`IMRecvBarrageMessage`).
   * @returns {Promise<{errorCode: number, messageID?: number, extendedData?: string}>}
   */
  sendBarrageMessage(roomID, message) {
    return this._roomCall(roomID, SignalingRequest.SEND_BARRAGE_MESSAGE, { message }, (reply) => ({ messageID: reply.messageID }));
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
    return this._roomCall(roomID, SignalingRequest.SEND_CUSTOM_COMMAND, data, (reply) => ({ messageID: reply.messageID }));
  }

  /**
   * Sets one key of the room's extra info (`roomExtraInfoUpdate` to the others).
   * @returns {Promise<{errorCode: number, extendedData?: string}>}
   */
  setRoomExtraInfo(roomID, key, value) {
    return this._roomCall(roomID, SignalingRequest.SET_ROOM_EXTRA_INFO, { key, value });
  }

  /**
   * Replaces the extra info of one of your published streams (`streamExtraInfoUpdate`).
   * @returns {Promise<{errorCode: number, extendedData?: string}>}
   */
  setStreamExtraInfo(streamID, extraInfo) {
    return this._roomCall(undefined, SignalingRequest.SET_STREAM_EXTRA_INFO, { streamID, extraInfo });
  }

  /** Room requests resolve `{errorCode: 0, …}` or `{errorCode, extendedData}`; they never reject. */
  async _roomCall(roomID, type, data, pick) {
    const room = this._room;
    if (!room) return { errorCode: SdkError.NOT_LOGGED_IN, extendedData: "not logged in" };
    if (roomID && roomID !== room.roomID) {
      return { errorCode: ServerError.WRONG_ROOM, extendedData: `not in room ${roomID}` };
    }
    try {
      const reply = await this._request(type, data);
      return Object.assign({ errorCode: 0 }, pick ? pick(reply) : {});
    } catch (err) {
      return failureResponse(err);
    }
  }
}
