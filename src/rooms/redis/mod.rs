//! Rooms in Redis, shared by any number of stateless workers.
//!
//! - State: per room, hashes of members (`…:u`), streams (`…:s`) and extra info (`…:x`);
//!   per app, a stream-id index. Every change is one Lua script that also publishes its
//!   events on the room's channel, so changes are atomic and ordered. Names shared with the
//!   scripts are defined once, in [`contract`].
//! - Fan-out: [`subscriber::Subscriber`] keeps this worker subscribed to the channels of the
//!   rooms it has local members in, across any outage, and `/readyz` fails while it is not.
//! - Requests a client waits for carry a deadline on Redis's clock: a script that Redis only
//!   runs after the worker gave up (a frozen Redis) changes nothing, so a client told "1007"
//!   leaves no state behind.
//! - Leases ([`lease`]): each worker renews its lease on Redis's own clock; a worker that
//!   renewed nothing for 7/10 of the lease while Redis was answering is dead, and another
//!   removes its members and streams (so rooms get DELETE events within the lease). A Redis
//!   that was frozen, down or restarted does not count against anyone.
//! - Repair ([`lease`] too): after any Redis trouble, and every few leases, a worker compares
//!   Redis with what it really holds: it removes entries it does not hold (a late script, a
//!   missed leave) and puts back what Redis lost (a restart, keys that expired while Redis was
//!   frozen), then tells the members of the repaired rooms to resync.

pub mod contract;
mod lease;
mod scripts;
pub mod subscriber;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};

use super::model::{
    ClosedRoom, JoinOutcome, KickCause, Member, MuteBy, RelayInfo, RoomEvent, RoomExtraInfo, RoomKey, RoomSummary,
    Snapshot, StreamInfo,
};
use super::{Hub, RoomBackend, RoomError};
use crate::metrics;
use contract::{RELAYS_KEY, RoomKeys, StoredStream, WorkerEntry, app_rooms_key, app_streams_key, worker_entries_key};

/// How long Redis remembers that the business server removed a session (so that no repair
/// puts it back); far longer than any repair takes to notice.
const KICKED_TTL_SECS: u64 = 3600;
use scripts::Scripts;
use subscriber::Subscriber;

/// Settings of the Redis backend.
#[derive(Debug, Clone, Copy)]
pub struct RedisRoomsConfig {
    /// A dead worker's users are removed within this time (see [`lease`]).
    pub lease: Duration,
    /// How long any Redis call may take before the request that made it fails with 1007.
    pub timeout: Duration,
}

impl Default for RedisRoomsConfig {
    fn default() -> Self {
        RedisRoomsConfig { lease: Duration::from_secs(15), timeout: Duration::from_secs(1) }
    }
}

/// A connection manager whose calls fail within `timeout` whatever Redis does (unreachable,
/// frozen, restarting): one connection attempt per call that finds the connection broken,
/// no retries behind the caller's back.
pub async fn connection_manager(client: redis::Client, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0)
        .set_max_delay(timeout);
    ConnectionManager::new_with_config(client, config).await
}

/// A session of this worker: its room, its member record and its streams.
#[derive(Debug, Clone)]
struct LocalSession {
    room: RoomKey,
    member: Member,
    streams: BTreeMap<String, StreamInfo>,
}

/// What this worker really holds, to compare Redis with.
#[derive(Default)]
struct LocalState {
    sessions: HashMap<String, LocalSession>,
    /// Sessions whose join script is in flight (not yet in `sessions`).
    joining: HashSet<String>,
    /// Latest room extra info seen per watched room.
    extra: HashMap<RoomKey, BTreeMap<String, RoomExtraInfo>>,
    /// Streams this worker added for a session held by another worker: a relay-only node's
    /// streams of publishers whose websocket is on a signaling node. (room, user id, stream id)
    /// — held here all the same (repair must not take them for ghosts).
    remote_streams: HashSet<(RoomKey, String, String)>,
}

pub struct RedisRooms {
    commands: ConnectionManager,
    subscriber: Arc<Subscriber>,
    hub: Arc<Hub>,
    worker_id: String,
    config: RedisRoomsConfig,
    scripts: Scripts,
    local: Mutex<LocalState>,
    /// Redis's clock minus this process's, in ms, from the latest lease renewal.
    clock_offset_ms: AtomicI64,
    /// A Redis call failed since the last repair: Redis and this worker may disagree.
    dirty: AtomicBool,
    /// Told of every dead worker this worker reaps (usage records).
    reap_hook: Option<Arc<dyn super::ReapHook>>,
}

