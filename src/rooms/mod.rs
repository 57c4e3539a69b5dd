//! Rooms: who is in which room, which streams exist, room extra info — and the event bus
//! that fans every change out to the members.
//!
//! One trait, [`RoomBackend`], with two implementations: [`memory::MemoryRooms`] (one
//! process, the embedded default) and [`redis::RedisRooms`] (any number of stateless workers
//! sharing Redis). Both deliver events through the same [`hub::Hub`]. [`RoomService`] is what
//! signaling uses: it keeps the local fan-out registry and the backend's room subscriptions
//! in step with joins and leaves. Nothing here knows about websockets or HTTP.

pub mod hub;
pub mod memory;
pub mod model;
pub mod quality;
pub mod redis;
pub mod snapshots;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use thiserror::Error;

pub use hub::{Delivery, Hub, KickSignal, LocalMember};
pub use model::{
    ClosedRoom, ImMessage, JoinOutcome, KickCause, MediaRole, MediaStateKind, Member, MuteBy, RelayInfo, RelayLevels,
    RoomEvent, RoomExtraInfo, RoomKey, RoomSummary, Snapshot, StreamInfo, User, UserQuality, unix_millis,
};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RoomError {
    #[error("room is full ({0} users)")]
    RoomFull(u32),
    #[error("this session is not a member of the room")]
    NotMember,
    #[error("stream id {0} is already published by another user")]
    StreamIdTaken(String),
    #[error("stream {0} is not published by this user")]
    StreamNotFound(String),
    #[error("a room holds at most {0} extra info keys")]
    TooManyExtraInfoKeys(usize),
    #[error("the business server removed this user from the room; logins are refused for {remaining_secs} more s")]
    Banned { remaining_secs: u64 },
    #[error("the business server closed this room; logins are refused for {remaining_secs} more s")]
    Closed { remaining_secs: u64 },
    /// A session the business server removed (a repair found it gone and must not put it back).
    #[error("the session was removed from the room")]
    Removed(KickCause),
    #[error("room state unavailable: {0}")]
    Unavailable(String),
    #[error("room state is corrupt: {0}")]
    Corrupt(String),
}

/// A session the lease reaper removed from Redis because the worker that held it died.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReapedSession {
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    pub session_id: String,
    /// Unix ms of the login (`None` when Redis no longer held the member: nothing to restore).
    pub joined_ms: Option<i64>,
}

/// A stream the lease reaper removed (its relay's worker died).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReapedStream {
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    pub stream_id: String,
}

/// A dead worker, claimed by exactly one reaper: when its lease expired and what it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReapedWorker {
    pub worker_id: String,
    /// The lease deadline that passed (unix ms on Redis's clock).
    pub deadline_ms: i64,
    pub sessions: Vec<ReapedSession>,
    pub streams: Vec<ReapedStream>,
}

/// Told of every dead worker the lease reaper claimed (usage records close its sessions
/// there). Called after the worker's entries left Redis, possibly more than once for one
/// worker (a failed call is repeated, by this or another worker): it must be idempotent.
#[async_trait]
pub trait ReapHook: Send + Sync + 'static {
    async fn worker_reaped(&self, reaped: &ReapedWorker) -> Result<(), String>;
}

