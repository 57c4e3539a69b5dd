// Stream sound levels from WebRTC audio energy statistics.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { levelOfAmplitude, soundLevelBetween, audioLevelStat } from '../src/stream-sound-level.js';
import { soundLevelInterval } from '../src/feature-sound-level.js';

describe('stream sound level', () => {
  test('ZEGO\'s 0–100 scale: -60 dBFS and below is 0, full scale 100', () => {
    assert.deepEqual([0, 0.001, 0.01, 0.1, 1, 2].map(levelOfAmplitude), [0, 0, 33, 67, 100, 100]);
  });

  test('the mean energy between two samples; the instantaneous level without an earlier one; 0 without audio', () => {
    const prev = { totalAudioEnergy: 1, totalSamplesDuration: 10 };
    assert.equal(soundLevelBetween(prev, { totalAudioEnergy: 1.01, totalSamplesDuration: 11 }), 67); // rms 0.1
    assert.equal(soundLevelBetween(prev, { totalAudioEnergy: 1, totalSamplesDuration: 11 }), 0, 'silence');
    assert.equal(soundLevelBetween(prev, { totalAudioEnergy: 1, totalSamplesDuration: 10 }), 0, 'nothing played out');
    assert.equal(soundLevelBetween(null, { audioLevel: 0.01 }), 33);
  });

  test('published streams are measured at their source, played ones as received', () => {
    const entries = [{ type: 'media-source', kind: 'audio', id: 'src' }, { type: 'inbound-rtp', kind: 'video', id: 'v' }, { type: 'inbound-rtp', kind: 'audio', id: 'in' }];
    assert.equal(audioLevelStat('publish', entries).id, 'src');
    assert.equal(audioLevelStat('play', entries).id, 'in');
  });

  test('the interval is kept within ZEGO\'s 500–3000 ms, 1000 by default', () => {
    assert.deepEqual([undefined, 100, 700, 9000, NaN].map(soundLevelInterval), [1000, 500, 700, 3000, 1000]);
  });
});
