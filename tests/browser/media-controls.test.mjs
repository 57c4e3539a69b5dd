// ZEGO's media controls and reports in the SDK, between browsers through the real server:
// a publisher's own mutes seen by the room, a player's mutes applied by the relay to that
// player only (muteAll* for streams played later too), sound levels, network quality for
// every user, exceptionUpdate on a stalled and recovered video, the stream view's
// playVideo/playAudio, checkSystemRequirements, roomStateUpdate beside roomStateChanged, a
// list of servers (a dead first one at login, failing over on a reconnect), and a page
// logging in with a ZEGO Token04. Pages are expensive: one call of three pages carries most
// checks, in order.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Env, huddleBin, uid, waitFor } from './harness.mjs';
import { mintToken04 } from './token04.mjs';

const env = new Env({ proxy: true });
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

/** Events beyond the harness's list, recorded the same way (register before logging in). */
const EXTRA_EVENTS = ['roomStateUpdate', 'remoteMicStatusUpdate', 'remoteCameraStatusUpdate', 'soundLevelUpdate',
  'networkQuality', 'exceptionUpdate'];

async function openRecorded(name) {
  const user = await env.openUser(name);
  await user.evaluate((names) => {
    for (const name of names) {
      window.zg.on(name, (...args) => window.__events.push({ name, args: JSON.parse(JSON.stringify(args)), t: Date.now() }));
    }
  }, EXTRA_EVENTS);
  return user;
}

async function login(user, room) {
  assert.equal(await user.login(room), true, await user.describe());
}

async function publish(user, streamID) {
  const mark = await user.mark();
  await user.publish(streamID);
  await user.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING', { since: mark });
}

/** inbound-rtp counters of one played stream at `user`: frames decoded, audio packets and energy. */
function received(user, streamID) {
  return user.evaluate(async (id) => {
    const session = window.zg._media.players.get(id);
    const out = { framesDecoded: 0, videoBytes: 0, audioPackets: 0, audioEnergy: 0, audioDuration: 0 };
    if (!session || !session.pc) return out;
    (await session.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.videoBytes = s.bytesReceived || 0;
      } else {
        out.audioPackets = s.packetsReceived || 0;
        out.audioEnergy = s.totalAudioEnergy || 0;
        out.audioDuration = s.totalSamplesDuration || 0;
      }
    });
    return out;
  }, streamID);
}

/** How `field` of a played stream grows over `ms` at `user`. */
async function growth(user, streamID, field, ms = 2000) {
  const before = (await received(user, streamID))[field];
  await new Promise((resolve) => setTimeout(resolve, ms));
  return (await received(user, streamID))[field] - before;
}

/** Mean audio level (RMS, 0–1) a player heard of `streamID` over `ms`. */
async function heardLevel(user, streamID, ms = 2000) {
  const a = await received(user, streamID);
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = await received(user, streamID);
  const seconds = b.audioDuration - a.audioDuration;
  return seconds > 0 ? Math.sqrt(Math.max(0, b.audioEnergy - a.audioEnergy) / seconds) : 0;
}

const call = (user, expression, arg) => user.evaluate(expression, arg);

