// The page's publish and play sessions: starting and stopping them, their
// publisherStateUpdate/playerStateUpdate, what the relay reports about them, and recovery —
// renegotiating a session whose path broke, and every session after a reconnect.
//
// It talks to the engine only through `host`:
//   request(type, data) → Promise    a signaling request (waits through a reconnect)
//   notify(type, data)               a request whose reply nobody waits for (if connected)
//   rtcConfiguration(reply)          RTCPeerConnection settings for a signaling reply
//   room() → RoomSession|null        the current room (reconnecting? knows a stream?)
//   streamSettings(localStream)      bitrates of a captured stream
//   dualStream(localStream)          the small layer's parameters if it is sent as two layers
//   emit(event, ...args), logger

import {
  SdkError,
  ServerError,
  MediaKind,
  PublisherState,
  PlayerState,
  EngineEvent,
  SignalingRequest,
  MEDIA_RECOVERY_GRACE_MS,
  DEFAULT_VIDEO_KBPS,
  DEFAULT_AUDIO_KBPS,
} from "./constants.js";
import { sdkError, isTransientSignalingError } from "./errors.js";
import { MediaSession, preferCodec, limitBitrate } from "./media-session.js";
import { dualStreamEncodings } from "./feature-simulcast.js";
import { now } from "./util.js";

/** Per kind: the state names and event of its sessions. */
const KIND = Object.freeze({
  [MediaKind.PUBLISH]: {
    requesting: PublisherState.PUBLISH_REQUESTING,
    ended: PublisherState.NO_PUBLISH,
    event: EngineEvent.PUBLISHER_STATE_UPDATE,
  },
  [MediaKind.PLAY]: {
    requesting: PlayerState.PLAY_REQUESTING,
    ended: PlayerState.NO_PLAY,
    event: EngineEvent.PLAYER_STATE_UPDATE,
  },
});

export class MediaController {
  constructor(host) {
    this.host = host;
    this.publishers = new Map(); // streamID → MediaSession (+ localStream)
    this.players = new Map(); // streamID → MediaSession (+ remote MediaStream)
    this._states = { [MediaKind.PUBLISH]: new Map(), [MediaKind.PLAY]: new Map() };
    this._checkTimer = null;
    this._observers = [];
    // What a session needs from the rest of the SDK, and nothing more.
    this._link = {
      request: (type, data) => host.request(type, data),
      rtcConfiguration: (reply) => host.rtcConfiguration(reply),
      onPathDown: () => this.scheduleCheck(),
      logger: host.logger,
    };
  }

  /**
   * Lets a feature area follow the sessions: `observer.onNegotiated(session)` after each
   * (re)negotiation with the relay, `observer.onState(session, state)` after each state
   * reported to the page, `observer.onPlayerTrack(session, track)` when a played stream gets
   * a new track. Any may be absent.
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
        this.host.logger.warn(hook, "observer failed", err);
      }
    }
  }

  /** The last state reported for a stream of `kind` (undefined if none). */
  stateOf(kind, streamID) {
    return this._states[kind].get(streamID);
  }

  _sessions(kind) {
    return kind === MediaKind.PUBLISH ? this.publishers : this.players;
  }

  // ----- publishing ----------------------------------------------------------------------

  isPublishing(streamID) {
    return this.publishers.has(streamID);
  }

  /** Starts publishing `localStream`; the outcome comes as publisherStateUpdate. */
  publish(streamID, localStream, options) {
    const session = new MediaSession(this._link, MediaKind.PUBLISH, streamID);
    session.localStream = localStream;
    session.options = options;
    this.publishers.set(streamID, session);
    this._publish(session).catch(() => {});
  }

  _publish(session) {
    const settings = this.host.streamSettings(session.localStream) || { bitrate: DEFAULT_VIDEO_KBPS, audioBitrate: DEFAULT_AUDIO_KBPS };
    const request = {
      type: SignalingRequest.PUBLISH_STREAM,
      data: { streamID: session.streamID, extraInfo: session.options.extraInfo },
    };
    // PUBLISHING comes from the server once the relay sees the media.
    const low = this.host.dualStream(session.localStream);
    return this._negotiate(session, request, (pc) => {
      const stream = session.localStream;
      for (const track of stream.getTracks()) {
        const init = { direction: "sendonly", streams: [stream] };
        // A dual stream's video goes as two simulcast layers, small and big.
        if (track.kind === "video" && low) init.sendEncodings = dualStreamEncodings(track, low, settings.bitrate);
        const transceiver = pc.addTransceiver(track, init);
        if (track.kind === "video") {
          preferCodec(transceiver, session.options.videoCodec);
          limitBitrate(transceiver.sender, settings.bitrate);
        } else {
          limitBitrate(transceiver.sender, settings.audioBitrate);
        }
      }
    });
  }