fn decode<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, RoomError> {
    serde_json::from_str(raw).map_err(|e| RoomError::Corrupt(format!("{e}: {raw:.200}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, RoomError> {
    serde_json::to_string(value).map_err(|e| RoomError::Corrupt(e.to_string()))
}

fn decode_all<T: serde::de::DeserializeOwned>(raw: &[String]) -> Result<Vec<T>, RoomError> {
    raw.iter().map(|s| decode(s)).collect()
}

fn unparsable(err: impl std::fmt::Display) -> RoomError {
    RoomError::Corrupt(format!("unexpected Redis reply: {err}"))
}

/// A mute flag as the mute scripts take it: `1` mute, `0` unmute, empty to keep.
fn mute_flag(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "1",
        Some(false) => "0",
        None => "",
    }
}

fn expired() -> RoomError {
    RoomError::Unavailable("Redis answered after the request's deadline".to_owned())
}

impl RedisRooms {
    /// Connects, registers this worker's lease and starts the lease and subscription tasks.
    pub async fn start(
        url: &str,
        hub: Arc<Hub>,
        worker_id: String,
        config: RedisRoomsConfig,
        reap_hook: Option<Arc<dyn super::ReapHook>>,
    ) -> Result<Arc<RedisRooms>, RoomError> {
        let unavailable = |err: redis::RedisError| RoomError::Unavailable(err.to_string());
        let client = redis::Client::open(url).map_err(unavailable)?;
        let commands = connection_manager(client.clone(), config.timeout).await.map_err(unavailable)?;
        let subscriber = Subscriber::start(client, hub.clone(), config.timeout);
        // Rooms cannot be joined before their events can be heard.
        subscriber.connected_sink(config.timeout * 5).await?;
        let rooms = Arc::new(RedisRooms {
            commands,
            subscriber,
            hub,
            worker_id,
            config,
            scripts: Scripts::load(),
            local: Mutex::default(),
            clock_offset_ms: AtomicI64::new(0),
            dirty: AtomicBool::new(false),
            reap_hook,
        });
        rooms.renew_lease().await?;
        tokio::spawn(lease::run(Arc::downgrade(&rooms)));
        Ok(rooms)
    }

    /// A backend without its lease task, for tests that drive renewal and reaping by hand.
    #[cfg(test)]
    async fn without_lease_task(url: &str, worker_id: &str, config: RedisRoomsConfig) -> RedisRooms {
        let client = redis::Client::open(url).unwrap();
        let hub = Arc::new(Hub::default());
        RedisRooms {
            commands: connection_manager(client.clone(), config.timeout).await.unwrap(),
            subscriber: Subscriber::start(client, hub.clone(), config.timeout),
            hub,
            worker_id: worker_id.to_owned(),
            config,
            scripts: Scripts::load(),
            local: Mutex::default(),
            clock_offset_ms: AtomicI64::new(0),
            dirty: AtomicBool::new(false),
            reap_hook: None,
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Whether every wanted room channel is subscribed (for tests and `/readyz`).
    pub fn subscribed(&self) -> bool {
        self.subscriber.healthy()
    }

    fn local(&self) -> MutexGuard<'_, LocalState> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> ConnectionManager {
        self.commands.clone()
    }

    /// This worker no longer holds a stream (of a local session, or a remote one's).
    fn forget_local_stream(&self, room: &RoomKey, user_id: &str, stream_id: &str) {
        let mut local = self.local();
        for session in local.sessions.values_mut() {
            if session.member.user.user_id == user_id && session.room == *room {
                session.streams.remove(stream_id);
            }
        }
        local.remote_streams.remove(&(room.clone(), user_id.to_owned(), stream_id.to_owned()));
    }

    /// A failed call: Redis may now hold something this worker does not know of (a script
    /// that runs late) or lack something it holds, so the next lease tick repairs.
    fn failed(&self, err: redis::RedisError) -> RoomError {
        self.dirty.store(true, Ordering::Release);
        RoomError::Unavailable(err.to_string())
    }

    /// Runs a script on the command connection, timing it; a failure marks Redis for repair.
    async fn invoke<T: redis::FromRedisValue>(&self, script: &redis::ScriptInvocation<'_>) -> Result<T, RoomError> {
        let started = Instant::now();
        let reply = script.invoke_async(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        metrics::redis_round_trip(started.elapsed());
        Ok(reply)
    }

    fn room_ttl_secs(&self) -> u64 {
        self.config.lease.as_secs().max(1) * 4
    }

    /// The latest Redis time (ms) at which a script may still act for a request this worker
    /// waits for: half the timeout from now, so that its answer still arrives in time.
    fn deadline(&self) -> i64 {
        let offset = self.clock_offset_ms.load(Ordering::Acquire);
        super::unix_millis() + offset + (self.config.timeout.as_millis() as i64 / 2).max(1)
    }

    fn own_entries_key(&self) -> String {
        worker_entries_key(&self.worker_id)
    }

    /// The join script; `None` when a restore found the user taken over by another session.
    async fn run_join(
        &self,
        room: &RoomKey,
        member: &Member,
        max_users: u32,
        mode: &str,
        deadline: i64,
    ) -> Result<Option<JoinOutcome>, RoomError> {
        let keys = RoomKeys::of(room);
        let entry = WorkerEntry::session(room, &member.user.user_id, &member.session_id);
        let mut script = self.scripts.join.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.streams)
            .key(&keys.extra)
            .key(&keys.app_streams)
            .key(self.own_entries_key())
            .key(&keys.app_rooms)
            .key(&keys.closed)
            .key(RoomKeys::ban(room, &member.user.user_id))
            .key(RoomKeys::kicked(room, &member.session_id))
            .arg(&member.user.user_id)
            .arg(encode(member)?)
            .arg(&member.session_id)
            .arg(max_users)
            .arg(&keys.channel)
            .arg(entry.encode())
            .arg(self.room_ttl_secs())
            .arg(mode)
            .arg(deadline)
            .arg(&room.room_id);
        let reply: Vec<Value> = self.invoke(&script).await?;
        let text = |index: usize| -> Result<String, RoomError> {
            reply
                .get(index)
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(unparsable)
                .map(Option::unwrap_or_default)
        };
        let remaining_secs = || -> Result<u64, RoomError> {
            let ms: u64 = text(1)?.parse().map_err(unparsable)?;
            Ok(ms.div_ceil(1000))
        };
        match text(0)?.as_str() {
            "ok" => {}
            "full" => return Err(RoomError::RoomFull(max_users)),
            "closed" => return Err(RoomError::Closed { remaining_secs: remaining_secs()? }),
            "banned" => return Err(RoomError::Banned { remaining_secs: remaining_secs()? }),
            "kicked" => return Err(RoomError::Removed(decode(&text(1)?)?)),
            "superseded" => return Ok(None),
            "expired" => return Err(expired()),
            other => return Err(RoomError::Corrupt(format!("join script answered {other:?}"))),
        }
        let list = |index: usize| -> Result<Vec<String>, RoomError> {
            reply
                .get(index)
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(unparsable)
                .map(Option::unwrap_or_default)
        };
        let replaced = text(1)?;
        let snapshot = Snapshot {
            members: decode_all(&list(2)?)?,
            streams: decode_all(&list(3)?)?,
            extra_info: decode_all(&list(4)?)?,
        }
        .normalized();
        Ok(Some(JoinOutcome { snapshot, replaced_session: (!replaced.is_empty()).then_some(replaced) }))
    }

    /// The kick script; refused (changing nothing) when Redis runs it after `deadline`.
    async fn run_kick(
        &self,
        room: &RoomKey,
        user_ids: &[String],
        cause: &KickCause,
        ban_secs: u64,
        deadline: i64,
    ) -> Result<Vec<String>, RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.kick.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.streams)
            .key(&keys.extra)
            .key(&keys.app_streams)
            .key(&keys.app_rooms)
            .arg(&keys.channel)
            .arg(encode(cause)?)
            .arg(ban_secs)
            .arg(RoomKeys::ban_prefix(room))
            .arg(RoomKeys::kicked_prefix(room))
            .arg(KICKED_TTL_SECS)
            .arg(&room.room_id)
            .arg(deadline);
        for user_id in user_ids {
            script.arg(user_id);
        }
        let reply: Vec<String> = self.invoke(&script).await?;
        match reply.split_first() {
            Some((status, kicked)) if status == "ok" => Ok(kicked.to_vec()),
            Some((status, _)) if status == "expired" => Err(expired()),
            _ => Err(RoomError::Corrupt(format!("kick script answered {reply:?}"))),
        }
    }

    /// The close script; refused (changing nothing) when Redis runs it after `deadline`.
    async fn run_close_room(
        &self,
        room: &RoomKey,
        cause: &KickCause,
        ban_secs: u64,
        deadline: i64,
    ) -> Result<ClosedRoom, RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.close_room.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.streams)
            .key(&keys.extra)
            .key(&keys.app_streams)
            .key(&keys.app_rooms)
            .key(&keys.closed)
            .arg(&keys.channel)
            .arg(encode(cause)?)
            .arg(ban_secs)
            .arg(RoomKeys::kicked_prefix(room))
            .arg(KICKED_TTL_SECS)
            .arg(&room.room_id)
            .arg(deadline);
        let (users_removed, streams_removed): (i64, i64) = self.invoke(&script).await?;
        if users_removed < 0 {
            return Err(expired());
        }
        let count = |n: i64| u32::try_from(n).map_err(|_| RoomError::Corrupt(format!("close script counted {n}")));
        Ok(ClosedRoom { users_removed: count(users_removed)?, streams_removed: count(streams_removed)? })
    }

    /// The publisher's own mute; refused (changing nothing) when Redis runs it after `deadline`.
    async fn run_publisher_muted(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
        deadline: i64,
    ) -> Result<StreamInfo, RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.publisher_muted.prepare_invoke();
        script
            .key(&keys.streams)
            .arg(user_id)
            .arg(stream_id)
            .arg(mute_flag(audio))
            .arg(mute_flag(video))
            .arg(&keys.channel)
            .arg(deadline);
        let reply: String = self.invoke(&script).await?;
        self.remember_muted(room, stream_id, MuteBy::Publisher, &reply)
    }

    /// The mute script; refused (changing nothing) when Redis runs it after `deadline`.
    async fn run_stream_muted(
        &self,
        room: &RoomKey,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
        deadline: i64,
    ) -> Result<StreamInfo, RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.stream_muted.prepare_invoke();
        script
            .key(&keys.streams)
            .arg(stream_id)
            .arg(mute_flag(audio))
            .arg(mute_flag(video))
            .arg(&keys.channel)
            .arg(deadline);
        let reply: String = self.invoke(&script).await?;
        self.remember_muted(room, stream_id, MuteBy::Server, &reply)
    }

    /// A mute script's reply: the stream as stored, whose `by` flags the local copies of it
    /// (kept for the sessions that publish it here) take on.
    fn remember_muted(
        &self,
        room: &RoomKey,
        stream_id: &str,
        by: MuteBy,
        reply: &str,
    ) -> Result<StreamInfo, RoomError> {
        match reply {
            "not_found" => return Err(RoomError::StreamNotFound(stream_id.to_owned())),
            "expired" => return Err(expired()),
            _ => {}
        }
        let stream: StreamInfo = decode(reply)?;
        for session in self.local().sessions.values_mut() {
            if let Some(local) = session.streams.get_mut(stream_id).filter(|_| session.room == *room) {
                local.copy_muted(by, &stream);
            }
        }
        Ok(stream)
    }

    /// The leave script, on the entry set of the worker that held the session.
    async fn run_leave(
        &self,
        room: &RoomKey,
        user_id: &str,
        session_id: &str,
        entries_key: &str,
    ) -> Result<bool, RoomError> {
        let keys = RoomKeys::of(room);
        let entry = WorkerEntry::session(room, user_id, session_id);
        let mut script = self.scripts.leave.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.streams)
            .key(&keys.extra)
            .key(&keys.app_streams)
            .key(entries_key)
            .key(&keys.app_rooms)
            .arg(user_id)
            .arg(session_id)
            .arg(&keys.channel)
            .arg(entry.encode())
            .arg(&room.room_id);
        let left: i64 = self.invoke(&script).await?;
        Ok(left == 1)
    }

    /// Removes a stream and announces it; with a `holder` worker id, only if that worker's
    /// relay holds it (see `lua/remove_stream.lua`).
    async fn run_remove_stream(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        holder: &str,
        entries_key: &str,
    ) -> Result<(), RoomError> {
        let keys = RoomKeys::of(room);
        let entry = WorkerEntry::stream(room, user_id, stream_id);
        let mut script = self.scripts.remove_stream.prepare_invoke();
        script
            .key(&keys.streams)
            .key(&keys.app_streams)
            .key(entries_key)
            .arg(user_id)
            .arg(stream_id)
            .arg(&keys.channel)
            .arg(holder)
            .arg(entry.encode());
        let status: String = self.invoke(&script).await?;
        stream_status(&status, stream_id)
    }

    async fn run_add_stream(
        &self,
        room: &RoomKey,
        session_id: &str,
        stream: &StreamInfo,
        mode: &str,
        deadline: i64,
    ) -> Result<(), RoomError> {
        let keys = RoomKeys::of(room);
        let stored = StoredStream { info: stream.clone(), holder: self.worker_id.clone() };
        let entry = WorkerEntry::stream(room, &stream.user.user_id, &stream.stream_id);
        let mut script = self.scripts.add_stream.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.streams)
            .key(&keys.app_streams)
            .key(self.own_entries_key())
            .arg(&stream.user.user_id)
            .arg(session_id)
            .arg(&stream.stream_id)
            .arg(encode(&stored)?)
            .arg(&room.room_id)
            .arg(&keys.channel)
            .arg(format!("huddle:r:{}:", room.app_id))
            .arg(self.room_ttl_secs())
            .arg(mode)
            .arg(entry.encode())
            .arg(deadline);
        let status: String = self.invoke(&script).await?;
        match status.as_str() {
            "ok" => Ok(()),
            "not_member" => Err(RoomError::NotMember),
            "taken" => Err(RoomError::StreamIdTaken(stream.stream_id.clone())),
            "expired" => Err(expired()),
            other => Err(RoomError::Corrupt(format!("add_stream script answered {other:?}"))),
        }
    }

    async fn run_room_extra_info(
        &self,
        room: &RoomKey,
        extra: &RoomExtraInfo,
        max_keys: usize,
        mode: &str,
        deadline: i64,
    ) -> Result<(), RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.room_extra_info.prepare_invoke();
        script
            .key(&keys.users)
            .key(&keys.extra)
            .arg(&extra.key)
            .arg(encode(extra)?)
            .arg(max_keys.min(i64::MAX as usize))
            .arg(&keys.channel)
            .arg(self.room_ttl_secs())
            .arg(mode)
            .arg(deadline);
        let status: String = self.invoke(&script).await?;
        match status.as_str() {
            "ok" => Ok(()),
            "not_member" => Err(RoomError::NotMember),
            "too_many" => Err(RoomError::TooManyExtraInfoKeys(max_keys)),
            "expired" => Err(expired()),
            other => Err(RoomError::Corrupt(format!("room_extra_info script answered {other:?}"))),
        }
    }
}

