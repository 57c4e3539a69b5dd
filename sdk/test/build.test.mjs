// sdk/huddle-express.js is generated from sdk/src by scripts/build-sdk: the committed file
// must equal a fresh build, so the two cannot drift apart.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/build-sdk', import.meta.url));

describe('build', () => {
  test('the committed sdk/huddle-express.js is a fresh build of sdk/src', () => {
    const run = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
  });

  test('the build is a classic script that defines the engine', () => {
    const run = spawnSync(process.execPath, [script, '--stdout'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /^\s*(import|export)\s/m);
    const sandbox = {};
    new Function('globalThis', 'module', run.stdout)(sandbox, undefined);
    assert.equal(typeof sandbox.ZegoExpressEngine, 'function');
    assert.equal(sandbox.ZegoExpressEngine, sandbox.HuddleExpressEngine);
    const zg = new sandbox.ZegoExpressEngine(1, 'ws://127.0.0.1:1/ws');
    for (const name of ['loginRoom', 'logoutRoom', 'createStream', 'startPublishingStream', 'startPlayingStream', 'sendBroadcastMessage', 'checkSystemRequirements']) {
      assert.equal(typeof zg[name], 'function', name);
    }
    assert.equal(zg.getRoomState(), 'LOGOUT');
  });
});
