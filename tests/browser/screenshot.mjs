// Takes the screenshot of the demo page in a call (docs/demo.png): the real `huddle` binary,
// four people joining one room through the demo page's form in one Chromium, one of them muted,
// one with the camera off, a few chat messages; then a 1280×800 PNG of the first person's page.
//
// Not a test: run it by hand after changing the demo page.
//
//   node tests/browser/screenshot.mjs [out.png]      (default docs/demo.png)
//
// Each page's "camera" is a canvas (a room and a figure in the person's colours) and its
// "microphone" a quiet oscillator, so that the tiles tell people apart.
// HUDDLE_BIN and HUDDLE_E2E_DEBUG work as for the tests (see harness.mjs).

import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, chromiumPath, repoRoot, startHuddle, waitFor } from './harness.mjs';

const out = path.resolve(process.argv[2] || path.join(repoRoot, 'docs/demo.png'));
const ROOM = 'design-review';
const VIEWPORT = { width: 1280, height: 800 };
const PEOPLE = [
  { name: 'Alice Martin', hue: 212, skin: '#e8c4a8', hair: '#6b4a2e' },
  { name: 'Bob Chen', hue: 150, skin: '#e6c29a', hair: '#1e1a18' },
  { name: 'Chiara Rossi', hue: 18, skin: '#d9a982', hair: '#3a2418' },
  { name: 'Dmitri Ivanov', hue: 268, skin: '#f0cdb4', hair: '#b08850' },
];
const debug = !!process.env.HUDDLE_E2E_DEBUG;

// Runs in each page before its scripts: getUserMedia answers with a canvas (a wall, a window,
// a shelf and a head-and-shoulders figure in the person's colours) and a quiet oscillator.
function fakeMedia({ hue, skin, hair, pitch }) {
  const W = 640;
  const H = 360;
  let canvas = null;
  function startCanvas() {
    if (canvas) return canvas;
    canvas = document.createElement('canvas');
    canvas.width = W;
    canvas.height = H;
    const g = canvas.getContext('2d');
    const t0 = performance.now();
    const draw = () => {
      const t = (performance.now() - t0) / 1000;
      const wall = g.createLinearGradient(0, 0, 0, H);
      wall.addColorStop(0, `hsl(${hue} 28% 40%)`);
      wall.addColorStop(1, `hsl(${hue} 32% 22%)`);
      g.fillStyle = wall;
      g.fillRect(0, 0, W, H);
      // A window on the left, a shelf with books on the right.
      g.fillStyle = `hsl(${hue} 40% 82%)`;
      g.fillRect(46, 40, 130, 170);
      g.fillStyle = `hsl(${hue} 25% 30%)`;
      g.fillRect(108, 40, 6, 170);
      g.fillRect(46, 122, 130, 6);
      g.fillStyle = `hsl(${(hue + 180) % 360} 15% 26%)`;
      g.fillRect(470, 118, 150, 8);
      const books = [[478, 38, 12], [492, 46, 200], [508, 32, 40], [522, 44, 330], [538, 40, 90]];
      for (const [x, h, bh] of books) {
        g.fillStyle = `hsl(${bh} 35% 45%)`;
        g.fillRect(x, 118 - h, 12, h);
      }
      // The person, breathing and swaying a little.
      const cx = W / 2 + 5 * Math.sin(t * 0.8);
      const cy = H * 0.44 + 2 * Math.sin(t * 1.6);
      g.fillStyle = `hsl(${(hue + 200) % 360} 30% 30%)`;
      g.beginPath();
      g.ellipse(cx, H + 30, 165, 125, 0, Math.PI, 2 * Math.PI);
      g.fill();
      g.fillStyle = skin;
      g.fillRect(cx - 24, cy + 50, 48, 50);
      g.beginPath();
      g.ellipse(cx, cy, 58, 70, 0, 0, 2 * Math.PI);
      g.fill();
      g.fillStyle = hair;
      g.beginPath();
      g.ellipse(cx, cy - 22, 62, 52, 0, Math.PI, 2 * Math.PI);
      g.fill();
      g.fillStyle = '#2b2220';
      for (const dx of [-20, 20]) {
        g.beginPath();
        g.ellipse(cx + dx, cy + 8, 5, 6, 0, 0, 2 * Math.PI);
        g.fill();
      }
      g.strokeStyle = '#8a4b3e';
      g.lineWidth = 4;
      g.lineCap = 'round';
      g.beginPath();
      g.arc(cx, cy + 28, 16, 0.2 * Math.PI, 0.8 * Math.PI);
      g.stroke();
    };
    draw();
    setInterval(draw, 1000 / 30);
    return canvas;
  }
  function audioTrack() {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = pitch;
    const gain = ctx.createGain();
    gain.gain.value = 0.02;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    ctx.resume().catch(() => {});
    return dest.stream.getAudioTracks()[0];
  }
  const devices = navigator.mediaDevices;
  if (!devices) return;
  devices.getUserMedia = async (constraints = {}) => {
    const tracks = [];
    if (constraints.video) tracks.push(startCanvas().captureStream(30).getVideoTracks()[0]);
    if (constraints.audio) tracks.push(audioTrack());
    return new MediaStream(tracks);
  };
}