/// A stream script's answer: `ok`, `not_found` or `expired`.
fn stream_status(status: &str, stream_id: &str) -> Result<(), RoomError> {
    match status {
        "ok" => Ok(()),
        "not_found" => Err(RoomError::StreamNotFound(stream_id.to_owned())),
        "expired" => Err(expired()),
        other => Err(RoomError::Corrupt(format!("stream script answered {other:?}"))),
    }
}

#[async_trait]
impl RoomBackend for RedisRooms {
    async fn watch(&self, room: &RoomKey) -> Result<(), RoomError> {
        self.subscriber.subscribe(contract::channel(room)).await
    }

    async fn unwatch(&self, room: &RoomKey) -> Result<(), RoomError> {
        self.local().extra.remove(room);
        self.subscriber.unsubscribe(&contract::channel(room)).await;
        Ok(())
    }

    async fn join(&self, room: &RoomKey, member: Member, max_users: u32) -> Result<JoinOutcome, RoomError> {
        let session_id = member.session_id.clone();
        self.local().joining.insert(session_id.clone());
        let joined = self.run_join(room, &member, max_users, "join", self.deadline()).await;
        let mut local = self.local();
        local.joining.remove(&session_id);
        let outcome = joined?.ok_or_else(|| RoomError::Corrupt("join answered superseded".to_owned()))?;
        if let Some(replaced) = &outcome.replaced_session {
            local.sessions.remove(replaced);
        }
        let extra: BTreeMap<String, RoomExtraInfo> =
            outcome.snapshot.extra_info.iter().map(|e| (e.key.clone(), e.clone())).collect();
        local.extra.insert(room.clone(), extra);
        local.sessions.insert(session_id, LocalSession { room: room.clone(), member, streams: BTreeMap::new() });
        Ok(outcome)
    }

