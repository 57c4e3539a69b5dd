// The ZEGO members added last, in Chromium through the real server, two pages: switchRoom
// moves a user (the old room sees them leave, the new one join, their stream stops),
// setTurnServer's server is in the peer connections created afterwards, the audio frame
// callbacks deliver non-silent PCM of the fake microphone (played and captured), a remote
// view's takeStreamSnapshot is a PNG, the player track events fire, getNetworkTimeInfo follows
// the server's clock, and every not-offered member answers without throwing.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { Env, uid, waitFor } from './harness.mjs';

const env = new Env();
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

async function openUser(name) {
  const user = await env.openUser(name);
  await user.evaluate(() => {
    for (const name of ['playerVideoTrackUpdate', 'playerAudioTrackUpdate']) {
      window.zg.on(name, (streamID, track) => window.__events.push({ name, args: [streamID, track.kind], t: Date.now() }));
    }
  });
  return user;
}

test('switchRoom, setTurnServer, audio frames, view snapshots, track events, network time', async () => {
  const roomA = uid('room-a');
  const roomB = uid('room-b');
  const streamID = uid('alice-cam');
  const alice = await openUser('alice');
  const bob = await openUser('bob');
  assert.equal(await alice.login(roomA), true, await alice.describe());
  assert.equal(await bob.login(roomA), true, await bob.describe());

  // getNetworkTimeInfo: the server runs on this machine, so its time is ours.
  const time = await waitFor(() => alice.evaluate(() => {
    const info = window.zg.getNetworkTimeInfo();
    return info.timestamp > 0 && { ...info, local: Date.now() };
  }), { what: 'a synchronized network time' });
  assert.ok(Math.abs(time.timestamp - time.local) < 2000, JSON.stringify(time));
  assert.ok(time.maxDeviation >= 0 && time.maxDeviation < 1000, JSON.stringify(time));

  const published = await alice.publish(streamID);
  assert.notEqual(published.started, false);
  await alice.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING');

  // setTurnServer before playing: the player's peer connection has it next to Huddle's.
  const turnUrl = 'turn:127.0.0.1:9?transport=udp';
  const played = await bob.evaluate(async ([id, url]) => {
    window.zg.setTurnServer([{ url, username: 'page-user', credential: 'page-secret' }]);
    const remote = await window.zg.startPlayingStream(id);
    const div = window.__e2e.viewOf(id);
    window.__view = window.zg.createRemoteStreamView(remote);
    window.__view.play(div.id, { enableAutoplayDialog: false });
    const pc = window.__pcs[window.__pcs.length - 1];
    return { iceServers: pc.getConfiguration().iceServers };
  }, [streamID, turnUrl]);
  const mine = played.iceServers.find((s) => [].concat(s.urls).includes(turnUrl));
  assert.ok(mine, JSON.stringify(played.iceServers));
  assert.equal(mine.username, 'page-user');

  // The played stream's tracks were announced.
  await bob.waitEvent('playerVideoTrackUpdate', (id, kind) => id === streamID && kind === 'video');
  await bob.waitEvent('playerAudioTrackUpdate', (id, kind) => id === streamID && kind === 'audio');

  // Audio frames: played (bob) and captured (alice), ZEGO's shape, the fake microphone's beeps.
  const frameCollector = ([kind, id]) => {
    window.__frames = { count: 0, loudest: 0, shape: null };
    const onFrame = (frame) => {
      window.__frames.count += 1;
      window.__frames.shape = { keys: Object.keys(frame).sort(), channelCount: frame.channelCount, sampleRate: frame.sampleRate,
        length: frame.channels[0].length, type: frame.channels[0].constructor.name };
      for (const x of frame.channels[0]) window.__frames.loudest = Math.max(window.__frames.loudest, Math.abs(x));
    };
    const options = { frameSize: 2048, sampleRate: 16000, channelCount: 1 };
    return kind === 'play'
      ? window.zg.setAudioFrameCallback(id, onFrame, options)
      : window.zg.setCaptureAudioFrameCallback(window.__local[id], onFrame, options);
  };
  assert.equal((await bob.evaluate(frameCollector, ['play', streamID])).errorCode, 0);
  assert.equal((await alice.evaluate(frameCollector, ['capture', streamID])).errorCode, 0);
  for (const user of [bob, alice]) {
    const frames = await waitFor(() => user.evaluate(() => window.__frames.loudest > 0.01 && window.__frames),
      { what: `${user.name}: non-silent audio frames`, detail: () => user.evaluate(() => JSON.stringify(window.__frames)) });
    assert.deepEqual(frames.shape.keys, ['channelCount', 'channels', 'sampleRate']);
    assert.equal(frames.shape.channelCount, 1);
    assert.equal(frames.shape.sampleRate, 16000);
    assert.equal(frames.shape.type, 'Float32Array');
  }
  // null stops them.
  const stoppedAt = await bob.evaluate(async (id) => {
    await window.zg.setAudioFrameCallback(id, null);
    return window.__frames.count;
  }, streamID);
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await bob.evaluate(() => window.__frames.count), stoppedAt);

  // The remote view's snapshot: a PNG of the current frame.
  const snapshot = await waitFor(() => bob.evaluate(() => window.__view.takeStreamSnapshot()), { what: 'a view snapshot' });
  assert.match(snapshot, /^data:image\/png;base64,/);
  assert.ok(snapshot.length > 1000, `snapshot of ${snapshot.length} characters`);
  const jpeg = await bob.evaluate(() => window.__view.takeStreamSnapshot({ imageType: 'jpeg', quality: 0.5 }));
  assert.match(jpeg, /^data:image\/jpeg;base64,/);

  // switchRoom: alice moves to room B; room A sees her and her stream leave.
  const markBob = await bob.mark();
  const tokenB = (await env.huddle.devToken('alice', roomB)).token;
  const switched = await alice.evaluate(([from, to, token]) => window.zg.switchRoom(from, to, { token, isUserStatusNotify: true }),
    [roomA, roomB, tokenB]);
  assert.equal(switched, true, await alice.describe());
  await bob.waitEvent('roomUserUpdate', (room, type, users) => room === roomA && type === 'DELETE' && users.some((u) => u.userID === 'alice'), { since: markBob });
  await bob.waitEvent('roomStreamUpdate', (room, type, streams) => type === 'DELETE' && streams.some((s) => s.streamID === streamID), { since: markBob });
  await alice.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'NO_PUBLISH');
  assert.equal(await alice.evaluate(() => window.zg.getRoomState()), 'LOGINED');

  // Bob follows: room B (alice, told of user updates) sees him join, and he sees her there.
  const markAlice = await alice.mark();
  const bobTokenB = (await env.huddle.devToken('bob', roomB)).token;
  assert.equal(await bob.evaluate(([from, to, token]) => window.zg.switchRoom(from, to, { token, isUserStatusNotify: true }),
    [roomA, roomB, bobTokenB]), true);
  await alice.waitEvent('roomUserUpdate', (room, type, users) => room === roomB && type === 'ADD' && users.some((u) => u.userID === 'bob'), { since: markAlice });
  await bob.waitEvent('roomUserUpdate', (room, type, users) => room === roomB && type === 'ADD' && users.some((u) => u.userID === 'alice'), { since: markBob });
  // Not in the room named: refused, nothing changes.
  assert.equal(await bob.evaluate((from) => window.zg.switchRoom(from, 'elsewhere', { token: 'x' }), roomA), false);
});