/** What the page shows about its remote tiles, and how far each tile's video has played. */
function tilesOf(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="remote-tile"]')].map((tile) => {
    const video = tile.querySelector('video');
    return {
      name: tile.querySelector('.tile-name')?.textContent ?? '',
      width: video ? video.videoWidth : 0,
      paused: video ? video.paused : null,
      frames: video && video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0,
    };
  }));
}

async function main() {
  const huddle = await startHuddle();
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath(), headless: false,
      args: [...CHROMIUM_ARGS, '--autoplay-policy=no-user-gesture-required'],
    });
    const pages = [];
    for (const [i, person] of PEOPLE.entries()) {
      const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
      await context.addInitScript(fakeMedia, { hue: person.hue, skin: person.skin, hair: person.hair, pitch: 220 + 55 * i });
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error(`[${person.name}] pageerror: ${e.message}`));
      if (debug) page.on('console', (m) => console.error(`[${person.name}] ${m.type()}: ${m.text()}`));
      await page.goto(`${huddle.base}/`);
      await page.fill('[data-testid="room-id"]', ROOM);
      await page.fill('[data-testid="user-name"]', person.name);
      await page.click('[data-testid="join"]');
      await page.waitForSelector('[data-testid="connection-state"][data-state="LOGINED"]', { timeout: 15_000 });
      // Publishing has started once the mic / camera toggles are enabled.
      await page.waitForSelector('[data-testid="toggle-mic"]:not([disabled])', { timeout: 15_000 });
      pages.push(page);
    }
    const [alice, bob, chiara, dmitri] = pages;

    // Everyone sees three remote tiles that play.
    for (const [i, page] of pages.entries()) {
      const others = PEOPLE.filter((_, j) => j !== i).map((p) => p.name).sort();
      await waitFor(async () => {
        const tiles = await tilesOf(page);
        return tiles.length === 3 && tiles.every((t) => t.width > 0 && t.paused === false) &&
          JSON.stringify(tiles.map((t) => t.name).sort()) === JSON.stringify(others);
      }, { timeout: 30_000, what: `${PEOPLE[i].name}: three playing tiles`, detail: async () => JSON.stringify(await tilesOf(page)) });
    }

    // Bob mutes his microphone, Dmitri turns his camera off.
    await bob.click('[data-testid="toggle-mic"]');
    await dmitri.click('[data-testid="toggle-camera"]');

    const say = async (page, text) => {
      await page.fill('[data-testid="chat-input"]', text);
      await page.press('[data-testid="chat-input"]', 'Enter');
    };
    await say(chiara, 'Morning! The new onboarding mockups are in the shared folder.');
    await say(bob, 'Thanks, looking now. Sorry, muted: my train is noisy.');
    await say(alice, "Great, let's start with the sign-up flow.");

    // Alice's page: every remote tile keeps decoding, the chat shows all three messages,
    // Bob's tile shows him muted and Dmitri's shows his avatar.
    const before = await tilesOf(alice);
    await waitFor(async () => {
      const now = await tilesOf(alice);
      return now.every((t) => {
        const then = before.find((b) => b.name === t.name);
        return t.width > 0 && t.frames >= (then?.frames ?? 0) + 15;
      });
    }, { timeout: 20_000, what: 'Alice: every tile to keep decoding', detail: async () => JSON.stringify(await tilesOf(alice)) });
    await waitFor(() => alice.evaluate(() => {
      const tile = (name) => [...document.querySelectorAll('[data-testid="remote-tile"]')]
        .find((t) => t.querySelector('.tile-name')?.textContent === name);
      return document.querySelectorAll('[data-testid="chat-message"]').length === 3 &&
        document.querySelectorAll('[data-testid="chat-message"].pending').length === 0 &&
        tile('Bob Chen')?.classList.contains('mic-off') && tile('Dmitri Ivanov')?.classList.contains('cam-off') &&
        [...document.querySelectorAll('.tile-stats')].every((s) => s.textContent !== '' || s.closest('.cam-off'));
    }), { timeout: 15_000, what: 'Alice: chat, mute and camera-off shown' });

    // A short settle (layout), with the pointer off the tiles.
    await alice.mouse.move(VIEWPORT.width - 5, 5);
    await alice.waitForTimeout(800);
    mkdirSync(path.dirname(out), { recursive: true });
    await alice.screenshot({ path: out, type: 'png' });
    console.log(`${path.relative(process.cwd(), out) || out}: ${Math.round(statSync(out).size / 1024)} KB`);
  } finally {
    await browser?.close().catch(() => {});
    await huddle.stop();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error?.stack || String(error));
  process.exit(1);
});