describe('media controls', () => {
  test('publisher mutes, player mutes at the relay, sound levels, network quality, exceptions, views', { timeout: 240_000 }, async () => {
    const room = uid('room');
    const [a, b, c] = await Promise.all([openRecorded(uid('ann')), openRecorded(uid('bob')), openRecorded(uid('cat'))]);
    for (const user of [a, b, c]) await login(user, room);
    const streamA = `${a.name}-cam`;
    const streamB = `${b.name}-cam`;
    await Promise.all([publish(a, streamA), publish(b, streamB)]);
    await a.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamB));
    const added = await c.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamB));
    const listed = added.args[2].find((s) => s.streamID === streamB);
    assert.deepEqual([listed.urlsFLV, listed.urlsRTMP, listed.urlsHLS, listed.urlsHttpsFLV, listed.urlsHttpsHLS], ['', '', '', '', '']);
    await Promise.all([a.play(streamB), b.play(streamA), c.play(streamB)]);
    await Promise.all([a.expectMedia(streamB), b.expectMedia(streamA), c.expectMedia(streamB)]);

    // roomStateUpdate came with roomStateChanged on login.
    assert.deepEqual((await a.events('roomStateUpdate')).map((e) => e.args.slice(0, 3)), [[room, 'CONNECTING', 0], [room, 'CONNECTED', 0]]);

    // Sound levels: every published ("push") and played ("pull") stream, rising with the fake microphone's beeps.
    await call(a, () => window.zg.setSoundLevelDelegate(true, 500));
    const level = async (user, streamID, type, since) =>
      user.waitEvent('soundLevelUpdate', (list) => list.some((s) => s.streamID === streamID && s.type === type && s.soundLevel > 10), { since, timeout: 20_000 });
    await level(a, streamA, 'push', 0);
    await level(a, streamB, 'pull', 0);

    // B mutes its microphone: A hears remoteMicStatusUpdate MUTE and silence; the levels of B's stream fall to 0.
    let markA = await a.mark();
    assert.equal(await call(b, (id) => window.zg.mutePublishStreamAudio(window.__local[id], true), streamB), true);
    await a.waitEvent('remoteMicStatusUpdate', (id, status) => id === streamB && status === 'MUTE', { since: markA });
    await c.waitEvent('remoteMicStatusUpdate', (id, status) => id === streamB && status === 'MUTE');
    await new Promise((resolve) => setTimeout(resolve, 1000)); // audio in the jitter buffer plays out
    const silent = await heardLevel(a, streamB);
    assert.ok(silent < 0.001, `A hears silence from muted B: rms ${silent}`);
    markA = await a.mark();
    await a.waitEvent('soundLevelUpdate', (list) => list.some((s) => s.streamID === streamB && s.soundLevel === 0), { since: markA });
    assert.ok(await growth(a, streamB, 'audioPackets') > 0, 'a publisher mute is a signal: silence still arrives');
    // Unmuted: OPEN, and the level rises again.
    markA = await a.mark();
    await call(b, (id) => window.zg.mutePublishStreamAudio(window.__local[id], false), streamB);
    await a.waitEvent('remoteMicStatusUpdate', (id, status) => id === streamB && status === 'OPEN', { since: markA });
    await level(a, streamB, 'pull', markA);
    assert.ok(await heardLevel(a, streamB, 3000) > 0.001, 'sound again after the unmute');

    // B mutes its camera (keeping its preview): remoteCameraStatusUpdate MUTE, then OPEN.
    markA = await a.mark();
    await call(b, (id) => window.zg.mutePublishStreamVideo(window.__local[id], true, true), streamB);
    await a.waitEvent('remoteCameraStatusUpdate', (id, status) => id === streamB && status === 'MUTE', { since: markA });
    assert.equal(await call(b, (id) => window.__local[id].getVideoTracks()[0].enabled, streamB), true, 'retain keeps the camera track on');
    await call(b, (id) => window.zg.mutePublishStreamVideo(window.__local[id], false), streamB);
    await a.waitEvent('remoteCameraStatusUpdate', (id, status) => id === streamB && status === 'OPEN', { since: markA });
    await waitFor(async () => (await growth(a, streamB, 'framesDecoded', 1000)) > 5, { what: 'A decodes B again after the camera unmute' });

    // A stops receiving B's video at the relay: A's frames stall, C (same stream) keeps decoding.
    assert.equal(await call(a, (id) => window.zg.mutePlayStreamVideo(id, true), streamB), true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [stalled, stalledBytes, others] = await Promise.all([growth(a, streamB, 'framesDecoded'), growth(a, streamB, 'videoBytes'), growth(c, streamB, 'framesDecoded')]);
    assert.ok(stalled <= 2 && stalledBytes < 5000, `A's frames of B stall while muted (${stalled} frames, ${stalledBytes} bytes)`);
    assert.ok(others > 10, `C still decodes B (${others} frames)`);
    assert.ok(await growth(a, streamB, 'audioPackets') > 20, 'audio still comes');
    assert.equal(await call(a, (id) => window.zg.mutePlayStreamVideo(id, false), streamB), true);
    await waitFor(async () => (await growth(a, streamB, 'framesDecoded', 1000)) > 5, { what: 'A decodes B again after mutePlayStreamVideo(false)' });
    // The same for audio.
    assert.equal(await call(a, (id) => window.zg.mutePlayStreamAudio(id, true), streamB), true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(await growth(a, streamB, 'audioPackets') <= 2, 'no audio packets while the player muted audio');
    assert.ok(await growth(c, streamB, 'audioPackets') > 20, 'C still gets B\'s audio');
    assert.equal(await call(a, (id) => window.zg.mutePlayStreamAudio(id, false), streamB), true);
    await waitFor(async () => (await growth(a, streamB, 'audioPackets', 1000)) > 10, { what: 'A gets B\'s audio again' });
    assert.equal(await call(a, () => window.zg.mutePlayStreamAudio('no-such-stream', true)), false);

    // C mutes all video, then plays A's stream: it gets A's audio but no frames, until muteAll false.
    assert.equal(await call(c, () => window.zg.muteAllPlayVideoStreams(true)), true);
    await c.play(streamA);
    await waitFor(async () => (await received(c, streamA)).audioPackets > 20, { what: 'C gets A\'s audio' });
    assert.ok((await received(c, streamA)).framesDecoded <= 2, 'a stream played after muteAllPlayVideoStreams(true) brings no video');
    assert.ok(await growth(c, streamB, 'framesDecoded') <= 2, 'and the stream played before stalls too');
    assert.equal(await call(c, () => window.zg.muteAllPlayVideoStreams(false)), true);
    await waitFor(async () => (await growth(c, streamA, 'framesDecoded', 1000)) > 5, { what: 'C decodes A after muteAll false' });
    assert.equal(await call(c, () => window.zg.muteAllPlayAudioStreams(true)), true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(await growth(c, streamA, 'audioPackets') <= 2, 'muteAllPlayAudioStreams(true) stops the audio');
    assert.equal(await call(c, () => window.zg.muteAllPlayAudioStreams(false)), true);
    await waitFor(async () => (await growth(c, streamA, 'audioPackets', 1000)) > 10, { what: 'C gets A\'s audio again' });

    // networkQuality: every page hears of every user of the room that has media, its own user included.
    for (const user of [a, b, c]) {
      for (const who of [a, b, c]) {
        await user.waitEvent('networkQuality', (userID, up, down) => userID === who.name && up >= -1 && up <= 4 && down >= -1 && down <= 4, { timeout: 20_000 });
      }
    }
    const own = (await a.events('networkQuality')).filter((e) => e.args[0] === a.name).at(-1);
    assert.ok(own.args[1] >= 0 && own.args[2] >= 0, `A publishes and plays: both its levels are known ${JSON.stringify(own.args)}`);

    // getPublishingStreamQuality: the last publish sample.
    const quality = await call(a, (id) => window.zg.getPublishingStreamQuality(id), streamA);
    assert.ok(quality && quality.video.frameWidth > 0, JSON.stringify(quality));

    // exceptionUpdate: B's video source stops delivering frames (a canvas nobody draws): A's decoder
    // stalls (1009) and B sends no frames (1004); the camera back: 2009 and 2004.
    markA = await a.mark();
    const markB = await b.mark();
    await call(b, async (id) => {
      const canvas = document.createElement('canvas');
      const stalled = canvas.captureStream(0).getVideoTracks()[0];
      window.__camera = window.__local[id].getVideoTracks()[0];
      return window.zg.replaceTrack(window.__local[id], stalled);
    }, streamB);
    await a.waitEvent('exceptionUpdate', (id, data) => id === streamB && data.code === 1009, { since: markA, timeout: 20_000 });
    await b.waitEvent('exceptionUpdate', (id, data) => id === streamB && data.code === 1004, { since: markB, timeout: 20_000 });
    await call(b, (id) => window.zg.replaceTrack(window.__local[id], window.__camera), streamB);
    await a.waitEvent('exceptionUpdate', (id, data) => id === streamB && data.code === 2009, { since: markA, timeout: 20_000 });
    await b.waitEvent('exceptionUpdate', (id, data) => id === streamB && data.code === 2004, { since: markB, timeout: 20_000 });

    // The view: the picture alone (silent <video>), the sound alone (canPlayAudio), each stopped on its own.
    const view = await call(a, async (id) => {
      const div = window.__e2e.viewOf(`split-${id}`);
      const view = window.zg.createRemoteStreamView(window.zg._media.players.get(id).remoteStream);
      window.__view = view;
      window.__canPlayAudio = 0;
      view.on('canPlayAudio', () => { window.__canPlayAudio += 1; });
      view.playVideo(div, { enableAutoplayDialog: false });
      view.playAudio({ enableAutoplayDialog: false });
      return div.id;
    }, streamB);
    await waitFor(() => call(a, (sel) => {
      const video = document.querySelector(`#${sel} video`);
      return video && video.muted && video.videoWidth > 0 && window.__canPlayAudio === 1;
    }, view), { what: 'playVideo shows a silent picture, playAudio can play' });
    assert.equal(await call(a, (sel) => {
      window.__view.stopVideo();
      return document.querySelectorAll(`#${sel} video`).length;
    }, view), 0);
    await call(a, () => { window.__view.stopAudio(); window.__view.playAudio(); });
    await waitFor(() => call(a, () => window.__canPlayAudio === 2), { what: 'a new playAudio after stopAudio' });
    assert.equal(await call(a, () => window.zg.useAudioOutputDevice(document.querySelector('video'), 'default')), true);
    await call(a, () => window.__view.stop());
  });

  test('checkSystemRequirements: one codec, quickly and with a real offer; every check', { timeout: 60_000 }, async () => {
    const a = await openRecorded(uid('ann'));
    const vp8 = await call(a, () => window.zg.checkSystemRequirements('VP8'));
    assert.equal(vp8.result, true, JSON.stringify(vp8));
    assert.equal(vp8.webRTC, true);
    assert.equal(vp8.videoCodec.VP8, true);
    assert.equal('camera' in vp8, false, 'only the codec was checked');
    const precise = await call(a, () => window.zg.checkSystemRequirements('VP8', 1));
    assert.equal(precise.videoCodec.VP8, true, JSON.stringify(precise));
    const h265 = await call(a, () => window.zg.checkSystemRequirements('H265', 1));
    assert.equal(h265.result, h265.videoCodec.H265, 'the result is that codec\'s');
    const all = await call(a, () => window.zg.checkSystemRequirements());
    for (const key of ['webRTC', 'customCapture', 'camera', 'microphone', 'screenSharing']) assert.equal(all[key], true, `${key}: ${JSON.stringify(all)}`);
    assert.equal(all.result, true);
  });
});

