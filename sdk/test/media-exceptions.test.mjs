// exceptionUpdate: a stream that stops sending or decoding media it should, and its recovery.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exceptionChanges } from '../src/media-exceptions.js';

const sent = (fps, kbps, audioKbps) => ({ video: { videoTransferFPS: fps, videoBitrate: kbps }, audio: { audioBitrate: audioKbps } });
const decoded = (fps) => ({ video: { videoFPS: fps }, audio: {} });
const both = { audio: true, video: true };

describe('media exceptions', () => {
  test('a publisher that stops sending video: 1004 and 1003 once, 2004 and 2003 when it sends again', () => {
    const active = new Set();
    assert.deepEqual(exceptionChanges('publish', active, sent(15, 500, 30), both), []);
    assert.deepEqual(exceptionChanges('publish', active, sent(0, 1, 30), both).map((c) => c.code), [1004, 1003]);
    assert.deepEqual(exceptionChanges('publish', active, sent(0, 1, 30), both), [], 'told once');
    assert.deepEqual(exceptionChanges('publish', active, sent(12, 400, 30), both).map((c) => c.code), [2004, 2003]);
  });

  test('a player that decodes no video: 1009, then 2009', () => {
    const active = new Set();
    const [start] = exceptionChanges('play', active, decoded(0), both);
    assert.equal(start.code, 1009);
    assert.equal(typeof start.message, 'string');
    assert.deepEqual(exceptionChanges('play', active, decoded(14), both).map((c) => c.code), [2009]);
  });

  test('muted media is not expected: no exception, and one in progress ends quietly', () => {
    const active = new Set();
    exceptionChanges('publish', active, sent(0, 0, 0), both);
    assert.equal(active.size, 3);
    assert.deepEqual(exceptionChanges('publish', active, sent(0, 0, 0), { audio: false, video: false }), []);
    assert.equal(active.size, 0);
    assert.deepEqual(exceptionChanges('play', new Set(), decoded(0), { audio: true, video: false }), []);
  });
});
