//! The live state of a room and the events that describe its changes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A room is named by its app and its room id; two apps may use the same room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomKey {
    pub app_id: u32,
    pub room_id: String,
}

impl RoomKey {
    pub fn new(app_id: u32, room_id: impl Into<String>) -> Self {
        RoomKey { app_id, room_id: room_id.into() }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app_id, self.room_id)
    }
}

/// What other members see of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "userID")]
    pub user_id: String,
    pub user_name: String,
}

/// A user in a room, with the session (connection lifetime) that holds the membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user: User,
    pub session_id: String,
    /// The worker whose lease keeps this member alive.
    pub worker_id: String,
    /// Unix seconds of the login.
    pub joined_at: i64,
    /// Unix ms of the login (0 in members stored before this field existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub joined_ms: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl Member {
    /// Unix ms of the login (from the seconds for members stored without the ms).
    pub fn joined_ms(&self) -> i64 {
        if self.joined_ms > 0 { self.joined_ms } else { self.joined_at * 1000 }
    }
}

/// A published stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    #[serde(rename = "streamID")]
    pub stream_id: String,
    pub user: User,
    pub extra_info: String,
    /// Base URL of the relay that holds the stream's media (where players are sent).
    #[serde(rename = "relayURL", default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
    /// The business server muted the stream's audio: the relay does not forward it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audio_muted: bool,
    /// The business server muted the stream's video: the relay does not forward it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub video_muted: bool,
    /// The publisher turned its own audio off (`muteStream`): a signal only, its browser
    /// sends silence; distinct from the server's mute, which it cannot lift.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publisher_audio_muted: bool,
    /// The publisher turned its own video off (`muteStream`): its browser sends black frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publisher_video_muted: bool,
}

/// Who muted a stream. The two sets of flags are kept apart: a publisher's unmute never
/// lifts the business server's mute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteBy {
    Server,
    Publisher,
}

impl StreamInfo {
    /// The (audio, video) flags that `by` controls.
    fn mute_flags_mut(&mut self, by: MuteBy) -> (&mut bool, &mut bool) {
        match by {
            MuteBy::Server => (&mut self.audio_muted, &mut self.video_muted),
            MuteBy::Publisher => (&mut self.publisher_audio_muted, &mut self.publisher_video_muted),
        }
    }

    /// Applies `by`'s mute change; a kind given as `None` stays as it is.
    pub fn set_muted(&mut self, by: MuteBy, audio: Option<bool>, video: Option<bool>) {
        let (audio_muted, video_muted) = self.mute_flags_mut(by);
        *audio_muted = audio.unwrap_or(*audio_muted);
        *video_muted = video.unwrap_or(*video_muted);
    }

    /// `by`'s (audio, video) flags.
    pub fn muted_by(&self, by: MuteBy) -> (bool, bool) {
        match by {
            MuteBy::Server => (self.audio_muted, self.video_muted),
            MuteBy::Publisher => (self.publisher_audio_muted, self.publisher_video_muted),
        }
    }

    /// Takes `by`'s flags from `stored` (the room's copy after a change).
    pub fn copy_muted(&mut self, by: MuteBy, stored: &StreamInfo) {
        let (audio, video) = stored.muted_by(by);
        self.set_muted(by, Some(audio), Some(video));
    }
}

/// A relay node as the rooms backend knows it: where it is and how busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayInfo {
    pub id: String,
    pub url: String,
    pub peers: u64,
    pub streams: u64,
    /// Its `--region` (empty: unnamed; also what relays of older versions announce).
    #[serde(default)]
    pub region: String,
    /// Unix milliseconds of the last announcement.
    pub updated_at: i64,
}

impl RelayInfo {
    /// A relay silent for longer than this is considered gone.
    pub const FRESH_MS: i64 = 15_000;

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms - self.updated_at <= Self::FRESH_MS
    }
}

/// One key of a room's extra info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomExtraInfo {
    pub key: String,
    pub value: String,
    pub update_user: User,
    /// Unix milliseconds.
    pub update_time: i64,
}

/// A broadcast or barrage message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImMessage {
    pub message: String,
    pub from_user: User,
    /// Unix milliseconds.
    pub send_time: i64,
    #[serde(rename = "messageID")]
    pub message_id: u64,
}

/// The state of a room as one consistent read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub members: Vec<Member>,
    pub streams: Vec<StreamInfo>,
    pub extra_info: Vec<RoomExtraInfo>,
}

