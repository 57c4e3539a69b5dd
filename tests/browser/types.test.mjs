// sdk/huddle-express.d.ts compiles under --strict and types the tutorial's flow (and the
// ES module entry's named exports). No browser: the TypeScript compiler only.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';

const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');

describe('types', () => {
  test('the tutorial flow and ZEGO-typed media controls type-check against huddle-express.d.ts', { timeout: 60_000 }, () => {
    const fixtures = ['tutorial.ts', 'media-controls.ts'].map((name) => new URL(`./types/${name}`, import.meta.url).pathname);
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2020', '--module', 'es2020',
        '--moduleResolution', 'node', '--lib', 'es2020,dom', ...fixtures], { encoding: 'utf8' });
    } catch (error) {
      output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
    }
    assert.equal(output, '', output);
  });
});
