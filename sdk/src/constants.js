// Every number and name the SDK's logic compares against: SDK and server error codes,
// websocket close codes, room and media states, update types, timings and capture presets.
// Nothing here does anything; the other modules import from here instead of using literals.

export const VERSION = "1.0.0";
export const PROTOCOL_VERSION = 1;

/**
 * Error codes raised by the SDK itself (the server's codes are 1000–6999, see the README).
 * They appear as `errorCode` in events and as `code` of rejected promises.
 */
export const SdkError = Object.freeze({
  /** The browser lacks a needed API (WebRTC, getUserMedia, websockets). */
  UNSUPPORTED: 7001,
  /** The websocket to the server could not be opened or closed before login finished. */
  CONNECT_FAILED: 7002,
  /** An argument is missing or has the wrong type. */
  INVALID_ARGUMENT: 7003,
  /** The call needs a logged-in room (call loginRoom first, or wait for LOGINED). */
  NOT_LOGGED_IN: 7004,
  /** This engine is already in (or logging in to) another room; log out first. */
  ALREADY_IN_ROOM: 7005,
  /** A request got no reply in time. */
  TIMEOUT: 7006,
  /** WebRTC negotiation with the relay failed (offer/answer or ICE/DTLS). */
  MEDIA_FAILED: 7007,
  /** Camera, microphone or screen capture failed (permission denied, no device, …). */
  CAPTURE_FAILED: 7008,
  /** The connection dropped and could not be restored within the reconnect grace period. */
  RECONNECT_FAILED: 7009,
  /** The operation was cancelled (stopped, logged out) before it finished. */
  CANCELLED: 7010,
  /** A ZEGO feature Huddle does not offer (beauty, mixing, CDN relay, …; see the README). */
  NOT_OFFERED: 7011,
});

/** The server's error codes the SDK acts on (the full table is in the README). */
export const ServerError = Object.freeze({
  /** Unexpected server error; also the code of a server error without one. */
  INTERNAL: 1000,
  /** This worker (or relay) is shutting down; go elsewhere. */
  DRAINING: 1010,
  /** Lowest code of the authentication and token family (2xxx–4xxx: retrying cannot help). */
  AUTH_FAMILY_FIRST: 2000,
  /** The token has expired. */
  TOKEN_EXPIRED: 4003,
  /** Lowest code of the room family (5xxx). */
  ROOM_FAMILY_FIRST: 5000,
  /** The same user logged in to the room from another connection. */
  KICKED_OUT: 5009,
  /** Resume failed: the server no longer has the session; log in again. */
  SESSION_NOT_FOUND: 5010,
  /** The request names a room this session is not in. */
  WRONG_ROOM: 5020,
});

/** Websocket close codes with a meaning for the SDK. */
export const CloseCode = Object.freeze({
  /** A normal close: the server ends the session after a logout. */
  NORMAL: 1000,
  /** No close frame: the connection dropped. */
  ABNORMAL: 1006,
  /** The server refused an oversized frame. */
  MESSAGE_TOO_BIG: 1009,
  /** This side gave up on the connection (heartbeat, server drain) and reconnects. */
  CLIENT_DROP: 4000,
  /** The token expired: the session is over. */
  TOKEN_EXPIRED: 4003,
  /** Kicked out by a login of the same user elsewhere. */
  KICKED_OUT: 4009,
});

/** `roomStateChanged` reasons; also the states of a room session (see room-machine.js). */
export const RoomState = Object.freeze({
  LOGINING: "LOGINING",
  LOGINED: "LOGINED",
  LOGIN_FAILED: "LOGIN_FAILED",
  RECONNECTING: "RECONNECTING",
  RECONNECTED: "RECONNECTED",
  RECONNECT_FAILED: "RECONNECT_FAILED",
  KICKOUT: "KICKOUT",
  LOGOUT: "LOGOUT",
  LOGOUT_FAILED: "LOGOUT_FAILED",
});

