// ZEGO's current capture API: createZegoStream and ZegoLocalStream, and the engine's capture
// and device calls. First ZEGO's quick-start page (sdk/examples/quickstart.html: ZEGO's page
// with only the script tag, app id, server and token changed) in two tabs that see and hear
// each other; then, on one publisher and one player, every capture call with its effect seen
// where it shows: on the far side's decoder (frames, size, audio energy) or on the page.
// Chromium runs with two fake cameras (and its three fake microphones) to switch between.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, uid, waitFor } from './harness.mjs';

const env = new Env({ browserArgs: ['--use-fake-device-for-media-stream=device-count=2'] });

/** What a page receives: decoded frames, frame width, audio packets and energy, summed over its players. */
function received(user) {
  return user.evaluate(async () => {
    const out = { framesDecoded: 0, frameWidth: 0, audioPackets: 0, audioEnergy: 0, pcs: window.__pcs.length };
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') {
          out.framesDecoded += s.framesDecoded || 0;
          out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
        } else if (s.kind === 'audio') {
          out.audioPackets += s.packetsReceived || 0;
          out.audioEnergy += s.totalAudioEnergy || 0;
        }
      });
    }
    return out;
  });
}

/** Waits until `field` rose by more than `by` over the next moments (media flows). */
async function rises(user, field, what, by = 0) {
  const start = (await received(user))[field];
  await waitFor(async () => (await received(user))[field] > start + by,
    { timeout: 15_000, what: `${user.name}: ${what} (${field} above ${start + by})`, detail: async () => `${JSON.stringify(await received(user))}\n${await user.describe()}` });
}

/** Asserts that `field` stays (nearly) flat over `ms`: that media kind stopped arriving. */
async function staysFlat(user, field, what, { ms = 2000, settleMs = 1500, tolerance = 0 } = {}) {
  await new Promise((resolve) => setTimeout(resolve, settleMs)); // in flight, jitter buffer
  const start = (await received(user))[field];
  await new Promise((resolve) => setTimeout(resolve, ms));
  const end = (await received(user))[field];
  assert.ok(end - start <= tolerance, `${user.name}: ${what}: ${field} went from ${start} to ${end}`);
}