    async fn leave(&self, room: &RoomKey, user_id: &str, session_id: &str) -> Result<bool, RoomError> {
        self.local().sessions.remove(session_id);
        self.run_leave(room, user_id, session_id, &self.own_entries_key()).await
    }

    async fn forget(&self, room: &RoomKey, session_id: &str) {
        let Some(session) = self.local().sessions.remove(session_id) else { return };
        // Only the entry: the membership (if any) belongs to a newer session now.
        let entry = WorkerEntry::session(room, &session.member.user.user_id, session_id);
        let removed: Result<i64, _> = self.conn().srem(self.own_entries_key(), entry.encode()).await;
        if let Err(err) = removed {
            self.failed(err);
        }
    }

    async fn add_stream(&self, room: &RoomKey, session_id: &str, stream: StreamInfo) -> Result<(), RoomError> {
        // Held locally before the script runs, so that a repair running meanwhile does not
        // take the new entry for a ghost; dropped again if the script fails.
        let held = (room.clone(), stream.user.user_id.clone(), stream.stream_id.clone());
        {
            let mut local = self.local();
            match local.sessions.get_mut(session_id) {
                Some(session) => {
                    session.streams.insert(stream.stream_id.clone(), stream.clone());
                }
                None => {
                    local.remote_streams.insert(held.clone());
                }
            }
        }
        let added = self.run_add_stream(room, session_id, &stream, "publish", self.deadline()).await;
        if added.is_err() {
            let mut local = self.local();
            match local.sessions.get_mut(session_id) {
                Some(session) => {
                    session.streams.remove(&stream.stream_id);
                }
                None => {
                    local.remote_streams.remove(&held);
                }
            }
        }
        added
    }