  stopPublishing(streamID) {
    const session = this.publishers.get(streamID);
    if (!session) return false;
    this._end(session);
    this.host.notify(SignalingRequest.STOP_PUBLISHING_STREAM, { streamID });
    return true;
  }

  /** Sessions publishing `localStream`. */
  publishersOf(localStream) {
    return Array.from(this.publishers.values()).filter((session) => session.localStream === localStream);
  }

  /** Swaps `track` into every running publish of `localStream` (no renegotiation). */
  async replaceSenderTrack(localStream, track) {
    await this.setSenderTrack(localStream, track.kind, track);
  }

  /**
   * Sends `track` (null: nothing) as the `kind` of every running publish of `localStream`:
   * swapped into the sender of that kind, without renegotiation. A publish that has no
   * sender of that kind yet (it started without it) is negotiated again to add one.
   */
  async setSenderTrack(localStream, kind, track) {
    for (const session of this.publishersOf(localStream)) {
      if (!session.pc) continue;
      const transceiver = session.pc.getTransceivers().find((t) => t.receiver && t.receiver.track && t.receiver.track.kind === kind);
      if (transceiver) await transceiver.sender.replaceTrack(track);
      else if (track) this._renegotiate(session);
    }
  }

  /** Caps the `kind` bitrate (kbit/s) of every running publish of `localStream`. */
  setSenderBitrate(localStream, kind, kbps) {
    for (const session of this.publishersOf(localStream)) {
      if (!session.pc) continue;
      for (const transceiver of session.pc.getTransceivers()) {
        if (transceiver.receiver && transceiver.receiver.track && transceiver.receiver.track.kind === kind) limitBitrate(transceiver.sender, kbps);
      }
    }
  }

  // ----- playing -------------------------------------------------------------------------

  /** Starts playing; resolves with the MediaStream that keeps playing across reconnects. */
  async play(streamID, options) {
    const existing = this.players.get(streamID);
    if (existing) return existing.remoteStream;
    const session = new MediaSession(this._link, MediaKind.PLAY, streamID);
    session.remoteStream = new MediaStream();
    session.options = options;
    this.players.set(streamID, session);
    await this._play(session);
    return session.remoteStream;
  }

  _play(session) {
    // The page keeps its MediaStream whatever happens; new tracks are swapped into it.
    const request = { type: SignalingRequest.PLAY_STREAM, data: { streamID: session.streamID } };
    return this._negotiate(session, request, (pc) => {
      if (session.options.audio) pc.addTransceiver("audio", { direction: "recvonly" });
      if (session.options.video) {
        const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
        preferCodec(transceiver, session.options.videoCodec);
      }
      pc.addEventListener("track", (event) => {
        if (!attachRemoteTrack(session.remoteStream, event.track) || session.stopped) return;
        // The page's MediaStream has a new track (first play, or played again after a
        // reconnect): pages that render tracks themselves follow it with these events.
        const kindEvent = event.track.kind === "video" ? EngineEvent.PLAYER_VIDEO_TRACK_UPDATE : EngineEvent.PLAYER_AUDIO_TRACK_UPDATE;
        this.host.emit(kindEvent, session.streamID, event.track);
        this._tell("onPlayerTrack", session, event.track);
      });
    });
  }

  stopPlaying(streamID) {
    const session = this.players.get(streamID);
    if (!session) return;
    this._end(session);
    this.host.notify(SignalingRequest.STOP_PLAYING_STREAM, { streamID });
  }

  /** The last quality record of a played stream, or null. */
  playQuality(streamID) {
    const session = this.players.get(streamID);
    return (session && session.lastStats) || null;
  }

  // ----- both ----------------------------------------------------------------------------

  /**
   * Negotiates a publish or play session (again). A failure ends it and reports why, except
   * when signaling dropped meanwhile (the reconnect negotiates it again) or a newer
   * negotiation of the same session took over.
   */
  async _negotiate(session, request, setupPc) {
    session.negotiating = true;
    this._setState(session, KIND[session.kind].requesting, 0);
    try {
      await session.negotiate(request, setupPc);
      if (!session.stopped) this._tell("onNegotiated", session);
    } catch (err) {
      if (session.stopped) throw sdkError(SdkError.CANCELLED, "stopped");
      if (err.code === SdkError.CANCELLED || this._retryAfterReconnect(session, err)) return;
      this.host.logger.warn(session.kind, "failed", session.streamID, err.code, err.msg);
      this._end(session, err.code || SdkError.MEDIA_FAILED, err.msg);
      throw err;
    } finally {
      session.negotiating = false;
    }
  }

