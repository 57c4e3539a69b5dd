// The demo page Huddle serves at `/`: two people join the same room through its form and each
// sees the other's video tile playing; the People list shows each person's microphone and camera
// as they are, your own included, from the moment you publish and after every toggle. A user the
// business server removes (admin API, through `huddle rooms kick`) sees the "removed from the
// call" state with the server's reason, and the one who stays sees them go (and, before, is told
// when the server turns their camera off). And the README's
// tutorial-style page, run as printed there (only the server's address swapped in), by two
// people who see each other.

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

/** Fills in the lobby form and presses "Join room". */
async function joinThroughForm(user, room, name) {
  await user.page.fill('[data-testid="room-id"]', room);
  await user.page.fill('[data-testid="user-name"]', name);
  await user.page.click('[data-testid="join"]');
}

/** The demo's own user id and whether its local stream is up (the mic button is enabled then). */
function localState(user) {
  return user.evaluate(() => ({
    userID: window.huddleDemo?.userID ?? null,
    streamID: window.huddleDemo?.streamID ?? null,
    micEnabled: !document.querySelector('[data-testid="toggle-mic"]').disabled,
  }));
}

/**
 * The People list as shown: one entry per person, with the microphone and camera icons read
 * from their labels ('on' / 'off'). `self` marks the entry labelled "(you)".
 */
function people(user) {
  return user.evaluate(() => [...document.querySelectorAll('[data-testid="participant"]')].map((li) => {
    const labels = [...li.querySelectorAll('.p-icon')].map((icon) => icon.getAttribute('aria-label'));
    const state = (device) => {
      const label = labels.find((l) => l.startsWith(device));
      return label ? label.slice(device.length + 1) : null;
    };
    return { userID: li.dataset.userId, self: !!li.querySelector('.p-you'), mic: state('microphone'), cam: state('camera') };
  }));
}

/** Waits until `user`'s People entry for `userID` (or for themselves) shows `want` ({mic, cam}). */
async function expectEntry(user, who, want, { timeout = 5000 } = {}) {
  const pick = (list) => list.find((p) => (who === 'self' ? p.self : p.userID === who));
  let last;
  await waitFor(async () => {
    last = pick(await people(user));
    return last && last.mic === want.mic && last.cam === want.cam;
  }, {
    timeout,
    what: `${user.name}: People entry of ${who === 'self' ? 'themselves' : who} to show mic ${want.mic}, camera ${want.cam}`,
    detail: async () => `shown: ${JSON.stringify(last)}; list ${JSON.stringify(await people(user))}\n${await user.describe()}`,
  });
}

