// The README's ZEGO compatibility table is what scripts/zego-compat generates from ZEGO's
// declarations and sdk/huddle-express.d.ts, and the script classifies members and events as its
// tag convention says. No browser: the TypeScript compiler's parser only.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';

const script = new URL('../../scripts/zego-compat', import.meta.url).pathname;
const { createDeclarations, compareClass, classEvents } = createRequire(import.meta.url)(script);

/** A set of in-memory .d.ts files. */
const declarationsOf = (files) => createDeclarations((name) => files[name] ?? null);

// ZEGO's side: a base class in another file (inherited members and events, as the engine
// inherits from its room client), an event map extending another, a static method.
const ZEGO = {
  'zego/base.d.ts': `
    import { BaseEvent } from './entity';
    export declare class Base {
      protected logger: unknown;
      inherited(): void;
      inheritedAbsent(): void;
      on<K extends keyof BaseEvent>(event: K, cb: BaseEvent[K]): boolean;
      static configure(options: unknown): void;
    }`,
  'zego/entity.d.ts': `
    export interface BaseEvent { roomEvent: () => void; }
    export interface EngineEvent extends BaseEvent {
      streamEvent: (id: string) => void;
      partialEvent: () => void;
      absentEvent: () => void;
    }`,
  'zego/engine.d.ts': `
    import { Base } from './base';
    import { EngineEvent as Events } from './entity';
    export declare class Engine extends Base {
      internalField: unknown;
      get active(): boolean;
      supported(a: string): void;
      partial(a: string, retain?: boolean): void;
      unsupported(): Promise<void>;
      absent(): void;
      on<K extends keyof Events>(event: K, cb: Events[K]): boolean;
    }`,
};

// Huddle's side: the class under ZEGO's name is a const of another class's type, as in
// huddle-express.d.ts; `active` is a readonly field standing in for ZEGO's getter.
const HUDDLE = {
  'huddle.d.ts': `
    export interface HuddleEvents {
      roomEvent: () => void;
      streamEvent: (id: string) => void;
      /** @zegoPartial Only for published streams. */
      partialEvent: () => void;
      huddleEvent: () => void;
    }
    export declare class HuddleEngine {
      readonly active: boolean;
      /** Does it. Then more. */
      supported(a: string): void;
      /**
       * Does it too.
       * @zegoPartial No \`retain\`: the
       *   preview goes black.
       */
      partial(a: string): void;
      /** @zegoUnsupported Needs a cloud service; resolves {errorCode: 7001}. */
      unsupported(): Promise<void>;
      inherited(): void;
      extra(): void;
      on<K extends keyof HuddleEvents>(event: K, cb: HuddleEvents[K]): boolean;
    }
    export declare const Engine: typeof HuddleEngine;`,
};

function compare(huddleFiles) {
  const zego = declarationsOf(ZEGO);
  const huddle = declarationsOf(huddleFiles);
  return compareClass(
    { declarations: zego, classRef: zego.findClass('Engine', 'zego/engine.d.ts') },
    { declarations: huddle, classRef: huddle.findClass('Engine', 'huddle.d.ts') },
    'Engine');
}

const byName = (rows) => Object.fromEntries(rows.map((r) => [r.static ? `static ${r.name}` : r.name,
  { status: r.status, note: r.note }]));

describe('zego-compat', () => {
  test('classifies members: supported, partial, unsupported, absent, inherited, getters; fields skipped', () => {
    const { methods, extraMembers } = compare(HUDDLE);
    assert.deepEqual(byName(methods), {
      inherited: { status: 'supported', note: '' },
      inheritedAbsent: { status: 'not offered', note: '' },
      on: { status: 'supported', note: '' },
      'static configure': { status: 'not offered', note: '' },
      active: { status: 'supported', note: '' },
      supported: { status: 'supported', note: 'Does it.' },
      partial: { status: 'partial', note: 'No `retain`: the preview goes black.' },
      unsupported: { status: 'not offered', note: 'Needs a cloud service; resolves {errorCode: 7001}.' },
      absent: { status: 'not offered', note: '' },
    });
    // The base class's members come first, in declaration order.
    assert.deepEqual(methods.slice(0, 4).map((m) => m.name), ['inherited', 'inheritedAbsent', 'on', 'configure']);
    assert.deepEqual(extraMembers, ['extra']);
  });

  test('classifies events: the keys of the map on() names, with what it extends', () => {
    const { events, extraEvents } = compare(HUDDLE);
    assert.deepEqual(byName(events), {
      streamEvent: { status: 'supported', note: '' },
      partialEvent: { status: 'partial', note: 'Only for published streams.' },
      absentEvent: { status: 'not offered', note: '' },
      roomEvent: { status: 'supported', note: '' },
    });
    assert.deepEqual(extraEvents, ['huddleEvent']);
  });

  test('a class Huddle lacks is not offered at all', () => {
    const { methods, events } = compare({ 'huddle.d.ts': 'export declare class Other {}' });
    assert.ok(methods.length === 9 && methods.every((m) => m.status === 'not offered'));
    assert.ok(events.length === 4 && events.every((e) => e.status === 'not offered'));
  });

  test('Huddle may declare the class as an interface extending another', () => {
    const { methods, events } = compare({ 'huddle.d.ts': `
      interface Events { roomEvent: () => void; }
      interface Room {
        inherited(): void;
        on<K extends keyof Events>(event: K, cb: Events[K]): boolean;
      }
      export interface Engine extends Room {
        /** @zegoPartial Only strings. */
        partial(a: string): void;
        readonly active: boolean;
      }` });
    const offered = methods.filter((m) => m.status !== 'not offered').map((m) => `${m.name} ${m.status}`);
    assert.deepEqual(offered, ['inherited supported', 'on supported', 'active supported', 'partial partial']);
    assert.deepEqual(events.filter((e) => e.status !== 'not offered').map((e) => e.name), ['roomEvent']);
  });

  test('a tag without a note, both tags, or an on() it cannot read are errors', () => {
    const withDoc = (doc) => ({ 'huddle.d.ts': `export declare class Engine {\n${doc}\nsupported(): void; }` });
    assert.throws(() => compare(withDoc('/** @zegoPartial */')), /Engine\.supported: @zegoPartial needs a note/);
    assert.throws(() => compare(withDoc('/** @zegoPartial a\n @zegoUnsupported b */')), /both @zegoPartial and @zegoUnsupported/);
    const huddle = declarationsOf({ 'huddle.d.ts': 'export declare class Engine { on(event: string, cb: () => void): boolean; }' });
    assert.throws(() => classEvents(huddle, huddle.findClass('Engine', 'huddle.d.ts')), /Engine\.on\(\) is not typed/);
  });

  test('README.md has the table scripts/zego-compat generates (--check)', () => {
    const run = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /ZegoExpressEngine methods: \d+ \(\d+ instance, \d+ static\); \d+ supported/);
  });
});
