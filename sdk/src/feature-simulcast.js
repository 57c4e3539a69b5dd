// Engine feature area: simulcast, as ZEGO calls it "dual streams". A publisher sends its video
// twice, small and big (`enableDualStream`, `setLowStreamParameter`); the relay sends each
// player one of them (`setPlayStreamVideoType`, or `streamType` in startPlayingStream's
// options): the small one, the big one, or by default whichever fits the bandwidth the relay
// measures towards the player. The relay switches at a keyframe of the new layer, so the
// picture never freezes on a switch. The choice is asked of the play session's relay session
// (`POST <Location>/layer`, docs/PROTOCOL.md section 13) and asked again after every
// renegotiation, which starts a new relay session.

import { MediaKind, PlayerState } from "./constants.js";

/** ZEGO's play stream types: 0 the small stream, 1 the big one, 2 automatic. */
const LAYER_OF_STREAM_TYPE = ["low", "high", "auto"];

/** The small stream when the page does not set it (`setLowStreamParameter`). */
const DEFAULT_LOW = { width: 320, frameRate: 15, bitRate: 150 };

/**
 * The encodings of a dual stream's video, small first (browsers list simulcast layers from
 * low to high, and the relay takes that order until it has measured their rates).
 * @param {MediaStreamTrack} track
 * @param {{width?: number, height?: number, frameRate?: number, bitRate?: number}} low
 * @param {number} [highKbps]
 */
export function dualStreamEncodings(track, low, highKbps) {
  const settings = (track && track.getSettings && track.getSettings()) || {};
  const scale = settings.width && low.width ? Math.max(1, settings.width / low.width)
    : settings.height && low.height ? Math.max(1, settings.height / low.height) : 2;
  const small = { rid: "l", scaleResolutionDownBy: scale };
  if (low.bitRate > 0) small.maxBitrate = low.bitRate * 1000;
  if (low.frameRate > 0) small.maxFramerate = low.frameRate;
  const big = { rid: "h" };
  if (highKbps > 0) big.maxBitrate = highKbps * 1000;
  return [small, big];
}

/** The relay's answer to a layer choice: `{video, layers}`. */
async function askRelayForLayer(sessionUrl, video) {
  const response = await fetch(`${sessionUrl}/layer`, {
    method: "POST",
    mode: "cors",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ video }),
  });
  if (!response.ok) throw new Error(`the relay answered HTTP ${response.status} to a layer choice`);
  return response.json();
}

export class SimulcastFeature {
  static setup(engine) {
    engine._dualStreams = new WeakMap(); // MediaStream → small stream parameters
    engine._playLayers = new Map(); // streamID → "low" | "high" | "auto" chosen by the page
    // A new relay session starts on "auto": ask again for what the page chose.
    const reapply = (session) => {
      if (session.kind !== MediaKind.PLAY || !session.sessionUrl) return;
      const layer = engine._playLayers.get(session.streamID);
      if (layer && layer !== "auto") engine._applyPlayLayer(session, layer).catch(() => {});
    };
    engine._media.observe({
      onNegotiated: reapply,
      onState: (session, state) => {
        if (state === PlayerState.PLAYING) reapply(session);
      },
    });
  }

  /**
   * Sends this stream's video as two layers when it is published (call before
   * `startPublishingStream`): the big one as captured and a small one (by default 320 pixels
   * wide, 15 frames/s, 150 kbit/s; see `setLowStreamParameter`).
   * @param {MediaStream|import("./local-stream.js").ZegoLocalStream} localStream
   */
  enableDualStream(localStream) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream) {
      this._logger.warn("enableDualStream: not a local stream");
      return;
    }
    if (!this._dualStreams.has(stream)) this._dualStreams.set(stream, Object.assign({}, DEFAULT_LOW));
  }

  /**
   * Sets the small layer of a dual stream (call before `startPublishingStream`; enables the
   * dual stream if it was not). `bitRate` in kbit/s.
   * @param {MediaStream|import("./local-stream.js").ZegoLocalStream} localStream
   * @param {{width: number, height: number, frameRate: number, bitRate: number}} param
   */
  setLowStreamParameter(localStream, param) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || !param || typeof param !== "object") {
      this._logger.warn("setLowStreamParameter: needs a local stream and {width, height, frameRate, bitRate}");
      return;
    }
    const given = (key) => (Number.isFinite(param[key]) && param[key] > 0 ? param[key] : undefined);
    const low = { width: given("width"), height: given("height"), frameRate: given("frameRate"), bitRate: given("bitRate") };
    if (!low.width && !low.height) low.width = DEFAULT_LOW.width;
    if (!low.frameRate) low.frameRate = DEFAULT_LOW.frameRate;
    if (!low.bitRate) low.bitRate = DEFAULT_LOW.bitRate;
    this._dualStreams.set(stream, low);
  }

  /** The small layer's parameters if `localStream` is a dual stream (for the publisher). */
  _dualStreamOf(localStream) {
    return this._dualStreams.get(localStream);
  }

  /**
   * Chooses which layer of a dual stream's video the relay sends this page: 0 the small one,
   * 1 the big one, 2 (the default) whichever fits this page's bandwidth. Resolves false when
   * the stream is not being played, the type is not one of these, or the relay refused.
   * @param {string} streamID
   * @param {0|1|2} streamType
   * @returns {Promise<boolean>}
   */
  async setPlayStreamVideoType(streamID, streamType) {
    const layer = LAYER_OF_STREAM_TYPE[streamType];
    const session = this._media.players.get(streamID);
    if (!layer || !session) {
      this._logger.warn(`setPlayStreamVideoType: ${layer ? `${streamID} is not being played` : `unknown stream type ${streamType}`}`);
      return false;
    }
    this._playLayers.set(streamID, layer);
    // While the session negotiates, the choice is asked for once it is up (onNegotiated).
    if (!session.sessionUrl) return true;
    return this._applyPlayLayer(session, layer);
  }

  /** Remembers `streamType` from startPlayingStream's options (applied once negotiated). */
  _choosePlayLayer(streamID, streamType) {
    const layer = LAYER_OF_STREAM_TYPE[streamType];
    if (layer) this._playLayers.set(streamID, layer);
    else this._playLayers.delete(streamID);
  }

  async _applyPlayLayer(session, layer) {
    const sessionUrl = session.sessionUrl;
    try {
      const state = await askRelayForLayer(sessionUrl, layer);
      return state.video === layer;
    } catch (err) {
      if (session.sessionUrl === sessionUrl) this._logger.warn("layer choice for", session.streamID, "failed:", err.message);
      return false;
    }
  }
}