  /** Ends a session on this side and reports NO_PUBLISH or NO_PLAY. */
  _end(session, errorCode = 0, extendedData = "") {
    const sessions = this._sessions(session.kind);
    if (sessions.get(session.streamID) === session) sessions.delete(session.streamID);
    session.stop();
    this._setState(session, KIND[session.kind].ended, errorCode, extendedData);
  }

  _setState(session, state, errorCode, extendedData = "") {
    const states = this._states[session.kind];
    if (states.get(session.streamID) === state) return;
    states.set(session.streamID, state);
    this.host.emit(KIND[session.kind].event, { state, streamID: session.streamID, errorCode, extendedData });
    this._tell("onState", session, state);
  }

  /**
   * Signaling dropped while a stream was being negotiated: keep the session; the reconnect
   * negotiates it again once the room is back (`restore`).
   */
  _retryAfterReconnect(session, err) {
    const room = this.host.room();
    if (!room || !isTransientSignalingError(err) || !room.reconnecting) return false;
    this.host.logger.info(session.kind, session.streamID, "waits for the reconnect");
    session.close();
    session.retry = true;
    return true;
  }

  stopAll() {
    for (const session of [...this.publishers.values(), ...this.players.values()]) this._end(session);
  }

  /** Stops the recovery timer (the engine is destroyed). */
  dispose() {
    if (this._checkTimer) clearTimeout(this._checkTimer);
    this._checkTimer = null;
  }

  /**
   * PUBLISHING/PLAYING and NO_PUBLISH/NO_PLAY from the relay (through signaling). An end
   * with an error code is final. An end without one while this side's peer connection is
   * down is a broken path: recovered by renegotiating. An end while this side is connected
   * or negotiating concerns an older relay session of the stream and is ignored.
   */
  onServerState(kind, data) {
    const session = this._sessions(kind).get(data.streamID);
    if (!session) return;
    if (data.state !== KIND[kind].ended) {
      this._setState(session, data.state, data.errorCode || 0);
      return;
    }
    if (data.errorCode === ServerError.DRAINING && kind === MediaKind.PUBLISH) {
      // Its relay is shutting down: publish again, which signaling sends to another relay.
      this.host.logger.info("the relay of", data.streamID, "is draining; publishing through another one");
      this._renegotiate(session);
      return;
    }
    const room = this.host.room();
    const streamGone = kind === MediaKind.PLAY && !(room && room.knowsStream(data.streamID));
    if (data.errorCode || streamGone) {
      this._end(session, data.errorCode || 0);
      return;
    }
    if (session.negotiating || !session.pc || session.pc.connectionState === "connected") return;
    if (!session.failedSince) session.failedSince = now();
    this._setState(session, data.state, 0);
    this.scheduleCheck();
  }

  /**
   * After a reconnect: a fresh login lost the streams on the server, so publish them all
   * again; after a resume only media whose peer connection broke is renegotiated.
   */
  restore(relogged) {
    for (const session of this.publishers.values()) {
      if (relogged || session.needsRecovery()) this._renegotiate(session);
    }
    for (const session of this.players.values()) {
      if (session.needsRecovery()) this._renegotiate(session);
    }
    // Paths that went down just before (not yet due for recovery) are checked again later.
    this.scheduleCheck();
  }

  scheduleCheck() {
    if (this._checkTimer) return;
    this._checkTimer = setTimeout(() => {
      this._checkTimer = null;
      const room = this.host.room();
      if (!room) return;
      if (room.reconnecting) {
        // The reconnect restores media when it is done; look again after it.
        this.scheduleCheck();
        return;
      }
      let pending = false;
      for (const session of [...this.publishers.values(), ...this.players.values()]) {
        if (session.kind === MediaKind.PLAY && !room.knowsStream(session.streamID) && session.needsRecovery()) {
          this.stopPlaying(session.streamID);
        } else if (session.needsRecovery()) this._renegotiate(session);
        else if (session.failedSince) pending = true;
      }
      if (pending) this.scheduleCheck();
    }, MEDIA_RECOVERY_GRACE_MS + 100);
  }

  _renegotiate(session) {
    if (session.negotiating || session.stopped) return;
    this.host.logger.info("renegotiating", session.kind, session.streamID);
    const run = session.kind === MediaKind.PUBLISH ? this._publish(session) : this._play(session);
    run.catch((err) => this.host.logger.warn("could not restore", session.kind, session.streamID, err.code, err.msg));
  }
}

/**
 * Swaps a new track into the stream the page already holds (so its `<video>` keeps going);
 * true when `track` was not in it yet.
 */
function attachRemoteTrack(stream, track) {
  for (const old of stream.getTracks()) {
    if (old.kind === track.kind && old !== track) stream.removeTrack(old);
  }
  if (stream.getTracks().includes(track)) return false;
  stream.addTrack(track);
  return true;
}
