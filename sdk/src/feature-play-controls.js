// Engine feature area: what the relay sends this page of the streams it plays — its audio
// and video muted per stream (`mutePlayStreamAudio/Video`) or for every stream, those played
// later included (`muteAllPlayAudioStreams/VideoStreams`) — and the speaker played streams
// use. A mute is the relay's: it stops sending that media to this player only (the stream's
// other players and its publisher are not affected), so a muted stream costs no bandwidth.
// It is asked of the play session's relay session (`POST <Location>/mute`, docs/PROTOCOL.md
// section 13) and asked again after every renegotiation, which starts a new relay session.

import { MediaKind, PlayerState } from "./constants.js";

/** The relay's answer to a player mute: what it sends this player now. */
async function askRelayToMute(sessionUrl, change) {
  const response = await fetch(`${sessionUrl}/mute`, {
    method: "POST",
    mode: "cors",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(change),
  });
  if (!response.ok) throw new Error(`the relay answered HTTP ${response.status} to a player mute`);
  return response.json();
}

/**
 * What the relay should hold back of a played stream: its own setting where the page made
 * one, else the setting for all streams.
 * @param {{audio?: boolean, video?: boolean}|undefined} own
 * @param {{audio: boolean, video: boolean}} all
 */
export function playMuteOf(own, all) {
  return {
    audio: own && typeof own.audio === "boolean" ? own.audio : all.audio,
    video: own && typeof own.video === "boolean" ? own.video : all.video,
  };
}

export class PlayControlsFeature {
  static setup(engine) {
    engine._playMutes = new Map(); // streamID → {audio?, video?} set by mutePlayStream*
    engine._allPlayMuted = { audio: false, video: false }; // muteAllPlay*Streams
    // A new relay session sends everything: hold back again what the page muted, as soon as
    // the relay has the session and once more when it plays (the relay's word that it is live).
    const reapply = (session) => {
      if (session.kind !== MediaKind.PLAY || !session.sessionUrl) return;
      const mute = playMuteOf(engine._playMutes.get(session.streamID), engine._allPlayMuted);
      if (mute.audio || mute.video) engine._applyPlayMute(session, mute).catch(() => {});
    };
    engine._media.observe({
      onNegotiated: reapply,
      onState: (session, state) => {
        if (state === PlayerState.PLAYING) reapply(session);
      },
    });
  }

  /**
   * Stops (true) or resumes (false) receiving a played stream's video: the relay stops
   * sending it to this page; the picture stays on its last frame. Resolves false when the
   * stream is not being played or the relay refused.
   * @param {string} streamID
   * @param {boolean} mute
   * @returns {Promise<boolean>}
   */
  mutePlayStreamVideo(streamID, mute) {
    return this._mutePlayStream(streamID, { video: !!mute });
  }

  /**
   * Stops (true) or resumes (false) receiving a played stream's audio: the relay stops
   * sending it to this page. Resolves false when the stream is not being played or the relay
   * refused.
   * @param {string} streamID
   * @param {boolean} mute
   * @returns {Promise<boolean>}
   */
  mutePlayStreamAudio(streamID, mute) {
    return this._mutePlayStream(streamID, { audio: !!mute });
  }

  /**
   * Stops or resumes receiving the audio of every played stream, and of streams played later.
   * @param {boolean} mute
   * @returns {Promise<boolean>} false if the relay refused for a stream being played
   */
  muteAllPlayAudioStreams(mute) {
    return this._muteAllPlayStreams("audio", !!mute);
  }

  /**
   * Stops or resumes receiving the video of every played stream, and of streams played later.
   * @param {boolean} mute
   * @returns {Promise<boolean>} false if the relay refused for a stream being played
   */
  muteAllPlayVideoStreams(mute) {
    return this._muteAllPlayStreams("video", !!mute);
  }

  /**
   * Plays a media element's sound on a speaker (`deviceID` from `getSpeakers`), e.g. the
   * `<video>` of a played stream's view. False where the browser cannot choose (no `setSinkId`).
   * @param {HTMLMediaElement} media
   * @param {string} deviceID
   * @returns {Promise<boolean>}
   */
  async useAudioOutputDevice(media, deviceID) {
    if (!media || typeof media.setSinkId !== "function" || typeof deviceID !== "string") return false;
    try {
      await media.setSinkId(deviceID);
      return true;
    } catch (err) {
      this._logger.warn("useAudioOutputDevice failed", err && err.name, err && err.message);
      return false;
    }
  }

  async _mutePlayStream(streamID, change) {
    const session = this._media.players.get(streamID);
    if (!session) {
      this._logger.warn(`mutePlayStream: ${streamID} is not being played`);
      return false;
    }
    this._playMutes.set(streamID, Object.assign({}, this._playMutes.get(streamID), change));
    // While the session negotiates, the mute is applied once it is up (onNegotiated).
    if (!session.sessionUrl) return true;
    return this._applyPlayMute(session, change);
  }

  async _muteAllPlayStreams(kind, mute) {
    this._allPlayMuted[kind] = mute;
    const results = [];
    for (const session of this._media.players.values()) {
      // The setting for all replaces what was set per stream.
      const own = this._playMutes.get(session.streamID);
      if (own) delete own[kind];
      if (session.sessionUrl) results.push(this._applyPlayMute(session, { [kind]: mute }));
    }
    return (await Promise.all(results)).every(Boolean);
  }

  /** Asks the relay session of `session`; true once it holds back what `change` says. */
  async _applyPlayMute(session, change) {
    const sessionUrl = session.sessionUrl;
    try {
      const state = await askRelayToMute(sessionUrl, change);
      return (change.audio === undefined || state.audioMuted === change.audio) && (change.video === undefined || state.videoMuted === change.video);
    } catch (err) {
      // A session replaced meanwhile is muted again by its own negotiation.
      if (session.sessionUrl === sessionUrl) this._logger.warn("player mute of", session.streamID, "failed:", err.message);
      return false;
    }
  }
}
