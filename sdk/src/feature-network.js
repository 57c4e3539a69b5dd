// Engine feature area: how the network and the media are doing, from the quality samples
// taken every few seconds (quality.js) —
// - `networkQuality(userID, upstream, downstream)` each round for every user the room
//   knows a level of, this page's user included. This page measures its own links and
//   reports them to the server (`reportQuality`); the server combines every member's report
//   with what the relay measured and sends the changes to the room (`networkQuality`).
// - `exceptionUpdate(streamID, {code, message})` when a stream stops sending or decoding
//   media it should, and when it recovers (media-exceptions.js).
// - `getPublishingStreamQuality`, the last sample of a published stream.

import { EngineEvent, MediaKind, SignalingRequest } from "./constants.js";
import { NetworkBoard, ownLevels, QualityLevel } from "./network-quality.js";
import { exceptionChanges } from "./media-exceptions.js";
import { playMuteOf } from "./feature-play-controls.js";

export class NetworkFeature {
  static setup(engine) {
    engine._networkBoard = new NetworkBoard();
    engine._latestStats = new Map(); // MediaSession → its latest quality record
    engine._mediaExceptions = new WeakMap(); // MediaSession → Set of conditions reported
    engine._networkRoom = null; // the room session the board's levels are of
    engine._quality.observe({
      onSample: (session, stats) => engine._onQualitySample(session, stats),
      onRound: () => engine._onQualityRound(),
    });
  }

  /**
   * The last quality record of a published stream (as in `publishQualityUpdate`), or null.
   * @param {string} streamID
   * @returns {object|null}
   */
  getPublishingStreamQuality(streamID) {
    const session = this._media.publishers.get(streamID);
    return (session && session.lastStats) || null;
  }

  /** Levels the server sent (`networkQuality` event): reported with the next round. */
  _onNetworkQuality(qualityList) {
    if (this._room) this._boardOf(this._room).apply(qualityList);
  }

  /** The board of `room`: what the server said in an earlier room means nothing here. */
  _boardOf(room) {
    if (this._networkRoom !== room) {
      this._networkRoom = room;
      this._networkBoard.clear();
    }
    return this._networkBoard;
  }

  _onQualitySample(session, stats) {
    this._latestStats.set(session, stats);
    if (!this._emitter.has(EngineEvent.EXCEPTION_UPDATE) && !this._mediaExceptions.has(session)) return;
    if (!this._mediaExceptions.has(session)) this._mediaExceptions.set(session, new Set());
    const changes = exceptionChanges(session.kind, this._mediaExceptions.get(session), stats, this._expectedMedia(session));
    for (const change of changes) this._emitter.emit(EngineEvent.EXCEPTION_UPDATE, session.streamID, change);
  }

  /** What should be flowing on a session: media it has, that nobody muted. */
  _expectedMedia(session) {
    if (session.kind === MediaKind.PUBLISH) {
      const stream = session.localStream;
      const mutes = (this._publishMutes && this._publishMutes.get(stream)) || {};
      const live = (tracks) => tracks.some((t) => t.readyState === "live" && t.enabled);
      return { audio: !mutes.audio && live(stream.getAudioTracks()), video: !mutes.video && live(stream.getVideoTracks()) };
    }
    const room = this._room;
    const remote = (room && room.state.muted.get(session.streamID)) || {};
    const own = playMuteOf(this._playMutes.get(session.streamID), this._allPlayMuted);
    return {
      audio: session.options.audio && !remote.audio && !own.audio,
      video: session.options.video && !remote.video && !own.video,
    };
  }

  /** After each round: report this page's levels to the server and the room's to the page. */
  _onQualityRound() {
    const room = this._room;
    const samples = [];
    for (const [session, stats] of this._latestStats) {
      if (session.stopped) this._latestStats.delete(session);
      else samples.push({ kind: session.kind, stats });
    }
    if (!room) return;
    const own = ownLevels(samples);
    if (own.upstream !== QualityLevel.UNKNOWN || own.downstream !== QualityLevel.UNKNOWN) {
      room.notify(SignalingRequest.REPORT_QUALITY, { upstream: own.upstream, downstream: own.downstream });
    }
    for (const [userID, upstream, downstream] of this._boardOf(room).report(room.user.userID, own)) {
      this._emitter.emit(EngineEvent.NETWORK_QUALITY, userID, upstream, downstream);
    }
  }
}