export const PublisherState = Object.freeze({
  NO_PUBLISH: "NO_PUBLISH",
  PUBLISH_REQUESTING: "PUBLISH_REQUESTING",
  PUBLISHING: "PUBLISHING",
});

export const PlayerState = Object.freeze({
  NO_PLAY: "NO_PLAY",
  PLAY_REQUESTING: "PLAY_REQUESTING",
  PLAYING: "PLAYING",
});

/** `roomUserUpdate` / `roomStreamUpdate` update types. */
export const UpdateType = Object.freeze({ ADD: "ADD", DELETE: "DELETE" });

/** `remoteMicStatusUpdate` / `remoteCameraStatusUpdate` statuses. */
export const DeviceStatus = Object.freeze({ OPEN: "OPEN", MUTE: "MUTE" });

/** Media session kinds. */
export const MediaKind = Object.freeze({ PUBLISH: "publish", PLAY: "play" });

/** Events the engine raises (the names pages listen to with `on`). */
export const EngineEvent = Object.freeze({
  ROOM_STATE_CHANGED: "roomStateChanged",
  ROOM_USER_UPDATE: "roomUserUpdate",
  ROOM_ONLINE_USER_COUNT_UPDATE: "roomOnlineUserCountUpdate",
  ROOM_STREAM_UPDATE: "roomStreamUpdate",
  STREAM_EXTRA_INFO_UPDATE: "streamExtraInfoUpdate",
  ROOM_EXTRA_INFO_UPDATE: "roomExtraInfoUpdate",
  IM_RECV_BROADCAST_MESSAGE: "IMRecvBroadcastMessage",
  IM_RECV_BARRAGE_MESSAGE: "IMRecvBarrageMessage",
  IM_RECV_CUSTOM_COMMAND: "IMRecvCustomCommand",
  TOKEN_WILL_EXPIRE: "tokenWillExpire",
  REMOTE_MIC_STATUS_UPDATE: "remoteMicStatusUpdate",
  REMOTE_CAMERA_STATUS_UPDATE: "remoteCameraStatusUpdate",
  PUBLISHER_STATE_UPDATE: "publisherStateUpdate",
  PLAYER_STATE_UPDATE: "playerStateUpdate",
  PUBLISH_QUALITY_UPDATE: "publishQualityUpdate",
  PLAY_QUALITY_UPDATE: "playQualityUpdate",
  AUTOPLAY_FAILED: "autoplayFailed",
  SCREEN_SHARING_ENDED: "screenSharingEnded",
  ROOM_STATE_UPDATE: "roomStateUpdate",
  SOUND_LEVEL_UPDATE: "soundLevelUpdate",
  NETWORK_QUALITY: "networkQuality",
  EXCEPTION_UPDATE: "exceptionUpdate",
  PLAYER_VIDEO_TRACK_UPDATE: "playerVideoTrackUpdate",
  PLAYER_AUDIO_TRACK_UPDATE: "playerAudioTrackUpdate",
});

/** Events the server pushes over the websocket (docs/PROTOCOL.md). */
export const ServerEvent = Object.freeze({
  ROOM_USER_UPDATE: "roomUserUpdate",
  ROOM_ONLINE_USER_COUNT_UPDATE: "roomOnlineUserCountUpdate",
  ROOM_STREAM_UPDATE: "roomStreamUpdate",
  STREAM_EXTRA_INFO_UPDATE: "streamExtraInfoUpdate",
  ROOM_EXTRA_INFO_UPDATE: "roomExtraInfoUpdate",
  IM_RECV_BROADCAST_MESSAGE: "IMRecvBroadcastMessage",
  IM_RECV_BARRAGE_MESSAGE: "IMRecvBarrageMessage",
  IM_RECV_CUSTOM_COMMAND: "IMRecvCustomCommand",
  KICKOUT: "kickout",
  STREAM_MUTE_UPDATE: "streamMuteUpdate",
  TOKEN_WILL_EXPIRE: "tokenWillExpire",
  RESYNC: "resync",
  PUBLISHER_STATE_UPDATE: "publisherStateUpdate",
  PLAYER_STATE_UPDATE: "playerStateUpdate",
  GOAWAY: "goaway",
  NETWORK_QUALITY: "networkQuality",
});

