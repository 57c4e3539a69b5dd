// Shared harness of the Chromium end-to-end tests: the real `huddle` binary, one Chromium
// (playwright-core driving Debian's Chromium), pages with the SDK loaded and every SDK event
// recorded, a TCP proxy that can cut websockets, and a static server on another origin.
//
// One test file = one server + one browser (see `setup`); each test opens its own pages
// (browser contexts) and they are closed after the test, so at most a handful run at once.
//
// HUDDLE_BIN overrides the server binary (default target/debug/huddle);
// HUDDLE_E2E_DEBUG=1 streams the pages' console and the server's log to stderr (HUDDLE_E2E_LOG
// sets the server's log filter, default `warn`);
// HUDDLE_E2E_SDK_FILE=sdk/huddle-express.js answers the pages' requests for Huddle's
// /sdk/huddle-express.js with that file instead (to try SDK edits without rebuilding).

import { spawn, execFile, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const execFileAsync = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const huddleBin = process.env.HUDDLE_BIN || path.join(repoRoot, 'target/debug/huddle');
const debug = !!process.env.HUDDLE_E2E_DEBUG;
const sdkFile = process.env.HUDDLE_E2E_SDK_FILE ? path.resolve(repoRoot, process.env.HUDDLE_E2E_SDK_FILE) : null;

/** Generous ceiling for anything a test waits for (events, media). */
export const WAIT_MS = 15_000;

/** Every SDK event of DESIGN.md "Browser SDK"; the pages record each of them. */
export const SDK_EVENTS = [
  'roomStateChanged', 'roomUserUpdate', 'roomStreamUpdate', 'publisherStateUpdate',
  'playerStateUpdate', 'publishQualityUpdate', 'playQualityUpdate', 'IMRecvBroadcastMessage',
  'IMRecvBarrageMessage', 'IMRecvCustomCommand', 'roomExtraInfoUpdate', 'streamExtraInfoUpdate',
  'roomOnlineUserCountUpdate', 'tokenWillExpire',
];

let uniqueCounter = 0;
/** A fresh id with a readable prefix (stream ids are unique per app, across rooms). */
export function uid(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}-${randomBytes(3).toString('hex')}`;
}

/** Polls `fn` (sync or async) until it returns a truthy value, which it returns. */
export async function waitFor(fn, { timeout = WAIT_MS, interval = 100, what = 'condition', detail } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) {
      const extra = detail ? `\n${await detail()}` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${extra}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens

function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** Signs a Huddle user token (JWT HS256, `kid` = app id) as src/auth/token.rs does. */
export function signToken({ appId, secret, userId, roomId, iat, exp, publish = true }) {
  const now = Math.floor(Date.now() / 1000);
  iat ??= now;
  exp ??= iat + 3600;
  const claims = {
    iss: 'huddle', appId, userId, ...(roomId ? { roomId } : {}),
    privileges: { loginRoom: true, publishStream: publish },
    iat, nbf: iat, exp, jti: randomBytes(16).toString('hex'),
  };
  const head = `${b64url({ alg: 'HS256', typ: 'JWT', kid: String(appId) })}.${b64url(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * Starts `huddle serve` on a free port with a SQLite database of its own and dev mode on.
 * Before it starts, an extra app with a known secret is created through the CLI
 * (`huddle.testApp`), so tests can sign tokens of their own (expired, other room…).
 */
export async function startHuddle({ args = [], env = {}, httpAddr = '127.0.0.1:0' } = {}) {
  if (!existsSync(huddleBin)) throw new Error(`${huddleBin} is missing: run cargo build first`);
  const dir = mkdtempSync(path.join(tmpdir(), 'huddle-e2e-'));
  const databaseUrl = `sqlite://${dir}/huddle.db`;
  // No drain on SIGTERM unless a test asks for one (`env`): stopping a test's server is immediate.
  const childEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? dir, HUDDLE_DATA_DIR: dir, HUDDLE_DRAIN_TIMEOUT_MS: '0', ...env };
  const testApp = { appId: 424242, secret: randomBytes(32).toString('hex') };
  execFileSync(huddleBin, ['app', 'create', '--database-url', databaseUrl, '--name', 'e2e',
    '--app-id', String(testApp.appId), '--secret', testApp.secret], { env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] });

  const log = [];
  const remember = (line) => {
    log.push(line);
    if (log.length > 200) log.shift();
    if (debug) process.stderr.write(`[huddle] ${line}\n`);
  };
  /** Spawns `huddle serve` on `httpAddr`; resolves with the child and its base URL once it listens. */
  async function spawnServer(httpAddr) {
    const child = spawn(huddleBin, ['serve', '--http-addr', httpAddr, '--http-workers', '2', '--dev',
      '--database-url', databaseUrl, '--log', process.env.HUDDLE_E2E_LOG || 'warn', ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const killOnExit = () => child.kill('SIGKILL');
    process.on('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    readline.createInterface({ input: child.stderr }).on('line', remember);
    const lines = readline.createInterface({ input: child.stdout });
    const base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`huddle did not start in 20 s:\n${log.join('\n')}`)), 20_000);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`huddle exited (${code}) before listening:\n${log.join('\n')}`)); });
      lines.on('line', (line) => {
        const match = /^huddle listening on (http:\/\/\S+)/.exec(line);
        // Bound to every interface: this machine's pages use the loopback address.
        if (match) { clearTimeout(timer); resolve(match[1].replace(/\/$/, '').replace('//0.0.0.0:', '//127.0.0.1:')); } else remember(line);
      });
    });
    return { child, base };
  }
  async function stopChild(signal) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  let { child, base } = await spawnServer(httpAddr);
  const port = Number(new URL(base).port);

  return {
    base,
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    devAppId: 1,
    testApp,
    databaseUrl,
    log: () => log.join('\n'),
    /**
     * Runs the admin CLI, `huddle rooms ARGS --json`, against this server: a signed POST to
     * `/v1/rooms/…` with the app's secret read from the store. Resolves to the API's answer.
     */
    async rooms(args) {
      const { stdout } = await execFileAsync(huddleBin, ['rooms', ...args, '--database-url', databaseUrl,
        '--server', base, '--json'], { env: childEnv });
      return JSON.parse(stdout);
    },
    /** GET /dev/token: a login-and-publish token of the dev app, bound to `roomId`. */
    async devToken(userId, roomId) {
      const query = new URLSearchParams({ userId, ...(roomId ? { roomId } : {}) });
      const response = await fetch(`${base}/dev/token?${query}`);
      if (!response.ok) throw new Error(`/dev/token: ${response.status} ${await response.text()}`);
      return response.json();
    },
    /**
     * Kills the process (SIGKILL: a crash, nothing cleaned up) and starts a new one on the
     * same port with the same database: clients see their websocket and media drop.
     */
    async restart() {
      await stopChild('SIGKILL');
      ({ child } = await spawnServer(`127.0.0.1:${port}`));
    },
    /** Sends `signal` to the server process (SIGTERM: it drains, then exits). */
    signal(signal) {
      child.kill(signal);
    },
    /** Resolves with the exit code once the process has exited. */
    exited() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    },
    /**
     * Another worker: a second `huddle serve` on the same database and settings (with Redis in
     * `args`, the two share rooms). Resolves to `{base, port, signal, stop}`.
     */
    async spawnWorker() {
      const worker = await spawnServer('127.0.0.1:0');
      return {
        base: worker.base,
        port: Number(new URL(worker.base).port),
        signal: (name) => worker.child.kill(name),
        async stop() {
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
          const exited = new Promise((resolve) => worker.child.once('exit', resolve));
          worker.child.kill('SIGKILL');
          await exited;
        },
      };
    },
    async stop() {
      await stopChild('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy whose connections can be cut (the browser sees its websocket drop)

/**
 * `target`: the port to forward to, or a function that picks one for each new connection
 * (`null`: refuse it), as a load balancer does.
 */
export async function startProxy(target) {
  const pick = typeof target === 'function' ? target : () => target;
  const live = new Set();
  let accepted = 0;
  let refuseUntil = 0;
  let refused = 0;
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      refused += 1;
      client.destroy();
      return;
    }
    const port = pick();
    if (!port) {
      refused += 1;
      client.destroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect(port, '127.0.0.1');
    const pair = { client, upstream };
    live.add(pair);
    const end = () => { client.destroy(); upstream.destroy(); live.delete(pair); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    /** Connections accepted so far. */
    get accepted() { return accepted; },
    get liveCount() { return live.size; },
    /** Connections refused so far (see `refuseFor`). */
    get refused() { return refused; },
    /** Drops every new connection for `ms` (the server looks unreachable). */
    refuseFor(ms) { refuseUntil = Date.now() + ms; },
    /** Destroys every live connection at once (both directions). */
    cutAll() {
      const count = live.size;
      for (const { client, upstream } of [...live]) { client.destroy(); upstream.destroy(); }
      live.clear();
      return count;
    },
    close: () => new Promise((resolve) => { for (const { client, upstream } of live) { client.destroy(); upstream.destroy(); } server.close(resolve); }),
  };
}

// ---------------------------------------------------------------------------------------------
// A static server on another origin: a blank page that loads the SDK from Huddle

function blankPage(huddleBase, title) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head>
<body><div id="views"></div><script src="${huddleBase}/sdk/huddle-express.js"></script></body></html>`;
}

/**
 * Serves /blank.html, which loads the SDK from `huddleBase` (set it once Huddle runs).
 * Reachable as `origin` (http://127.0.0.1:PORT) and as `strangerOrigin` (http://localhost:PORT),
 * two origins other than Huddle's.
 */
export async function startStaticServer(huddleBase) {
  /** `pages`: more pages to serve, path → HTML (a page that runs on its own, with no test script in it). */
  const site = { huddleBase, pages: new Map() };
  const server = http.createServer((request, response) => {
    const extra = site.pages.get(new URL(request.url, 'http://x').pathname);
    if (extra) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(extra);
    } else if (request.url.startsWith('/blank.html')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(blankPage(site.huddleBase, 'e2e (other origin)'));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return Object.assign(site, {
    origin: `http://127.0.0.1:${port}`,
    strangerOrigin: `http://localhost:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  });
}

// ---------------------------------------------------------------------------------------------
// Chromium

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

export function chromiumPath() {
  for (const candidate of ['/usr/lib/chromium/chromium', '/usr/bin/chromium']) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('Chromium is missing: run scripts/browser-deps');
}

/**
 * One Chromium with the flags above plus `extraArgs` (e.g. an autoplay policy); with `netns`,
 * run inside that network namespace (`ip netns exec`, root needed).
 */
export function launchBrowser(extraArgs = [], { netns } = {}) {
  const args = [...CHROMIUM_ARGS, ...extraArgs];
  if (!netns) return chromium.launch({ executablePath: chromiumPath(), headless: false, args });
  // playwright talks to Chromium over inherited pipes, which `ip netns exec` passes on.
  const dir = mkdtempSync(path.join(tmpdir(), 'huddle-netns-chromium-'));
  const wrapper = path.join(dir, 'chromium');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${netns} ${chromiumPath()} "$@"\n`, { mode: 0o755 });
  return chromium.launch({ executablePath: wrapper, headless: false, args });
}

