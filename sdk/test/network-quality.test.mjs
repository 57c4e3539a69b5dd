// Network quality levels (ZEGO's QualityGrade) from link measurements, and the table
// behind networkQuality.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { linkLevel, worstLevel, ownLevels, sampleOfStats, NetworkBoard } from '../src/network-quality.js';

const stats = ({ loss = 0, rtt, jitter = 0 } = {}) => ({
  video: { videoPacketsLostRate: loss }, audio: { audioPacketsLostRate: 0, audioJitter: jitter }, currentRoundTripTime: rtt,
});

describe('network quality', () => {
  test('each measure has five levels with the server\'s thresholds; the worst measure wins', () => {
    assert.deepEqual([0, 0.01, 0.02, 0.05, 0.1, 0.5].map((loss) => linkLevel({ loss })), [0, 0, 1, 2, 3, 4]);
    assert.deepEqual([50, 150, 300, 600, 900].map((rttMs) => linkLevel({ rttMs })), [0, 1, 2, 3, 4]);
    assert.deepEqual([5, 30, 80, 150, 250].map((jitterMs) => linkLevel({ jitterMs })), [0, 1, 2, 3, 4]);
    assert.equal(linkLevel({ loss: 0, rttMs: 300, jitterMs: 30 }), 2);
    assert.equal(linkLevel({}), -1, 'nothing measured is unknown');
  });

  test('unknown is no information when levels are combined', () => {
    assert.equal(worstLevel(0, 3), 3);
    assert.equal(worstLevel(-1, 1), 1);
    assert.equal(worstLevel(-1, undefined), -1);
  });

  test('own levels: upstream from published streams, downstream from played ones, the worst of each', () => {
    const levels = ownLevels([
      { kind: 'publish', stats: stats({ rtt: 20 }) },
      { kind: 'publish', stats: stats({ loss: 0.05, rtt: 20 }) },
      { kind: 'play', stats: stats({ rtt: 20, jitter: 30 }) },
    ]);
    assert.deepEqual(levels, { upstream: 2, downstream: 1 });
    assert.deepEqual(ownLevels([]), { upstream: -1, downstream: -1 });
    assert.equal(sampleOfStats('publish', stats({ jitter: 300 })).jitterMs, undefined, 'a sender has no jitter of its own');
  });

  test('the report: this user first (the worse of own and server view), then every user the server told of', () => {
    const board = new NetworkBoard();
    board.apply([{ userID: 'me', upstream: 2, downstream: 0 }, { userID: 'bob', upstream: 1, downstream: 3 }, { bogus: true }]);
    assert.deepEqual(board.report('me', { upstream: 0, downstream: 1 }), [['me', 2, 1], ['bob', 1, 3]]);
    assert.deepEqual(board.report('me', { upstream: -1, downstream: -1 }), [['me', 2, 0], ['bob', 1, 3]], 'reported every round');
    board.apply([{ userID: 'bob', upstream: -1, downstream: -1 }, { userID: 'eve', upstream: 9, downstream: 'x' }]);
    assert.deepEqual(board.report('me', { upstream: 0, downstream: 0 }), [['me', 2, 0], ['bob', -1, -1], ['eve', -1, -1]]);
    assert.deepEqual(board.report('me', { upstream: 0, downstream: 0 }).map((row) => row[0]), ['me'], 'unknown users are dropped once told');
  });
});
