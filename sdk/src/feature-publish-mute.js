// Engine feature area: a publisher turning its own audio or video off and on
// (`mutePublishStreamAudio/Video`). The page's tracks stop carrying media, and the room is
// told through signaling (`muteStream`, docs/PROTOCOL.md): every member hears
// `remoteMicStatusUpdate` / `remoteCameraStatusUpdate` at once, and members joining later
// see the flags on the stream. The flags are sent again whenever the stream is published
// anew (a reconnect that logged in again starts it over on the server).

import { MediaKind, PublisherState, SignalingRequest } from "./constants.js";

/** The transceivers of a publish session's peer connection that carry `kind`. */
function transceiversOf(pc, kind) {
  return pc.getTransceivers().filter((t) => t.receiver && t.receiver.track && t.receiver.track.kind === kind);
}

export class PublishMuteFeature {
  static setup(engine) {
    engine._publishMutes = new WeakMap(); // MediaStream → {audio, video, retain}
    engine._media.observe({
      onNegotiated: (session) => {
        if (session.kind === MediaKind.PUBLISH) engine._holdBackRetainedVideo(session);
      },
      onState: (session, state) => {
        // The stream is in the room once PUBLISHING: only then can its flags be set there.
        if (session.kind !== MediaKind.PUBLISH || state !== PublisherState.PUBLISHING) return;
        const mutes = engine._publishMutes.get(session.localStream);
        if (mutes && (mutes.audio || mutes.video)) engine._tellRoomMuted(session.streamID, { audio: mutes.audio, video: mutes.video });
      },
    });
  }

  /**
   * Stops (true) or resumes (false) sending video. The camera stays on. With `retain` the
   * local preview keeps showing the camera and nothing is sent; without, the track is
   * disabled (the preview turns black and black frames are sent). The room hears
   * `remoteCameraStatusUpdate`.
   * @param {MediaStream|object} localStream a MediaStream or a ZegoLocalStream
   * @param {boolean} mute
   * @param {boolean} [retain]
   * @returns {boolean}
   */
  mutePublishStreamVideo(localStream, mute, retain) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || typeof stream.getVideoTracks !== "function" || !stream.getVideoTracks().length) return false;
    const mutes = this._publishMuteState(stream);
    mutes.video = !!mute;
    mutes.retain = !!mute && !!retain;
    for (const track of stream.getVideoTracks()) track.enabled = !mute || mutes.retain;
    for (const session of this._media.publishersOf(stream)) {
      this._holdBackRetainedVideo(session);
      this._tellRoomMuted(session.streamID, { video: mutes.video });
    }
    return true;
  }

  /**
   * Stops (true) or resumes (false) sending audio (silence is sent while muted). The room
   * hears `remoteMicStatusUpdate`.
   * @param {MediaStream|object} localStream a MediaStream or a ZegoLocalStream
   * @param {boolean} mute
   * @returns {boolean}
   */
  mutePublishStreamAudio(localStream, mute) {
    const stream = this._mediaStreamOf(localStream);
    if (!stream || typeof stream.getAudioTracks !== "function" || !stream.getAudioTracks().length) return false;
    const mutes = this._publishMuteState(stream);
    mutes.audio = !!mute;
    for (const track of stream.getAudioTracks()) track.enabled = !mute;
    for (const session of this._media.publishersOf(stream)) this._tellRoomMuted(session.streamID, { audio: mutes.audio });
    return true;
  }

  _publishMuteState(stream) {
    if (!this._publishMutes.has(stream)) this._publishMutes.set(stream, { audio: false, video: false, retain: false });
    return this._publishMutes.get(stream);
  }

  /** With `retain`, the video sender sends nothing while muted; otherwise the camera track. */
  _holdBackRetainedVideo(session) {
    if (!session.pc) return;
    const mutes = this._publishMutes.get(session.localStream);
    const held = !!(mutes && mutes.video && mutes.retain);
    const track = session.localStream.getVideoTracks()[0] || null;
    for (const transceiver of transceiversOf(session.pc, "video")) {
      const wanted = held ? null : track;
      if (transceiver.sender.track !== wanted) transceiver.sender.replaceTrack(wanted).catch(() => {});
    }
  }

  /** Sets the stream's publisher mute flags in the room (once it is there). */
  _tellRoomMuted(streamID, flags) {
    if (!this._room || this._media.stateOf(MediaKind.PUBLISH, streamID) !== PublisherState.PUBLISHING) return;
    this._request(SignalingRequest.MUTE_STREAM, Object.assign({ streamID }, flags)).catch((err) =>
      this._logger.warn("could not tell the room that", streamID, "is muted:", err.code, err.msg),
    );
  }
}
