// Media through TURN only: a real coturn started by the test (tests/browser/coturn.mjs), Huddle
// handing out its credentials (--turn-urls/--turn-secret), and two pages that set
// `setEngineConfig({turnOnly: true})` (RTCPeerConnection `iceTransportPolicy: "relay"`). For
// each transport to coturn (UDP, TCP, TLS) the publisher's and the player's selected candidate
// pairs have a local candidate of type `relay` over that transport, no other kind of local
// candidate exists, coturn logged the allocation of each user, and video frames decode.
//
// TLS: coturn's certificate is self-signed. Chromium verifies TURN server certificates like
// any other (the `turns:` allocation fails with ICE error 701 otherwise, checked below), so
// the browser is told to accept exactly that key with --ignore-certificate-errors-spki-list.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { startCoturn } from './coturn.mjs';
import { Env, launchBrowser, uid } from './harness.mjs';

let coturn;
before(async () => { coturn = await startCoturn(); });
after(() => coturn?.stop());

/** The selected ICE path of every open peer connection of the page, and its local candidates. */
function icePaths(user) {
  return user.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      let pair;
      let transport;
      report.forEach((s) => {
        if (s.type !== 'transport') return;
        transport = s;
        if (s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      });
      const local = pair && byId.get(pair.localCandidateId);
      const remote = pair && byId.get(pair.remoteCandidateId);
      const candidateTypes = [];
      report.forEach((s) => { if (s.type === 'local-candidate') candidateTypes.push(s.candidateType); });
      out.push({
        policy: pc.getConfiguration().iceTransportPolicy,
        iceServers: pc.getConfiguration().iceServers.map((s) => [].concat(s.urls)),
        state: pc.connectionState,
        local: local && { type: local.candidateType, relayProtocol: local.relayProtocol, url: local.url },
        remote: remote && { type: remote.candidateType, address: remote.address },
        // Over the whole transport: the selected pair may have been switched to lately (one
        // relayed candidate per network interface), and its counters start at that switch.
        bytesSent: transport ? transport.bytesSent : 0,
        bytesReceived: transport ? transport.bytesReceived : 0,
        candidateTypes,
      });
    }
    return out;
  });
}

/** Asserts `user`'s one open peer connection runs through coturn over `protocol`. */
async function assertRelayed(user, url, protocol, direction) {
  const paths = await icePaths(user);
  const detail = `${user.name}: ${JSON.stringify(paths)}`;
  console.error("DETAIL", detail);
  assert.equal(paths.length, 1, detail);
  const [p] = paths;
  assert.equal(p.policy, 'relay', detail);
  assert.deepEqual(p.iceServers, [[url]], `the server's iceServers reached RTCPeerConnection: ${detail}`);
  assert.equal(p.state, 'connected', detail);
  assert.equal(p.local?.type, 'relay', detail);
  assert.equal(p.local.relayProtocol, protocol, detail);
  assert.equal(p.local.url, url, detail);
  assert.equal(p.remote?.type, 'host', `the other end is the relay's own address: ${detail}`);
  assert.ok(p.candidateTypes.length > 0 && p.candidateTypes.every((t) => t === 'relay'), `only relayed candidates: ${detail}`);
  assert.ok((direction === 'send' ? p.bytesSent : p.bytesReceived) > 10_000, `media moved: ${detail}`);
}

/** A publisher and a player on TURN only; returns them once the player decodes video. */
async function callThroughTurn(env) {
  const room = uid('room');
  const streamID = uid('cam');
  const [alice, bob] = await Promise.all([env.openUser(uid('alice')), env.openUser(uid('bob'))]);
  for (const user of [alice, bob]) {
    await user.evaluate(() => window.zg.setEngineConfig({ turnOnly: true }));
    assert.equal(await user.login(room), true, await user.describe());
  }
  const mark = await alice.mark();
  await alice.publish(streamID);
  await alice.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING', { since: mark, timeout: 20_000 });
  await bob.waitEvent('roomStreamUpdate', (roomID, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamID));
  await bob.play(streamID);
  const stats = await bob.expectMedia(streamID);
  assert.ok(stats.videoWidth > 0, JSON.stringify(stats));
  return { alice, bob };
}

for (const [transport, protocol] of [['udp', 'udp'], ['tcp', 'tcp'], ['tls', 'tls']]) {
  describe(`media through coturn over ${transport.toUpperCase()} only`, () => {
    let env;
    before(async () => {
      env = new Env({
        serverArgs: ['--turn-urls', coturn.urls[transport], '--turn-secret', coturn.secret, '--turn-credential-ttl-secs', '300'],
        browserArgs: [`--ignore-certificate-errors-spki-list=${coturn.spki}`],
      });
      await env.start();
    });
    afterEach(() => env.closeUsers());
    after(() => env?.stop());

    test('publisher and player connect through relay candidates and video decodes', { timeout: 90_000 }, async () => {
      const { alice, bob } = await callThroughTurn(env);
      await assertRelayed(alice, coturn.urls[transport], protocol, 'send');
      await assertRelayed(bob, coturn.urls[transport], protocol, 'receive');
      // coturn authenticated each user with the credential Huddle minted (user <expiry:app:user>).
      for (const user of [alice, bob]) {
        const allocated = new RegExp(`user <\\d+:1:${user.name}>: incoming packet ALLOCATE processed, success`);
        assert.match(coturn.log(), allocated, `coturn allocated for ${user.name}`);
        console.error("LOG", coturn.log().split("\n").filter((l) => l.includes(user.name)).slice(0, 6).join("\n"));
      }
    });
  });
}

describe('TURN over TLS', () => {
  test('Chromium checks the TURN server certificate: a self-signed one is refused without the exception', { timeout: 30_000 }, async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto('about:blank');
      const username = `${Math.floor(Date.now() / 1000) + 300}:1:probe`;
      const { createHmac } = await import('node:crypto');
      const credential = createHmac('sha1', coturn.secret).update(username).digest('base64');
      const gathered = await page.evaluate(async (iceServer) => {
        const pc = new RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: 'relay' });
        const candidates = [];
        const errors = [];
        pc.onicecandidate = (e) => { if (e.candidate) candidates.push(e.candidate.type); };
        pc.onicecandidateerror = (e) => errors.push(e.errorCode);
        pc.addTransceiver('audio');
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 8000);
          pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); } };
        });
        pc.close();
        return { candidates, errors };
      }, { urls: [coturn.urls.tls], username, credential });
      assert.deepEqual(gathered.candidates, [], JSON.stringify(gathered));
      assert.ok(gathered.errors.includes(701), JSON.stringify(gathered));
    } finally {
      await browser.close();
    }
  });
});
