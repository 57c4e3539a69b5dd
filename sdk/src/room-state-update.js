// The room's connection state under both of ZEGO's names: `roomStateChanged` (reasons,
// ZEGO 2.16 and later) and the older `roomStateUpdate` (three connection states). Every
// change of a room session is raised as both, in that order, with the same error code and
// extended data. Pure: unit-tested in Node.

import { RoomState, EngineEvent } from "./constants.js";

/** `roomStateUpdate` states. */
export const RoomConnectionState = Object.freeze({
  CONNECTING: "CONNECTING",
  CONNECTED: "CONNECTED",
  DISCONNECTED: "DISCONNECTED",
});

const CONNECTION_OF_REASON = Object.freeze({
  [RoomState.LOGINING]: RoomConnectionState.CONNECTING,
  [RoomState.LOGINED]: RoomConnectionState.CONNECTED,
  [RoomState.LOGIN_FAILED]: RoomConnectionState.DISCONNECTED,
  [RoomState.RECONNECTING]: RoomConnectionState.CONNECTING,
  [RoomState.RECONNECTED]: RoomConnectionState.CONNECTED,
  [RoomState.RECONNECT_FAILED]: RoomConnectionState.DISCONNECTED,
  [RoomState.KICKOUT]: RoomConnectionState.DISCONNECTED,
  [RoomState.LOGOUT]: RoomConnectionState.DISCONNECTED,
  [RoomState.LOGOUT_FAILED]: RoomConnectionState.DISCONNECTED,
});

/** The `roomStateUpdate` state of a `roomStateChanged` reason. */
export function connectionStateOf(reason) {
  return CONNECTION_OF_REASON[reason] || RoomConnectionState.DISCONNECTED;
}

/** The two events of one room state change, as `{event, args}` records in raising order. */
export function roomStateEvents(roomID, reason, errorCode, extendedData) {
  return [
    { event: EngineEvent.ROOM_STATE_CHANGED, args: [roomID, reason, errorCode, extendedData] },
    { event: EngineEvent.ROOM_STATE_UPDATE, args: [roomID, connectionStateOf(reason), errorCode, extendedData] },
  ];
}
