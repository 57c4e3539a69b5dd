// sdk/huddle-express.d.ts compiles under --strict and types the tutorial's flow (and the
// ES module entry's named exports), and ZEGO's current quick-start with the capture and
// device calls. No browser: the TypeScript compiler only.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';

const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');

describe('types', () => {
  const typeCheck = (fixture) => {
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2020', '--module', 'es2020',
        '--moduleResolution', 'node', '--lib', 'es2020,dom', new URL(fixture, import.meta.url).pathname], { encoding: 'utf8' });
    } catch (error) {
      output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
    }
    return output;
  };

  test('the tutorial flow type-checks against huddle-express.d.ts', { timeout: 60_000 }, () => {
    const output = typeCheck('./types/tutorial.ts');
    assert.equal(output, '', output);
  });

  test('ZEGO\'s quick-start (createZegoStream, playVideo) and the capture calls type-check', { timeout: 60_000 }, () => {
    const output = typeCheck('./types/zego-quickstart.ts');
    assert.equal(output, '', output);
  });

  test('ZEGO-typed media controls, reports and not-offered add-ons type-check', { timeout: 60_000 }, () => {
    const output = typeCheck('./types/media-controls.ts');
    assert.equal(output, '', output);
  });
});
