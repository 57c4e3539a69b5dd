// A browser that blocks autoplay with sound (Chromium's strictest policy): a remote view shows
// its click-to-play prompt, or with `enableAutoplayDialog: false` only raises `autoplayFailed`;
// a click on the prompt starts playback. The viewer's page runs on its own and reports through
// its console: anything the test evaluates in a page counts as a user gesture and would lift
// the block, so the test looks only once the blocked attempts are over.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Env, uid, waitFor } from './harness.mjs';

const env = new Env({ browserArgs: ['--autoplay-policy=user-gesture-required'] });
before(() => env.start());
afterEach(() => env.closeUsers());
after(() => env.stop());

/** Logs in as ?user= to ?room= and plays the first stream added into two views. */
function viewerPage(huddleBase) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>autoplay</title></head><body>
<div id="with-dialog" style="width: 320px; height: 240px"></div>
<div id="without-dialog" style="width: 320px; height: 240px"></div>
<script src="${huddleBase}/sdk/huddle-express.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const [userID, roomID] = [params.get('user'), params.get('room')];
  window.__autoplayFailed = 0;
  (async () => {
    const query = new URLSearchParams({ userId: userID, roomId: roomID });
    const { appId, token } = await (await fetch('${huddleBase}/dev/token?' + query)).json();
    const zg = new ZegoExpressEngine(appId, '${huddleBase.replace(/^http/, 'ws')}/ws');
    zg.on('autoplayFailed', () => { window.__autoplayFailed += 1; console.log('huddle-e2e: autoplayFailed'); });
    zg.on('roomStreamUpdate', async (roomID, updateType, streamList) => {
      if (updateType !== 'ADD') return;
      const remote = await zg.startPlayingStream(streamList[0].streamID);
      zg.createRemoteStreamView(remote).play('with-dialog', { enableAutoplayDialog: true });
      zg.createRemoteStreamView(remote).play('without-dialog', { enableAutoplayDialog: false });
    });
    window.__loggedIn = await zg.loginRoom(roomID, token, { userID }, { userUpdate: true });
  })();
</script></body></html>`;
}

describe('autoplay', () => {
  test('blocked playback: a click-to-play prompt, or autoplayFailed when the dialog is off', { timeout: 60_000 }, async () => {
    const room = uid('room');
    env.other.pages.set('/autoplay.html', viewerPage(env.huddle.base));
    const publisher = await env.openUser(uid('loud'));
    assert.equal(await publisher.login(room), true, await publisher.describe());
    await publisher.publish(`${publisher.name}-cam`);

    const viewer = await env.openPage('viewer', '/__e2e/none.html'); // only for its context
    const page = viewer.page;
    let failures = 0;
    page.on('console', (message) => { if (message.text() === 'huddle-e2e: autoplayFailed') failures += 1; });
    await page.goto(`${env.other.origin}/autoplay.html?user=${uid('viewer')}&room=${room}`);
    const describe = async () => `${JSON.stringify(await page.evaluate(() => ({ failed: window.__autoplayFailed, loggedIn: window.__loggedIn, videos: [...document.querySelectorAll('video')].map((v) => ({ paused: v.paused, width: v.videoWidth })) })))}\n${await viewer.describe()}`;
    await waitFor(() => failures >= 2, { what: 'autoplayFailed for both views', detail: describe });
    assert.equal(await page.locator('#with-dialog button').count(), 1, 'the prompt is shown where the dialog is on');
    assert.equal(await page.locator('#without-dialog button').count(), 0, 'no prompt where the dialog is off');
    assert.equal(await page.evaluate(() => window.__autoplayFailed), 2);
    assert.equal(await page.evaluate(() => document.querySelector('#with-dialog video').paused), true);

    await page.click('#with-dialog button'); // a real user gesture
    await waitFor(() => page.evaluate(() => {
      const video = document.querySelector('#with-dialog video');
      return !video.paused && video.videoWidth > 0;
    }), { what: 'playback after the click', detail: describe });
    assert.equal(await page.locator('#with-dialog button').count(), 0, 'the prompt is gone');
  });
});