// Runs in every page before any of its scripts: records peer connections and offers helpers
// that tests call through page.evaluate (window.__e2e).
function pageInit(sdkEvents) {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  if (Native) {
    class RecordedPeerConnection extends Native {
      constructor(...args) {
        super(...args);
        window.__pcs.push(this);
      }
    }
    window.RTCPeerConnection = RecordedPeerConnection;
    if (window.webkitRTCPeerConnection) window.webkitRTCPeerConnection = RecordedPeerConnection;
  }
  window.__events = [];
  const plain = (value, depth = 0) => {
    if (value === null || typeof value !== 'object') return typeof value === 'function' ? '[function]' : value;
    if (depth > 6) return '[deep]';
    if (Array.isArray(value)) return value.map((item) => plain(item, depth + 1));
    if (typeof MediaStream !== 'undefined' && value instanceof MediaStream) return { mediaStream: value.id };
    if (value instanceof Error) return { error: String(value) };
    const out = {};
    for (const key of Object.keys(value)) out[key] = plain(value[key], depth + 1);
    return out;
  };
  const remotes = {};
  const findVideo = (container) => container && (container.tagName === 'VIDEO' ? container : container.querySelector('video'));
  window.__e2e = {
    /** Creates the engine as `window.zg` and records all its events in window.__events. */
    init(appID, server) {
      const Engine = window.ZegoExpressEngine || window.HuddleExpressEngine;
      if (!Engine) throw new Error('the SDK did not define ZegoExpressEngine');
      const zg = new Engine(appID, server);
      for (const name of sdkEvents) {
        zg.on(name, (...args) => window.__events.push({ name, args: plain(args), t: Date.now() }));
      }
      window.zg = zg;
      return true;
    },
    viewOf(id) {
      let div = document.getElementById(`view-${id}`);
      if (!div) {
        div = document.createElement('div');
        div.id = `view-${id}`;
        (document.getElementById('views') || document.body).appendChild(div);
      }
      return div;
    },
    /** Plays a remote stream into #view-<streamID> through the SDK's remote view. */
    async play(streamID) {
      const remote = await window.zg.startPlayingStream(streamID);
      if (!(remote instanceof MediaStream)) throw new Error(`startPlayingStream returned ${String(remote)}`);
      remotes[streamID] = remote;
      const div = window.__e2e.viewOf(streamID);
      window.zg.createRemoteStreamView(remote).play(div.id, { enableAutoplayDialog: false });
      return { tracks: remote.getTracks().map((t) => t.kind) };
    },
    /** Camera (fake device) or a canvas showing `label`, published as `streamID`. */
    async publish(streamID, { source = 'camera', label = streamID } = {}) {
      let stream;
      if (source === 'canvas') {
        const canvas = document.createElement('canvas');
        canvas.width = 320;
        canvas.height = 240;
        const g = canvas.getContext('2d');
        let frame = 0;
        setInterval(() => {
          frame += 1;
          g.fillStyle = `hsl(${(frame * 7) % 360} 60% 40%)`;
          g.fillRect(0, 0, canvas.width, canvas.height);
          g.fillStyle = '#fff';
          g.font = '32px sans-serif';
          g.fillText(`${label} ${frame}`, 10, 120);
        }, 33);
        const source = canvas.captureStream(30);
        stream = await window.zg.createStream({ custom: { source } });
      } else {
        stream = await window.zg.createStream({ camera: { audio: true, video: true } });
      }
      window.__local = window.__local || {};
      window.__local[streamID] = stream;
      const started = window.zg.startPublishingStream(streamID, stream);
      return { started: started === undefined ? null : !!(await started) };
    },
    /**
     * Receive statistics of a played stream: inbound-rtp of the receivers carrying its
     * tracks (any peer connection), and the size of its <video> element.
     */
    async stats(streamID) {
      const remote = remotes[streamID];
      const el = findVideo(document.getElementById(`view-${streamID}`));
      const out = { matched: 0, framesDecoded: 0, frameWidth: 0, audioPackets: 0,
        videoWidth: el ? el.videoWidth : -1, paused: el ? el.paused : null,
        live: remote ? remote.getTracks().map((t) => `${t.kind}:${t.readyState}`) : [] };
      if (!remote) return out;
      const tracks = remote.getTracks();
      for (const pc of window.__pcs) {
        if (pc.connectionState === 'closed') continue;
        for (const receiver of pc.getReceivers()) {
          if (!receiver.track || !tracks.some((t) => t === receiver.track || t.id === receiver.track.id)) continue;
          out.matched += 1;
          (await receiver.getStats()).forEach((s) => {
            if (s.type !== 'inbound-rtp') return;
            if (s.kind === 'video') {
              out.framesDecoded += s.framesDecoded || 0;
              out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
            } else if (s.kind === 'audio') {
              out.audioPackets += s.packetsReceived || 0;
            }
          });
        }
      }
      return out;
    },
    /** inbound-rtp totals over all peer connections and the sizes of all <video>s in `root`. */
    async allStats(selector = 'body') {
      const out = { framesDecoded: 0, audioPackets: 0, videos: [] };
      for (const pc of window.__pcs) {
        if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
          if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
        });
      }
      const root = document.querySelector(selector) || document.body;
      out.videos = [...root.querySelectorAll('video')].map((v) => ({ width: v.videoWidth, paused: v.paused }));
      return out;
    },
    pcStates: () => window.__pcs.map((pc) => `${pc.connectionState}/${pc.iceConnectionState}`),
  };
}

