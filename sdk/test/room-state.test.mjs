// The room-state reducers: what the page knows about members, streams, mute flags, extra
// info and the count, and which events each server update or snapshot is worth.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createRoomState, applyUserUpdate, applyStreamUpdate, applyStreamExtraInfo, applyRoomExtraInfo,
  applyOnlineCount, applyMuteFlags, applySnapshot, publicStream,
} from '../src/room-state.js';

const alice = { userID: 'alice', userName: 'Alice' };
const bob = { userID: 'bob', userName: 'Bob' };
const stream = (id, user = bob, extra = {}) => ({ streamID: id, user, extraInfo: '', url: 'http://relay/secret', ...extra });
const names = (events) => events.map((e) => `${e.event}:${e.args[1]}`);

describe('users', () => {
  test('ADD then ADD again reports once; DELETE then DELETE again reports once', () => {
    const state = createRoomState('r1', { userUpdate: true });
    assert.deepEqual(applyUserUpdate(state, 'ADD', [alice, bob]), [
      { event: 'roomUserUpdate', args: ['r1', 'ADD', [alice, bob]] },
    ]);
    assert.deepEqual(applyUserUpdate(state, 'ADD', [alice]), [], 'a repeated ADD is no change');
    assert.deepEqual(applyUserUpdate(state, 'DELETE', [alice]), [
      { event: 'roomUserUpdate', args: ['r1', 'DELETE', [alice]] },
    ]);
    assert.deepEqual(applyUserUpdate(state, 'DELETE', [alice]), [], 'deleting an unknown user is no change');
    assert.deepEqual([...state.users.keys()], ['bob']);
  });

  test('a renamed user is an ADD again', () => {
    const state = createRoomState('r1', { userUpdate: true });
    applyUserUpdate(state, 'ADD', [alice]);
    const renamed = { userID: 'alice', userName: 'Alice B.' };
    assert.deepEqual(applyUserUpdate(state, 'ADD', [renamed]), [{ event: 'roomUserUpdate', args: ['r1', 'ADD', [renamed]] }]);
  });

  test('without userUpdate the members are tracked but not reported', () => {
    const state = createRoomState('r1', { userUpdate: false });
    assert.deepEqual(applyUserUpdate(state, 'ADD', [alice]), []);
    assert.equal(state.users.size, 1);
  });

  test('only userID and userName are passed on', () => {
    const state = createRoomState('r1', { userUpdate: true });
    const [ev] = applyUserUpdate(state, 'ADD', [{ ...alice, sessionID: 'x' }]);
    assert.deepEqual(ev.args[2], [alice]);
  });
});

describe('streams', () => {
  test('ADD twice reports once, DELETE twice reports once, the relay URL stays inside', () => {
    const state = createRoomState('r1');
    const first = applyStreamUpdate(state, 'ADD', [stream('s1')]);
    assert.deepEqual(first, [{ event: 'roomStreamUpdate', args: ['r1', 'ADD', [publicStream(stream('s1'))], ''] }]);
    assert.equal('url' in first[0].args[2][0], false);
    assert.deepEqual(applyStreamUpdate(state, 'ADD', [stream('s1')]), []);
    assert.deepEqual(names(applyStreamUpdate(state, 'DELETE', [stream('s1')])), ['roomStreamUpdate:DELETE']);
    assert.deepEqual(applyStreamUpdate(state, 'DELETE', [stream('s1')]), []);
    assert.equal(state.streams.size, 0);
  });

  test('an added stream that arrives muted reports the mute after the ADD', () => {
    const state = createRoomState('r1');
    const events = applyStreamUpdate(state, 'ADD', [stream('s1', bob, { audioMuted: true })]);
    assert.deepEqual(events.map((e) => e.event), ['roomStreamUpdate', 'remoteMicStatusUpdate']);
    assert.deepEqual(events[1].args, ['s1', 'MUTE', 0]);
  });

  test('extra info updates are passed on and remembered', () => {
    const state = createRoomState('r1');
    applyStreamUpdate(state, 'ADD', [stream('s1')]);
    const events = applyStreamExtraInfo(state, [stream('s1', bob, { extraInfo: 'hi' })]);
    const noCdn = { urlsFLV: '', urlsRTMP: '', urlsHLS: '', urlsHttpsFLV: '', urlsHttpsHLS: '' };
    assert.deepEqual(events, [{ event: 'streamExtraInfoUpdate', args: ['r1', [{ streamID: 's1', user: bob, extraInfo: 'hi', ...noCdn }]] }]);
    assert.equal(state.streams.get('s1').extraInfo, 'hi');
  });
});