describe('servers and room states', () => {
  test('a dead first server: login through the second; roomStateUpdate on login, kickout and logout', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const dead = 'ws://127.0.0.1:9/ws';
    const a = await env.openUser(uid('ann'), { server: [dead, env.huddle.wsUrl] });
    await a.evaluate(() => window.zg.on('roomStateUpdate', (...args) => window.__events.push({ name: 'roomStateUpdate', args })));
    await login(a, room);
    const states = async () => (await a.events('roomStateUpdate')).map((e) => e.args[1]);
    assert.deepEqual(await states(), ['CONNECTING', 'CONNECTED']);
    await publish(a, `${a.name}-cam`);
    await call(a, () => window.zg.logoutRoom());
    await a.waitEvent('roomStateChanged', (r, reason) => reason === 'LOGOUT');
    assert.deepEqual(await states(), ['CONNECTING', 'CONNECTED', 'DISCONNECTED']);
    const logout = (await a.events('roomStateUpdate')).at(-1);
    assert.deepEqual(logout.args, [room, 'DISCONNECTED', 0, '']);

    // Logged in again (the working server stays in use), then kicked out by a second login.
    await login(a, room);
    const twin = await env.openUser(a.name);
    await login(twin, room);
    await a.waitEvent('roomStateChanged', (r, reason) => reason === 'KICKOUT');
    const kicked = (await a.events('roomStateUpdate')).at(-1);
    assert.equal(kicked.args[1], 'DISCONNECTED');
    assert.equal(kicked.args[2], (await a.events('roomStateChanged')).at(-1).args[2], 'the same code as KICKOUT');
    assert.deepEqual((await states()).slice(3), ['CONNECTING', 'CONNECTED', 'DISCONNECTED']);
  });

  test('no server reachable: LOGIN_FAILED after trying each once', { timeout: 60_000 }, async () => {
    const a = await env.openUser(uid('ann'), { server: ['ws://127.0.0.1:9/ws', 'ws://127.0.0.1:7/ws'] });
    await a.evaluate(() => window.zg.on('roomStateUpdate', (...args) => window.__events.push({ name: 'roomStateUpdate', args })));
    assert.equal(await a.login(uid('room')), false);
    const failed = await a.waitEvent('roomStateChanged', (r, reason) => reason === 'LOGIN_FAILED');
    assert.equal(failed.args[2], 7002);
    assert.deepEqual((await a.events('roomStateUpdate')).map((e) => e.args[1]), ['CONNECTING', 'DISCONNECTED']);
    assert.equal(a.console.filter((line) => line.includes('trying the next server')).length, 1, a.console.join('\n'));
  });
});

