// Every room state change is raised as roomStateChanged and as ZEGO's older roomStateUpdate.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connectionStateOf, roomStateEvents } from '../src/room-state-update.js';

describe('roomStateUpdate', () => {
  test('each reason has its connection state', () => {
    const expected = {
      LOGINING: 'CONNECTING', LOGINED: 'CONNECTED', LOGIN_FAILED: 'DISCONNECTED',
      RECONNECTING: 'CONNECTING', RECONNECTED: 'CONNECTED', RECONNECT_FAILED: 'DISCONNECTED',
      KICKOUT: 'DISCONNECTED', LOGOUT: 'DISCONNECTED', LOGOUT_FAILED: 'DISCONNECTED',
    };
    for (const [reason, state] of Object.entries(expected)) assert.equal(connectionStateOf(reason), state, reason);
  });

  test('both events, roomStateChanged first, with the same code and extended data', () => {
    assert.deepEqual(roomStateEvents('r1', 'KICKOUT', 5009, 'elsewhere'), [
      { event: 'roomStateChanged', args: ['r1', 'KICKOUT', 5009, 'elsewhere'] },
      { event: 'roomStateUpdate', args: ['r1', 'DISCONNECTED', 5009, 'elsewhere'] },
    ]);
  });
});
