// Dual streams (simulcast): the encodings a publisher sends, what the page's settings become,
// and setPlayStreamVideoType's answers before anything plays. The relay's side is tested in
// Rust (src/relay) and with Chromium (tests/browser/simulcast.test.mjs).

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { HuddleExpressEngine } from '../src/engine.js';
import '../src/index.js';
import { dualStreamEncodings } from '../src/feature-simulcast.js';

let warnings;
const originalWarn = console.warn;
beforeEach(() => {
  warnings = [];
  console.warn = (...args) => warnings.push(args.join(' '));
});
afterEach(() => {
  console.warn = originalWarn;
});

const track = (width, height) => ({ kind: 'video', getSettings: () => ({ width, height }) });

describe('dual streams', () => {
  test('the small layer is scaled from the captured size; the big one keeps the stream bitrate', () => {
    assert.deepEqual(dualStreamEncodings(track(1280, 720), { width: 320, frameRate: 15, bitRate: 150 }, 1500), [
      { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000, maxFramerate: 15 },
      { rid: 'h', maxBitrate: 1_500_000 },
    ]);
    // By height when only the height is given; never scaled up; halved when the size is unknown.
    assert.equal(dualStreamEncodings(track(640, 360), { height: 180 }, 0)[0].scaleResolutionDownBy, 2);
    assert.equal(dualStreamEncodings(track(160, 120), { width: 320 }, 0)[0].scaleResolutionDownBy, 1);
    assert.equal(dualStreamEncodings({}, { width: 320 }, 0)[0].scaleResolutionDownBy, 2);
    assert.deepEqual(dualStreamEncodings(track(640, 480), { width: 320 }, 0)[1], { rid: 'h' });
  });

  test('enableDualStream and setLowStreamParameter mark the stream for its publisher', () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    const stream = {};
    zg._mediaStreamOf = (local) => local; // no browser here: the object stands for its MediaStream
    assert.equal(zg._dualStreamOf(stream), undefined);
    zg.enableDualStream(stream);
    assert.deepEqual(zg._dualStreamOf(stream), { width: 320, frameRate: 15, bitRate: 150 });
    zg.setLowStreamParameter(stream, { width: 160, height: 90, frameRate: 10, bitRate: 80 });
    assert.deepEqual(zg._dualStreamOf(stream), { width: 160, height: 90, frameRate: 10, bitRate: 80 });
    zg.setLowStreamParameter(stream, { width: -1, height: 'x', frameRate: 0 });
    assert.deepEqual(zg._dualStreamOf(stream), { width: 320, height: undefined, frameRate: 15, bitRate: 150 });
    zg.enableDualStream(stream);
    assert.equal(zg._dualStreamOf(stream).width, 320, 'enabling again keeps the parameters');
    assert.equal(warnings.length, 0, warnings.join('\n'));
  });

  test('setPlayStreamVideoType resolves false for a stream not played or an unknown type', async () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    assert.equal(await zg.setPlayStreamVideoType('s', 0), false);
    assert.equal(await zg.setPlayStreamVideoType('s', 7), false);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /s is not being played/);
    assert.match(warnings[1], /unknown stream type 7/);
    // A stream being set up takes the choice once its relay session is up.
    zg._media.players.set('s', { streamID: 's', sessionUrl: null });
    assert.equal(await zg.setPlayStreamVideoType('s', 0), true);
    assert.equal(zg._playLayers.get('s'), 'low');
  });
});