test('every not-offered member answers ZEGO\'s shape without throwing', async () => {
  const user = await env.openUser('page');
  const answers = await user.evaluate(async () => {
    const Engine = window.ZegoExpressEngine;
    const zg = window.zg;
    const settle = async (call) => {
      try {
        const value = call();
        return { value: await value };
      } catch (err) {
        return { code: err.code };
      }
    };
    return {
      use: await settle(() => Engine.use({})),
      setGeoFence: await settle(() => Engine.setGeoFence(1, [2])),
      setEngineOptions: await settle(() => Engine.setEngineOptions({})),
      setCloudProxyConfig: await settle(() => Engine.setCloudProxyConfig([], '', true)),
      setLocalProxyConfig: await settle(() => Engine.setLocalProxyConfig({}, true)),
      presetLogConfig: await settle(() => Engine.presetLogConfig({ logLevel: 'warn' })),
      getElectronScreenSources: await settle(() => zg.getElectronScreenSources()),
      enableMultiRoom: await settle(() => zg.enableMultiRoom(true)),
      sendTransparentMessage: await settle(() => zg.sendTransparentMessage('r', { sendMode: 0, sendType: 0, content: new Uint8Array(1), recvUserList: [] })),
      callExperimentalAPI: await settle(() => zg.callExperimentalAPI({ method: 'x' })),
      setDummyCaptureImagePath: await settle(() => zg.setDummyCaptureImagePath('/x.png', new MediaStream())),
      setRoomScenario: await settle(() => zg.setRoomScenario(3)),
      enableHardwareEncoder: await settle(() => zg.enableHardwareEncoder(true)),
      listens: ['recvExperimentalAPI', 'hallStateUpdate', 'recvRoomTransparentMessage', 'publisherVideoEncoderChanged']
        .every((name) => zg.on(name, () => {})),
    };
  });
  for (const name of ['use', 'setGeoFence', 'setEngineOptions', 'setCloudProxyConfig', 'setLocalProxyConfig', 'enableHardwareEncoder']) {
    assert.deepEqual(answers[name], { value: undefined }, name);
  }
  assert.deepEqual(answers.getElectronScreenSources, { code: 7011 });
  assert.deepEqual(answers.callExperimentalAPI, { code: 7011 });
  assert.deepEqual(answers.enableMultiRoom, { value: false });
  assert.equal(answers.sendTransparentMessage.value.errorCode, 7011);
  assert.deepEqual(answers.setDummyCaptureImagePath, { value: false });
  assert.deepEqual(answers.presetLogConfig, { value: true });
  assert.deepEqual(answers.setRoomScenario, { value: true });
  assert.equal(answers.listens, true);
  const warnings = user.console.filter((line) => /does not offer/.test(line));
  assert.ok(warnings.some((line) => /ZEGO cloud routing/.test(line)), warnings.join('\n'));
  assert.equal(warnings.filter((line) => /ZEGO cloud routing/.test(line)).length, 1, 'once per feature');
});
