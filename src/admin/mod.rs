//! Room administration for business servers: what the admin REST API (`api::admin`) and the
//! `huddle rooms` CLI (through that API) do. Listing, removing users (with an optional ban),
//! closing rooms (with an optional closure), messages from the server, and muting a stream's
//! media. The atomic parts (a kick, a close, the ban check at login) live in the rooms
//! backends; this module validates, applies the limits, and talks to the local relay.

pub mod client;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::ids::{self, IdError};
use crate::media::MediaService;
use crate::rooms::{
    ClosedRoom, ImMessage, KickCause, RoomError, RoomEvent, RoomExtraInfo, RoomKey, RoomService, RoomSummary,
    StreamInfo, User, unix_millis,
};
use crate::signaling::limits;

/// Most users one kick or custom command names, and most rooms one count request names.
pub const MAX_BATCH: usize = 100;
/// Longest ban after a kick or a close: 30 days.
pub const MAX_BAN_SECS: u64 = 30 * 86_400;
/// Largest page of a listing; the default is [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: u64 = 500;
pub const DEFAULT_LIMIT: u64 = 100;
/// Longest reason a kick or a close may give.
pub const MAX_REASON_BYTES: usize = 256;
/// Who messages from the server come from, unless the request names someone.
pub const SERVER_USER_ID: &str = "@server";

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("userIds must name 1 to {MAX_BATCH} users, got {0}")]
    TooManyUsers(usize),
    #[error("roomIds must name 1 to {MAX_BATCH} rooms, got {0}")]
    TooManyRooms(usize),
    #[error("banSeconds must be between 0 and {MAX_BAN_SECS}, got {0}")]
    BanOutOfRange(u64),
    #[error("limit must be between 1 and {MAX_LIMIT}, got {0}")]
    LimitOutOfRange(u64),
    #[error("reason is {0} bytes; the limit is {MAX_REASON_BYTES}")]
    ReasonTooLong(usize),
    #[error("room {0:?} has no members")]
    RoomNotFound(String),
    #[error("no stream {0:?} in this room")]
    StreamNotFound(String),
    #[error("name audio, video or both")]
    NothingToMute,
    #[error("message is {0} bytes; the limit is {max}", max = limits::MAX_MESSAGE_BYTES)]
    MessageTooLarge(usize),
    #[error("{0}")]
    InvalidExtraInfo(&'static str),
    #[error("fromUserName is longer than {max} bytes", max = limits::MAX_USER_NAME_BYTES)]
    InvalidUserName,
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Rooms(#[from] RoomError),
}

/// A page of an app's rooms.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomPage {
    pub rooms: Vec<RoomCounts>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A room and how many users and streams it holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomCounts {
    #[schema(value_type = crate::api::schema::RoomId)]
    pub room_id: String,
    pub user_count: u32,
    pub stream_count: u32,
}

impl From<RoomSummary> for RoomCounts {
    fn from(room: RoomSummary) -> Self {
        RoomCounts { room_id: room.room_id, user_count: room.user_count, stream_count: room.stream_count }
    }
}

/// A page of a room's users, by user id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub users: Vec<RoomUser>,
    /// All users in the room now.
    pub user_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomUser {
    #[schema(value_type = crate::api::schema::UserId)]
    pub user_id: String,
    pub user_name: String,
    /// Unix seconds of the login.
    pub joined_at: i64,
}

/// A published stream as the admin API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomStream {
    #[schema(value_type = crate::api::schema::StreamId)]
    pub stream_id: String,
    #[schema(value_type = crate::api::schema::UserId)]
    pub user_id: String,
    pub user_name: String,
    pub extra_info: String,
    /// Base URL of the relay node that holds the media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
    pub audio_muted: bool,
    pub video_muted: bool,
}

impl From<StreamInfo> for RoomStream {
    fn from(stream: StreamInfo) -> Self {
        RoomStream {
            stream_id: stream.stream_id,
            user_id: stream.user.user_id,
            user_name: stream.user.user_name,
            extra_info: stream.extra_info,
            relay_url: stream.relay_url,
            audio_muted: stream.audio_muted,
            video_muted: stream.video_muted,
        }
    }
}

