// What a page knows about its room — members, streams, the server's mute flags, extra info,
// the online count — and the reducers that apply the server's updates and snapshots to it.
// Every reducer returns the events the change is worth, as `{event, args}` records in the
// order they are to be raised; the caller raises them. No DOM, no timers, no I/O: the unit
// tests in sdk/test run these in Node.

import { EngineEvent, UpdateType, DeviceStatus } from "./constants.js";

/**
 * A room's state as this page knows it.
 * @param {string} roomID
 * @param {{userUpdate?: boolean}} [options] `userUpdate`: report member changes (`roomUserUpdate`)
 */
export function createRoomState(roomID, { userUpdate = false } = {}) {
  return {
    roomID,
    userUpdate: !!userUpdate,
    users: new Map(),
    streams: new Map(),
    // streamID → {audio, video}: what the business server muted, as this page last heard.
    muted: new Map(),
    extraInfo: new Map(),
    count: 0,
  };
}

/**
 * The stream shape of events, ZEGO's `ZegoStreamList`: `{streamID, user, extraInfo}` and its
 * CDN playback URLs, empty: Huddle relays media over WebRTC only (the relay URL stays inside).
 */
export function publicStream(stream) {
  return {
    streamID: stream.streamID,
    user: stream.user,
    extraInfo: stream.extraInfo || "",
    urlsFLV: "",
    urlsRTMP: "",
    urlsHLS: "",
    urlsHttpsFLV: "",
    urlsHttpsHLS: "",
  };
}

function publicUser(user) {
  return { userID: user.userID, userName: user.userName };
}

const event = (name, ...args) => ({ event: name, args });

/** `roomUserUpdate`: ADD = upsert, DELETE = remove-if-present; reports what really changed. */
export function applyUserUpdate(state, updateType, userList) {
  const changed = [];
  for (const user of userList || []) {
    const known = state.users.get(user.userID);
    if (updateType === UpdateType.ADD) {
      if (!known || known.userName !== user.userName) changed.push(user);
      state.users.set(user.userID, user);
    } else if (updateType === UpdateType.DELETE && known) {
      state.users.delete(user.userID);
      changed.push(user);
    }
  }
  if (!changed.length || !state.userUpdate) return [];
  return [event(EngineEvent.ROOM_USER_UPDATE, state.roomID, updateType, changed.map(publicUser))];
}

/**
 * `roomStreamUpdate`: ADD = upsert, DELETE = remove-if-present; reports what really changed,
 * then (on ADD) the server's mute flags the added streams carry.
 */
export function applyStreamUpdate(state, updateType, streamList) {
  const list = streamList || [];
  const changed = [];
  for (const raw of list) {
    const stream = publicStream(raw);
    const known = state.streams.get(stream.streamID);
    if (updateType === UpdateType.ADD) {
      if (!known) changed.push(stream);
      state.streams.set(stream.streamID, stream);
    } else if (updateType === UpdateType.DELETE && known) {
      state.streams.delete(stream.streamID);
      state.muted.delete(stream.streamID);
      changed.push(stream);
    }
  }
  const events = changed.length ? [event(EngineEvent.ROOM_STREAM_UPDATE, state.roomID, updateType, changed, "")] : [];
  if (updateType === UpdateType.ADD) events.push(...applyMuteFlags(state, list));
  return events;
}

/** `streamExtraInfoUpdate`: the streams' new extra info, passed on as it comes. */
export function applyStreamExtraInfo(state, streamList) {
  const list = (streamList || []).map(publicStream);
  for (const stream of list) state.streams.set(stream.streamID, stream);
  return [event(EngineEvent.STREAM_EXTRA_INFO_UPDATE, state.roomID, list)];
}

/** Upserts room extra info by key; reports the entries that are new or changed. */
export function applyRoomExtraInfo(state, infoList) {
  const list = infoList || [];
  const changed = list.filter((info) => {
    const known = state.extraInfo.get(info.key);
    return !known || known.value !== info.value || known.updateTime !== info.updateTime;
  });
  for (const info of list) state.extraInfo.set(info.key, info);
  return changed.length ? [event(EngineEvent.ROOM_EXTRA_INFO_UPDATE, state.roomID, changed)] : [];
}

