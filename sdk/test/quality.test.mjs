// Quality records from WebRTC statistics (no browser: statistics entries as getStats gives them).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { qualityFromStats, qualityGrade } from '../src/quality.js';

const codec = { type: 'codec', id: 'c1', mimeType: 'video/VP8' };
const pair = { type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.012 };

describe('quality', () => {
  test('grades follow the loss rate', () => {
    assert.deepEqual([0, 0.02, 0.05, 0.1, 0.5].map(qualityGrade), [0, 1, 2, 3, 4]);
  });

  test('the first sample has no rates; the second gives bitrate, fps and loss', () => {
    const first = qualityFromStats('play', [codec, pair,
      { type: 'inbound-rtp', kind: 'video', codecId: 'c1', bytesReceived: 0, framesDecoded: 0, packetsReceived: 0, packetsLost: 0 },
      { type: 'inbound-rtp', kind: 'audio', bytesReceived: 0, packetsReceived: 0 }], null, 1000);
    assert.equal(first.stats, null);
    assert.equal(first.record.video.googCodecName, 'VP8');
    const second = qualityFromStats('play', [codec, pair,
      { type: 'inbound-rtp', kind: 'video', codecId: 'c1', bytesReceived: 125000, framesDecoded: 30, packetsReceived: 95, packetsLost: 5, frameWidth: 640, frameHeight: 480 },
      { type: 'inbound-rtp', kind: 'audio', bytesReceived: 6000, packetsReceived: 50, jitter: 0.004 }], first.counters, 2000);
    const { video, audio } = second.stats;
    assert.equal(video.videoBitrate, 1000);
    assert.equal(video.videoFPS, 30);
    assert.equal(video.videoPacketsLostRate, 0.05);
    assert.equal(video.videoQuality, 2);
    assert.equal(video.frameWidth, 640);
    assert.equal(video.videoFramesDecoded, 30);
    assert.equal(audio.audioBitrate, 48);
    assert.equal(audio.audioJitter, 4);
    assert.equal(second.stats.currentRoundTripTime, 12);
  });

  test('publishing: loss from the relay\'s receiver report, mute state from the page', () => {
    const prev = qualityFromStats('publish', [{ type: 'outbound-rtp', kind: 'video', bytesSent: 0 }], null, 0).counters;
    const { stats } = qualityFromStats('publish', [
      { type: 'outbound-rtp', kind: 'video', bytesSent: 1000 },
      { type: 'remote-inbound-rtp', kind: 'video', fractionLost: 0.25 },
    ], prev, 1000, { audio: true, video: false });
    assert.equal(stats.video.videoPacketsLostRate, 0.25);
    assert.equal(stats.video.videoQuality, 4);
    assert.equal(stats.video.muteState, '0');
    assert.equal(stats.audio.muteState, '1');
    assert.equal('videoFramesDecoded' in stats.video, false);
  });
});
