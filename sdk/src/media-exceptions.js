// `exceptionUpdate`: the problems of a published or played stream that ZEGO reports and
// Huddle can see in the statistics of each quality sample — nothing sent or decoded while
// media is expected (a camera that stopped delivering, a path that broke) — and their end.
// ZEGO's codes: 100x when a problem starts, 200x when it is over. Pure: unit-tested in Node.

export const ExceptionCode = Object.freeze({
  SEND_VIDEO_BITRATE_LOW: 1003,
  SEND_FPS_LOW: 1004,
  SEND_AUDIO_BITRATE_LOW: 1005,
  RECEIVE_VIDEO_FPS_DECODED_LOW: 1009,
  SEND_VIDEO_BITRATE_NORMAL: 2003,
  SEND_FPS_NORMAL: 2004,
  SEND_AUDIO_BITRATE_NORMAL: 2005,
  RECEIVE_VIDEO_FPS_DECODED_NORMAL: 2009,
});

/** Below these a stream counts as stalled: frames per second, kbit/s. */
const LOW_FPS = 1;
const LOW_VIDEO_KBPS = 10;
const LOW_AUDIO_KBPS = 2;

/** Each watched condition: the side, the media it needs, the test, its codes and messages. */
const CONDITIONS = Object.freeze([
  {
    key: "sendFps",
    kind: "publish",
    media: "video",
    low: (s) => s.video.videoTransferFPS < LOW_FPS,
    codes: [ExceptionCode.SEND_FPS_LOW, ExceptionCode.SEND_FPS_NORMAL],
    what: "video frames sent",
  },
  {
    key: "sendVideoBitrate",
    kind: "publish",
    media: "video",
    low: (s) => s.video.videoBitrate < LOW_VIDEO_KBPS,
    codes: [ExceptionCode.SEND_VIDEO_BITRATE_LOW, ExceptionCode.SEND_VIDEO_BITRATE_NORMAL],
    what: "video bitrate sent",
  },
  {
    key: "sendAudioBitrate",
    kind: "publish",
    media: "audio",
    low: (s) => s.audio.audioBitrate < LOW_AUDIO_KBPS,
    codes: [ExceptionCode.SEND_AUDIO_BITRATE_LOW, ExceptionCode.SEND_AUDIO_BITRATE_NORMAL],
    what: "audio bitrate sent",
  },
  {
    key: "receiveVideoFps",
    kind: "play",
    media: "video",
    low: (s) => s.video.videoFPS < LOW_FPS,
    codes: [ExceptionCode.RECEIVE_VIDEO_FPS_DECODED_LOW, ExceptionCode.RECEIVE_VIDEO_FPS_DECODED_NORMAL],
    what: "video frames decoded",
  },
]);

/**
 * The exceptions one quality sample starts or ends.
 * @param {"publish"|"play"} kind
 * @param {Set<string>} active conditions currently reported (updated in place)
 * @param {object} stats the ZEGO-shaped record of the sample
 * @param {{audio: boolean, video: boolean}} expected the media that should be flowing (not
 *   muted by anyone, present in the stream): a muted medium ends its exceptions quietly
 * @returns {Array<{code: number, message: string}>} `exceptionUpdate` data, in order
 */
export function exceptionChanges(kind, active, stats, expected) {
  const changes = [];
  for (const condition of CONDITIONS) {
    if (condition.kind !== kind) continue;
    if (!expected[condition.media]) {
      active.delete(condition.key);
      continue;
    }
    const low = condition.low(stats);
    if (low && !active.has(condition.key)) {
      active.add(condition.key);
      changes.push({ code: condition.codes[0], message: `${condition.what} too low` });
    } else if (!low && active.has(condition.key)) {
      active.delete(condition.key);
      changes.push({ code: condition.codes[1], message: `${condition.what} back to normal` });
    }
  }
  return changes;
}
