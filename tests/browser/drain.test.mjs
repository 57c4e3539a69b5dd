// A rolling update: two workers share rooms through Redis behind a load balancer; one gets
// SIGTERM and drains. Pages written like the tutorial stay in their call: the SDK moves to the
// other worker on the server's `goaway`, logs in again there (nobody sees a user leave), the
// streams are published again through the other worker's relay and play again.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, framesKeepComing, playLikeTheTutorial, startProxy, uid } from './harness.mjs';

const redisUrl = process.env.HUDDLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const env = new Env({
  serverArgs: ['--redis-url', redisUrl, '--redis-lease-ms', '3000', '--reconnect-grace-ms', '20000'],
  serverEnv: { HUDDLE_DRAIN_TIMEOUT_MS: '20000' },
});
let second;
let balancer;
before(async () => {
  await env.start();
  second = await env.huddle.spawnWorker();
  balancer = await startBalancer([env.huddle.port, second.port]);
});
afterEach(() => env.closeUsers());
after(async () => {
  await balancer?.close();
  await second?.stop();
  await env.stop();
});

/**
 * A load balancer: each new connection goes to the first backend whose /readyz answered 200
 * at the last look (every 100 ms), as a Kubernetes Service does with ready pods.
 */
async function startBalancer(ports) {
  const ready = new Map(ports.map((port) => [port, false]));
  const probe = async () => {
    for (const port of ports) {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(500) }).catch(() => null);
      ready.set(port, response?.status === 200);
    }
  };
  await probe();
  const timer = setInterval(probe, 100);
  const proxy = await startProxy(() => ports.find((port) => ready.get(port)) ?? null);
  return { wsUrl: proxy.wsUrl, close: () => { clearInterval(timer); return proxy.close(); } };
}

describe('drain', () => {
  test('SIGTERM to the worker holding a call: the call goes on through the other worker', { timeout: 120_000 }, async () => {
    const room = uid('room');
    const [a, b] = await Promise.all([
      env.openUser(uid('dra'), { server: balancer.wsUrl }),
      env.openUser(uid('drb'), { server: balancer.wsUrl }),
    ]);
    await Promise.all([playLikeTheTutorial(a), playLikeTheTutorial(b)]);
    for (const user of [a, b]) assert.equal(await user.login(room), true, await user.describe());
    const [streamA, streamB] = [`${a.name}-cam`, `${b.name}-cam`];
    await Promise.all([a.publish(streamA), b.publish(streamB)]);
    await Promise.all([a.expectMedia(streamB), b.expectMedia(streamA)]);

    const [markA, markB] = [await a.mark(), await b.mark()];
    const started = Date.now();
    env.huddle.signal('SIGTERM');

    for (const [user, mark, own] of [[a, markA, streamA], [b, markB, streamB]]) {
      const back = await user.waitEvent('roomStateChanged', (roomID, reason) => reason === 'RECONNECTED', { since: mark, timeout: 30_000 });
      assert.equal(back.args[3], 'logged in again', JSON.stringify(back.args));
      await user.waitEvent('publisherStateUpdate', (r) => r.streamID === own && r.state === 'PUBLISHING', { since: mark, timeout: 30_000 });
    }
    await framesKeepComing(a, streamB, `${streamB} decodes again after the move`);
    await framesKeepComing(b, streamA, `${streamA} decodes again after the move`);
    // The drained worker exits on its own, long before its drain time: everyone moved.
    const code = await env.huddle.exited();
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 20_000, `exited after ${Date.now() - started} ms`);

    for (const [user, mark] of [[a, markA], [b, markB]]) {
      const userUpdates = await user.eventsSince(mark, 'roomUserUpdate');
      assert.deepEqual(userUpdates.filter((e) => e.args[1] === 'DELETE'), [], `${user.name} saw a user leave: ${JSON.stringify(userUpdates)}`);
      const reasons = (await user.eventsSince(mark, 'roomStateChanged')).map((e) => e.args[1]);
      assert.deepEqual(reasons, ['RECONNECTING', 'RECONNECTED'], `${user.name}: ${reasons.join(' ')}`);
    }
    // The room works as before: a message goes through the worker that stayed.
    const markMessage = await b.mark();
    const sent = await a.evaluate((r) => window.zg.sendBroadcastMessage(r, 'after the drain'), room);
    assert.equal(sent.errorCode, 0, JSON.stringify(sent));
    await b.waitEvent('IMRecvBroadcastMessage', (roomID, list) => list.some((m) => m.message === 'after the drain'), { since: markMessage });
  });
});
