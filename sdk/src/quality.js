// Turns WebRTC statistics into ZEGO's publish/play quality records. `qualityFromStats` is
// pure (stats entries and the previous sample in, the record and this sample out), so it is
// unit-tested in Node; `QualityReporter` samples every session on a timer.

import { MediaKind, EngineEvent, QUALITY_INTERVAL_MS, QUALITY_LOSS_STEPS } from "./constants.js";

/** 0 (excellent) … 4 (bad) from a loss rate. */
export function qualityGrade(loss) {
  const step = QUALITY_LOSS_STEPS.findIndex((limit) => loss < limit);
  return step < 0 ? QUALITY_LOSS_STEPS.length : step;
}

/**
 * One sample of a session's statistics.
 * @param {"publish"|"play"} kind
 * @param {Iterable<object>} entries the `RTCStatsReport` values
 * @param {{time: number, video: object|null, audio: object|null}|null} prev the previous sample's counters
 * @param {number} time now, in ms
 * @param {{audio: boolean, video: boolean}} [localMute] publish only: tracks disabled by the page
 * @returns {{stats: object|null, record: object, counters: object}} `record` always, `stats` only
 *   from the second sample on (the first has no rates yet)
 */
export function qualityFromStats(kind, entries, prev, time, localMute) {
  const publishing = kind === MediaKind.PUBLISH;
  const rtpType = publishing ? "outbound-rtp" : "inbound-rtp";
  const counters = { time, video: null, audio: null };
  const codecs = new Map();
  const remoteInbound = new Map();
  let roundTrip;
  const list = Array.from(entries);
  for (const entry of list) {
    if (entry.type === "codec") codecs.set(entry.id, entry.mimeType);
    if (entry.type === "remote-inbound-rtp") remoteInbound.set(entry.kind, entry);
    if (entry.type === "candidate-pair" && entry.nominated && typeof entry.currentRoundTripTime === "number") {
      roundTrip = entry.currentRoundTripTime * 1000;
    }
  }
  for (const entry of list) {
    if (entry.type !== rtpType || (entry.kind !== "video" && entry.kind !== "audio")) continue;
    counters[entry.kind] = entry;
  }
  const seconds = prev ? Math.max(0.001, (counters.time - prev.time) / 1000) : 0;
  const rate = (mediaKind, field) => {
    const cur = counters[mediaKind];
    const old = prev && prev[mediaKind];
    if (!cur || !old || !seconds || typeof cur[field] !== "number" || typeof old[field] !== "number") return 0;
    return Math.max(0, cur[field] - old[field]) / seconds;
  };
  const codecName = (entry) => {
    const mime = entry && codecs.get(entry.codecId);
    return mime ? mime.split("/")[1] : "";
  };
  const lossRate = (mediaKind) => {
    const cur = counters[mediaKind];
    if (publishing) {
      const remote = remoteInbound.get(mediaKind);
      return remote && typeof remote.fractionLost === "number" ? remote.fractionLost : 0;
    }
    const old = prev && prev[mediaKind];
    if (!cur || !old) return 0;
    const lost = Math.max(0, (cur.packetsLost || 0) - (old.packetsLost || 0));
    const received = Math.max(0, (cur.packetsReceived || 0) - (old.packetsReceived || 0));
    return lost + received ? lost / (lost + received) : 0;
  };
  const video = counters.video || {};
  const audio = counters.audio || {};
  const bytesField = publishing ? "bytesSent" : "bytesReceived";
  const videoLoss = lossRate("video");
  const audioLoss = lossRate("audio");
  const stats = {
    video: {
      videoBitrate: (rate("video", bytesField) * 8) / 1000,
      videoFPS: video.framesPerSecond || rate("video", publishing ? "framesEncoded" : "framesDecoded"),
      videoTransferFPS: rate("video", publishing ? "framesSent" : "framesReceived"),
      frameWidth: video.frameWidth || 0,
      frameHeight: video.frameHeight || 0,
      googCodecName: codecName(video),
      videoPacketsLost: video.packetsLost || 0,
      videoPacketsLostRate: videoLoss,
      videoQuality: qualityGrade(videoLoss),
      muteState: "0",
    },
    audio: {
      audioBitrate: (rate("audio", bytesField) * 8) / 1000,
      audioCodec: codecName(audio),
      audioPacketsLost: audio.packetsLost || 0,
      audioPacketsLostRate: audioLoss,
      audioQuality: qualityGrade(audioLoss),
      audioJitter: typeof audio.jitter === "number" ? audio.jitter * 1000 : 0,
      muteState: "0",
    },
    currentRoundTripTime: roundTrip,
    totalRoundTripTime: roundTrip,
  };
  if (!publishing) {
    stats.video.videoFramesDecoded = video.framesDecoded || 0;
    stats.video.videoFramesDropped = video.framesDropped || 0;
    stats.video.videoRenderFPS = video.framesPerSecond || 0;
    stats.video.videoCumulativeDecodeTime = video.totalDecodeTime || 0;
    stats.video.videoCumulativeBreakTime = video.totalFreezesDuration || 0;
    stats.video.videoCumulativeBreakRate = 0;
    stats.peerToPeerDelay = undefined;
    stats.peerToPeerPacketLostRate = undefined;
  } else {
    stats.video.muteState = localMute && localMute.video ? "1" : "0";
    stats.audio.muteState = localMute && localMute.audio ? "1" : "0";
  }
  return { stats: prev ? stats : null, record: stats, counters };
}

/**
 * Every QUALITY_INTERVAL_MS, samples the publish and play sessions `media` holds and raises
 * `publishQualityUpdate` / `playQualityUpdate` for those still running afterwards.
 */
export class QualityReporter {
  /** @param {{media: {publishers: Map, players: Map}, emit: Function}} host */
  constructor(host) {
    this._host = host;
    this._timer = null;
    this._observers = [];
  }

  /**
   * Lets a feature area follow the samples: `observer.onSample(session, stats)` for each
   * record reported, `observer.onRound()` after each round over all sessions.
   */
  observe(observer) {
    this._observers.push(observer);
  }

  _tell(hook, ...args) {
    for (const observer of this._observers) {
      if (typeof observer[hook] !== "function") continue;
      try {
        observer[hook](...args);
      } catch (err) {
        console.warn("[huddle]", hook, "observer failed", err);
      }
    }
  }

  start() {
    this.stop();
    this._timer = setInterval(() => this._report(), QUALITY_INTERVAL_MS);
  }

  stop() {
    if (this._timer) clearInterval(this._timer);
    this._timer = null;
  }

  async _report() {
    const { publishers, players } = this._host.media;
    for (const session of Array.from(publishers.values())) {
      const stats = await session.sampleQuality();
      if (stats && !session.stopped) {
        this._host.emit(EngineEvent.PUBLISH_QUALITY_UPDATE, session.streamID, stats);
        this._tell("onSample", session, stats);
      }
    }
    for (const session of Array.from(players.values())) {
      const stats = await session.sampleQuality();
      if (stats && !session.stopped) {
        this._host.emit(EngineEvent.PLAY_QUALITY_UPDATE, session.streamID, stats);
        this._tell("onSample", session, stats);
      }
    }
    if (this._timer) this._tell("onRound");
  }
}
