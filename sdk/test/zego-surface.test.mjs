// The pure parts of the ZEGO members added last: the page's TURN servers next to Huddle's,
// snapshot options, ZEGO's audio frame shape, the server clock, presetLogConfig, setRoomScenario.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { HuddleExpressEngine } from '../src/engine.js';
import '../src/index.js';
import { mergeIceServers, pageIceServers } from '../src/ice-servers.js';
import { snapshotFormat } from '../src/view.js';
import { audioFrame, frameOptions, resample, toInt16, mixChannels } from '../src/audio-frames.js';
import { NetworkClock } from '../src/network-time.js';

describe('setTurnServer', () => {
  const huddle = [{ urls: 'turn:huddle.example.com:3478?transport=udp', username: 'u', credential: 'c' }];

  test('ZEGO entries become RTCIceServers after Huddle\'s own', () => {
    const { servers } = pageIceServers([{ url: 'turns:mine.example.com:5349', username: 'me', credential: 'secret' }]);
    assert.deepEqual(servers, [{ urls: 'turns:mine.example.com:5349', username: 'me', credential: 'secret' }]);
    assert.deepEqual(mergeIceServers(huddle, servers), [huddle[0], servers[0]]);
    assert.deepEqual(mergeIceServers(undefined, servers), servers, 'an older server hands out none');
  });

  test('a URL Huddle already hands out is not added twice; bad lists are refused', () => {
    const { servers } = pageIceServers([{ url: huddle[0].urls, username: 'x', credential: 'y' }]);
    assert.deepEqual(mergeIceServers(huddle, servers), huddle);
    assert.match(pageIceServers([{ url: 'http://x' }]).error, /not a TURN or STUN URL/);
    assert.match(pageIceServers('turn:x').error, /array/);
  });

  test('peer connections created afterwards get both; a bad list changes nothing', () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    zg._logger.level = 'disable';
    zg.setTurnServer([{ url: 'turn:mine.example.com:3478', username: 'me', credential: 's' }]);
    zg.setTurnServer([{ url: 'ftp://nope' }]);
    const config = zg._rtcConfiguration({ iceServers: huddle });
    assert.deepEqual(config.iceServers.map((s) => s.urls), [huddle[0].urls, 'turn:mine.example.com:3478']);
    zg.setTurnServer([]);
    assert.deepEqual(zg._rtcConfiguration({ iceServers: huddle }).iceServers, huddle);
  });
});

describe('snapshot options', () => {
  test('png by default, jpeg when asked; quality 0-1, default 1', () => {
    assert.deepEqual(snapshotFormat(undefined), { type: 'image/png', quality: 1 });
    assert.deepEqual(snapshotFormat({ imageType: 'jpeg', quality: 0.5 }), { type: 'image/jpeg', quality: 0.5 });
    assert.deepEqual(snapshotFormat({ imageType: 'JPG' }), { type: 'image/jpeg', quality: 1 });
    assert.deepEqual(snapshotFormat({ imageType: 'image/jpeg', quality: 7 }), { type: 'image/jpeg', quality: 1 });
    assert.deepEqual(snapshotFormat({ imageType: 'gif' }), { type: 'image/png', quality: 1 });
  });
});