/** Signaling request types (docs/PROTOCOL.md). */
export const SignalingRequest = Object.freeze({
  LOGIN: "login",
  LOGOUT: "logout",
  RESUME: "resume",
  PING: "ping",
  RENEW_TOKEN: "renewToken",
  PUBLISH_STREAM: "publishStream",
  STOP_PUBLISHING_STREAM: "stopPublishingStream",
  PLAY_STREAM: "playStream",
  STOP_PLAYING_STREAM: "stopPlayingStream",
  SEND_BROADCAST_MESSAGE: "sendBroadcastMessage",
  SEND_BARRAGE_MESSAGE: "sendBarrageMessage",
  SEND_CUSTOM_COMMAND: "sendCustomCommand",
  SET_ROOM_EXTRA_INFO: "setRoomExtraInfo",
  SET_STREAM_EXTRA_INFO: "setStreamExtraInfo",
  MUTE_STREAM: "muteStream",
  REPORT_QUALITY: "reportQuality",
});

export const REQUEST_TIMEOUT_MS = 10000;
export const CONNECT_TIMEOUT_MS = 10000;
export const LOGOUT_TIMEOUT_MS = 3000;
export const QUALITY_INTERVAL_MS = 3000;
export const RECONNECT_BACKOFF_MS = [250, 500, 1000, 2000, 3000, 5000];
/** Used when the login reply names no grace period. */
export const DEFAULT_RECONNECT_GRACE_MS = 30000;
/** The server's heartbeat period until its `hello` says otherwise. */
export const DEFAULT_HEARTBEAT_MS = 10000;
/** Silence for this many heartbeats means the path is dead. */
export const HEARTBEAT_SILENCE_FACTOR = 2.5;
/** Below this, media is allowed to recover by itself before the SDK renegotiates. */
export const MEDIA_RECOVERY_GRACE_MS = 3000;
/** How long a relay session's DELETE may take before the SDK goes on without its answer. */
export const RELAY_DELETE_WAIT_MS = 2000;
/** A second try at setting a sender's bitrate, once its transport exists. */
export const BITRATE_RETRY_MS = 1000;
/** A draining server's clients spread their reconnects over at most this long. */
export const DRAIN_SPREAD_MAX_MS = 1000;

/** Default bitrates (kbit/s) when a stream's capture settings are unknown. */
export const DEFAULT_VIDEO_KBPS = 800;
export const DEFAULT_AUDIO_KBPS = 48;

/** Capture presets for `camera.videoQuality` (1–3; 4 means "use width/height/…"). */
export const VIDEO_PRESETS = Object.freeze({
  1: { width: 320, height: 240, frameRate: 15, bitrate: 300 },
  2: { width: 640, height: 480, frameRate: 15, bitrate: 800 },
  3: { width: 1280, height: 720, frameRate: 20, bitrate: 1500 },
});
export const SCREEN_PRESETS = Object.freeze({
  1: { width: 640, height: 480, frameRate: 10, bitrate: 600 },
  2: { width: 1280, height: 720, frameRate: 15, bitrate: 1500 },
  3: { width: 1920, height: 1080, frameRate: 15, bitrate: 2000 },
});
/** `videoQuality` value meaning "my own width/height/frameRate/bitrate". */
export const CUSTOM_QUALITY = 4;
export const DEFAULT_QUALITY = 2;

/** Loss rate thresholds of the 0 (excellent) … 4 (bad) quality grades. */
export const QUALITY_LOSS_STEPS = [0.01, 0.03, 0.08, 0.2];
