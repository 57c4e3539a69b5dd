// A simulcast player on a path whose bandwidth changes: Chromium plays, inside a network
// namespace joined to this machine by a veth pair, a stream a Chromium publisher sends as three
// layers (160, 320 and 640 wide), choosing by the relay's bandwidth estimate (str0m's, from
// Chromium's transport-wide congestion feedback). `tc` limits the path to the player (700
// kbit/s, a token bucket with a 200 ms queue): the player must end below the top layer with
// frames coming. How long the estimate takes to reach the top layer on the open path, to leave
// it under the limit and to come back once the limit is lifted is measured and printed, not
// asserted: it varies from run to run (1.5–15 s going up in the debug build; docs/BENCHMARKS.md).
// Asking for the big stream (setPlayStreamVideoType 1) gets it at once. Root is needed (network
// namespaces, tc).
//
// HUDDLE_SIMULCAST_CYCLES=N runs N limit/lift cycles and prints the switch times' p50/p90 and
// the time frozen (scripts/bench-simulcast).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, launchBrowser, signToken, uid, waitFor } from './harness.mjs';
import { THREE_LAYERS_AT_360P, decodesWidth, grant, publishThreeLayers, videoReceived } from './simulcast.mjs';

const CYCLES = Number(process.env.HUDDLE_SIMULCAST_CYCLES || 1);
/** What the path carries while limited: the middle layer (≤ 400 kbit/s) fits, the top one does not. */
const LIMIT_KBIT = 700;
/** How long a cycle waits for the estimate to take the player to the top layer on the open path. */
const OPEN_WAIT_MS = Number(process.env.HUDDLE_SIMULCAST_OPEN_WAIT_MS || 20_000);
/** How long a cycle waits for the estimate to bring the player back to the top layer. */
const UP_WAIT_MS = Number(process.env.HUDDLE_SIMULCAST_UP_WAIT_MS || 20_000);

