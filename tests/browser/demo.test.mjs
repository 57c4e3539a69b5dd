// The demo page Huddle serves at `/`: two people join the same room through its form and each
// sees the other's video tile playing. And the README's tutorial-style page, run as printed
// there (only the server's address swapped in), by two people who see each other.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, uid, waitFor } from './harness.mjs';

const env = new Env();
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

/** What the page shows about the remote tiles, and what its peer connections decode. */
async function remoteTiles(user) {
  return user.evaluate(async () => {
    const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')].map((tile) => {
      const video = tile.querySelector('video');
      return {
        name: tile.querySelector('.tile-name')?.textContent ?? '',
        videoWidth: video ? video.videoWidth : 0,
        paused: video ? video.paused : null,
      };
    });
    const { framesDecoded, audioPackets } = await window.__e2e.allStats();
    return { tiles, framesDecoded, audioPackets };
  });
}

describe('demo page', () => {
  test('two people join one room through the form and see each other', { timeout: 90_000 }, async () => {
    const room = uid('demo-room');
    const names = ['Dana Demo', 'Eli Example'];
    const pages = await Promise.all(names.map((name) => env.openPage(name, '/')));
    for (const [i, page] of pages.entries()) {
      await page.page.fill('[data-testid="room-id"]', room);
      await page.page.fill('[data-testid="user-name"]', names[i]);
      await page.page.click('[data-testid="join"]');
    }

    for (const [i, page] of pages.entries()) {
      const other = names[1 - i];
      const describe = async () => `${JSON.stringify(await remoteTiles(page))}\n${await page.describe()}`;
      const first = await waitFor(async () => {
        const view = await remoteTiles(page);
        const tile = view.tiles.find((t) => t.name === other);
        return tile && tile.videoWidth > 0 && view.framesDecoded > 0 && view;
      }, { timeout: 30_000, what: `${page.name}: a playing video tile of ${other}`, detail: describe });
      await waitFor(async () => (await remoteTiles(page)).framesDecoded >= first.framesDecoded + 15,
        { what: `${page.name}: ${other}'s video to keep decoding`, detail: describe });
      assert.equal(first.tiles.length, 1, `one remote tile: ${JSON.stringify(first.tiles)}`);
      await waitFor(async () => (await remoteTiles(page)).audioPackets > 0, { what: `${page.name}: audio of ${other}`, detail: describe });
    }
  });

  test('the README\'s tutorial-style page works as printed', { timeout: 90_000 }, async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### A call page in the tutorial\'s style'));
    const html = /```html\n([\s\S]*?)```/.exec(section)[1].replaceAll('localhost:8080', new URL(env.huddle.base).host);
    const pages = await Promise.all(['readme-1', 'readme-2'].map((name) => env.openPage(name, '/__e2e/readme.html')));
    for (const page of pages) await page.page.setContent(html, { waitUntil: 'load' });
    for (const page of pages) {
      const view = async () => page.evaluate(async () => {
        const video = document.querySelector('#remote-video video');
        const local = document.querySelector('#local-video video');
        const { framesDecoded, audioPackets } = await window.__e2e.allStats();
        return { remoteWidth: video ? video.videoWidth : 0, localWidth: local ? local.videoWidth : 0, framesDecoded, audioPackets };
      });
      const describe = async () => `${JSON.stringify(await view())}\n${await page.describe()}`;
      const first = await waitFor(async () => {
        const v = await view();
        return v.remoteWidth > 0 && v.localWidth > 0 && v.framesDecoded > 0 && v;
      }, { timeout: 30_000, what: `${page.name}: the other page's video in #remote-video`, detail: describe });
      await waitFor(async () => (await view()).framesDecoded >= first.framesDecoded + 15,
        { what: `${page.name}: remote video keeps decoding`, detail: describe });
      await waitFor(async () => (await view()).audioPackets > 0, { what: `${page.name}: remote audio`, detail: describe });
    }
  });
});