describe('createZegoStream and ZegoLocalStream', () => {
  before(() => env.start());
  afterEach(() => env.closeUsers());
  after(() => env.stop());

  test('ZEGO\'s quick-start page (createZegoStream, playVideo) in two tabs: each sees and hears the other', { timeout: 90_000 }, async () => {
    const host = new URL(env.huddle.base).host;
    const tabs = [];
    for (const name of ['quick-1', 'quick-2']) {
      tabs.push(await env.openPage(name, `/examples/quickstart.html?server=${host}`));
      await new Promise((resolve) => setTimeout(resolve, 20)); // the page's user id is the time in ms
    }
    for (const tab of tabs) {
      const view = () => tab.evaluate(async () => {
        const remote = document.querySelector('#remote-video video');
        const local = document.querySelector('#local-video video');
        return { remoteWidth: remote ? remote.videoWidth : 0, localWidth: local ? local.videoWidth : 0 };
      });
      await waitFor(async () => {
        const v = await view();
        return v.remoteWidth > 0 && v.localWidth > 0;
      }, { timeout: 30_000, what: `${tab.name}: local preview and the other tab's video`, detail: async () => `${JSON.stringify(await view())}\n${await tab.describe()}` });
      await rises(tab, 'framesDecoded', 'remote video keeps decoding', 15);
      await rises(tab, 'audioPackets', 'remote audio arrives');
      await rises(tab, 'audioEnergy', 'remote audio carries sound');
    }
  });

  test('every capture call, seen from the far side', { timeout: 240_000 }, async () => {
    const room = uid('room');
    const streamID = uid('zs');
    const alice = await env.openUser('alice');
    const bob = await env.openUser('bob');
    assert.equal(await alice.login(room), true);
    assert.equal(await bob.login(room), true);

    // Capture, preview by element id, publish.
    const created = await alice.evaluate(async (id) => {
      window.__levels = [];
      window.__changes = [];
      window.zg.on('capturedSoundLevelUpdate', (level) => window.__levels.push(level));
      const zs = await window.zg.createZegoStream({ camera: { video: { width: 640, height: 480, frameRate: 15 }, audio: { ANS: true } } });
      window.zs = zs;
      for (const name of ['captureVideoTrackChanged', 'videoTrackChanged', 'audioTrackChanged']) zs.on(name, (t) => window.__changes.push(`${name}:${t.kind}`));
      const div = document.createElement('div');
      div.id = 'local-view';
      div.style.width = '320px';
      div.style.height = '240px';
      document.body.appendChild(div);
      zs.playVideo('local-view');
      const started = window.zg.startPublishingStream(id, zs);
      return { started, isLocalStream: zs instanceof window.ZegoExpressEngine.ZegoLocalStream, tracks: zs.getTracks().map((t) => t.kind).sort(), active: zs.active, hasStream: zs.stream instanceof MediaStream };
    }, streamID);
    assert.deepEqual(created, { started: true, isLocalStream: true, tracks: ['audio', 'video'], active: true, hasStream: true });
    await waitFor(() => alice.evaluate(() => (document.querySelector('#local-view video') || {}).videoWidth > 0), { what: 'alice: the local preview plays' });
    await bob.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamID));
    await bob.play(streamID);
    await bob.expectMedia(streamID);
    const pcsBefore = await alice.evaluate(() => window.__pcs.length);

    // A snapshot of the preview; the track checks.
    const snapshot = await alice.evaluate(() => window.zs.takeStreamSnapshot({ imageType: 'png' }));
    assert.match(snapshot, /^data:image\/png;base64,/);
    assert.deepEqual(await alice.evaluate(async () => [await window.zg.checkVideoTrackIsActive(window.zs), await window.zg.checkAudioTrackIsActive(window.zs)]), [true, true]);

    // capturedSoundLevelUpdate: the fake microphone's beeps make the level rise above silence.
    await alice.evaluate(() => window.zg.setSoundLevelDelegate(true, 500));
    await waitFor(() => alice.evaluate(() => window.__levels.length >= 10 && Math.max(...window.__levels) > 30 && Math.min(...window.__levels) < Math.max(...window.__levels)),
      { what: 'alice: capturedSoundLevelUpdate levels rising with the beeps', detail: () => alice.evaluate(() => JSON.stringify(window.__levels)) });

    // setVideoConfig lowers the sent resolution: bob decodes 320 wide.
    assert.equal((await alice.evaluate(() => window.zg.setVideoConfig(window.zs, { width: 320, height: 240 }))).errorCode, 0);
    await waitFor(async () => (await received(bob)).frameWidth === 320,
      { timeout: 20_000, what: 'bob: 320-wide frames after setVideoConfig', detail: async () => JSON.stringify(await received(bob)) });

    // setCaptureVolume(0): silence at bob's end (packets keep coming, energy stays flat); 100: sound again.
    await rises(bob, 'audioEnergy', 'sound before setCaptureVolume');
    assert.equal((await alice.evaluate(() => window.zg.setCaptureVolume(window.zs, 0))).errorCode, 0);
    await staysFlat(bob, 'audioEnergy', 'silence after setCaptureVolume(0)', { tolerance: 1e-6 });
    await rises(bob, 'audioPackets', 'audio packets still arrive while silent');
    assert.equal((await alice.evaluate(() => window.zg.setCaptureVolume(window.zs, 100))).errorCode, 0);
    await rises(bob, 'audioEnergy', 'sound again after setCaptureVolume(100)');

    // muteMicrophone: silence, then sound again.
    assert.deepEqual(await alice.evaluate(() => [window.zg.muteMicrophone(true), window.zg.isMicrophoneMuted()]), [true, true]);
    await staysFlat(bob, 'audioEnergy', 'silence while the microphone is muted', { tolerance: 1e-6 });
    assert.deepEqual(await alice.evaluate(() => [window.zg.muteMicrophone(false), window.zg.isMicrophoneMuted()]), [true, false]);
    await rises(bob, 'audioEnergy', 'sound again after unmuting');

    // useVideoDevice / useAudioDevice: the other fake camera and microphone, swapped into the
    // senders without renegotiation. (Chromium's second fake camera renders in a <video> but
    // its frames are never encoded, in any peer connection; so the far side sees frames again
    // once the first camera is switched back in, which is the same swap.)
    const switched = await alice.evaluate(async () => {
      const cams = await window.zg.getCameras();
      const mics = await window.zg.getMicrophones();
      const before = { video: window.zs.videoDeviceId, audio: window.zs.audioDeviceId };
      window.__firstCam = before.video;
      const otherCam = cams.find((c) => c.deviceID !== before.video);
      const otherMic = mics.find((m) => m.deviceID !== before.audio && m.deviceID !== 'default');
      const v = await window.zg.useVideoDevice(window.zs, otherCam.deviceID);
      const a = await window.zg.useAudioDevice(window.zs, otherMic.deviceID);
      const sender = window.__pcs[0].getSenders().find((x) => x.track && x.track.kind === 'video');
      return { v: v.errorCode, a: a.errorCode, cams: cams.length, video: window.zs.videoDeviceId === otherCam.deviceID, audio: window.zs.audioDeviceId === otherMic.deviceID,
        sent: window.zs.getVideoTracks()[0].getSettings().deviceId === otherCam.deviceID, sender: sender.track === window.zs.getVideoTracks()[0] };
    });
    assert.deepEqual(switched, { v: 0, a: 0, cams: 2, video: true, audio: true, sent: true, sender: true });
    await rises(bob, 'audioEnergy', 'sound from the other microphone');
    assert.equal((await alice.evaluate(() => window.zg.useFrontCamera(window.zs, true))).errorCode, 0);
    assert.equal(await alice.evaluate(() => window.zs.getVideoTracks()[0].readyState), 'live');
    assert.equal((await alice.evaluate(() => window.zg.useVideoDevice(window.zs, window.__firstCam))).errorCode, 0);
    await rises(bob, 'framesDecoded', 'frames from the first camera switched back in', 15);

    // setAudioConfig turns echo cancellation off on the captured track.
    const audioConfig = await alice.evaluate(async () => {
      const result = await window.zg.setAudioConfig(window.zs, { AEC: false });
      return { errorCode: result.errorCode, aec: window.zs.audioCaptureStream.getAudioTracks()[0].getSettings().echoCancellation };
    });
    assert.deepEqual(audioConfig, { errorCode: 0, aec: false });
    await rises(bob, 'audioEnergy', 'sound after setAudioConfig');

    // stopCaptureVideo ends the camera track: bob's frames stop. startCaptureCamera captures
    // again, sent only after updatePublishingStream (ZEGO's rule while publishing).
    const stopped = await alice.evaluate(async () => {
      const track = window.zs.getVideoTracks()[0];
      const ok = await window.zs.stopCaptureVideo();
      return { ok, ended: track.readyState, sent: window.zs.getVideoTracks().length };
    });
    assert.deepEqual(stopped, { ok: true, ended: 'ended', sent: 0 });
    await staysFlat(bob, 'framesDecoded', 'no frames after stopCaptureVideo');
    assert.equal((await alice.evaluate(() => window.zs.startCaptureCamera({ width: 640, height: 480 }))).errorCode, 0);
    assert.equal(await alice.evaluate(() => window.__changes.includes('captureVideoTrackChanged:video') && window.zs.getVideoTracks().length), 0, 'not sent before updatePublishingStream');
    await staysFlat(bob, 'framesDecoded', 'still no frames before updatePublishingStream', { settleMs: 0, ms: 1000 });
    assert.equal((await alice.evaluate(() => window.zg.updatePublishingStream(window.zs, 0))).errorCode, 0);
    await rises(bob, 'framesDecoded', 'frames again after updatePublishingStream', 15);

    // enableVideoCaptureDevice: camera off (frames stop), on (frames again).
    assert.equal(await alice.evaluate(() => window.zg.enableVideoCaptureDevice(window.zs, false)), true);
    await staysFlat(bob, 'framesDecoded', 'no frames with the camera off');
    assert.equal(await alice.evaluate(() => window.zg.enableVideoCaptureDevice(window.zs, true)), true);
    await rises(bob, 'framesDecoded', 'frames with the camera back on', 15);

    // A custom source (a canvas) captured and sent.
    assert.equal((await alice.evaluate(async () => {
      const canvas = document.createElement('canvas');
      canvas.width = 160;
      canvas.height = 120;
      const g = canvas.getContext('2d');
      let n = 0;
      setInterval(() => { g.fillStyle = `hsl(${(n += 9) % 360} 70% 50%)`; g.fillRect(0, 0, 160, 120); }, 33);
      const result = await window.zs.startCaptureCustomVideo({ source: canvas.captureStream(30) });
      if (result.errorCode) return result;
      return window.zg.updatePublishingStream(window.zs, 0);
    })).errorCode, 0);
    await waitFor(async () => (await received(bob)).frameWidth === 160,
      { timeout: 20_000, what: 'bob: the 160-wide canvas', detail: async () => JSON.stringify(await received(bob)) });

    // The screen (Chromium's fake screen), sent the same way.
    const screen = await alice.evaluate(async () => {
      const result = await window.zs.startCaptureScreen();
      const update = await window.zg.updatePublishingStream(window.zs, 0);
      return { capture: result.errorCode, update: update.errorCode, surface: typeof window.zs.getScreenDisplaySurface() };
    });
    assert.deepEqual(screen, { capture: 0, update: 0, surface: 'string' });
    await rises(bob, 'framesDecoded', 'frames of the screen', 15);

    // None of it renegotiated: still the same peer connections.
    assert.equal(await alice.evaluate(() => window.__pcs.length), pcsBefore);
    assert.ok(await alice.evaluate(() => window.__changes.includes('videoTrackChanged:video') && window.__changes.includes('audioTrackChanged:audio')));

    // Playback on the page: audio player, volume, stop; the preview removed by stopVideo.
    const playback = await alice.evaluate(async () => {
      window.zs.playAudio();
      const volume = window.zs.setVolume(30);
      const player = window.zs._audioPlayer;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const playing = !!player && !player.paused && player.volume === 0.3;
      window.zs.stopAudio();
      window.zs.stopVideo();
      return { volume, playing, preview: !!document.querySelector('#local-view video') };
    });
    assert.deepEqual(playback, { volume: true, playing: true, preview: false });

    // destroyStream ends every track of the local stream.
    const destroyed = await alice.evaluate(() => {
      const tracks = window.zs.getTracks();
      window.zg.destroyStream(window.zs);
      return tracks.every((t) => t.readyState === 'ended') && !window.zs.active;
    });
    assert.equal(destroyed, true);
  });

  test('addTrack and removeTrack on a createStream stream while publishing', { timeout: 90_000 }, async () => {
    const room = uid('room');
    const streamID = uid('ms');
    const alice = await env.openUser('alice');
    const bob = await env.openUser('bob');
    assert.equal(await alice.login(room), true);
    assert.equal(await bob.login(room), true);
    await alice.publish(streamID);
    await bob.waitEvent('roomStreamUpdate', (r, type, list) => type === 'ADD' && list.some((s) => s.streamID === streamID));
    await bob.play(streamID);
    await bob.expectMedia(streamID);
    const removed = await alice.evaluate(async (id) => {
      const stream = window.__local[id];
      window.__video = stream.getVideoTracks()[0];
      const r = await window.zg.removeTrack(stream, window.__video);
      return { errorCode: r.errorCode, videoTracks: stream.getVideoTracks().length };
    }, streamID);
    assert.deepEqual(removed, { errorCode: 0, videoTracks: 0 });
    await staysFlat(bob, 'framesDecoded', 'no frames after removeTrack');
    const added = await alice.evaluate(async (id) => (await window.zg.addTrack(window.__local[id], window.__video)).errorCode, streamID);
    assert.equal(added, 0);
    await rises(bob, 'framesDecoded', 'frames again after addTrack', 15);
    // Capture volume and the camera switch work on a createStream stream too.
    assert.equal((await alice.evaluate((id) => window.zg.setCaptureVolume(window.__local[id], 0), streamID)).errorCode, 0);
    await staysFlat(bob, 'audioEnergy', 'silence after setCaptureVolume(0) on a MediaStream', { tolerance: 1e-6 });
    const cams = await alice.evaluate(async (id) => {
      const stream = window.__local[id];
      const first = stream.getVideoTracks()[0].getSettings().deviceId;
      const other = (await window.zg.getCameras()).find((c) => c.deviceID !== first);
      const there = await window.zg.useVideoDevice(stream, other.deviceID);
      const switched = stream.getVideoTracks()[0].getSettings().deviceId === other.deviceID;
      const back = await window.zg.useVideoDevice(stream, first);
      return { there: there.errorCode, switched, back: back.errorCode, first: stream.getVideoTracks()[0].getSettings().deviceId === first };
    }, streamID);
    assert.deepEqual(cams, { there: 0, switched: true, back: 0, first: true });
    await rises(bob, 'framesDecoded', 'frames after switching cameras and back', 15);
  });
});
