// Calls between browsers through the SDK and the real server: media both ways, every room
// event, a third user joining and one leaving, and the same call from another origin (allowed
// by --allowed-origins) while an origin not on that list is refused.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, uid, waitFor } from './harness.mjs';

const env = new Env({ allowOtherOrigin: true });
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

const ids = (list) => list.map((item) => item.userID ?? item.streamID).sort();

/** Logs `user` in and checks the state sequence LOGINING → LOGINED. */
async function login(user, room, options) {
  const ok = await user.login(room, options);
  assert.equal(ok, true, `${user.name}: loginRoom resolved ${ok}\n${await user.describe()}`);
  await user.waitEvent('roomStateChanged', (roomID, reason) => roomID === room && reason === 'LOGINED');
  return ok;
}

/** `user` publishes its camera as `streamID` and reaches PUBLISHING. */
async function publish(user, streamID, options) {
  const mark = await user.mark();
  await user.publish(streamID, options);
  await user.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING', { since: mark });
}

/** Two users in `room`, each publishing and playing the other. */
async function twoInCall(room, options = {}) {
  const [a, b] = await Promise.all([env.openUser(uid('alice'), options), env.openUser(uid('bob'), options)]);
  await login(a, room);
  await login(b, room);
  const streams = { [a.name]: `${a.name}-cam`, [b.name]: `${b.name}-cam` };
  await Promise.all([publish(a, streams[a.name]), publish(b, streams[b.name])]);
  for (const [viewer, other] of [[a, b], [b, a]]) {
    await viewer.waitEvent('roomStreamUpdate', (roomID, type, list) =>
      type === 'ADD' && list.some((s) => s.streamID === streams[other.name]));
  }
  await Promise.all([a.play(streams[b.name]), b.play(streams[a.name])]);
  return { a, b, streams };
}