describe('mute flags', () => {
  test('only changes are reported, MUTE then OPEN, for known streams only', () => {
    const state = createRoomState('r1');
    applyStreamUpdate(state, 'ADD', [stream('s1')]);
    assert.deepEqual(applyMuteFlags(state, [{ streamID: 's1', audioMuted: false, videoMuted: false }]), [], 'open is the default');
    assert.deepEqual(applyMuteFlags(state, [{ streamID: 's1', audioMuted: true, videoMuted: true }]).map((e) => [e.event, e.args[1]]),
      [['remoteMicStatusUpdate', 'MUTE'], ['remoteCameraStatusUpdate', 'MUTE']]);
    assert.deepEqual(applyMuteFlags(state, [{ streamID: 's1', audioMuted: true, videoMuted: true }]), [], 'no change, no event');
    assert.deepEqual(applyMuteFlags(state, [{ streamID: 's1', audioMuted: false, videoMuted: true }]).map((e) => [e.event, e.args[1]]),
      [['remoteMicStatusUpdate', 'OPEN']]);
    assert.deepEqual(applyMuteFlags(state, [{ streamID: 'mine', audioMuted: true }]), [], 'own or unknown streams are not remote');
  });

  test('a publisher\'s own mute and the server\'s are one status: MUTE while either holds', () => {
    const state = createRoomState('r1');
    applyStreamUpdate(state, 'ADD', [stream('s1')]);
    const flags = (f) => applyMuteFlags(state, [{ streamID: 's1', ...f }]).map((e) => [e.event, e.args[1]]);
    assert.deepEqual(flags({ publisherAudioMuted: true }), [['remoteMicStatusUpdate', 'MUTE']]);
    assert.deepEqual(flags({ publisherAudioMuted: true, audioMuted: true }), [], 'still muted');
    assert.deepEqual(flags({ audioMuted: true }), [], 'the server still mutes it');
    assert.deepEqual(flags({ publisherVideoMuted: true }), [['remoteMicStatusUpdate', 'OPEN'], ['remoteCameraStatusUpdate', 'MUTE']]);
  });

  test('a deleted stream forgets its flags (a new stream of that id starts open)', () => {
    const state = createRoomState('r1');
    applyStreamUpdate(state, 'ADD', [stream('s1', bob, { videoMuted: true })]);
    applyStreamUpdate(state, 'DELETE', [stream('s1')]);
    assert.equal(state.muted.has('s1'), false);
    const events = applyStreamUpdate(state, 'ADD', [stream('s1', bob, { videoMuted: true })]);
    assert.deepEqual(events.map((e) => e.event), ['roomStreamUpdate', 'remoteCameraStatusUpdate']);
  });
});

describe('extra info and count', () => {
  test('room extra info reports new and changed keys only', () => {
    const state = createRoomState('r1');
    const info = { key: 'topic', value: 'a', updateUser: bob, updateTime: 1 };
    assert.deepEqual(applyRoomExtraInfo(state, [info]), [{ event: 'roomExtraInfoUpdate', args: ['r1', [info]] }]);
    assert.deepEqual(applyRoomExtraInfo(state, [info]), []);
    const changed = { ...info, value: 'b', updateTime: 2 };
    assert.deepEqual(applyRoomExtraInfo(state, [info, changed].slice(1)), [{ event: 'roomExtraInfoUpdate', args: ['r1', [changed]] }]);
  });

  test('the online count is reported when it changes', () => {
    const state = createRoomState('r1');
    assert.deepEqual(applyOnlineCount(state, 2), [{ event: 'roomOnlineUserCountUpdate', args: ['r1', 2] }]);
    assert.deepEqual(applyOnlineCount(state, 2), []);
    assert.deepEqual(applyOnlineCount(state, undefined), []);
  });
});

describe('snapshots', () => {
  test('a snapshot is diffed into DELETE and ADD, streams, flags, extra info and count, in that order', () => {
    const state = createRoomState('r1', { userUpdate: true });
    applyUserUpdate(state, 'ADD', [alice, bob]);
    applyStreamUpdate(state, 'ADD', [stream('s-bob'), stream('s-alice', alice)]);
    applyOnlineCount(state, 2);
    const carol = { userID: 'carol', userName: 'Carol' };
    const events = applySnapshot(state, {
      userList: [bob, carol],
      streamList: [stream('s-bob', bob, { extraInfo: 'new', audioMuted: true }), stream('s-carol', carol)],
      roomExtraInfoList: [{ key: 'k', value: 'v', updateUser: bob, updateTime: 5 }],
      onlineCount: 2,
    });
    assert.deepEqual(events.map((e) => `${e.event}${typeof e.args[1] === 'string' && e.event.startsWith('room') && e.event !== 'roomExtraInfoUpdate' ? `:${e.args[1]}` : ''}`), [
      'roomUserUpdate:DELETE', 'roomUserUpdate:ADD', 'roomStreamUpdate:DELETE', 'roomStreamUpdate:ADD',
      'remoteMicStatusUpdate', 'streamExtraInfoUpdate', 'roomExtraInfoUpdate',
    ]);
    assert.deepEqual(events[0].args[2], [alice]);
    assert.deepEqual(events[1].args[2], [carol]);
    assert.deepEqual(events[2].args[2].map((s) => s.streamID), ['s-alice']);
    assert.deepEqual(events[3].args[2].map((s) => s.streamID), ['s-carol']);
    assert.deepEqual(events[5].args[1].map((s) => [s.streamID, s.extraInfo]), [['s-bob', 'new']]);
    assert.deepEqual([...state.streams.keys()].sort(), ['s-bob', 's-carol']);
  });

  test('the same snapshot twice is worth nothing the second time', () => {
    const state = createRoomState('r1', { userUpdate: true });
    const view = { userList: [alice], streamList: [stream('s1', alice, { videoMuted: true })], roomExtraInfoList: [], onlineCount: 1 };
    assert.ok(applySnapshot(state, view).length > 0);
    assert.deepEqual(applySnapshot(state, view), []);
  });

  test('without userUpdate, members in a snapshot are not reported', () => {
    const state = createRoomState('r1', { userUpdate: false });
    assert.deepEqual(applySnapshot(state, { userList: [alice] }).map((e) => e.event), []);
  });
});