describe('ZEGO Token04', () => {
  test('pages log in with 04 tokens of an app imported from ZEGO, publish and play', { timeout: 90_000 }, async () => {
    const appID = 610000000 + Math.floor(Math.random() * 1000000);
    const secret = randomBytes(16).toString('hex'); // 32 characters, as ZEGO's ServerSecret
    await promisify(execFile)(huddleBin, ['app', 'create', '--database-url', env.huddle.databaseUrl, '--name', 'zego-import',
      '--app-id', String(appID), '--server-secret', secret]);
    const room = uid('room');
    const [a, b] = await Promise.all([env.openUser(uid('ann'), { appID }), env.openUser(uid('bob'), { appID })]);
    const streamA = `${a.name}-cam`;
    const tokenOf = (user, streams) => mintToken04({ appID, secret, userID: user.name, roomID: room,
      privilege: { login: true, publish: !!streams }, streamIDList: streams ?? null });
    assert.equal(await a.login(room, { token: tokenOf(a, [streamA]) }), true, await a.describe());
    assert.equal(await b.login(room, { token: tokenOf(b) }), true, await b.describe());
    await publish(a, streamA);
    await b.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamA));
    await b.play(streamA);
    await b.expectMedia(streamA);
    // B's token does not grant publishing: the server refuses it.
    const mark = await b.mark();
    await b.publish(`${b.name}-cam`);
    const refused = await b.waitEvent('publisherStateUpdate', (r) => r.state === 'NO_PUBLISH', { since: mark });
    assert.equal(refused.args[0].errorCode, 5012);
  });
});