describe('two users in a call', () => {
  test('each sees and hears the other', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const { a, b, streams } = await twoInCall(room);
    const [sa, sb] = await Promise.all([a.expectMedia(streams[b.name]), b.expectMedia(streams[a.name])]);
    assert.ok(sa.videoWidth > 0 && sb.videoWidth > 0);
    assert.ok(sa.audioPackets > 0 && sb.audioPackets > 0);

    // Quality reports come every ~3 s from getStats, with real rates in them.
    const played = await a.waitEvent('playQualityUpdate', (streamID, stats) =>
      streamID === streams[b.name] && stats.video.videoBitrate > 0 && stats.audio.audioBitrate > 0, { timeout: 20_000 });
    assert.ok(played.args[1].video.videoFramesDecoded > 0, JSON.stringify(played.args[1]));
    const published = await a.waitEvent('publishQualityUpdate', (streamID, stats) =>
      streamID === streams[a.name] && stats.video.videoBitrate > 0 && stats.video.frameWidth > 0, { timeout: 20_000 });
    assert.ok(published.args[1].audio.audioBitrate > 0, JSON.stringify(published.args[1]));
  });

  test('room events: login states, users, streams, publisher/player states, messages', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const [a, b, c] = await Promise.all([env.openUser(uid('ann')), env.openUser(uid('ben')), env.openUser(uid('cid'))]);

    // Login: LOGINING then LOGINED, nothing else in between.
    await login(a, room);
    const states = (await a.events('roomStateChanged')).map((e) => [e.args[0], e.args[1], e.args[2]]);
    assert.deepEqual(states.map((s) => s.slice(0, 2)), [[room, 'LOGINING'], [room, 'LOGINED']]);
    assert.equal(states[1][2], 0, 'LOGINED carries errorCode 0');
    await a.waitEvent('roomOnlineUserCountUpdate', (roomID, count) => roomID === room && count === 1);

    // B (userUpdate) joins: A hears of B, B hears of A (the room it found).
    await login(b, room, { userName: 'Ben B.' });
    const added = await a.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(b.name));
    assert.equal(added.args[0], room);
    assert.deepEqual(added.args[2].find((u) => u.userID === b.name), { userID: b.name, userName: 'Ben B.' });
    await b.waitEvent('roomUserUpdate', (roomID, type, list) => roomID === room && type === 'ADD' && ids(list).includes(a.name));
    await a.waitEvent('roomOnlineUserCountUpdate', (roomID, count) => count === 2);

    // C joins without userUpdate: the others see it, C gets no user list at all.
    await login(c, room, { userUpdate: false });
    await a.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(c.name));
    await b.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(c.name));
    await c.waitEvent('roomOnlineUserCountUpdate', (roomID, count) => roomID === room && count === 3);

    // A publishes: REQUESTING → PUBLISHING for A; B and C get the stream ADD, A does not.
    const stream = `${a.name}-cam`;
    await publish(a, stream);
    const publisherStates = (await a.events('publisherStateUpdate')).map((e) => e.args[0]);
    assert.deepEqual(publisherStates.map((s) => s.state), ['PUBLISH_REQUESTING', 'PUBLISHING']);
    assert.ok(publisherStates.every((s) => s.streamID === stream && s.errorCode === 0), JSON.stringify(publisherStates));
    for (const viewer of [b, c]) {
      const event = await viewer.waitEvent('roomStreamUpdate', (roomID, type, list) => roomID === room && type === 'ADD' && ids(list).includes(stream));
      const entry = event.args[2].find((s) => s.streamID === stream);
      assert.equal(entry.user.userID, a.name);
    }

    // B plays it: PLAY_REQUESTING → PLAYING, then stops: NO_PLAY.
    await b.play(stream);
    await b.waitEvent('playerStateUpdate', (r) => r.streamID === stream && r.state === 'PLAYING');
    await b.expectMedia(stream, { audio: false });
    await b.evaluate((id) => window.zg.stopPlayingStream(id), stream);
    await b.waitEvent('playerStateUpdate', (r) => r.streamID === stream && r.state === 'NO_PLAY');
    const playerStates = (await b.events('playerStateUpdate')).map((e) => e.args[0]);
    assert.deepEqual(playerStates.map((s) => s.state), ['PLAY_REQUESTING', 'PLAYING', 'NO_PLAY']);
    assert.ok(playerStates.every((s) => s.streamID === stream), JSON.stringify(playerStates));

    // Broadcast from A: B and C get it, A does not.
    const sent = await a.evaluate((r) => window.zg.sendBroadcastMessage(r, 'hello all'), room);
    assert.equal(sent.errorCode, 0, JSON.stringify(sent));
    assert.ok(sent.messageID > 0, JSON.stringify(sent));
    for (const viewer of [b, c]) {
      const event = await viewer.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'hello all'));
      const message = event.args[1].find((m) => m.message === 'hello all');
      assert.equal(event.args[0], room);
      assert.equal(message.fromUser.userID, a.name);
      assert.equal(message.messageID, sent.messageID);
      assert.ok(message.sendTime > Date.now() - 60_000, `sendTime ${message.sendTime}`);
    }

    // Barrage from B: A and C get it.
    const barrage = await b.evaluate((r) => window.zg.sendBarrageMessage(r, 'barrage from b'), room);
    assert.equal(barrage.errorCode, 0, JSON.stringify(barrage));
    for (const viewer of [a, c]) {
      const event = await viewer.waitEvent('IMRecvBarrageMessage', (roomID, list) => list.some((m) => m.message === 'barrage from b'));
      assert.equal(event.args[1].find((m) => m.message === 'barrage from b').fromUser.userID, b.name);
    }

    // Custom command from A to B only; then one to C as a fence: C must have seen only that one.
    const command = await a.evaluate(([r, to]) => window.zg.sendCustomCommand(r, 'for b only', [to]), [room, b.name]);
    assert.equal(command.errorCode, 0, JSON.stringify(command));
    const got = await b.waitEvent('IMRecvCustomCommand', (roomID, from, cmd) => cmd === 'for b only');
    assert.equal(got.args[0], room);
    assert.equal(got.args[1].userID, a.name);
    await a.evaluate(([r, to]) => window.zg.sendCustomCommand(r, 'for c', [to]), [room, c.name]);
    await c.waitEvent('IMRecvCustomCommand', (roomID, from, cmd) => cmd === 'for c');
    assert.deepEqual((await c.events('IMRecvCustomCommand')).map((e) => e.args[2]), ['for c']);
    // Nobody hears their own messages.
    assert.equal((await a.events('IMRecvBroadcastMessage')).length, 0);
    assert.equal((await b.events('IMRecvBarrageMessage')).length, 0);
    assert.equal((await a.events('IMRecvCustomCommand')).length, 0);

    // A stops publishing: NO_PUBLISH for A, stream DELETE for B and C.
    await a.evaluate((id) => window.zg.stopPublishingStream(id), stream);
    await a.waitEvent('publisherStateUpdate', (r) => r.streamID === stream && r.state === 'NO_PUBLISH');
    for (const viewer of [b, c]) {
      await viewer.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'DELETE' && ids(list).includes(stream));
    }
    assert.equal((await a.events('roomStreamUpdate')).length, 0, 'own streams are not announced to oneself');

    // C leaves: A and B get user DELETE; C gets LOGOUT. C never got any roomUserUpdate.
    const markA = await a.mark();
    await c.evaluate((r) => window.zg.logoutRoom(r), room);
    await c.waitEvent('roomStateChanged', (roomID, reason) => reason === 'LOGOUT');
    for (const viewer of [a, b]) {
      await viewer.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'DELETE' && ids(list).includes(c.name));
    }
    await a.waitEvent('roomOnlineUserCountUpdate', (roomID, count) => count === 2, { since: markA });
    assert.deepEqual(await c.events('roomUserUpdate'), [], 'no roomUserUpdate without userUpdate: true');
  });

  test('a third user joins mid-call and sees both; one leaves', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const { a, b, streams } = await twoInCall(room);
    const c = await env.openUser(uid('carol'));
    await login(c, room);
    const both = Object.values(streams).sort();
    // The streams already in the room arrive as roomStreamUpdate ADD (one event or several).
    await waitStreams(c, room, both);
    await Promise.all(both.map((id) => c.play(id)));
    await Promise.all(both.map((id) => c.expectMedia(id)));
    // The original pair still plays each other.
    await Promise.all([a.expectMedia(streams[b.name]), b.expectMedia(streams[a.name])]);

    // A logs out: B and C get its stream DELETE, then its user DELETE.
    const [markB, markC] = [await b.mark(), await c.mark()];
    await a.evaluate((r) => window.zg.logoutRoom(r), room);
    for (const [viewer, mark] of [[b, markB], [c, markC]]) {
      const gone = await viewer.waitEvent('roomStreamUpdate', (roomID, type, list) => roomID === room && type === 'DELETE' && ids(list).includes(streams[a.name]), { since: mark });
      const left = await viewer.waitEvent('roomUserUpdate', (roomID, type, list) => roomID === room && type === 'DELETE' && ids(list).includes(a.name), { since: mark });
      assert.ok(gone.t <= left.t, 'stream DELETE comes before user DELETE');
    }
    // B's stream is still there for C.
    await c.expectMedia(streams[b.name], { audio: false });
  });

  test('the same call from a page on another origin (SDK loaded cross-origin)', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const { a, b, streams } = await twoInCall(room, { origin: 'other' });
    const origin = await a.evaluate(() => location.origin);
    assert.notEqual(origin, env.huddle.base, 'the page is not on Huddle\'s origin');
    assert.equal(origin, env.other.origin);
    await Promise.all([a.expectMedia(streams[b.name]), b.expectMedia(streams[a.name])]);
    // Messages work cross-origin too.
    await a.evaluate((r) => window.zg.sendBroadcastMessage(r, 'cross-origin hello'), room);
    await b.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'cross-origin hello'));
  });

  test('a page on an origin not in --allowed-origins cannot log in', { timeout: 60_000 }, async () => {
    const room = uid('room');
    const stranger = await env.openUser(uid('eve'), { origin: 'stranger' });
    assert.equal(await stranger.evaluate(() => location.origin), env.other.strangerOrigin);
    // A valid token: the origin is the only thing wrong.
    const ok = await stranger.login(room);
    assert.equal(ok, false, `loginRoom resolved ${ok}\n${await stranger.describe()}`);
    const reasons = (await stranger.events('roomStateChanged')).map((e) => e.args[1]);
    assert.deepEqual(reasons, ['LOGINING', 'LOGIN_FAILED']);
  });

  test('the ES module entry exports the same engine as the script tag', { timeout: 30_000 }, async () => {
    const user = await env.openUser(uid('esm'), { origin: 'other' });
    const seen = await user.evaluate(async (base) => {
      const sdk = await import(`${base}/sdk/huddle-express.mjs`);
      return {
        same: sdk.ZegoExpressEngine === window.ZegoExpressEngine && sdk.HuddleExpressEngine === window.HuddleExpressEngine,
        isDefault: sdk.default === sdk.HuddleExpressEngine,
        codes: [sdk.SdkError.CONNECT_FAILED, typeof sdk.ZegoStreamView],
        version: new sdk.ZegoExpressEngine(1, 'ws://127.0.0.1:9/ws').getVersion(),
      };
    }, env.huddle.base);
    assert.deepEqual(seen, { same: true, isDefault: true, codes: [7002, 'function'], version: seen.version });
    assert.match(seen.version, /^\d+\.\d+\.\d+$/);
  });

  test('extra info, a custom (canvas) source, and what checkSystemRequirements reports', { timeout: 60_000 }, async () => {
    const room = uid('room');
    const [a, b] = await Promise.all([env.openUser(uid('xa')), env.openUser(uid('xb'))]);
    await login(a, room);
    await login(b, room);

    const caps = await a.evaluate(() => window.zg.checkSystemRequirements());
    assert.equal(caps.webRTC, true, JSON.stringify(caps));
    assert.equal(caps.customCapture, true);
    assert.equal(caps.camera, true, 'the fake camera is found');
    assert.equal(caps.microphone, true, 'the fake microphone is found');
    assert.equal(caps.videoCodec.VP8, true);
    assert.equal(caps.result, true);
    const onlyCodecs = await a.evaluate(() => window.zg.checkSystemRequirements('videoCodec'));
    assert.deepEqual(Object.keys(onlyCodecs).sort(), ['errInfo', 'result', 'videoCodec']);

    // Room extra info: B hears A's key.
    const set = await a.evaluate((r) => window.zg.setRoomExtraInfo(r, 'topic', 'standup'), room);
    assert.equal(set.errorCode, 0, JSON.stringify(set));
    const info = await b.waitEvent('roomExtraInfoUpdate', (roomID, list) => list.some((e) => e.key === 'topic'));
    const entry = info.args[1].find((e) => e.key === 'topic');
    assert.equal(entry.value, 'standup');
    assert.equal(entry.updateUser.userID, a.name);

    // A canvas published through createStream({custom}) with extra info; then new extra info.
    const stream = `${a.name}-canvas`;
    await publish(a, stream, { source: 'canvas' });
    await b.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'ADD' && list.some((s) => s.streamID === stream));
    await b.play(stream);
    await b.expectMedia(stream, { audio: false });
    const changed = await a.evaluate((id) => window.zg.setStreamExtraInfo(id, '{"camera":false}'), stream);
    assert.equal(changed.errorCode, 0, JSON.stringify(changed));
    const update = await b.waitEvent('streamExtraInfoUpdate', (roomID, list) => list.some((s) => s.streamID === stream));
    assert.equal(update.args[1].find((s) => s.streamID === stream).extraInfo, '{"camera":false}');
    // A stream that is not A's cannot be changed: the reply carries the server's code.
    const refused = await b.evaluate((id) => window.zg.setStreamExtraInfo(id, 'x'), stream);
    assert.equal(refused.errorCode, 5014, JSON.stringify(refused));
  });
});

/** Waits until the streams `wanted` have been announced to `user` by roomStreamUpdate ADD. */
async function waitStreams(user, room, wanted) {
  await waitFor(async () => {
    const seen = new Set();
    for (const e of await user.events('roomStreamUpdate')) {
      if (e.args[0] !== room) continue;
      for (const s of e.args[2]) {
        if (e.args[1] === 'ADD') seen.add(s.streamID); else seen.delete(s.streamID);
      }
    }
    return wanted.every((id) => seen.has(id));
  }, { what: `${user.name}: roomStreamUpdate ADD of ${wanted.join(', ')}`, detail: () => user.describe() });
}