/** The online count; after a login again the pushed count can repeat what a snapshot said. */
export function applyOnlineCount(state, count) {
  if (typeof count !== "number" || count === state.count) return [];
  state.count = count;
  return [event(EngineEvent.ROOM_ONLINE_USER_COUNT_UPDATE, state.roomID, count)];
}

/**
 * The mute flags of known remote streams (on a stream as it arrives, on `streamMuteUpdate` or
 * in a snapshot): muted by the business server (`audioMuted`/`videoMuted`) or by its
 * publisher (`publisherAudioMuted`/`publisherVideoMuted`, from `mutePublishStreamAudio/Video`)
 * — either one is MUTE. `remoteMicStatusUpdate` / `remoteCameraStatusUpdate` (MUTE or OPEN)
 * for each that differs from what the page knew, a stream first seen counting as open. So a
 * page that joins after a mute hears it.
 */
export function applyMuteFlags(state, streamList) {
  const events = [];
  for (const raw of streamList || []) {
    if (!state.streams.has(raw.streamID)) continue; // its own stream, or one already gone
    const before = state.muted.get(raw.streamID) || { audio: false, video: false };
    const muted = { audio: !!(raw.audioMuted || raw.publisherAudioMuted), video: !!(raw.videoMuted || raw.publisherVideoMuted) };
    state.muted.set(raw.streamID, muted);
    if (before.audio !== muted.audio) {
      events.push(event(EngineEvent.REMOTE_MIC_STATUS_UPDATE, raw.streamID, muted.audio ? DeviceStatus.MUTE : DeviceStatus.OPEN, 0));
    }
    if (before.video !== muted.video) {
      events.push(event(EngineEvent.REMOTE_CAMERA_STATUS_UPDATE, raw.streamID, muted.video ? DeviceStatus.MUTE : DeviceStatus.OPEN, 0));
    }
  }
  return events;
}

/**
 * Replaces the state with a server snapshot (a resume reply, a login again, `resync`) and
 * reports the difference as the updates the page would have seen: members gone and new,
 * streams gone and new, mute flags, changed stream and room extra info, the count.
 * @param {{userList?: object[], streamList?: object[], roomExtraInfoList?: object[], onlineCount?: number}} view
 */
export function applySnapshot(state, view) {
  const events = [];
  const roomID = state.roomID;
  if (state.userUpdate && Array.isArray(view.userList)) {
    const next = new Map(view.userList.map((u) => [u.userID, u]));
    const gone = Array.from(state.users.values()).filter((u) => !next.has(u.userID));
    const added = view.userList.filter((u) => {
      const known = state.users.get(u.userID);
      return !known || known.userName !== u.userName;
    });
    state.users = next;
    if (gone.length) events.push(event(EngineEvent.ROOM_USER_UPDATE, roomID, UpdateType.DELETE, gone));
    if (added.length) events.push(event(EngineEvent.ROOM_USER_UPDATE, roomID, UpdateType.ADD, added));
  }
  const nextStreams = new Map((view.streamList || []).map((s) => [s.streamID, publicStream(s)]));
  const goneStreams = Array.from(state.streams.values()).filter((s) => !nextStreams.has(s.streamID));
  const addedStreams = Array.from(nextStreams.values()).filter((s) => !state.streams.has(s.streamID));
  const changedInfo = Array.from(nextStreams.values()).filter((s) => {
    const known = state.streams.get(s.streamID);
    return known && known.extraInfo !== s.extraInfo;
  });
  state.streams = nextStreams;
  for (const gone of goneStreams) state.muted.delete(gone.streamID);
  if (goneStreams.length) events.push(event(EngineEvent.ROOM_STREAM_UPDATE, roomID, UpdateType.DELETE, goneStreams, ""));
  if (addedStreams.length) events.push(event(EngineEvent.ROOM_STREAM_UPDATE, roomID, UpdateType.ADD, addedStreams, ""));
  events.push(...applyMuteFlags(state, view.streamList || []));
  if (changedInfo.length) events.push(event(EngineEvent.STREAM_EXTRA_INFO_UPDATE, roomID, changedInfo));
  events.push(...applyRoomExtraInfo(state, view.roomExtraInfoList || []));
  if (typeof view.onlineCount === "number") events.push(...applyOnlineCount(state, view.onlineCount));
  return events;
}