/** A network namespace joined to this one by a veth pair: `hostIp` here, `nsIp` there. */
function createNetns() {
  const id = process.pid % 10_000;
  const name = `hsc${id}`;
  const hostIf = `hsc${id}h`;
  const nsIf = `hsc${id}n`;
  const subnet = `10.77.${process.pid % 250}`;
  const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const net = {
    name, hostIp: `${subnet}.1`, nsIp: `${subnet}.2`,
    /** Limits what reaches the namespace to `kbit` kbit/s. */
    limit(kbit) {
      execFileSync('tc', ['qdisc', 'replace', 'dev', hostIf, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '16kb', 'latency', '200ms']);
    },
    unlimit() {
      execFileSync('tc', ['qdisc', 'del', 'dev', hostIf, 'root']);
    },
    remove() {
      try { ip('netns', 'del', name); } catch { /* already gone */ }
      try { ip('link', 'del', hostIf); } catch { /* went with the namespace */ }
    },
  };
  net.remove();
  ip('netns', 'add', name);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  ip('link', 'set', nsIf, 'netns', name);
  ip('addr', 'add', `${net.hostIp}/24`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('netns', 'exec', name, 'ip', 'addr', 'add', `${net.nsIp}/24`, 'dev', nsIf);
  ip('netns', 'exec', name, 'ip', 'link', 'set', nsIf, 'up');
  ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  return net;
}

const net = createNetns();
// HTTP and the relay on every interface: this machine's pages use 127.0.0.1, the namespace's
// page the veth address (the relay advertises both).
const env = new Env({
  httpAddr: '0.0.0.0:0',
  serverArgs: ['--relay-udp-addr', '0.0.0.0:0', '--relay-public-ip', `127.0.0.1,${net.hostIp}`],
  browserArgs: [THREE_LAYERS_AT_360P],
});
let remote;
before(async () => {
  await env.start();
  remote = { base: `http://${net.hostIp}:${env.huddle.port}` };
  remote.browser = await launchBrowser([`--unsafely-treat-insecure-origin-as-secure=${remote.base}`], { netns: net.name });
});
afterEach(() => env.closeUsers());
after(async () => {
  await remote?.browser?.close().catch(() => {});
  await env.stop();
  net.remove();
});

/** p-th percentile (0–100) of `values`, nearest rank. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const setType = (user, id, type) => user.evaluate(([i, t]) => window.zg.setPlayStreamVideoType(i, t), [id, type]);

describe('simulcast under a changing bandwidth', () => {
  test('a player on a limited path leaves the top layer, frames coming, and gets it back by asking', { timeout: 120_000 + CYCLES * 90_000 }, async () => {
    const room = uid('room');
    const streamID = uid('sc3');
    const { appId, secret } = env.huddle.testApp;
    const publisher = await env.openUser(uid('enc'), { appID: appId });
    const media = await grant(env.huddle, { roomId: room, userId: uid('encoder'), streamId: streamID, action: 'publish' });
    await publishThreeLayers(publisher, media, { busy: true });

    const viewer = await env.openUser(uid('viewer'), { appID: appId, browser: remote.browser, base: remote.base });
    const token = signToken({ appId, secret, userId: viewer.name, roomId: room });
    assert.equal(await viewer.login(room, { token }), true, await viewer.describe());
    await viewer.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamID), { timeout: 20_000 });
    await viewer.play(streamID);
    await viewer.expectMedia(streamID, { audio: false });
    const width = async () => (await videoReceived(viewer, streamID)).frameWidth;
    /** Milliseconds until `check(width)` holds (polled every 250 ms), or null after `ms`. */
    const within = (ms, check) => {
      const since = Date.now();
      return waitFor(async () => check(await width()) && Date.now() - since, { timeout: ms, interval: 250, what: 'a layer' }).catch(() => null);
    };

    const cycles = [];
    for (let i = 0; i < CYCLES; i += 1) {
      // On the open path the estimate should reach the top layer (measured, not asserted).
      const openTop = await within(OPEN_WAIT_MS, (w) => w === 640);
      const before = await videoReceived(viewer, streamID);

      // Limited, the player must end below the top layer, with frames coming.
      net.limit(LIMIT_KBIT);
      const down = await within(30_000, (w) => w > 0 && w < 640);
      assert.notEqual(down, null, `${viewer.name}: still on the top layer at ${LIMIT_KBIT} kbit/s\n${await viewer.describe()}`);
      const decoded = (await videoReceived(viewer, streamID)).framesDecoded;
      await waitFor(async () => (await videoReceived(viewer, streamID)).framesDecoded >= decoded + 20,
        { timeout: 10_000, what: `${viewer.name}: frames on the limited path`, detail: () => viewer.describe() });
      const limited = await videoReceived(viewer, streamID);

      // Lifted: the time until the estimate brings it back up (measured), then the player asks.
      net.unlimit();
      const up = await within(UP_WAIT_MS, (w) => w === 640);
      const after = await videoReceived(viewer, streamID);
      cycles.push({ openTop, down: openTop === null ? null : down, limitedWidth: limited.frameWidth, up,
        frozenDown: limited.freezeSeconds - before.freezeSeconds, frozenUp: after.freezeSeconds - limited.freezeSeconds });
      assert.equal(await setType(viewer, streamID, 1), true);
      await decodesWidth(viewer, streamID, 640, 'the top layer the player asked for');
      assert.equal(await setType(viewer, streamID, 2), true, 'back to the estimate');
    }
    const summary = (key) => {
      const values = cycles.map((c) => c[key]).filter((v) => v !== null);
      return { p50: percentile(values, 50) ?? null, p90: percentile(values, 90) ?? null, of: values.length };
    };
    console.log(`simulcast switches over ${CYCLES} cycle(s) (${LIMIT_KBIT} kbit/s limit): ${JSON.stringify({
      openTopMs: summary('openTop'), downMs: summary('down'), upMs: summary('up'), frozenSecondsDown: summary('frozenDown'),
      frozenSecondsUp: summary('frozenUp'), cycles })}`);
  });
});
