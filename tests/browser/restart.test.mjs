// The server crashes (SIGKILL) and comes back on the same port, with rooms in Redis: the
// SDK's resume fails (the new process never held the session), it logs in again, publishes
// again, and players recover; pages written like the tutorial (play on ADD, stop on DELETE)
// need to do nothing. And a server that stays away longer than the reconnect grace period
// ends in RECONNECT_FAILED.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, framesKeepComing, playLikeTheTutorial, uid } from './harness.mjs';

const redisUrl = process.env.HUDDLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const GRACE_MS = 5000;
// A short lease, so the killed process's sessions are reaped quickly; the Redis call timeout
// is set apart from it (by default a fifth of the lease: 200 ms at a 1 s lease, which a first
// login on a CI machine busy starting Chromium once exceeded, failing with 1007).
const env = new Env({
  serverArgs: ['--redis-url', redisUrl, '--redis-lease-ms', '1500', '--redis-timeout-ms', '500',
    '--reconnect-grace-ms', String(GRACE_MS)],
});
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

describe('server restart', () => {
  test('after a crash and restart, both users are back in the call without doing anything', { timeout: 120_000 }, async () => {
    const room = uid('room');
    const [a, b] = await Promise.all([env.openUser(uid('rea')), env.openUser(uid('reb'))]);
    await Promise.all([playLikeTheTutorial(a), playLikeTheTutorial(b)]);
    for (const user of [a, b]) {
      assert.equal(await user.login(room), true, await user.describe());
    }
    const [streamA, streamB] = [`${a.name}-cam`, `${b.name}-cam`];
    await Promise.all([a.publish(streamA), b.publish(streamB)]);
    await Promise.all([a.expectMedia(streamB), b.expectMedia(streamA)]);

    const [markA, markB] = [await a.mark(), await b.mark()];
    await env.huddle.restart();

    for (const [user, mark, own] of [[a, markA, streamA], [b, markB, streamB]]) {
      await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'RECONNECTING', { since: mark });
      const back = await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'RECONNECTED', { since: mark, timeout: 30_000 });
      // The new process never held the session: the SDK logged in again instead of resuming.
      assert.equal(back.args[3], 'logged in again', JSON.stringify(back.args));
      await user.waitEvent('publisherStateUpdate', (r) => r.streamID === own && r.state === 'PUBLISHING', { since: mark, timeout: 30_000 });
    }
    await framesKeepComing(a, streamB, `${streamB} decodes again after the restart`);
    await framesKeepComing(b, streamA, `${streamA} decodes again after the restart`);

    for (const [user, mark] of [[a, markA], [b, markB]]) {
      const reasons = (await user.eventsSince(mark, 'roomStateChanged')).map((e) => e.args[1]);
      assert.deepEqual(reasons, ['RECONNECTING', 'RECONNECTED'], `${user.name}: ${reasons.join(' ')}`);
    }
    // The room works as before: a message goes through.
    const markMessage = await b.mark();
    const sent = await a.evaluate((r) => window.zg.sendBroadcastMessage(r, 'after the restart'), room);
    assert.equal(sent.errorCode, 0, JSON.stringify(sent));
    await b.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'after the restart'), { since: markMessage });
  });

  // Last in this file: the server does not come back.
  test('a server gone for longer than the grace period: RECONNECT_FAILED, media stopped', { timeout: 60_000 }, async () => {
    const room = uid('room');
    const user = await env.openUser(uid('lost'));
    assert.equal(await user.login(room), true, await user.describe());
    const streamID = `${user.name}-cam`;
    const mark = await user.mark();
    await user.publish(streamID);
    await user.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING', { since: mark });

    await env.huddle.stop();
    await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'RECONNECTING', { since: mark });
    const failed = await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'RECONNECT_FAILED',
      { since: mark, timeout: GRACE_MS + 15_000 });
    assert.equal(failed.args[2], 7009, JSON.stringify(failed.args)); // SdkError.RECONNECT_FAILED
    await user.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'NO_PUBLISH', { since: mark });
    assert.equal(await user.evaluate(() => window.zg.getRoomState()), 'LOGOUT');
    const reasons = (await user.eventsSince(mark, 'roomStateChanged')).map((e) => e.args[1]);
    assert.deepEqual(reasons, ['RECONNECTING', 'RECONNECT_FAILED']);
  });
});