/** A user: one browser context + page with the SDK loaded and an engine created. */
export class User {
  constructor(env, context, page, name) {
    this.env = env;
    this.context = context;
    this.page = page;
    this.name = name;
    this.console = [];
    page.on('console', (message) => this.#note(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => this.#note(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => this.#note(`requestfailed: ${request.url()} ${request.failure()?.errorText}`));
  }

  #note(line) {
    this.console.push(line);
    if (this.console.length > 300) this.console.shift();
    if (debug) process.stderr.write(`[${this.name}] ${line}\n`);
  }

  evaluate(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  /** All recorded SDK events (optionally of one name): [{name, args, t}]. */
  async events(name) {
    const all = await this.page.evaluate(() => window.__events);
    return name ? all.filter((e) => e.name === name) : all;
  }

  /** Number of recorded events: a mark to look only at later events with `eventsSince`. */
  async mark() {
    return this.page.evaluate(() => window.__events.length);
  }

  async eventsSince(mark, name) {
    const all = await this.page.evaluate((from) => window.__events.slice(from), mark);
    return name ? all.filter((e) => e.name === name) : all;
  }

  /** Text for failure messages: recorded events and the page's console. */
  async describe() {
    let events = '(page gone)';
    try {
      events = (await this.events()).filter((e) => !/QualityUpdate$/.test(e.name))
        .map((e) => `  ${e.name} ${JSON.stringify(e.args)}`).join('\n');
    } catch { /* page closed */ }
    return `-- ${this.name}: events\n${events}\n-- ${this.name}: console\n${this.console.map((l) => `  ${l}`).join('\n')}`;
  }

  /** Waits for an event named `name` (after `since`, a mark) whose args satisfy `predicate`. */
  async waitEvent(name, predicate = () => true, { since = 0, timeout = WAIT_MS } = {}) {
    return waitFor(async () => (await this.eventsSince(since, name)).find((e) => predicate(...e.args)), {
      timeout, what: `${this.name}: event ${name} ${predicate.toString().slice(0, 120)}`,
      detail: () => this.describe(),
    });
  }

  /** loginRoom with a dev token (or `token`); resolves to loginRoom's result. */
  async login(roomID, { userID = this.name, userName = userID, userUpdate = true, token } = {}) {
    token ??= (await this.env.huddle.devToken(userID, roomID)).token;
    return this.page.evaluate(({ roomID, token, userID, userName, userUpdate }) =>
      window.zg.loginRoom(roomID, token, { userID, userName }, { userUpdate }),
    { roomID, token, userID, userName, userUpdate });
  }

  async publish(streamID, options) {
    return this.page.evaluate(([id, opts]) => window.__e2e.publish(id, opts), [streamID, options ?? {}]);
  }

  async play(streamID) {
    return this.page.evaluate((id) => window.__e2e.play(id), streamID);
  }

  async stats(streamID) {
    return this.page.evaluate((id) => window.__e2e.stats(id), streamID);
  }

  /**
   * Asserts that `streamID` plays here: its <video> has a size, its video decoder keeps
   * producing frames (framesDecoded rises by 15+ after the first frames), audio packets arrive.
   */
  async expectMedia(streamID, { audio = true } = {}) {
    const describe = async () => `stats ${JSON.stringify(await this.stats(streamID))}; pcs ${JSON.stringify(await this.evaluate(() => window.__e2e.pcStates()))}\n${await this.describe()}`;
    const first = await waitFor(async () => {
      const s = await this.stats(streamID);
      return s.framesDecoded > 0 && s.videoWidth > 0 && s;
    }, { timeout: 20_000, what: `${this.name}: first decoded frames of ${streamID}`, detail: describe });
    await waitFor(async () => (await this.stats(streamID)).framesDecoded >= first.framesDecoded + 15,
      { timeout: 10_000, what: `${this.name}: ${streamID} framesDecoded to keep rising past ${first.framesDecoded}`, detail: describe });
    if (audio) {
      await waitFor(async () => (await this.stats(streamID)).audioPackets > 0,
        { timeout: 10_000, what: `${this.name}: audio packets of ${streamID}`, detail: describe });
    }
    return this.stats(streamID);
  }

  close() {
    return this.context.close().catch(() => {});
  }
}

/**
 * Per test file: a server (optionally behind a cutting proxy), a static server on another
 * origin and one Chromium. Call `await env.start()` in `before`, `env.closeUsers()` in
 * `afterEach` and `env.stop()` in `after`.
 */
export class Env {
  /**
   * `allowOtherOrigin`: start Huddle with `--allowed-origins` naming only the static server's
   * 127.0.0.1 origin (its localhost origin then stays refused).
   */
  constructor({ serverArgs = [], serverEnv = {}, proxy = false, allowOtherOrigin = false, browserArgs = [], httpAddr } = {}) {
    this.options = { serverArgs, serverEnv, proxy, allowOtherOrigin, browserArgs, httpAddr };
    this.users = [];
  }