impl Snapshot {
    /// Sorted so that both backends return the same order.
    pub fn normalized(mut self) -> Self {
        self.members.sort_by(|a, b| a.user.user_id.cmp(&b.user.user_id));
        self.streams.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        self.extra_info.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    pub fn users(&self) -> Vec<User> {
        self.members.iter().map(|m| m.user.clone()).collect()
    }
}

/// A change in a room, fanned out to every worker with members in it. The same JSON form
/// travels over Redis pub/sub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RoomEvent {
    #[serde(rename_all = "camelCase")]
    UserAdded {
        user: User,
        online_count: u32,
    },
    #[serde(rename_all = "camelCase")]
    UserRemoved {
        user: User,
        online_count: u32,
    },
    StreamAdded {
        stream: StreamInfo,
    },
    StreamRemoved {
        stream: StreamInfo,
    },
    StreamExtraInfo {
        stream: StreamInfo,
    },
    RoomExtraInfo {
        extra: RoomExtraInfo,
    },
    Broadcast {
        message: ImMessage,
    },
    Barrage {
        message: ImMessage,
    },
    #[serde(rename_all = "camelCase")]
    CustomCommand {
        message: ImMessage,
        /// Empty: everyone in the room but the sender.
        #[serde(default)]
        to_user_ids: Vec<String>,
    },
    /// The named session is removed from the room; only it reacts. Why is in `cause`: the
    /// user logged in again elsewhere, the business server removed it, or it closed the room.
    #[serde(rename_all = "camelCase")]
    Kickout {
        user_id: String,
        session_id: String,
        #[serde(default)]
        cause: KickCause,
    },
    /// A stream's mute flags changed: the business server muted or unmuted its audio and/or
    /// video (`by_server`: the relay stops or resumes forwarding that media to players), or its
    /// publisher did (`muteStream`: a signal only). The room's members are told either way.
    #[serde(rename_all = "camelCase")]
    StreamMuted {
        stream: StreamInfo,
        /// Absent in events of workers that predate publisher mutes, which were all the server's.
        #[serde(default = "server_mute")]
        by_server: bool,
    },
    /// State may have changed without events (Redis restart); members should re-read it.
    Resync,
    /// Users' network quality that changed, from the worker that holds their sessions: one
    /// batch per room per interval (see `rooms::quality`). Everyone in the room hears it.
    #[serde(rename_all = "camelCase")]
    NetworkQuality {
        users: Vec<UserQuality>,
    },
    /// What a relay measured on the links of the room's users (its peers): taken in by the
    /// worker holding each user's session, never sent to clients.
    #[serde(rename_all = "camelCase")]
    RelayQuality {
        users: std::collections::BTreeMap<String, RelayLevels>,
    },
    /// A publish or play of one session changed state on the relay; only that session reacts.
    #[serde(rename_all = "camelCase")]
    MediaState {
        session_id: String,
        stream_id: String,
        role: MediaRole,
        state: MediaStateKind,
        error_code: u32,
    },
}

/// One user's network quality as the room hears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserQuality {
    #[serde(rename = "userID")]
    pub user_id: String,
    pub upstream: crate::quality::Level,
    pub downstream: crate::quality::Level,
}

/// The worst levels a relay measured for one user: upstream on its publishers' links,
/// downstream on its players' (absent: no such peer, or nothing measured yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayLevels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::quality::Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<crate::quality::Level>,
}

fn server_mute() -> bool {
    true
}

/// Why a session was removed from its room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum KickCause {
    /// The same user logged in again from another connection.
    #[default]
    Replaced,
    /// The business server removed the user (admin API or `huddle rooms kick`).
    Server { reason: String },
    /// The business server closed the room.
    RoomClosed { reason: String },
}

/// One room of an app as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    pub room_id: String,
    pub user_count: u32,
    pub stream_count: u32,
}

/// What closing a room removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedRoom {
    pub users_removed: u32,
    pub streams_removed: u32,
}

/// Which side of a stream a media state is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaRole {
    Publisher,
    Player,
}

/// The SDK's publisher/player states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaStateKind {
    NoPublish,
    PublishRequesting,
    Publishing,
    NoPlay,
    PlayRequesting,
    Playing,
}

impl RoomEvent {
    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RoomEvent::UserAdded { .. } => "user_added",
            RoomEvent::UserRemoved { .. } => "user_removed",
            RoomEvent::StreamAdded { .. } => "stream_added",
            RoomEvent::StreamRemoved { .. } => "stream_removed",
            RoomEvent::StreamExtraInfo { .. } => "stream_extra_info",
            RoomEvent::RoomExtraInfo { .. } => "room_extra_info",
            RoomEvent::Broadcast { .. } => "broadcast",
            RoomEvent::Barrage { .. } => "barrage",
            RoomEvent::CustomCommand { .. } => "custom_command",
            RoomEvent::Kickout { .. } => "kickout",
            RoomEvent::StreamMuted { .. } => "stream_muted",
            RoomEvent::Resync => "resync",
            RoomEvent::NetworkQuality { .. } => "network_quality",
            RoomEvent::RelayQuality { .. } => "relay_quality",
            RoomEvent::MediaState { .. } => "media_state",
        }
    }
}

/// What a join returns: the room as the new member finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub snapshot: Snapshot,
    /// The session this join replaced (same user id logged in again), now kicked out.
    pub replaced_session: Option<String>,
}

/// Current unix time in milliseconds.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
