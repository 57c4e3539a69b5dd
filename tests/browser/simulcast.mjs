// Simulcast helpers shared by the simulcast tests: a media grant from the REST API, a Chromium
// page publishing three VP8 layers over WHIP, and what a player decodes.

import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { waitFor } from './harness.mjs';

/** The field trial that lets Chromium send three layers of 640x360 (by default it needs 960x540). */
export const THREE_LAYERS_AT_360P = '--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/';

/** A media grant from `POST /v1/grants`, signed with the test app's secret as the README says. */
export async function grant(huddle, { roomId, userId, streamId, action }) {
  const { appId, secret } = huddle.testApp;
  const path = '/v1/grants';
  const body = JSON.stringify({ roomId, userId, streamId, action });
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString('hex');
  const toSign = [appId, ts, nonce, 'POST', path, createHash('sha256').update(body).digest('hex')].join('\n');
  const signature = createHmac('sha256', secret).update(toSign).digest('hex');
  const response = await fetch(`${huddle.base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Huddle-AppId': String(appId), 'X-Huddle-Timestamp': ts,
      'X-Huddle-Nonce': nonce, 'X-Huddle-Signature': signature },
    body,
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

/**
 * Publishes 640x360 video from `user`'s page as three VP8 layers (160, 320 and 640 wide; at
 * most 150, 400 and 1200 kbit/s) to the WHIP `url` with `grant`. The layers are named as
 * LiveKit names them and listed low to high: the relay ranks them by rate, not name. The fake
 * camera's picture compresses to a fraction of those rates; `busy` sends a canvas of moving
 * random shapes instead, which fills them (for tests where the rates matter).
 */
export async function publishThreeLayers(user, { url, grant: bearer }, { busy = false } = {}) {
  const published = await user.evaluate(async ({ url, bearer, busy }) => {
    let track;
    if (busy) {
      const canvas = document.createElement('canvas');
      canvas.width = 640;
      canvas.height = 360;
      const g = canvas.getContext('2d');
      setInterval(() => {
        for (let i = 0; i < 400; i += 1) {
          g.fillStyle = `hsl(${Math.random() * 360} 70% ${20 + Math.random() * 60}%)`;
          g.fillRect(Math.random() * 640, Math.random() * 360, 4 + Math.random() * 40, 4 + Math.random() * 40);
        }
      }, 33);
      track = canvas.captureStream(30).getVideoTracks()[0];
    } else {
      const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 } });
      track = camera.getVideoTracks()[0];
    }
    const pc = new RTCPeerConnection();
    pc.addTransceiver(track, {
      direction: 'sendonly',
      sendEncodings: [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 400_000 },
        { rid: 'f', maxBitrate: 1_200_000 },
      ],
    });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 3000);
    });
    const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${bearer}` }, body: pc.localDescription.sdp });
    const answer = await response.text();
    if (response.status !== 201) return { status: response.status, answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    window.__whip = pc;
    return { status: 201, simulcast: /a=simulcast:recv q;h;f/.test(answer) };
  }, { url, bearer, busy });
  assert.deepEqual(published, { status: 201, simulcast: true }, JSON.stringify(published));
}

/** The decoded width, frames decoded and freezes (Chromium's count and seconds) of a played stream. */
export function videoReceived(user, streamID) {
  return user.evaluate(async (id) => {
    const session = window.zg._media.players.get(id);
    const out = { frameWidth: 0, framesDecoded: 0, freezeCount: 0, freezeSeconds: 0 };
    if (!session || !session.pc) return out;
    (await session.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      out.frameWidth = s.frameWidth || 0;
      out.framesDecoded = s.framesDecoded || 0;
      out.freezeCount = s.freezeCount || 0;
      out.freezeSeconds = s.totalFreezesDuration || 0;
    });
    return out;
  }, streamID);
}

/** Waits until the played stream decodes frames `width` wide, then for 20 more frames. */
export async function decodesWidth(user, streamID, width, what, { timeout = 20_000 } = {}) {
  const detail = async () => `${JSON.stringify(await videoReceived(user, streamID))}\n${await user.describe()}`;
  const reached = await waitFor(async () => {
    const r = await videoReceived(user, streamID);
    return r.frameWidth === width && r;
  }, { timeout, interval: 1000, what: `${user.name}: ${what} (${width} wide)`, detail });
  await waitFor(async () => (await videoReceived(user, streamID)).framesDecoded >= reached.framesDecoded + 20,
    { timeout: 10_000, what: `${user.name}: frames to keep coming at ${width} wide`, detail });
  return videoReceived(user, streamID);
}
