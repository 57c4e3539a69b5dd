// createZegoStream's options, capture options and setVideoConfig/setAudioConfig turned into
// constraints; sound levels; device list differences.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  planZegoStream, kindsOfUpdate, constraintValue, cameraVideoConstraints, microphoneConstraints,
  screenShareConstraints, videoConfigConstraints, audioConfigConstraints, settingsMatch, ZegoStreamUpdateType,
} from '../src/stream-options.js';
import { soundLevel, volumeGain } from '../src/sound-level.js';
import { diffDevices } from '../src/devices.js';

describe('createZegoStream options', () => {
  test('no options: camera and microphone at the default quality', () => {
    const plan = planZegoStream(undefined);
    assert.equal(plan.source, 'camera');
    assert.deepEqual(plan.video, { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } });
    assert.deepEqual(plan.audio, { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 });
    assert.deepEqual([plan.bitrate, plan.audioBitrate], [800, 48]);
  });

  test('camera video and audio options, each true, false or its settings', () => {
    const plan = planZegoStream({ camera: { video: { input: 'cam2', quality: 4, width: 800, height: { exact: 600 }, frameRate: 24 }, audio: { input: 'mic2', AEC: false, channelCount: 2 } }, videoBitrate: 1200, audioBitrate: 64 });
    assert.deepEqual(plan.video, { width: { ideal: 800 }, height: { exact: 600 }, frameRate: { ideal: 24 }, deviceId: { exact: 'cam2' } });
    assert.deepEqual(plan.audio, { echoCancellation: false, noiseSuppression: true, autoGainControl: true, channelCount: 2, deviceId: { exact: 'mic2' } });
    assert.deepEqual([plan.bitrate, plan.audioBitrate], [1200, 64]);
    assert.equal(planZegoStream({ camera: { video: false } }).video, false);
    assert.equal(planZegoStream({ camera: { audio: false } }).audio, false);
    assert.equal(planZegoStream({ camera: { video: { quality: 3 } } }).video.width.ideal, 1280);
    assert.equal(planZegoStream({ videoBitrate: { bitrate: 500 } }).bitrate, 500);
  });

  test('facingMode only without a device id', () => {
    assert.equal(cameraVideoConstraints({ facingMode: 'environment' }).video.facingMode, 'environment');
    assert.equal(cameraVideoConstraints({ facingMode: 'environment', input: 'x' }).video.facingMode, undefined);
  });

  test('screen and custom sources', () => {
    const screen = planZegoStream({ screen: { video: { quality: 3 }, audio: true } });
    assert.equal(screen.source, 'screen');
    assert.equal(screen.video.width.ideal, 1920);
    assert.deepEqual(screen.audio, { echoCancellation: false, noiseSuppression: false, autoGainControl: false });
    assert.equal(planZegoStream({ screen: true }).audio, false);
    const source = { id: 'media' };
    const custom = planZegoStream({ custom: { video: { source } } });
    assert.deepEqual([custom.source, custom.video.source, custom.audio], ['custom', source, false]);
    assert.deepEqual(screenShareConstraints({ frameRate: 5 }, null).video.frameRate, { ideal: 5 });
  });

  test('constraint values', () => {
    assert.deepEqual(constraintValue(5), { ideal: 5 });
    assert.deepEqual(constraintValue({ min: 1, max: 9, junk: 3 }), { min: 1, max: 9 });
    assert.equal(constraintValue({}), undefined);
    assert.equal(constraintValue('5'), undefined);
    assert.deepEqual(microphoneConstraints(true).audio.echoCancellation, true);
  });
});

describe('update and config', () => {
  test('update types name the kinds they send', () => {
    assert.deepEqual(kindsOfUpdate(ZegoStreamUpdateType.video), ['video']);
    assert.deepEqual(kindsOfUpdate(ZegoStreamUpdateType.audio), ['audio']);
    assert.deepEqual(kindsOfUpdate(ZegoStreamUpdateType.videoAndAudio), ['video', 'audio']);
    assert.deepEqual(kindsOfUpdate(7), []);
  });

  test('setVideoConfig: sizes, a preset, the bitrate', () => {
    assert.deepEqual(videoConfigConstraints({ width: 320, height: 240, maxBitrate: 300 }), { constraints: { width: { ideal: 320 }, height: { ideal: 240 } }, bitrate: 300 });
    assert.deepEqual(videoConfigConstraints({ videoQuality: 1 }), { constraints: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15 } }, bitrate: 300 });
    assert.deepEqual(videoConfigConstraints({}), { constraints: {}, bitrate: undefined });
  });

  test('setAudioConfig: only the switches given; settings checked against them', () => {
    const constraints = audioConfigConstraints({ AEC: false, AGC: true });
    assert.deepEqual(constraints, { echoCancellation: false, autoGainControl: true });
    assert.equal(settingsMatch({ echoCancellation: false, autoGainControl: true, noiseSuppression: true }, constraints), true);
    assert.equal(settingsMatch({ echoCancellation: true, autoGainControl: true }, constraints), false);
  });
});

describe('sound levels', () => {
  test('silence is 0, full scale is 100, speech-like levels in between', () => {
    assert.equal(soundLevel(new Float32Array(256)), 0);
    assert.equal(soundLevel(new Float32Array(256).fill(1)), 100);
    const tone = Float32Array.from({ length: 480 }, (_, i) => 0.1 * Math.sin(i / 5));
    const level = soundLevel(tone);
    assert.ok(level > 50 && level < 80, `level ${level}`);
    assert.equal(soundLevel(new Float32Array(256).fill(0.0001)), 0, '-80 dBFS is below the floor');
    assert.equal(soundLevel([]), 0);
  });

  test('capture volume as a gain', () => {
    assert.deepEqual([0, 50, 100, 150, -3].map(volumeGain), [0, 0.5, 1, 1, 0]);
  });
});

describe('device changes', () => {
  test('removals then additions, aliases skipped, told apart by kind and id', () => {
    const cam = { kind: 'videoinput', deviceId: 'c1', label: 'Cam' };
    const mic = { kind: 'audioinput', deviceId: 'm1', label: 'Mic' };
    const alias = { kind: 'audioinput', deviceId: 'default', label: 'Default' };
    const newMic = { kind: 'audioinput', deviceId: 'm2', label: '' };
    assert.deepEqual(diffDevices([cam, mic, alias], [mic, newMic]), [
      { updateType: 'DELETE', kind: 'videoinput', info: { deviceName: 'Cam', deviceID: 'c1' } },
      { updateType: 'ADD', kind: 'audioinput', info: { deviceName: 'audioinput', deviceID: 'm2' } },
    ]);
    assert.deepEqual(diffDevices([cam], [cam]), []);
  });
});