/// What a kick did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KickOutcome {
    /// The users that were in the room and were removed.
    pub kicked: Vec<String>,
    /// The users named that were not in the room (still banned if a ban was given).
    pub not_in_room: Vec<String>,
}

/// What closing a room removed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseOutcome {
    pub users_removed: u32,
    pub streams_removed: u32,
}

impl From<ClosedRoom> for CloseOutcome {
    fn from(closed: ClosedRoom) -> Self {
        CloseOutcome { users_removed: closed.users_removed, streams_removed: closed.streams_removed }
    }
}

/// What the business server asked a kick or close to do.
#[derive(Debug, Clone, Default)]
pub struct Removal {
    pub reason: Option<String>,
    pub ban_secs: Option<u64>,
}

impl Removal {
    fn checked(&self) -> Result<(String, u64), AdminError> {
        let reason = self.reason.clone().unwrap_or_default();
        if reason.len() > MAX_REASON_BYTES {
            return Err(AdminError::ReasonTooLong(reason.len()));
        }
        let ban_secs = self.ban_secs.unwrap_or(0);
        if ban_secs > MAX_BAN_SECS {
            return Err(AdminError::BanOutOfRange(ban_secs));
        }
        Ok((reason, ban_secs))
    }
}

/// The sender of a message from the server: `@server` unless the request names a user.
pub fn server_user(user_id: Option<String>, user_name: Option<String>) -> Result<User, AdminError> {
    let user_id = user_id.unwrap_or_else(|| SERVER_USER_ID.to_owned());
    ids::validate_user_id(&user_id)?;
    let user_name = user_name.filter(|n| !n.is_empty()).unwrap_or_else(|| user_id.clone());
    if user_name.len() > limits::MAX_USER_NAME_BYTES {
        return Err(AdminError::InvalidUserName);
    }
    Ok(User { user_id, user_name })
}

fn page_limit(limit: Option<u64>) -> Result<usize, AdminError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::LimitOutOfRange(limit));
    }
    Ok(limit as usize)
}

fn room_key(app_id: u32, room_id: &str) -> Result<RoomKey, AdminError> {
    ids::validate_room_id(room_id)?;
    Ok(RoomKey::new(app_id, room_id))
}

fn user_batch(user_ids: &[String]) -> Result<(), AdminError> {
    if user_ids.is_empty() || user_ids.len() > MAX_BATCH {
        return Err(AdminError::TooManyUsers(user_ids.len()));
    }
    for user_id in user_ids {
        ids::validate_user_id(user_id)?;
    }
    Ok(())
}

/// Room administration for one node: the rooms (shared by every worker) and this node's relay.
pub struct Admin<'a> {
    pub rooms: &'a RoomService,
    pub relay: Option<&'a MediaService>,
}

