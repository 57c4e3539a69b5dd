// getUserMedia constraints from createStream's camera config.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cameraConstraints, screenConstraints } from '../src/capture.js';
import { SdkError } from '../src/constants.js';

describe('capture constraints', () => {
  test('default: 640x480@15, 800 kbit/s, echo cancellation and friends on', () => {
    const { constraints, settings } = cameraConstraints({});
    assert.deepEqual(constraints.video, { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } });
    assert.deepEqual(constraints.audio, { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 });
    assert.deepEqual(settings, { bitrate: 800, audioBitrate: 48, source: 'camera', constraints });
  });

  test('presets, custom sizes, devices and switches', () => {
    assert.equal(cameraConstraints({ videoQuality: 3 }).constraints.video.width.ideal, 1280);
    const custom = cameraConstraints({ videoQuality: 4, width: 800, height: 600, frameRate: 24, bitrate: 1200, videoInput: 'cam2', audioInput: 'mic2', AEC: false, channelCount: 2 });
    assert.deepEqual(custom.constraints.video, { width: { ideal: 800 }, height: { ideal: 600 }, frameRate: { ideal: 24 }, deviceId: { exact: 'cam2' } });
    assert.equal(custom.constraints.audio.echoCancellation, false);
    assert.equal(custom.constraints.audio.channelCount, 2);
    assert.deepEqual(custom.constraints.audio.deviceId, { exact: 'mic2' });
    assert.equal(custom.settings.bitrate, 1200);
    assert.equal(cameraConstraints({ video: false }).constraints.video, false);
  });

  test('neither audio nor video is an invalid argument', () => {
    assert.throws(() => cameraConstraints({ audio: false, video: false }), (e) => e.code === SdkError.INVALID_ARGUMENT);
  });

  test('screen presets', () => {
    const { constraints, settings } = screenConstraints({ videoQuality: 3, audio: true });
    assert.equal(constraints.video.width.ideal, 1920);
    assert.equal(constraints.audio, true);
    assert.equal(settings.bitrate, 2000);
  });
});
