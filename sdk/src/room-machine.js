// The life of a room session as an explicit state machine: its states are the reasons of
// `roomStateChanged`, and the transitions below are the only ones allowed. A refused
// transition changes nothing and says so, which is how a late callback of an ended session
// (a login reply after a logout, a reconnect attempt after a kick-out) is kept from acting.

import { RoomState } from "./constants.js";

const S = RoomState;

/**
 * Between `logoutRoom` and its outcome (LOGOUT or LOGOUT_FAILED): the session is over for
 * everything else, though its end is not reported yet. Never a `roomStateChanged` reason.
 */
export const LOGGING_OUT = "LOGGING_OUT";

/** state → the states it may move to. Terminal states move nowhere. */
export const ROOM_TRANSITIONS = Object.freeze({
  [S.LOGINING]: Object.freeze([S.LOGINED, S.LOGIN_FAILED, LOGGING_OUT]),
  [S.LOGINED]: Object.freeze([S.RECONNECTING, S.KICKOUT, S.LOGOUT, LOGGING_OUT]),
  [S.RECONNECTING]: Object.freeze([S.RECONNECTED, S.RECONNECT_FAILED, S.KICKOUT, LOGGING_OUT]),
  [S.RECONNECTED]: Object.freeze([S.RECONNECTING, S.KICKOUT, S.LOGOUT, LOGGING_OUT]),
  [LOGGING_OUT]: Object.freeze([S.LOGOUT, S.LOGOUT_FAILED]),
  [S.LOGIN_FAILED]: Object.freeze([]),
  [S.RECONNECT_FAILED]: Object.freeze([]),
  [S.KICKOUT]: Object.freeze([]),
  [S.LOGOUT]: Object.freeze([]),
  [S.LOGOUT_FAILED]: Object.freeze([]),
});

/** States in which the session is usable: requests go out, media may be negotiated. */
export const CONNECTED_STATES = Object.freeze([S.LOGINED, S.RECONNECTED]);

export function canTransition(from, to) {
  const allowed = ROOM_TRANSITIONS[from];
  return !!allowed && allowed.includes(to);
}

export function isTerminal(state) {
  const allowed = ROOM_TRANSITIONS[state];
  return !!allowed && allowed.length === 0;
}

/** States after which nothing of the session may act any more (its end may be unreported). */
export function isOver(state) {
  return state === LOGGING_OUT || isTerminal(state);
}

/**
 * One session's state. `transition` applies an allowed move and returns true; a refused one
 * returns false and leaves the state as it was. Once the session is over (logging out, or a
 * terminal state) `signal` is aborted and `ended` is true: every asynchronous step of the
 * session checks them to stop.
 */
export class RoomMachine {
  constructor() {
    this.state = S.LOGINING;
    this._abort = typeof AbortController === "function" ? new AbortController() : null;
    this._ended = false;
  }

  /** Aborted once the session has ended (any terminal state). */
  get signal() {
    return this._abort ? this._abort.signal : null;
  }

  /** True once the session is over: whatever is still running for it must stop. */
  get ended() {
    return this._ended;
  }

  get connected() {
    return CONNECTED_STATES.includes(this.state);
  }

  is(state) {
    return this.state === state;
  }

  transition(to) {
    if (!canTransition(this.state, to)) return false;
    this.state = to;
    if (isOver(to) && !this._ended) {
      this._ended = true;
      if (this._abort) this._abort.abort();
    }
    return true;
  }
}