impl Admin<'_> {
    /// The app's rooms with members, by room id, starting after `cursor`.
    pub async fn list_rooms(
        &self,
        app_id: u32,
        cursor: Option<&str>,
        limit: Option<u64>,
    ) -> Result<RoomPage, AdminError> {
        let limit = page_limit(limit)?;
        if let Some(cursor) = cursor {
            ids::validate_room_id(cursor)?;
        }
        let rooms = self.rooms.backend().list_rooms(app_id, cursor, limit).await?;
        let next_cursor = (rooms.len() == limit).then(|| rooms.last().map(|r| r.room_id.clone())).flatten();
        crate::metrics::admin_call("list_rooms");
        Ok(RoomPage { rooms: rooms.into_iter().map(RoomCounts::from).collect(), next_cursor })
    }

    /// The room's users by user id, after `cursor` (an unknown room has none).
    pub async fn list_users(
        &self,
        app_id: u32,
        room_id: &str,
        cursor: Option<&str>,
        limit: Option<u64>,
    ) -> Result<UserPage, AdminError> {
        let room = room_key(app_id, room_id)?;
        let limit = page_limit(limit)?;
        if let Some(cursor) = cursor {
            ids::validate_user_id(cursor)?;
        }
        let snapshot = self.rooms.backend().snapshot(&room).await?;
        let user_count = snapshot.members.len() as u32;
        let mut users: Vec<RoomUser> = snapshot
            .members
            .into_iter()
            .filter(|m| cursor.is_none_or(|c| m.user.user_id.as_str() > c))
            .take(limit + 1)
            .map(|m| RoomUser { user_id: m.user.user_id, user_name: m.user.user_name, joined_at: m.joined_at })
            .collect();
        let next_cursor = if users.len() > limit {
            users.truncate(limit);
            users.last().map(|u| u.user_id.clone())
        } else {
            None
        };
        crate::metrics::admin_call("list_users");
        Ok(UserPage { users, user_count, next_cursor })
    }

    /// The room's streams (an unknown room has none).
    pub async fn list_streams(&self, app_id: u32, room_id: &str) -> Result<Vec<RoomStream>, AdminError> {
        let room = room_key(app_id, room_id)?;
        let snapshot = self.rooms.backend().snapshot(&room).await?;
        crate::metrics::admin_call("list_streams");
        Ok(snapshot.streams.into_iter().map(RoomStream::from).collect())
    }

    /// User and stream counts of up to [`MAX_BATCH`] rooms, in the order asked.
    pub async fn user_counts(&self, app_id: u32, room_ids: &[String]) -> Result<Vec<RoomCounts>, AdminError> {
        if room_ids.is_empty() || room_ids.len() > MAX_BATCH {
            return Err(AdminError::TooManyRooms(room_ids.len()));
        }
        for room_id in room_ids {
            ids::validate_room_id(room_id)?;
        }
        let counts = self.rooms.backend().room_counts(app_id, room_ids).await?;
        crate::metrics::admin_call("user_counts");
        Ok(counts.into_iter().map(RoomCounts::from).collect())
    }

    /// Removes users from a room; each gets `kickout` (5023) with the reason, and with a ban
    /// their logins to the room are refused (5025) until it runs out.
    pub async fn kick(
        &self,
        app_id: u32,
        room_id: &str,
        user_ids: &[String],
        removal: &Removal,
    ) -> Result<KickOutcome, AdminError> {
        let room = room_key(app_id, room_id)?;
        user_batch(user_ids)?;
        let (reason, ban_secs) = removal.checked()?;
        let mut unique = user_ids.to_vec();
        unique.sort();
        unique.dedup();
        let kicked = self.rooms.backend().kick(&room, &unique, &KickCause::Server { reason }, ban_secs).await?;
        let not_in_room = unique.into_iter().filter(|u| !kicked.contains(u)).collect();
        crate::metrics::admin_call("kick");
        crate::metrics::admin_users_removed("kick", kicked.len());
        tracing::info!(%room, kicked = kicked.len(), ban_secs, "business server kicked users");
        Ok(KickOutcome { kicked, not_in_room })
    }

    /// Closes a room: every member gets `kickout` (5024) with the reason, every stream stops,
    /// and with a ban every login to the room is refused (5026) until it runs out.
    pub async fn close(&self, app_id: u32, room_id: &str, removal: &Removal) -> Result<CloseOutcome, AdminError> {
        let room = room_key(app_id, room_id)?;
        let (reason, ban_secs) = removal.checked()?;
        let closed = self.rooms.backend().close_room(&room, &KickCause::RoomClosed { reason }, ban_secs).await?;
        crate::metrics::admin_call("close");
        crate::metrics::admin_users_removed("close", closed.users_removed as usize);
        tracing::info!(
            %room,
            users = closed.users_removed,
            streams = closed.streams_removed,
            ban_secs,
            "business server closed a room"
        );
        Ok(CloseOutcome::from(closed))
    }

    /// Sends a broadcast (or, with `barrage`, a barrage) message from `from` to the room.
    pub async fn message(
        &self,
        app_id: u32,
        room_id: &str,
        from: User,
        text: String,
        barrage: bool,
    ) -> Result<u64, AdminError> {
        let room = self.open_room(app_id, room_id).await?;
        let message = server_message(from, text)?;
        let message_id = message.message_id;
        let event = if barrage { RoomEvent::Barrage { message } } else { RoomEvent::Broadcast { message } };
        self.rooms.backend().publish(&room, event).await?;
        crate::metrics::admin_call(if barrage { "barrage" } else { "broadcast" });
        Ok(message_id)
    }

    /// Sends a custom command from `from` to the listed users (at most [`MAX_BATCH`]).
    pub async fn command(
        &self,
        app_id: u32,
        room_id: &str,
        from: User,
        to_user_ids: Vec<String>,
        command: String,
    ) -> Result<u64, AdminError> {
        user_batch(&to_user_ids)?;
        let room = self.open_room(app_id, room_id).await?;
        let message = server_message(from, command)?;
        let message_id = message.message_id;
        self.rooms.backend().publish(&room, RoomEvent::CustomCommand { message, to_user_ids }).await?;
        crate::metrics::admin_call("command");
        Ok(message_id)
    }

    /// Sets one key of the room's extra info, as `from`.
    pub async fn set_extra_info(
        &self,
        app_id: u32,
        room_id: &str,
        from: User,
        key: String,
        value: String,
    ) -> Result<(), AdminError> {
        let room = room_key(app_id, room_id)?;
        if !(1..=limits::MAX_EXTRA_KEY_BYTES).contains(&key.len()) || value.len() > limits::MAX_EXTRA_VALUE_BYTES {
            return Err(AdminError::InvalidExtraInfo("key must be 1-128 bytes and value at most 4096"));
        }
        let extra = RoomExtraInfo { key, value, update_user: from, update_time: unix_millis() };
        match self.rooms.backend().set_room_extra_info(&room, extra, limits::MAX_ROOM_EXTRA_KEYS).await {
            Err(RoomError::NotMember) => return Err(AdminError::RoomNotFound(room.room_id)),
            other => other?,
        }
        crate::metrics::admin_call("extra_info");
        Ok(())
    }

    /// Mutes (or unmutes) a stream's audio and/or video: the relay stops forwarding that
    /// media to players and the room hears `StreamMuted`. The relay that holds the stream
    /// applies it: this node's at once, any other when it hears the event (a relay listens to
    /// the rooms of the streams it holds; see `media::events`).
    pub async fn mute(
        &self,
        app_id: u32,
        room_id: &str,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<RoomStream, AdminError> {
        let room = room_key(app_id, room_id)?;
        ids::validate_stream_id(stream_id)?;
        if audio.is_none() && video.is_none() {
            return Err(AdminError::NothingToMute);
        }
        let stream = match self.rooms.backend().set_stream_muted(&room, stream_id, audio, video).await {
            Err(RoomError::StreamNotFound(id)) => return Err(AdminError::StreamNotFound(id)),
            other => other?,
        };
        if let Some(node) = self.relay {
            node.apply_mute(app_id, &stream).await;
        }
        crate::metrics::admin_call("mute");
        Ok(RoomStream::from(stream))
    }

    /// The room, if it has members (messages to an empty room reach nobody: 8006).
    async fn open_room(&self, app_id: u32, room_id: &str) -> Result<RoomKey, AdminError> {
        let room = room_key(app_id, room_id)?;
        let counts = self.rooms.backend().room_counts(app_id, std::slice::from_ref(&room.room_id)).await?;
        if counts.first().is_none_or(|c| c.user_count == 0) {
            return Err(AdminError::RoomNotFound(room.room_id));
        }
        Ok(room)
    }
}

fn server_message(from: User, text: String) -> Result<ImMessage, AdminError> {
    if text.len() > limits::MAX_MESSAGE_BYTES {
        return Err(AdminError::MessageTooLarge(text.len()));
    }
    Ok(ImMessage {
        message: text,
        from_user: from,
        send_time: unix_millis(),
        message_id: crate::signaling::session::next_message_id(),
    })
}
