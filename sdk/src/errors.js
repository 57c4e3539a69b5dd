// The SDK's error values and the one place that decides what a failure means: whether a
// closed connection ends the session or is reconnected, how a failed resume or login is
// answered, which media failures wait for a reconnect. Pure functions, no timers, no DOM.

import { SdkError, ServerError, CloseCode, RoomState } from "./constants.js";

/** An Error with ZEGO's `code` and `msg` fields (and any `extra` fields). */
export function sdkError(code, msg, extra) {
  const error = new Error(msg);
  error.code = code;
  error.msg = msg;
  if (extra) Object.assign(error, extra);
  return error;
}

/** A server `{code, message}` error as the thrown/rejected value. */
export function serverError(error) {
  const code = (error && error.code) || ServerError.INTERNAL;
  const msg = (error && error.message) || "server error";
  return sdkError(code, msg);
}

/** A getUserMedia/getDisplayMedia failure as CAPTURE_FAILED (SDK errors pass through). */
export function captureError(err) {
  if (err && err.code) return err;
  return sdkError(SdkError.CAPTURE_FAILED, `capture failed: ${err && err.name}: ${err && err.message}`, {
    name: err && err.name,
  });
}

/** The `{errorCode, extendedData}` of a room request that failed (they never reject). */
export function failureResponse(err) {
  return { errorCode: (err && err.code) || ServerError.INTERNAL, extendedData: (err && err.msg) || String(err) };
}

/**
 * What a closed signaling connection means for a logged-in room:
 * `{reconnect: true}`, or `{end: <RoomState>, errorCode, message}` when the session is over.
 * @param {{code: number, reason: string, lastError?: {code: number, message: string}, kickedOut?: {code: number, message: string}, leaving?: boolean}} close
 */
export function closeOutcome({ code, reason, lastError, kickedOut, leaving }) {
  if (leaving) return { end: RoomState.LOGOUT, errorCode: 0, message: "page closed" };
  // The session ended on the server's side: no reconnect.
  if (code === CloseCode.KICKED_OUT || kickedOut) {
    return {
      end: RoomState.KICKOUT,
      errorCode: (kickedOut && kickedOut.code) || ServerError.KICKED_OUT,
      message: (kickedOut && kickedOut.message) || reason,
    };
  }
  // NORMAL follows a logout, TOKEN_EXPIRED token expiry, MESSAGE_TOO_BIG an oversized frame.
  if (code === CloseCode.TOKEN_EXPIRED || code === CloseCode.MESSAGE_TOO_BIG || code === CloseCode.NORMAL) {
    const error = lastError || { code: code === CloseCode.NORMAL ? 0 : ServerError.TOKEN_EXPIRED, message: reason };
    return { end: RoomState.KICKOUT, errorCode: error.code, message: error.message || reason };
  }
  return { reconnect: true };
}

/**
 * How a reconnect answers a failed `resume`: `kickout` and `expired` end the session,
 * `relogin` logs in again (the server lost the session), `retry` tries the next connection.
 */
export function resumeFailure(err) {
  if (err.code === ServerError.KICKED_OUT) return { end: RoomState.KICKOUT };
  if (err.code === ServerError.TOKEN_EXPIRED) return { end: RoomState.RECONNECT_FAILED };
  if (err.code === ServerError.SESSION_NOT_FOUND) return { relogin: true };
  return { retry: true };
}

/** A login (again, after a reconnect) refused for a reason retrying cannot change. */
export function isFinalLoginError(err) {
  return err.code >= ServerError.AUTH_FAMILY_FIRST && err.code < ServerError.ROOM_FAMILY_FIRST;
}

/** Failures of a request that a running reconnect may cure (the request is made again after it). */
export function isTransientSignalingError(err) {
  return [SdkError.CONNECT_FAILED, SdkError.NOT_LOGGED_IN, SdkError.TIMEOUT].includes(err && err.code);
}

/** Errors of `logout` that are not worth reporting: the connection closing right after the reply. */
export function isLogoutRaceError(err) {
  return !err.code || err.code === SdkError.CONNECT_FAILED || err.code === SdkError.CANCELLED;
}

/**
 * The `{code, message}` a `kickout` event ends the session with. Removed by the business
 * server or the room closed: ZEGO hands the server's reason to `roomStateChanged`'s
 * extendedData as `custom_kickout_message`.
 */
export function kickoutError(data) {
  const error = (data && data.error) || { code: ServerError.KICKED_OUT, message: "kicked out" };
  const message =
    data && typeof data.reason === "string" && data.reason
      ? JSON.stringify({ custom_kickout_message: data.reason })
      : error.message;
  return { code: error.code, message };
}

/** The response of a call that worked (`{errorCode: 0}`). */
export const SUCCESS = Object.freeze({ errorCode: 0, extendedData: "" });