/// The live state and its event bus. Every mutating call is atomic and emits its events
/// (to every worker listening to the room) as part of the same step, so events of one room
/// arrive in the order the state changed.
#[async_trait]
pub trait RoomBackend: Send + Sync + 'static {
    /// Starts delivering `room`'s events to the hub (the first local member arrived).
    async fn watch(&self, room: &RoomKey) -> Result<(), RoomError>;
    /// Stops delivering `room`'s events (the last local member left).
    async fn unwatch(&self, room: &RoomKey) -> Result<(), RoomError>;
    /// Adds `member`, or replaces the same user's older session (which gets a `Kickout`
    /// and loses its streams, while the room sees no user change). Refuses a new user when
    /// the room holds `max_users`.
    async fn join(&self, room: &RoomKey, member: Member, max_users: u32) -> Result<JoinOutcome, RoomError>;
    /// Removes the user and its streams if `session_id` still holds the membership.
    async fn leave(&self, room: &RoomKey, user_id: &str, session_id: &str) -> Result<bool, RoomError>;
    /// Forgets a session this worker no longer serves without touching the room (it was
    /// kicked out by a newer session, or its join failed): nothing to repair for it later.
    async fn forget(&self, _room: &RoomKey, _session_id: &str) {}
    /// Registers a stream; stream ids are unique within an app.
    async fn add_stream(&self, room: &RoomKey, session_id: &str, stream: StreamInfo) -> Result<(), RoomError>;
    async fn remove_stream(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError>;
    /// Removes a stream only if this worker's relay holds it: the relay reporting a stream
    /// stopped must not remove the same stream id published again through another worker
    /// (the user moved there: a drain, a reconnect to another worker).
    async fn remove_stream_held_here(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError> {
        self.remove_stream(room, user_id, stream_id).await
    }
    async fn set_stream_extra_info(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        extra_info: &str,
    ) -> Result<(), RoomError>;
    async fn set_room_extra_info(&self, room: &RoomKey, extra: RoomExtraInfo, max_keys: usize)
    -> Result<(), RoomError>;
    /// The app's rooms with at least one member, by room id, after `after`, at most `limit`.
    async fn list_rooms(&self, app_id: u32, after: Option<&str>, limit: usize) -> Result<Vec<RoomSummary>, RoomError>;
    /// User and stream counts of the named rooms, in the order given (zero for empty rooms).
    async fn room_counts(&self, app_id: u32, room_ids: &[String]) -> Result<Vec<RoomSummary>, RoomError>;
    /// Removes the named users (each session gets `Kickout` with `cause`, the room sees its
    /// streams and the user DELETEd) and, with `ban_secs > 0`, refuses their logins to the
    /// room for that long. Returns the user ids that were in the room.
    async fn kick(
        &self,
        room: &RoomKey,
        user_ids: &[String],
        cause: &KickCause,
        ban_secs: u64,
    ) -> Result<Vec<String>, RoomError>;
    /// Removes every member and stream (as [`RoomBackend::kick`] does) and, with
    /// `ban_secs > 0`, refuses every login to the room for that long.
    async fn close_room(&self, room: &RoomKey, cause: &KickCause, ban_secs: u64) -> Result<ClosedRoom, RoomError>;
    /// Records a stream's muted media (announced to the room as `StreamMuted`).
    async fn set_stream_muted(
        &self,
        room: &RoomKey,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError>;
    /// Records what the publisher of a stream turned off itself (announced as `StreamMuted`
    /// with `by_server: false`); `StreamNotFound` unless `user_id` publishes `stream_id`. The
    /// server's flags stay as they are.
    async fn set_publisher_muted(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError>;
    /// Fans out an event that changes no state (messages, commands).
    async fn publish(&self, room: &RoomKey, event: RoomEvent) -> Result<(), RoomError>;
    async fn snapshot(&self, room: &RoomKey) -> Result<Snapshot, RoomError>;
    /// Where a stream id is published in an app, if anywhere.
    async fn find_stream(&self, app_id: u32, stream_id: &str) -> Result<Option<(RoomKey, StreamInfo)>, RoomError>;
    /// Whether the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<(), RoomError>;
    /// Records a relay node's address and load (relays call this every few seconds).
    async fn announce_relay(&self, relay: RelayInfo) -> Result<(), RoomError>;
    /// Takes a relay out of the announced ones (it drains: no new streams go to it).
    async fn withdraw_relay(&self, _relay_id: &str) -> Result<(), RoomError> {
        Ok(())
    }
    /// Relays that announced themselves recently.
    async fn relays(&self) -> Result<Vec<RelayInfo>, RoomError>;
}

/// What signaling talks to: the backend plus this worker's local fan-out.
#[derive(Clone)]
pub struct RoomService {
    backend: Arc<dyn RoomBackend>,
    hub: Arc<Hub>,
    worker_id: Arc<str>,
    snapshots: Arc<snapshots::SnapshotReads>,
}

impl RoomService {
    pub fn new(backend: Arc<dyn RoomBackend>, hub: Arc<Hub>, worker_id: impl Into<Arc<str>>) -> Self {
        RoomService { backend, hub, worker_id: worker_id.into(), snapshots: Arc::default() }
    }

    /// In-memory rooms for a single process.
    pub fn in_memory() -> Self {
        let hub = Arc::new(Hub::default());
        let backend = Arc::new(memory::MemoryRooms::new(hub.clone()));
        RoomService::new(backend, hub, "local")
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub fn backend(&self) -> &Arc<dyn RoomBackend> {
        &self.backend
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The room's state for a member that must resync, read at or after `not_before` (when
    /// it learned it must): members resyncing together share one read of their room.
    pub async fn snapshot_since(&self, room: &RoomKey, not_before: Instant) -> Result<Arc<Snapshot>, RoomError> {
        let backend = self.backend.clone();
        let key = room.clone();
        self.snapshots.read(room, not_before, async move { backend.snapshot(&key).await }).await
    }

    /// Joins `member` to `room` and registers `local` for its events. Listening starts before
    /// the join, so no event that follows the join can be missed.
    pub async fn enter(
        &self,
        room: &RoomKey,
        member: Member,
        max_users: u32,
        local: LocalMember,
    ) -> Result<JoinOutcome, RoomError> {
        let session_id = local.session_id.clone();
        self.listen(room, local).await?;
        match self.backend.join(room, member, max_users).await {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                self.stop_listening(room, &session_id).await;
                Err(err)
            }
        }
    }

    /// Delivers `room`'s events to `local` without joining it (no member, no user event):
    /// for a node that must hear a room it has no user in (its relay holds a stream there).
    /// Ended with [`RoomService::stop_listening`].
    pub async fn listen(&self, room: &RoomKey, local: LocalMember) -> Result<(), RoomError> {
        let session_id = local.session_id.clone();
        if self.hub.attach(room, local)
            && let Err(err) = self.backend.watch(room).await
        {
            self.hub.detach(room, &session_id);
            return Err(err);
        }
        Ok(())
    }

    /// Leaves the room (DELETE events for the user and its streams) and stops listening.
    pub async fn exit(&self, room: &RoomKey, user_id: &str, session_id: &str) -> Result<bool, RoomError> {
        let left = self.backend.leave(room, user_id, session_id).await;
        self.stop_listening(room, session_id).await;
        left
    }

    /// Stops delivering events to a session without touching the room (a kicked-out session,
    /// whose membership already belongs to a newer one).
    pub async fn stop_listening(&self, room: &RoomKey, session_id: &str) {
        self.backend.forget(room, session_id).await;
        if self.hub.detach(room, session_id)
            && let Err(err) = self.backend.unwatch(room).await
        {
            tracing::warn!(%room, error = %err, "could not stop listening to a room");
        }
    }
}
