// Session life in the browser: kickout by a second login, reconnect after the websocket drops
// (cut by a TCP proxy) with media going on, and refused tokens.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, signToken, uid, waitFor } from './harness.mjs';

const env = new Env({ proxy: true });
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

const ids = (list) => list.map((item) => item.userID ?? item.streamID);

async function login(user, room, options) {
  const mark = await user.mark();
  const ok = await user.login(room, options);
  assert.equal(ok, true, `${user.name}: loginRoom resolved ${ok}\n${await user.describe()}`);
  await user.waitEvent('roomStateChanged', (roomID, reason) => roomID === room && reason === 'LOGINED', { since: mark });
}

async function publish(user, streamID) {
  const mark = await user.mark();
  await user.publish(streamID);
  await user.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING', { since: mark });
}

describe('sessions', () => {
  test('the same user id logging in from another page kicks the first out (5009)', { timeout: 60_000 }, async () => {
    const room = uid('room');
    const userID = uid('dup');
    const [first, second, observer] = await Promise.all([
      env.openUser(`${userID}#1`), env.openUser(`${userID}#2`), env.openUser(uid('obs'))]);
    await login(observer, room);
    await login(first, room, { userID });
    await observer.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(userID));
    const observerMark = await observer.mark();

    await login(second, room, { userID });
    const kicked = await first.waitEvent('roomStateChanged', (roomID, reason) => reason === 'KICKOUT');
    assert.equal(kicked.args[0], room);
    assert.equal(kicked.args[2], 5009, `KICKOUT errorCode: ${JSON.stringify(kicked.args)}`);

    // The room saw a replacement, not a leave and a join: fence with a message from the new page.
    await second.evaluate((r) => window.zg.sendBroadcastMessage(r, 'still here'), room);
    const heard = await observer.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'still here'));
    assert.equal(heard.args[1][0].fromUser.userID, userID);
    assert.deepEqual(await observer.eventsSince(observerMark, 'roomUserUpdate'), []);
    // The kicked page does not reconnect (that would kick the new one back).
    const firstStates = (await first.events('roomStateChanged')).map((e) => e.args[1]);
    assert.ok(!firstStates.includes("RECONNECTING") && !firstStates.includes("RECONNECTED"), firstStates.join(" "));
    assert.ok(!(await second.events('roomStateChanged')).some((e) => e.args[1] === 'KICKOUT'));
  });

  test('a dropped websocket reconnects; media and the room go on undisturbed', { timeout: 90_000 }, async () => {
    const room = uid('room');
    // A talks to Huddle through the proxy; B directly.
    const [a, b] = await Promise.all([
      env.openUser(uid('ria'), { server: env.proxy.wsUrl }), env.openUser(uid('rob'))]);
    await login(a, room);
    await login(b, room);
    const [streamA, streamB] = [`${a.name}-cam`, `${b.name}-cam`];
    await Promise.all([publish(a, streamA), publish(b, streamB)]);
    await a.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(streamB));
    await b.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(streamA));
    await Promise.all([a.play(streamB), b.play(streamA)]);
    await Promise.all([a.expectMedia(streamB), b.expectMedia(streamA)]);

    const [markA, markB] = [await a.mark(), await b.mark()];
    const acceptedBefore = env.proxy.accepted;
    // The server looks unreachable for a while, so the first attempts fail: still one
    // RECONNECTING and one RECONNECTED.
    env.proxy.refuseFor(1500);
    assert.ok(env.proxy.cutAll() >= 1, 'the proxy carried A\'s websocket');

    await a.waitEvent('roomStateChanged', (roomID, reason) => roomID === room && reason === 'RECONNECTING', { since: markA });
    await a.waitEvent('roomStateChanged', (roomID, reason) => roomID === room && reason === 'RECONNECTED', { since: markA, timeout: 30_000 });
    assert.ok(env.proxy.accepted > acceptedBefore, 'A opened a new websocket through the proxy');
    assert.ok(env.proxy.refused >= 1, 'some attempts were refused');

    // Media never depended on the websocket: both directions keep decoding afterwards.
    const [fa, fb] = [(await a.stats(streamB)).framesDecoded, (await b.stats(streamA)).framesDecoded];
    await waitFor(async () => (await a.stats(streamB)).framesDecoded >= fa + 15, { what: 'A keeps decoding B', detail: () => a.describe() });
    await waitFor(async () => (await b.stats(streamA)).framesDecoded >= fb + 15, { what: 'B keeps decoding A', detail: () => b.describe() });

    // The resumed session works, and B saw nothing of the drop: fence with a message from A.
    const sent = await a.evaluate((r) => window.zg.sendBroadcastMessage(r, 'back again'), room);
    assert.equal(sent.errorCode, 0, JSON.stringify(sent));
    await b.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'back again'), { since: markB });
    const membership = (events) => events.filter((e) => e.name === 'roomUserUpdate' || e.name === 'roomStreamUpdate');
    assert.deepEqual(membership(await b.eventsSince(markB)), [], 'B saw no user/stream change');
    // A's view did not flap either, and its publish/play states stayed up.
    const sinceA = await a.eventsSince(markA);
    assert.deepEqual(membership(sinceA), [], 'A saw no user/stream change');
    const stopped = sinceA.filter((e) => (e.name === 'publisherStateUpdate' && e.args[0].state === 'NO_PUBLISH')
      || (e.name === 'playerStateUpdate' && e.args[0].state === 'NO_PLAY'));
    assert.deepEqual(stopped, []);
    assert.deepEqual(sinceA.filter((e) => e.name === 'roomStateChanged').map((e) => e.args[1]), ['RECONNECTING', 'RECONNECTED']);
  });

  test('the relay drops a player\'s session: the SDK plays again into the same MediaStream', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const [a, b] = await Promise.all([env.openUser(uid('src')), env.openUser(uid('dst'))]);
    await login(a, room);
    await login(b, room);
    const streamID = `${a.name}-cam`;
    await publish(a, streamID);
    await b.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(streamID));
    await b.play(streamID);
    await b.expectMedia(streamID);
    const mark = await b.mark();
    // As if the relay lost the session (restart, timeout): end it with the WHEP DELETE. The
    // session URL is the SDK's own (white box: nothing else in the page knows it).
    const ended = await b.evaluate(async (id) => {
      const url = window.zg._media.players.get(id).sessionUrl;
      return (await fetch(url, { method: 'DELETE' })).status;
    }, streamID);
    assert.equal(ended, 204);
    // Like ZEGO's SDK while it retries: PLAY_REQUESTING, then PLAYING again (a NO_PLAY in
    // between is allowed: the relay's report of the end may come before the SDK notices).
    await b.waitEvent('playerStateUpdate', (r) => r.streamID === streamID && r.state === 'PLAYING', { since: mark, timeout: 30_000 });
    const states = (await b.eventsSince(mark, 'playerStateUpdate')).map((e) => e.args[0].state).filter((st) => st !== 'NO_PLAY');
    assert.deepEqual(states, ['PLAY_REQUESTING', 'PLAYING']);
    const before = (await b.stats(streamID)).framesDecoded;
    await waitFor(async () => (await b.stats(streamID)).framesDecoded >= before + 15,
      { what: 'video again in the same MediaStream', timeout: 20_000, detail: () => b.describe() });
    // Nothing changed in the room.
    assert.deepEqual((await b.eventsSince(mark)).filter((e) => e.name === 'roomStreamUpdate'), []);
  });

  test('tokenWillExpire and renewToken keep the session past the first token\'s expiry', { timeout: 60_000 }, async () => {
    const { appId, secret } = env.huddle.testApp;
    const user = await env.openUser(uid('renew'), { appID: appId });
    const room = uid('room');
    const userID = user.name;
    const now = Math.floor(Date.now() / 1000);
    // 8 s left: under the server's 30 s warning window, so the warning comes right after login.
    const shortLived = signToken({ appId, secret, userId: userID, roomId: room, exp: now + 8 });
    const fresh = signToken({ appId, secret, userId: userID, roomId: room });
    await user.evaluate((token) => {
      window.zg.on('tokenWillExpire', (roomID) => { window.__renewed = window.zg.renewToken(token, roomID); });
    }, fresh);
    await login(user, room, { userID, token: shortLived });
    await user.waitEvent('tokenWillExpire', (roomID) => roomID === room);
    assert.equal(await user.evaluate(() => window.__renewed), true);
    // Past the old expiry plus the server's 5 s leeway, the session is still in the room.
    await waitFor(async () => Date.now() / 1000 > now + 8 + 7, { what: 'the short-lived token to lapse', timeout: 30_000 });
    const sent = await user.evaluate((r) => window.zg.sendBroadcastMessage(r, 'still in'), room);
    assert.equal(sent.errorCode, 0, JSON.stringify(sent));
    const states = (await user.events('roomStateChanged')).map((e) => e.args[1]);
    assert.deepEqual(states, ['LOGINING', 'LOGINED']);
  });

  test('closing the tab leaves the room at once, not after the reconnect grace period', { timeout: 60_000 }, async () => {
    const room = uid('room');
    const [stays, leaves] = await Promise.all([env.openUser(uid('stay')), env.openUser(uid('gone'))]);
    await login(stays, room);
    await login(leaves, room);
    await stays.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'ADD' && ids(list).includes(leaves.name));
    const mark = await stays.mark();
    await leaves.page.close(); // pagehide: the SDK sends logout
    // The server's grace period is 30 s; the DELETE must come well before (wait at most 10 s).
    await stays.waitEvent('roomUserUpdate', (roomID, type, list) => type === 'DELETE' && ids(list).includes(leaves.name),
      { since: mark, timeout: 10_000 });
  });

  test('refused tokens: bad signature 4002, expired 4003, other room 4007', { timeout: 60_000 }, async () => {
    const { appId, secret } = env.huddle.testApp;
    const user = await env.openUser(uid('tok'), { appID: appId });
    const room = uid('room');
    const userID = user.name;
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      ['bad signature', 4002, signToken({ appId, secret: randomBytes(32).toString('hex'), userId: userID, roomId: room })],
      ['expired', 4003, signToken({ appId, secret, userId: userID, roomId: room, iat: now - 7200, exp: now - 3600 })],
      ['other room', 4007, signToken({ appId, secret, userId: userID, roomId: uid('elsewhere') })],
    ];
    for (const [what, code, token] of cases) {
      const mark = await user.mark();
      const ok = await user.login(room, { userID, token });
      assert.equal(ok, false, `${what}: loginRoom resolved ${ok}`);
      const failed = await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'LOGIN_FAILED', { since: mark });
      assert.equal(failed.args[0], room);
      assert.equal(failed.args[2], code, `${what}: ${JSON.stringify(failed.args)}`);
      const reasons = (await user.eventsSince(mark, 'roomStateChanged')).map((e) => e.args[1]);
      assert.deepEqual(reasons, ['LOGINING', 'LOGIN_FAILED'], what);
    }
    // The same engine logs in with a good token afterwards.
    await login(user, room, { userID, token: signToken({ appId, secret, userId: userID, roomId: room }) });
  });
});