describe('demo page', () => {
  test('two people join one room through the form and see each other', { timeout: 90_000 }, async () => {
    const room = uid('demo-room');
    const names = ['Dana Demo', 'Eli Example'];
    const pages = await Promise.all(names.map((name) => env.openPage(name, '/')));
    for (const [i, page] of pages.entries()) await joinThroughForm(page, room, names[i]);

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

  test('the People list shows your own mic and camera from the moment you publish, and your toggles', { timeout: 90_000 }, async () => {
    const room = uid('demo-people');
    // Alone in the room first: nobody else's event may re-render the list and hide a stale entry.
    const fay = await env.openPage('Fay Fixture', '/');
    await joinThroughForm(fay, room, 'Fay Fixture');
    const published = await waitFor(async () => {
      const state = await localState(fay);
      return state.micEnabled && state.streamID && state;
    }, { timeout: 20_000, what: 'Fay: camera and microphone up and publishing', detail: () => fay.describe() });
    await expectEntry(fay, 'self', { mic: 'on', cam: 'on' });

    // Someone else joins: they see Fay as she is, and Fay's own entry stays right.
    const gus = await env.openPage('Gus Guest', '/');
    await joinThroughForm(gus, room, 'Gus Guest');
    await expectEntry(gus, published.userID, { mic: 'on', cam: 'on' }, { timeout: 20_000 });
    await expectEntry(gus, 'self', { mic: 'on', cam: 'on' }, { timeout: 20_000 });
    await expectEntry(fay, 'self', { mic: 'on', cam: 'on' });

    // Fay mutes her microphone, then turns her camera off: her own list and Gus's follow.
    await fay.page.click('[data-testid="toggle-mic"]');
    await expectEntry(fay, 'self', { mic: 'off', cam: 'on' });
    await expectEntry(gus, published.userID, { mic: 'off', cam: 'on' }, { timeout: 10_000 });
    await fay.page.click('[data-testid="toggle-camera"]');
    await expectEntry(fay, 'self', { mic: 'off', cam: 'off' });
    await expectEntry(gus, published.userID, { mic: 'off', cam: 'off' }, { timeout: 10_000 });
    await fay.page.click('[data-testid="toggle-mic"]');
    await expectEntry(fay, 'self', { mic: 'on', cam: 'off' });
    await expectEntry(gus, published.userID, { mic: 'on', cam: 'off' }, { timeout: 10_000 });
  });

  test('a user the server mutes, then removes, sees the "removed from the call" state with the reason', { timeout: 90_000 }, async () => {
    const room = uid('demo-kick');
    const [ivy, jon] = await Promise.all(['Ivy Intruder', 'Jon Host'].map((name) => env.openPage(name, '/')));
    await joinThroughForm(ivy, room, 'Ivy Intruder');
    await joinThroughForm(jon, room, 'Jon Host');
    const ivyState = await waitFor(async () => {
      const state = await localState(ivy);
      return state.micEnabled && state.streamID && state;
    }, { timeout: 20_000, what: 'Ivy: logged in and publishing', detail: () => ivy.describe() });
    await expectEntry(jon, ivyState.userID, { mic: 'on', cam: 'on' }, { timeout: 20_000 });

    // First the host turns Ivy's camera off (the relay stops sending it): Jon's page says so.
    const muted = await env.huddle.rooms(['mute', '--app-id', String(env.huddle.devAppId), '--room-id', room,
      '--stream-id', ivyState.streamID, '--video', 'on']);
    assert.equal(muted.videoMuted, true);
    const toasts = () => jon.evaluate(() => [...document.querySelectorAll('.toast-text')].map((t) => t.textContent));
    await waitFor(async () => (await toasts()).some((t) => t === "The host turned off Ivy Intruder's camera."),
      { what: 'Jon: a notice that the host turned Ivy\'s camera off', detail: async () => JSON.stringify(await toasts()) });
    // Someone who joins after the mute hears of it too (the stream arrives with its flags).
    const kim = await env.openPage('Kim Late', '/');
    await joinThroughForm(kim, room, 'Kim Late');
    const kimToasts = () => kim.evaluate(() => [...document.querySelectorAll('.toast-text')].map((t) => t.textContent));
    await waitFor(async () => (await kimToasts()).some((t) => t === "The host turned off Ivy Intruder's camera."),
      { what: 'Kim (joined later): a notice that Ivy\'s camera is off', detail: async () => JSON.stringify(await kimToasts()) });

    // The business server (here its operator, through the admin CLI: a signed POST) removes Ivy.
    const answer = await env.huddle.rooms(['kick', '--app-id', String(env.huddle.devAppId), '--room-id', room,
      '--user-id', ivyState.userID, '--reason', 'off-topic']);
    assert.deepEqual(answer, { kicked: [ivyState.userID], notInRoom: [] });

    const ended = () => ivy.evaluate(() => ({
      shown: !document.getElementById('ended').hidden,
      title: document.getElementById('ended-title').textContent,
      text: document.getElementById('ended-text').textContent,
      remoteTiles: document.querySelectorAll('[data-testid="remote-tile"]').length,
    }));
    const shown = await waitFor(async () => {
      const view = await ended();
      return view.shown && view;
    }, { what: 'Ivy: the "removed from the call" state', detail: async () => `${JSON.stringify(await ended())}\n${await ivy.describe()}` });
    // The title is the demo's for code 5023 (removed by the server); the text carries the
    // reason from roomStateChanged's extendedData ({"custom_kickout_message": …}).
    assert.equal(shown.title, 'Removed from the call');
    assert.match(shown.text, /off-topic/);
    assert.equal(shown.remoteTiles, 0, 'no tile of anyone left');
    // Jon stays and sees Ivy leave the People list.
    await waitFor(async () => !(await people(jon)).some((p) => p.userID === ivyState.userID),
      { what: 'Jon: Ivy gone from the People list', detail: async () => JSON.stringify(await people(jon)) });
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
