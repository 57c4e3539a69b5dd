// The room session's state machine: which moves are allowed, which are refused, and that a
// session is over (signal aborted) once it logs out or reaches a terminal state.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RoomState } from '../src/constants.js';
import { RoomMachine, ROOM_TRANSITIONS, LOGGING_OUT, canTransition, isTerminal, isOver } from '../src/room-machine.js';

const S = RoomState;

describe('room state machine', () => {
  test('a login that succeeds, drops, reconnects and logs out', () => {
    const m = new RoomMachine();
    assert.equal(m.state, S.LOGINING);
    assert.equal(m.connected, false);
    for (const next of [S.LOGINED, S.RECONNECTING, S.RECONNECTED, S.RECONNECTING, S.RECONNECTED]) {
      assert.equal(m.transition(next), true, `to ${next}`);
      assert.equal(m.state, next);
    }
    assert.equal(m.connected, true);
    assert.equal(m.ended, false);
    assert.equal(m.signal.aborted, false);
    assert.equal(m.transition(LOGGING_OUT), true);
    assert.equal(m.ended, true, 'logging out ends the session at once');
    assert.equal(m.signal.aborted, true);
    assert.equal(m.transition(S.LOGOUT), true);
    assert.equal(m.state, S.LOGOUT);
  });

  test('refused transitions change nothing', () => {
    const m = new RoomMachine();
    assert.equal(m.transition(S.RECONNECTING), false, 'no reconnect before the first login');
    assert.equal(m.transition(S.RECONNECTED), false);
    assert.equal(m.transition(S.KICKOUT), false);
    assert.equal(m.state, S.LOGINING);
    assert.equal(m.transition(S.LOGINED), true);
    assert.equal(m.transition(S.LOGINED), false, 'no self-transition');
    assert.equal(m.transition(S.LOGIN_FAILED), false, 'a login cannot fail once it succeeded');
    assert.equal(m.transition(S.RECONNECT_FAILED), false, 'only a running reconnect can fail');
    assert.equal(m.state, S.LOGINED);
  });

  test('a login finishing after a logout is refused (the late reply cannot revive the session)', () => {
    const m = new RoomMachine();
    assert.equal(m.transition(LOGGING_OUT), true);
    assert.equal(m.transition(S.LOGINED), false);
    assert.equal(m.transition(S.LOGIN_FAILED), false);
    assert.equal(m.state, LOGGING_OUT);
    assert.equal(m.transition(S.LOGOUT_FAILED), true);
  });

  test('terminal states move nowhere', () => {
    for (const terminal of [S.LOGIN_FAILED, S.RECONNECT_FAILED, S.KICKOUT, S.LOGOUT, S.LOGOUT_FAILED]) {
      assert.equal(isTerminal(terminal), true, terminal);
      assert.equal(isOver(terminal), true, terminal);
      for (const next of [...Object.values(S), LOGGING_OUT]) assert.equal(canTransition(terminal, next), false, `${terminal} → ${next}`);
    }
    for (const live of [S.LOGINING, S.LOGINED, S.RECONNECTING, S.RECONNECTED]) assert.equal(isOver(live), false, live);
  });

  test('a reconnect ends in RECONNECTED, RECONNECT_FAILED, KICKOUT or a logout', () => {
    assert.deepEqual([...ROOM_TRANSITIONS[S.RECONNECTING]].sort(), [S.KICKOUT, LOGGING_OUT, S.RECONNECTED, S.RECONNECT_FAILED].sort());
    const m = new RoomMachine();
    m.transition(S.LOGINED);
    m.transition(S.RECONNECTING);
    assert.equal(m.transition(S.RECONNECT_FAILED), true);
    assert.equal(m.ended, true);
    assert.equal(m.transition(S.RECONNECTED), false, 'a reconnect attempt that lands after the failure is refused');
  });

  test('every state in the table is a reason or LOGGING_OUT, and every target is in the table', () => {
    const known = new Set([...Object.values(S), LOGGING_OUT]);
    for (const [from, targets] of Object.entries(ROOM_TRANSITIONS)) {
      assert.ok(known.has(from), from);
      for (const to of targets) assert.ok(to in ROOM_TRANSITIONS, `${from} → ${to}`);
    }
    assert.deepEqual(new Set(Object.keys(ROOM_TRANSITIONS)), known);
  });
});
