// Not a test: how long a page takes from `loginRoom` to the first decoded frame of a stream
// already in the room, in real Chromium against the real server (debug or release binary,
// HUDDLE_BIN). Figures for docs/BENCHMARKS.md.
//
//   node tests/browser/bench-join.mjs [RUNS]        (default 10)
//
// One publisher page stays in the room; each run opens a fresh page (a new browser context),
// which logs in with a token fetched beforehand and plays the stream on its ADD. Times are
// measured inside the page with performance.now(); the first frame is the video element's
// first requestVideoFrameCallback. Prints one JSON line per run and a summary.

import { Env, uid } from './harness.mjs';

const runs = Number(process.argv[2] ?? 10);
const env = new Env();
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

await env.start();
try {
  const room = uid('bench');
  const publisher = await env.openUser(uid('pub'));
  if (!(await publisher.login(room))) throw new Error('publisher could not log in');
  const streamID = `${publisher.name}-cam`;
  await publisher.publish(streamID);
  await publisher.waitEvent('publisherStateUpdate', (r) => r.streamID === streamID && r.state === 'PUBLISHING');

  const results = [];
  for (let i = 0; i < runs; i += 1) {
    const viewer = await env.openUser(uid('view'));
    const { token } = await env.huddle.devToken(viewer.name, room);
    const times = await viewer.evaluate(async ({ room: roomID, token: tok, userID, wanted }) => {
      const zg = window.zg;
      const t0 = performance.now();
      const added = new Promise((resolve) => {
        zg.on('roomStreamUpdate', (r, type, list) => {
          if (type === 'ADD' && list.some((s) => s.streamID === wanted)) resolve(performance.now());
        });
      });
      const ok = await zg.loginRoom(roomID, tok, { userID }, { userUpdate: true });
      if (!ok) throw new Error('login failed');
      const loggedIn = performance.now();
      const announced = await added;
      const remote = await zg.startPlayingStream(wanted);
      const answered = performance.now();
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      video.srcObject = remote;
      document.body.appendChild(video);
      const firstFrame = await new Promise((resolve) => video.requestVideoFrameCallback(() => resolve(performance.now())));
      return {
        loginMs: loggedIn - t0,
        streamKnownMs: announced - t0,
        playAnsweredMs: answered - t0,
        firstFrameMs: firstFrame - t0,
      };
    }, { room, token, userID: viewer.name, wanted: streamID });
    console.log(JSON.stringify({ run: i + 1, ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Math.round(v * 10) / 10])) }));
    results.push(times);
    await viewer.close();
  }
  const summary = {};
  for (const key of Object.keys(results[0] ?? {})) {
    const values = results.map((r) => r[key]);
    summary[key] = { p50: Math.round(percentile(values, 50)), p90: Math.round(percentile(values, 90)), max: Math.round(Math.max(...values)) };
  }
  console.log(JSON.stringify({ runs, summary }));
} finally {
  await env.stop();
}