// Last: it closes the proxy.
describe('server failover on reconnect', () => {
  test('the first server goes away: the reconnect moves to the next and resumes', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const a = await openRecorded(uid('ann'));
    const b = await env.openUser(uid('bob'), { server: [env.proxy.wsUrl, env.huddle.wsUrl] });
    await b.evaluate(() => window.zg.on('roomStateUpdate', (...args) => window.__events.push({ name: 'roomStateUpdate', args })));
    await login(a, room);
    await login(b, room);
    const streamB = `${b.name}-cam`;
    await publish(b, streamB);
    await a.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamB));
    await a.play(streamB);
    await a.expectMedia(streamB);
    const mark = await b.mark();
    await env.proxy.close();
    const back = await b.waitEvent('roomStateChanged', (r, reason) => reason === 'RECONNECTED', { since: mark, timeout: 30_000 });
    assert.equal(back.args[3], 'resumed', 'the same session, resumed on the second server');
    assert.deepEqual((await b.eventsSince(mark, 'roomStateUpdate')).map((e) => e.args[1]), ['CONNECTING', 'CONNECTED']);
    // With the proxy gone, only the second server can have answered.
    assert.equal(await call(b, () => window.zg._servers.current), env.huddle.wsUrl);
    // Still in the room: a message from B reaches A.
    const sent = await call(b, (r) => window.zg.sendBroadcastMessage(r, 'still here'), room);
    assert.equal(sent.errorCode, 0);
    await a.waitEvent('IMRecvBroadcastMessage', (r, list) => list.some((m) => m.message === 'still here'));
    await waitFor(async () => (await growth(a, streamB, 'framesDecoded', 1000)) > 5, { what: 'B\'s video keeps coming' });
  });
});