  async start() {
    this.other = await startStaticServer();
    const args = [...this.options.serverArgs];
    if (this.options.allowOtherOrigin) args.push('--allowed-origins', this.other.origin);
    this.huddle = await startHuddle({ args, env: this.options.serverEnv, httpAddr: this.options.httpAddr });
    this.other.huddleBase = this.huddle.base;
    if (this.options.proxy) this.proxy = await startProxy(this.huddle.port);
    this.browser = await launchBrowser(this.options.browserArgs);
  }

  /**
   * Opens a page with the SDK and an engine. `origin`: 'huddle' (a blank page on Huddle's own
   * origin), 'other' (the static server's 127.0.0.1 origin) or 'stranger' (its localhost one).
   * `server`: the SDK's websocket URL (default Huddle's; `env.proxy.wsUrl` to go through the proxy).
   * `browser` and `base`: another Chromium (one in a network namespace) and the URL it reaches
   * Huddle at (then `server` defaults to that base's websocket).
   */
  async openUser(name, { origin = 'huddle', base = this.huddle.base, server, appID = this.huddle.devAppId, browser = this.browser } = {}) {
    server ??= base === this.huddle.base ? this.huddle.wsUrl : `${base.replace(/^http/, 'ws')}/ws`;
    const context = await this.#newContext(browser, base);
    const page = await context.newPage();
    const user = new User(this, context, page, name);
    this.users.push(user);
    await page.addInitScript(pageInit, SDK_EVENTS);
    if (origin === 'huddle') {
      // A real response from Huddle (any path; a 404 will do) so the document has Huddle's
      // origin and Chromium counts it as a loopback page (a document made up by request
      // interception counts as public, and Local Network Access then blocks 127.0.0.1);
      // then the blank page is written into it.
      await page.goto(`${base}/__e2e/blank.html`);
      await page.setContent(blankPage(base, 'e2e'), { waitUntil: 'load' });
    } else {
      await page.goto(`${origin === 'stranger' ? this.other.strangerOrigin : this.other.origin}/blank.html`);
    }
    await page.evaluate(([id, ws]) => window.__e2e.init(id, ws), [appID, server]).catch(async (error) => {
      throw new Error(`${name}: creating the engine failed: ${error.message}\n${await user.describe()}`);
    });
    return user;
  }