describe('audio frames', () => {
  test('options: ZEGO\'s values only, defaults filled in', () => {
    assert.deepEqual(frameOptions(undefined), { frameSize: 4096, sampleRate: null, channelCount: null, bitDepth: 32 });
    assert.deepEqual(frameOptions({ frameSize: 1024, sampleRate: 16000, channelCount: 1, bitDepth: 16 }), {
      frameSize: 1024, sampleRate: 16000, channelCount: 1, bitDepth: 16,
    });
    assert.match(frameOptions({ frameSize: 1000 }).error, /frameSize/);
    assert.match(frameOptions({ sampleRate: 11025 }).error, /sampleRate/);
    assert.match(frameOptions({ channelCount: 3 }).error, /channelCount/);
    assert.match(frameOptions({ bitDepth: 8 }).error, /bitDepth/);
  });

  test('a frame has ZEGO\'s shape: channels, channelCount, sampleRate', () => {
    const left = Float32Array.from({ length: 480 }, (_, i) => Math.sin(i / 10));
    const right = Float32Array.from(left, (x) => -x);
    const frame = audioFrame([left, right], 48000, frameOptions({}));
    assert.deepEqual(Object.keys(frame).sort(), ['channelCount', 'channels', 'sampleRate']);
    assert.equal(frame.channelCount, 2);
    assert.equal(frame.sampleRate, 48000);
    assert.ok(frame.channels[0] instanceof Float32Array);
    assert.equal(frame.channels[0].length, 480);

    const small = audioFrame([left, right], 48000, frameOptions({ sampleRate: 16000, channelCount: 1, bitDepth: 16 }));
    assert.equal(small.channelCount, 1);
    assert.equal(small.sampleRate, 16000);
    assert.ok(small.channels[0] instanceof Int16Array);
    assert.equal(small.channels[0].length, 160);
    assert.ok(small.channels[0].every((x) => x === 0), 'opposite channels average to silence');
  });

  test('resampling, mixing and 16-bit conversion', () => {
    assert.deepEqual(Array.from(resample(Float32Array.from([0, 1, 0, -1]), 8000, 16000)).length, 8);
    assert.deepEqual(Array.from(toInt16(Float32Array.from([-2, -1, 0, 1, 2]))), [-32768, -32768, 0, 32767, 32767]);
    const [mono] = mixChannels([Float32Array.from([1, 0]), Float32Array.from([0, 1])], 1);
    assert.deepEqual(Array.from(mono), [0.5, 0.5]);
    assert.equal(mixChannels([Float32Array.from([1])], 2).length, 2);
  });
});

describe('getNetworkTimeInfo', () => {
  test('0 before a ping reply; then the server\'s time, off by at most half the round trip', () => {
    const clock = new NetworkClock();
    assert.deepEqual(clock.info(1000), { timestamp: 0, maxDeviation: 0 });
    clock.sample(1000, 50_000, 1100); // server 49 s ahead, rtt 100
    assert.deepEqual(clock.info(2000), { timestamp: 50_950, maxDeviation: 50 });
    clock.sample(3000, 52_100, 3020); // a shorter round trip wins
    assert.deepEqual(clock.info(4000), { timestamp: 53_090, maxDeviation: 10 });
    clock.sample(5000, 99_999, 5500); // a longer one does not
    assert.equal(clock.info(6000).maxDeviation, 10);
    clock.sample(7000, 'late', 7001);
    assert.equal(clock.info(8000).maxDeviation, 10, 'a reply without a time is ignored');
  });

  test('the engine answers ZEGO\'s shape before any login', () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    assert.deepEqual(zg.getNetworkTimeInfo(), { timestamp: 0, maxDeviation: 0 });
  });
});

describe('engine settings', () => {
  afterEach(() => HuddleExpressEngine.presetLogConfig({ logLevel: 'warn' }));

  test('presetLogConfig applies to engines created afterwards only', () => {
    const before = new HuddleExpressEngine(1, 'ws://a/ws');
    assert.equal(HuddleExpressEngine.presetLogConfig({ logLevel: 'loud' }), false);
    assert.equal(HuddleExpressEngine.presetLogConfig({ logLevel: 'error' }), true);
    const after = new HuddleExpressEngine(1, 'ws://a/ws');
    assert.equal(before._logger.level, 'warn');
    assert.equal(after._logger.level, 'error');
  });

  test('setRoomScenario accepts ZEGO\'s scenarios; enableHardwareEncoder returns nothing', () => {
    const zg = new HuddleExpressEngine(1, 'ws://a/ws');
    zg._logger.level = 'disable';
    assert.equal(zg.setRoomScenario(3), true);
    assert.equal(zg.options.scenario, 3);
    assert.equal(zg.setRoomScenario('x'), false);
    assert.equal(zg.enableHardwareEncoder(true), undefined);
  });

  test('switchRoom refuses without being in fromRoomID or without a token, changing nothing', async () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    zg._logger.level = 'disable';
    assert.equal(await zg.switchRoom('a', 'b', { token: 't' }), false);
    assert.equal(zg._room, null);
  });

  test('setAudioFrameCallback: not playing, or a bad callback, is a ZEGO response with an error code', async () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    assert.equal((await zg.setAudioFrameCallback('s', () => {})).errorCode, 7003);
    assert.equal((await zg.setAudioFrameCallback('s', null)).errorCode, 0, 'stopping is always fine');
    assert.equal((await zg.setCaptureAudioFrameCallback(null, () => {})).errorCode, 7003);
  });
});
