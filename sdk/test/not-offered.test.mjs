// ZEGO features Huddle does not offer: every method of the table exists on the engine,
// answers in the shape ZEGO declares for it with NOT_OFFERED (7011), and the first call of
// each feature logs one warning naming the feature.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { HuddleExpressEngine } from '../src/engine.js';
import '../src/index.js';
import { NOT_OFFERED_FEATURES, NotOffered } from '../src/feature-unsupported.js';

let warnings;
const originalWarn = console.warn;
beforeEach(() => {
  warnings = [];
  console.warn = (...args) => warnings.push(args.join(' '));
});
afterEach(() => {
  console.warn = originalWarn;
});

async function answerOf(call) {
  try {
    const value = call();
    if (value && typeof value.then === 'function') {
      try {
        return { resolved: await value };
      } catch (err) {
        return { rejected: err };
      }
    }
    return { returned: value };
  } catch (err) {
    return { threw: err };
  }
}

describe('not offered', () => {
  test('each method answers its declared shape', async () => {
    const expected = {
      [NotOffered.RESPONSE]: (a, method) => a.resolved && a.resolved.errorCode === 7011 && a.resolved.extendedData.startsWith(`${method}:`),
      [NotOffered.RESOLVE_FALSE]: (a) => 'resolved' in a && a.resolved === false,
      [NotOffered.FALSE]: (a) => 'returned' in a && a.returned === false,
      [NotOffered.NOTHING]: (a) => 'returned' in a && a.returned === undefined,
      [NotOffered.REJECT]: (a) => a.rejected && a.rejected.code === 7011,
      [NotOffered.THROW]: (a) => a.threw && a.threw.code === 7011,
    };
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    let count = 0;
    for (const { methods } of NOT_OFFERED_FEATURES) {
      for (const [method, answer] of Object.entries(methods || {})) {
        assert.equal(typeof zg[method], 'function', method);
        const result = await answerOf(() => zg[method]({}, true));
        assert.ok(expected[answer](result, method), `${method} answers ${answer}: ${JSON.stringify(result)}`);
        count++;
      }
    }
    assert.ok(count >= 40, `${count} methods`);
  });

  test('the first call of each feature logs once, naming the feature', async () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    await zg.enableAiDenoise({}, true);
    await zg.setAiDenoiseMode({}, 1);
    await zg.enableAiDenoise({}, false);
    zg.sendSEI('s', new Uint8Array(1));
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0], /enableAiDenoise: Huddle does not offer AI noise suppression/);
    assert.match(warnings[1], /sendSEI: Huddle does not offer SEI/);
    const other = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    await other.setAiDenoiseMode({}, 1);
    assert.equal(warnings.length, 3, 'once per engine');
  });

  test('each static answers its declared shape on the class, and logs once per feature', async () => {
    let count = 0;
    for (const { statics } of NOT_OFFERED_FEATURES) {
      for (const [method, answer] of Object.entries(statics || {})) {
        assert.equal(typeof HuddleExpressEngine[method], 'function', method);
        assert.equal(answer, NotOffered.NOTHING, `${method}: ZEGO declares it void`);
        assert.equal(HuddleExpressEngine[method]({}, []), undefined, method);
        count++;
      }
    }
    assert.equal(count, 5, 'use, setGeoFence, setEngineOptions, setCloudProxyConfig, setLocalProxyConfig');
    HuddleExpressEngine.setGeoFence(1, [2]);
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0], /use: Huddle does not offer ZEGO plugin modules/);
    assert.match(warnings[1], /setGeoFence: .*self-hosted/);
  });

  test('the newer not-offered members answer as ZEGO declares them', async () => {
    const zg = new HuddleExpressEngine(1, 'ws://127.0.0.1:1/ws');
    assert.equal(zg.enableMultiRoom(true), false);
    const sent = await zg.sendTransparentMessage('r', { sendMode: 0, sendType: 0, content: new Uint8Array(1), recvUserList: [] });
    assert.equal(sent.errorCode, 7011);
    assert.match(sent.extendedData, /^sendTransparentMessage: Huddle does not offer transparent messages/);
    await assert.rejects(zg.getElectronScreenSources(), (err) => err.code === 7011);
    await assert.rejects(zg.callExperimentalAPI({ method: 'x' }), (err) => err.code === 7011);
    assert.equal(await zg.setDummyCaptureImagePath('https://example.com/a.png', {}), false);
    assert.equal(warnings.length, 5, warnings.join('\n'));
    assert.match(warnings.join('\n'), /camera is off/);
  });
});

describe('engine options', () => {
  test('the server may be a list; ZEGO\'s options are accepted', () => {
    const zg = new HuddleExpressEngine(1, ['ws://a/ws', 'ws://b/ws'], { scenario: 3 });
    assert.equal(zg.server, 'ws://a/ws');
    assert.deepEqual(zg.servers, ['ws://a/ws', 'ws://b/ws']);
    assert.throws(() => new HuddleExpressEngine(1, []), (err) => err.code === 7003);
  });

  test('setLogConfig: ZEGO\'s levels; remote logging is refused once, aloud', () => {
    const zg = new HuddleExpressEngine(1, 'ws://a/ws');
    assert.equal(zg.setLogConfig({ logLevel: 'info' }), true);
    assert.equal(zg._logger.level, 'info');
    assert.equal(zg.setLogConfig({ logLevel: 'report' }), true);
    assert.equal(zg._logger.level, 'disable');
    assert.equal(zg.setLogConfig({ logLevel: 'loud' }), false);
    assert.equal(zg._logger.level, 'disable', 'unchanged');
    zg.setLogConfig({ logLevel: 'warn', remoteLogLevel: 'info', logURL: 'https://logs.example.com' });
    zg.setLogConfig({ logLevel: 'warn', logURL: 'https://logs.example.com' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /does not upload logs/);
  });
});
