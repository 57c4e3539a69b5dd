// The engine's servers: one URL or a list, tried in order, failing over to the next.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serverUrls, ServerRotation } from '../src/server-list.js';

describe('server list', () => {
  test('one URL or a non-empty list of them; anything else is an invalid argument', () => {
    assert.deepEqual(serverUrls('ws://a/ws'), ['ws://a/ws']);
    assert.deepEqual(serverUrls(['ws://a/ws', 'wss://b/ws']), ['ws://a/ws', 'wss://b/ws']);
    for (const bad of [undefined, '', [], ['ws://a/ws', ''], [42], { url: 'ws://a/ws' }]) {
      assert.throws(() => serverUrls(bad), (err) => err.code === 7003, JSON.stringify(bad));
    }
  });

  test('the first server first; each failure moves to the next, after the last back to the first', () => {
    const servers = new ServerRotation(['ws://a/ws', 'ws://b/ws', 'ws://c/ws']);
    assert.equal(servers.size, 3);
    assert.equal(servers.current, 'ws://a/ws');
    assert.equal(servers.failover(), 'ws://b/ws');
    assert.equal(servers.current, 'ws://b/ws', 'the server that works stays in use');
    assert.equal(servers.failover(), 'ws://c/ws');
    assert.equal(servers.failover(), 'ws://a/ws');
  });

  test('a single server fails over to itself', () => {
    const servers = new ServerRotation(serverUrls('ws://only/ws'));
    assert.equal(servers.failover(), 'ws://only/ws');
  });
});