    async fn remove_stream(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError> {
        self.forget_local_stream(room, user_id, stream_id);
        self.run_remove_stream(room, user_id, stream_id, "", &self.own_entries_key()).await
    }

    async fn remove_stream_held_here(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError> {
        self.forget_local_stream(room, user_id, stream_id);
        self.run_remove_stream(room, user_id, stream_id, &self.worker_id, &self.own_entries_key()).await
    }

    async fn set_stream_extra_info(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        extra_info: &str,
    ) -> Result<(), RoomError> {
        let keys = RoomKeys::of(room);
        let mut script = self.scripts.stream_extra_info.prepare_invoke();
        script.key(&keys.streams).arg(user_id).arg(stream_id).arg(extra_info).arg(&keys.channel).arg(self.deadline());
        let status: String = self.invoke(&script).await?;
        stream_status(&status, stream_id)?;
        for session in self.local().sessions.values_mut() {
            if let Some(stream) = session.streams.get_mut(stream_id).filter(|_| session.member.user.user_id == user_id)
            {
                stream.extra_info = extra_info.to_owned();
            }
        }
        Ok(())
    }

    async fn set_room_extra_info(
        &self,
        room: &RoomKey,
        extra: RoomExtraInfo,
        max_keys: usize,
    ) -> Result<(), RoomError> {
        self.run_room_extra_info(room, &extra, max_keys, "set", self.deadline()).await?;
        self.local().extra.entry(room.clone()).or_default().insert(extra.key.clone(), extra);
        Ok(())
    }

    async fn list_rooms(&self, app_id: u32, after: Option<&str>, limit: usize) -> Result<Vec<RoomSummary>, RoomError> {
        let mut conn = self.conn();
        let mut live = Vec::new();
        let mut after = after.map(str::to_owned);
        // Index entries of rooms that emptied without a leave (their keys expired) are skipped
        // and dropped, so a page is full unless the index is exhausted.
        while live.len() < limit {
            let start = after.as_deref().map_or_else(|| "-".to_owned(), |after| format!("({after}"));
            let room_ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(app_rooms_key(app_id))
                .arg(start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit - live.len())
                .query_async(&mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            let exhausted = room_ids.len() < limit - live.len();
            after = room_ids.last().cloned();
            let counted = self.room_counts(app_id, &room_ids).await?;
            let (found, gone): (Vec<RoomSummary>, Vec<RoomSummary>) =
                counted.into_iter().partition(|r| r.user_count > 0);
            live.extend(found);
            if !gone.is_empty() {
                let ids: Vec<&str> = gone.iter().map(|r| r.room_id.as_str()).collect();
                let _: () = conn.zrem(app_rooms_key(app_id), ids).await.map_err(|e| self.failed(e))?;
            }
            if exhausted || after.is_none() {
                break;
            }
        }
        Ok(live)
    }

    async fn room_counts(&self, app_id: u32, room_ids: &[String]) -> Result<Vec<RoomSummary>, RoomError> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for room_id in room_ids {
            let keys = RoomKeys::of(&RoomKey::new(app_id, room_id.clone()));
            pipe.hlen(keys.users).hlen(keys.streams);
        }
        let started = Instant::now();
        let counts: Vec<u32> = pipe.query_async(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        metrics::redis_round_trip(started.elapsed());
        Ok(room_ids
            .iter()
            .zip(counts.chunks(2))
            .map(|(room_id, pair)| RoomSummary {
                room_id: room_id.clone(),
                user_count: pair.first().copied().unwrap_or(0),
                stream_count: pair.get(1).copied().unwrap_or(0),
            })
            .collect())
    }

    async fn kick(
        &self,
        room: &RoomKey,
        user_ids: &[String],
        cause: &KickCause,
        ban_secs: u64,
    ) -> Result<Vec<String>, RoomError> {
        self.run_kick(room, user_ids, cause, ban_secs, self.deadline()).await
    }

    async fn close_room(&self, room: &RoomKey, cause: &KickCause, ban_secs: u64) -> Result<ClosedRoom, RoomError> {
        self.run_close_room(room, cause, ban_secs, self.deadline()).await
    }

    async fn set_stream_muted(
        &self,
        room: &RoomKey,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError> {
        self.run_stream_muted(room, stream_id, audio, video, self.deadline()).await
    }

    async fn set_publisher_muted(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError> {
        self.run_publisher_muted(room, user_id, stream_id, audio, video, self.deadline()).await
    }

    async fn publish(&self, room: &RoomKey, event: RoomEvent) -> Result<(), RoomError> {
        let payload = encode(&event)?;
        let mut script = self.scripts.publish.prepare_invoke();
        script.arg(contract::channel(room)).arg(payload).arg(self.deadline());
        let published: i64 = self.invoke(&script).await?;
        if published == 1 { Ok(()) } else { Err(expired()) }
    }

    async fn snapshot(&self, room: &RoomKey) -> Result<Snapshot, RoomError> {
        let keys = RoomKeys::of(room);
        let started = Instant::now();
        let (members, streams, extra): (Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
            .atomic()
            .hvals(&keys.users)
            .hvals(&keys.streams)
            .hvals(&keys.extra)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        metrics::redis_round_trip(started.elapsed());
        Ok(Snapshot { members: decode_all(&members)?, streams: decode_all(&streams)?, extra_info: decode_all(&extra)? }
            .normalized())
    }

    async fn find_stream(&self, app_id: u32, stream_id: &str) -> Result<Option<(RoomKey, StreamInfo)>, RoomError> {
        let mut conn = self.conn();
        let room_id: Option<String> =
            conn.hget(app_streams_key(app_id), stream_id).await.map_err(|e| self.failed(e))?;
        let Some(room_id) = room_id else {
            return Ok(None);
        };
        let room = RoomKey::new(app_id, room_id);
        let raw: Option<String> =
            conn.hget(RoomKeys::of(&room).streams, stream_id).await.map_err(|e| self.failed(e))?;
        raw.map(|raw| decode::<StreamInfo>(&raw).map(|stream| (room, stream))).transpose()
    }

    async fn ping(&self) -> Result<(), RoomError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        if !self.subscriber.healthy() {
            return Err(RoomError::Unavailable("room subscriptions are not restored yet".to_owned()));
        }
        Ok(())
    }

    async fn announce_relay(&self, relay: RelayInfo) -> Result<(), RoomError> {
        let _: () = self.conn().hset(RELAYS_KEY, &relay.id, encode(&relay)?).await.map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn withdraw_relay(&self, relay_id: &str) -> Result<(), RoomError> {
        let _: () = self.conn().hdel(RELAYS_KEY, relay_id).await.map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn relays(&self) -> Result<Vec<RelayInfo>, RoomError> {
        let mut conn = self.conn();
        let raw: Vec<String> = conn.hvals(RELAYS_KEY).await.map_err(|e| self.failed(e))?;
        let now = super::unix_millis();
        let (fresh, stale): (Vec<RelayInfo>, Vec<RelayInfo>) =
            decode_all::<RelayInfo>(&raw)?.into_iter().partition(|r| r.is_fresh(now));
        if !stale.is_empty() {
            // Forget relays that stopped announcing (crashed or scaled down).
            let ids: Vec<&str> = stale.iter().map(|r| r.id.as_str()).collect();
            let _: () = conn.hdel(RELAYS_KEY, ids).await.map_err(|e| self.failed(e))?;
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    //! Every script, run on a real Redis (`HUDDLE_TEST_REDIS_URL`, default the local one),
    //! through the same Rust calls the backend makes; what they store and publish is decoded
    //! with the Rust types, so a field renamed on either side fails here.

    use super::*;
    use crate::rooms::model::User;
    use contract::{CLOCK_KEY, WORKERS_KEY};

    fn redis_url() -> String {
        std::env::var("HUDDLE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    fn member(user: &str, session: &str) -> Member {
        Member {
            user: User { user_id: user.into(), user_name: format!("{user} name") },
            session_id: session.into(),
            worker_id: "w".into(),
            joined_at: 1_700_000_000,
            joined_ms: 1_700_000_000_123,
        }
    }

    fn stream(user: &str, id: &str) -> StreamInfo {
        StreamInfo {
            stream_id: id.into(),
            user: User { user_id: user.into(), user_name: format!("{user} name") },
            extra_info: "e".into(),
            relay_url: Some("http://relay".into()),
            audio_muted: false,
            video_muted: false,
            publisher_audio_muted: false,
            publisher_video_muted: false,
        }
    }

    /// The next event published on the room's channel, decoded as Rust decodes it.
    async fn next_event(messages: &mut redis::aio::PubSubStream) -> RoomEvent {
        use futures_util::StreamExt;
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.unwrap().unwrap();
        serde_json::from_slice(message.get_payload_bytes()).expect("a RoomEvent")
    }

    #[tokio::test]
    async fn scripts_run_against_real_redis() {
        let client = redis::Client::open(redis_url()).unwrap();
        let hub = Arc::new(Hub::default());
        let worker = uuid::Uuid::new_v4().simple().to_string();
        let rooms =
            RedisRooms::start(&redis_url(), hub, worker.clone(), RedisRoomsConfig::default(), None).await.unwrap();
        let mut conn = rooms.conn();
        for (name, script) in rooms.scripts.all() {
            script.prepare_invoke().load_async(&mut conn).await.unwrap_or_else(|e| panic!("{name} compiles: {e}"));
        }
        let room = RoomKey::new(rand::random::<u32>() | 1, "scripts");
        let keys = RoomKeys::of(&room);
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(&keys.channel).await.unwrap();
        let mut messages = pubsub.into_on_message();
        let now = rooms.deadline();

        // join: a member, then the same user again (kickout), a late one and a restore.
        let joined = rooms.run_join(&room, &member("alice", "s1"), 10, "join", now).await.unwrap().unwrap();
        assert_eq!(joined.snapshot.members, vec![member("alice", "s1")]);
        assert!(matches!(next_event(&mut messages).await, RoomEvent::UserAdded { online_count: 1, .. }));
        let again = rooms.run_join(&room, &member("alice", "s2"), 10, "join", now).await.unwrap().unwrap();
        assert_eq!(again.replaced_session.as_deref(), Some("s1"));
        let kickout = next_event(&mut messages).await;
        assert_eq!(
            kickout,
            RoomEvent::Kickout { user_id: "alice".into(), session_id: "s1".into(), cause: KickCause::Replaced }
        );
        assert!(matches!(
            rooms.run_join(&room, &member("bob", "s3"), 1, "join", now).await,
            Err(RoomError::RoomFull(1))
        ));
        let late = rooms.run_join(&room, &member("bob", "s3"), 10, "join", 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        assert!(rooms.run_join(&room, &member("alice", "s9"), 10, "restore", 0).await.unwrap().is_none());
        let entries: Vec<String> = conn.smembers(rooms.own_entries_key()).await.unwrap();
        assert!(entries.contains(&WorkerEntry::session(&room, "alice", "s2").encode()), "{entries:?}");
        let users: usize = conn.hlen(&keys.users).await.unwrap();
        assert_eq!(users, 1, "refused and late joins left nothing");

        // streams: add (stored with its holder, announced without), extra info, removal.
        rooms.run_add_stream(&room, "s2", &stream("alice", "cam"), "publish", now).await.unwrap();
        assert_eq!(next_event(&mut messages).await, RoomEvent::StreamAdded { stream: stream("alice", "cam") });
        let stored: String = conn.hget(&keys.streams, "cam").await.unwrap();
        assert_eq!(decode::<StoredStream>(&stored).unwrap().holder, worker);
        let late = rooms.run_add_stream(&room, "s2", &stream("alice", "cam2"), "publish", 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        assert!(matches!(
            rooms.run_add_stream(&room, "s1", &stream("alice", "cam3"), "publish", now).await,
            Err(RoomError::NotMember)
        ));
        rooms.set_stream_extra_info(&room, "alice", "cam", "new").await.unwrap();
        let expected = StreamInfo { extra_info: "new".into(), ..stream("alice", "cam") };
        assert_eq!(next_event(&mut messages).await, RoomEvent::StreamExtraInfo { stream: expected.clone() });
        let extra = RoomExtraInfo {
            key: "k".into(),
            value: "v".into(),
            update_user: member("alice", "s2").user,
            update_time: 1,
        };
        rooms.run_room_extra_info(&room, &extra, 1, "set", now).await.unwrap();
        assert_eq!(next_event(&mut messages).await, RoomEvent::RoomExtraInfo { extra: extra.clone() });
        let other = RoomExtraInfo { key: "k2".into(), ..extra.clone() };
        let too_many = rooms.run_room_extra_info(&room, &other, 1, "set", now).await;
        assert!(matches!(too_many, Err(RoomError::TooManyExtraInfoKeys(1))));
        // The publisher's own mute: only its owner, announced with byServer false, stored
        // beside (not over) the server's flags.
        let not_owner = rooms.run_publisher_muted(&room, "bob", "cam", Some(true), None, now).await;
        assert!(matches!(not_owner, Err(RoomError::StreamNotFound(_))), "{not_owner:?}");
        rooms.run_stream_muted(&room, "cam", None, Some(true), now).await.unwrap();
        let server_muted = StreamInfo { video_muted: true, ..expected.clone() };
        assert_eq!(next_event(&mut messages).await, RoomEvent::StreamMuted { stream: server_muted, by_server: true });
        let muted = rooms.run_publisher_muted(&room, "alice", "cam", Some(true), Some(false), now).await.unwrap();
        let both = StreamInfo { video_muted: true, publisher_audio_muted: true, ..expected.clone() };
        assert_eq!(muted, both);
        assert_eq!(next_event(&mut messages).await, RoomEvent::StreamMuted { stream: both, by_server: false });
        rooms.run_publisher_muted(&room, "alice", "cam", Some(false), None, now).await.unwrap();
        rooms.run_stream_muted(&room, "cam", None, Some(false), now).await.unwrap();
        for _ in 0..2 {
            next_event(&mut messages).await;
        }
        let message = crate::rooms::ImMessage {
            message: "hi".into(),
            from_user: member("alice", "s2").user,
            send_time: 1,
            message_id: 2,
        };
        rooms.publish(&room, RoomEvent::Broadcast { message: message.clone() }).await.unwrap();
        assert_eq!(next_event(&mut messages).await, RoomEvent::Broadcast { message });
        let snapshot = rooms.snapshot(&room).await.unwrap();
        assert_eq!((snapshot.streams, snapshot.extra_info), (vec![expected.clone()], vec![extra]));
        let elsewhere = rooms.run_remove_stream(&room, "alice", "cam", "another-worker", "x").await;
        assert!(matches!(elsewhere, Err(RoomError::StreamNotFound(_))), "held by this worker, not another");
        rooms.run_remove_stream(&room, "alice", "cam", &worker, &rooms.own_entries_key()).await.unwrap();
        assert_eq!(next_event(&mut messages).await, RoomEvent::StreamRemoved { stream: expected });

        // leave: guarded by the session, then the room's keys go with its last member.
        assert!(!rooms.run_leave(&room, "alice", "s1", &rooms.own_entries_key()).await.unwrap());
        assert!(rooms.run_leave(&room, "alice", "s2", &rooms.own_entries_key()).await.unwrap());
        assert!(matches!(next_event(&mut messages).await, RoomEvent::UserRemoved { online_count: 0, .. }));
        let exists: bool = conn.exists(&keys.users).await.unwrap();
        assert!(!exists);
        let entries: Vec<String> = conn.smembers(rooms.own_entries_key()).await.unwrap();
        assert!(entries.is_empty(), "{entries:?}");
        let _: () = conn.zrem(WORKERS_KEY, &worker).await.unwrap();
    }

    #[tokio::test]
    async fn late_admin_scripts_change_nothing() {
        // A kick, a close or a mute that Redis only runs after the worker gave up waiting (a
        // frozen Redis; the API answered 1007) must leave the room as it was.
        let hub = Arc::new(Hub::default());
        let worker = uuid::Uuid::new_v4().simple().to_string();
        let config = RedisRoomsConfig::default();
        let rooms = RedisRooms::start(&redis_url(), hub, worker.clone(), config, None).await.unwrap();
        let room = RoomKey::new(rand::random::<u32>() | 1, "late-admin");
        let now = rooms.deadline();
        for (user, session) in [("alice", "s1"), ("bob", "s2")] {
            rooms.run_join(&room, &member(user, session), 10, "join", now).await.unwrap().unwrap();
        }
        rooms.run_add_stream(&room, "s2", &stream("bob", "late-cam"), "publish", now).await.unwrap();
        let cause = KickCause::Server { reason: "late".into() };
        let late = rooms.run_kick(&room, &["bob".to_owned()], &cause, 60, 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        let late = rooms.run_close_room(&room, &cause, 60, 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        let late = rooms.run_stream_muted(&room, "late-cam", Some(true), Some(true), 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        let late = rooms.run_publisher_muted(&room, "bob", "late-cam", Some(true), Some(true), 1).await;
        assert!(matches!(late, Err(RoomError::Unavailable(_))), "{late:?}");
        let snapshot = rooms.snapshot(&room).await.unwrap();
        assert_eq!(snapshot.members.len(), 2, "a late kick or close removed someone");
        assert_eq!(snapshot.streams.len(), 1);
        assert!(!snapshot.streams[0].audio_muted && !snapshot.streams[0].video_muted, "a late mute took effect");
        let publisher = (snapshot.streams[0].publisher_audio_muted, snapshot.streams[0].publisher_video_muted);
        assert_eq!(publisher, (false, false), "a late publisher mute took effect");
        let mut conn = rooms.conn();
        let closed: bool = conn.exists(RoomKeys::of(&room).closed).await.unwrap();
        assert!(!closed, "a late close left a closure");
        // In time, the same kick works.
        assert_eq!(rooms.run_kick(&room, &["bob".to_owned()], &cause, 0, rooms.deadline()).await.unwrap(), vec!["bob"]);
        assert!(rooms.run_leave(&room, "alice", "s1", &rooms.own_entries_key()).await.unwrap());
        let _: () = conn.zrem(contract::WORKERS_KEY, &worker).await.unwrap();
    }

    /// A redis-server of the test's own (the lease keys are global: the shared one would mix
    /// this test's fake workers with other tests' real ones), on a Unix socket: a TCP port
    /// could be one that another test's workers are still reconnecting to.
    struct PrivateRedis(std::process::Child, String, #[allow(dead_code)] tempfile::TempDir);

    impl PrivateRedis {
        async fn start() -> PrivateRedis {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("redis.sock");
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", "0", "--unixsocket"])
                .arg(&socket)
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            let url = format!("redis+unix://{}", socket.display());
            let client = redis::Client::open(url.as_str()).unwrap();
            for _ in 0..100 {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
                {
                    return PrivateRedis(child, url, dir);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("private redis-server did not start");
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    async fn leases_are_judged_on_redis_clock_and_only_while_redis_answered() {
        let redis = PrivateRedis::start().await;
        let config = RedisRoomsConfig { lease: Duration::from_secs(60), ..RedisRoomsConfig::default() };
        // No lease task: it would reap the fake dead worker itself, racing the checks below.
        let rooms = RedisRooms::without_lease_task(&redis.1, "judge", config).await;
        assert!(!rooms.renew_lease().await.unwrap(), "a new worker was not registered yet");
        let mut conn = rooms.conn();
        let dead = "dead-worker";
        let redis_now = crate::rooms::unix_millis() + rooms.clock_offset_ms.load(Ordering::Acquire);
        // A worker whose deadline passed while Redis was answering all along: dead.
        let _: () = conn.zadd(WORKERS_KEY, dead, redis_now - 1_000).await.unwrap();
        let _: () = conn.set(CLOCK_KEY, redis_now).await.unwrap();
        assert_eq!(reap(&rooms).await, vec![(dead.to_owned(), redis_now - 1_000)], "claimed with its deadline");
        // The same, but nobody could reach Redis for the last two minutes (it was frozen):
        // the silence moves every deadline, so it is alive.
        let _: () = conn.zadd(WORKERS_KEY, dead, redis_now - 1_000).await.unwrap();
        let _: () = conn.set(CLOCK_KEY, redis_now - 120_000).await.unwrap();
        assert_eq!(reap(&rooms).await, Vec::<(String, i64)>::new(), "a frozen Redis made a worker look dead");
        let moved: f64 = conn.zscore(WORKERS_KEY, dead).await.unwrap();
        assert!(moved as i64 >= redis_now + 118_000, "the deadline moved by the silence: {moved}");
        // A worker with a longer lease than the reaper's is judged by its own.
        let _: () = conn.zadd(WORKERS_KEY, dead, redis_now + 300_000).await.unwrap();
        assert_eq!(reap(&rooms).await, Vec::<(String, i64)>::new());
        let _: () = conn.zrem(WORKERS_KEY, dead).await.unwrap();
        // Renewal answers whether this worker was still registered.
        assert!(rooms.renew_lease().await.unwrap());
        let _: () = conn.zrem(WORKERS_KEY, "judge").await.unwrap();
        assert!(!rooms.renew_lease().await.unwrap(), "gone from the workers: must repair");
    }

    /// The reap script's claims: each dead worker with its lease deadline.
    async fn reap(rooms: &RedisRooms) -> Vec<(String, i64)> {
        let flat: Vec<String> = rooms
            .scripts
            .reap
            .key(WORKERS_KEY)
            .key(CLOCK_KEY)
            .arg("judge")
            .arg(rooms.gap_ms())
            .arg(1000)
            .invoke_async(&mut rooms.conn())
            .await
            .unwrap();
        flat.chunks(2).map(|pair| (pair[0].clone(), pair[1].parse().unwrap())).collect()
    }
}