  /** A page on Huddle's own origin at `pathname` (the demo page), with peer connections recorded. */
  async openPage(name, pathname) {
    const context = await this.#newContext();
    const page = await context.newPage();
    const user = new User(this, context, page, name);
    this.users.push(user);
    await page.addInitScript(pageInit, SDK_EVENTS);
    await page.goto(`${this.huddle.base}${pathname}`);
    return user;
  }

  async #newContext(browser = this.browser, base = this.huddle.base) {
    const context = await browser.newContext();
    if (sdkFile) {
      await context.route(`${base}/sdk/huddle-express.js`, (route) => route.fulfill({
        status: 200, contentType: 'text/javascript; charset=utf-8', body: readFileSync(sdkFile, 'utf8'),
        headers: { 'access-control-allow-origin': '*' },
      }));
    }
    return context;
  }

  async closeUsers() {
    const users = this.users;
    this.users = [];
    await Promise.all(users.map((user) => user.close()));
  }

  async stop() {
    await this.closeUsers();
    await this.browser?.close().catch(() => {});
    await this.proxy?.close();
    await this.other?.close();
    await this.huddle?.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Call helpers shared by the recovery tests

/** The tutorial's handler: play every stream that is added, stop the ones removed. */
export function playLikeTheTutorial(user) {
  return user.evaluate(() => {
    window.zg.on('roomStreamUpdate', (roomID, updateType, streamList) => {
      for (const stream of streamList) {
        if (updateType === 'ADD') window.__e2e.play(stream.streamID).catch((e) => console.warn('play', e.code, e.message));
        else window.zg.stopPlayingStream(stream.streamID);
      }
    });
  });
}

/** Waits until 30 more frames of `streamID` were decoded (after a recovery). */
export async function framesKeepComing(user, streamID, what) {
  const start = (await user.stats(streamID)).framesDecoded;
  await waitFor(async () => (await user.stats(streamID)).framesDecoded >= start + 30,
    { timeout: 40_000, what: `${user.name}: ${what}`, detail: async () => `${JSON.stringify(await user.stats(streamID))}\n${await user.describe()}` });
}
