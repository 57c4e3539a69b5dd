//! Rooms in Redis, shared by any number of stateless workers.
//!
//! - State: per room, hashes of members (`…:u`), streams (`…:s`) and extra info (`…:x`);
//!   per app, a stream-id index (`huddle:a:{app}:s`). Every change is one Lua script that
//!   also publishes its events on the room's channel, so changes are atomic and ordered.
//! - Fan-out: each worker subscribes to the channels of the rooms it has local members in
//!   (RESP3 push on a connection manager that resubscribes by itself after a reconnect).
//! - Leases: each worker renews `huddle:w:{id}` and lists its sessions in `huddle:w:{id}:s`;
//!   a worker whose lease lapsed is reaped by another, which removes its members so that
//!   their rooms get DELETE events. Room keys expire unless a worker with members renews them.
//! - Redis restarting empty: a worker notices its lease is gone, re-adds its own live sessions,
//!   streams and the room extra info it has seen, and tells every member to resync.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ProtocolVersion, PushInfo, PushKind, Script, Value};

use super::model::{JoinOutcome, Member, RelayInfo, RoomEvent, RoomExtraInfo, RoomKey, Snapshot, StreamInfo};
use super::{Hub, RoomBackend, RoomError};
use crate::metrics;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Settings of the Redis backend.
#[derive(Debug, Clone, Copy)]
pub struct RedisRoomsConfig {
    /// A worker silent for this long is considered dead and its users are removed.
    pub lease: Duration,
}

impl Default for RedisRoomsConfig {
    fn default() -> Self {
        RedisRoomsConfig { lease: Duration::from_secs(15) }
    }
}

struct Scripts {
    join: Script,
    leave: Script,
    add_stream: Script,
    remove_stream: Script,
    stream_extra_info: Script,
    room_extra_info: Script,
}

impl Scripts {
    fn load() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            join: script(include_str!("lua/join.lua")),
            leave: script(include_str!("lua/leave.lua")),
            add_stream: script(include_str!("lua/add_stream.lua")),
            remove_stream: script(include_str!("lua/remove_stream.lua")),
            stream_extra_info: script(include_str!("lua/stream_extra_info.lua")),
            room_extra_info: script(include_str!("lua/room_extra_info.lua")),
        }
    }
}

/// What this worker must be able to put back if Redis loses everything.
#[derive(Default)]
struct LocalState {
    /// session id → (room, member, streams by id)
    sessions: HashMap<String, (RoomKey, Member, BTreeMap<String, StreamInfo>)>,
    /// Latest room extra info seen per watched room.
    extra: HashMap<RoomKey, BTreeMap<String, RoomExtraInfo>>,
}

pub struct RedisRooms {
    commands: ConnectionManager,
    subscriptions: ConnectionManager,
    hub: Arc<Hub>,
    worker_id: String,
    config: RedisRoomsConfig,
    scripts: Scripts,
    local: Mutex<LocalState>,
    /// The subscription connection dropped: members may have missed events.
    missed_events: Arc<AtomicBool>,
}

fn keys(room: &RoomKey) -> (String, String, String, String) {
    let base = format!("huddle:r:{}:{}", room.app_id, room.room_id);
    (format!("{base}:u"), format!("{base}:s"), format!("{base}:x"), app_streams_key(room.app_id))
}

fn app_streams_key(app_id: u32) -> String {
    format!("huddle:a:{app_id}:s")
}

fn channel(room: &RoomKey) -> String {
    format!("huddle:ev:{}:{}", room.app_id, room.room_id)
}

/// Inverse of [`channel`]; room ids never contain `:`.
fn room_of_channel(channel: &str) -> Option<RoomKey> {
    let rest = channel.strip_prefix("huddle:ev:")?;
    let (app, room) = rest.split_once(':')?;
    Some(RoomKey::new(app.parse().ok()?, room))
}

fn worker_key(worker_id: &str) -> String {
    format!("huddle:w:{worker_id}")
}

fn worker_sessions_key(worker_id: &str) -> String {
    format!("huddle:w:{worker_id}:s")
}

const WORKERS_KEY: &str = "huddle:workers";
/// Relay id → its latest announcement (JSON).
const RELAYS_KEY: &str = "huddle:relays";

/// A stream whose media this worker's relay holds: reaped with the worker, so that a relay
/// node dying is a stream stop. Session entries never start with this tag (app ids are numbers).
const STREAM_ENTRY: &str = "stream\t";

fn stream_entry(room: &RoomKey, user_id: &str, stream_id: &str) -> String {
    format!("{STREAM_ENTRY}{}\t{}\t{}\t{}", room.app_id, room.room_id, user_id, stream_id)
}

/// `app \t room \t user \t ` — a session entry is this prefix plus the session id.
fn session_entry_prefix(room: &RoomKey, user_id: &str) -> String {
    format!("{}\t{}\t{}\t", room.app_id, room.room_id, user_id)
}

fn unavailable(err: redis::RedisError) -> RoomError {
    RoomError::Unavailable(err.to_string())
}

fn unparsable(err: impl std::fmt::Display) -> RoomError {
    RoomError::Corrupt(format!("unexpected Redis reply: {err}"))
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

impl RedisRooms {
    /// Connects, registers this worker's lease and starts the lease/reaper task.
    pub async fn start(
        url: &str,
        hub: Arc<Hub>,
        worker_id: String,
        config: RedisRoomsConfig,
    ) -> Result<Arc<RedisRooms>, RoomError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(1));
        let commands =
            ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await.map_err(unavailable)?;

        let info = client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let push_client = redis::Client::open(info.set_redis_settings(resp3)).map_err(unavailable)?;
        let missed_events = Arc::new(AtomicBool::new(false));
        let push_hub = hub.clone();
        let push_missed = missed_events.clone();
        let push_sender = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            handle_push(&push_hub, &push_missed, push);
            Ok(())
        };
        let subscriptions = ConnectionManager::new_with_config(
            push_client,
            manager_config.set_push_sender(push_sender).set_automatic_resubscription(),
        )
        .await
        .map_err(unavailable)?;

        let rooms = Arc::new(RedisRooms {
            commands,
            subscriptions,
            hub,
            worker_id,
            config,
            scripts: Scripts::load(),
            local: Mutex::default(),
            missed_events,
        });
        rooms.register_lease().await?;
        tokio::spawn(lease_loop(Arc::downgrade(&rooms)));
        Ok(rooms)
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    fn local(&self) -> MutexGuard<'_, LocalState> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> ConnectionManager {
        self.commands.clone()
    }

    fn room_ttl_secs(&self) -> u64 {
        self.config.lease.as_secs().max(1) * 4
    }

    async fn register_lease(&self) -> Result<(), RoomError> {
        let mut conn = self.conn();
        redis::pipe()
            .set_ex(worker_key(&self.worker_id), 1, self.config.lease.as_secs().max(1))
            .zadd(WORKERS_KEY, &self.worker_id, crate::auth::unix_now())
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// Renews the lease; false when it had vanished (Redis lost data, or we were reaped).
    async fn renew_lease(&self) -> Result<bool, RoomError> {
        let mut conn = self.conn();
        let lease_secs = self.config.lease.as_secs().max(1);
        let renewed: Option<String> = redis::cmd("SET")
            .arg(worker_key(&self.worker_id))
            .arg(1)
            .arg("XX")
            .arg("EX")
            .arg(lease_secs)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut pipe = redis::pipe();
        pipe.zadd(WORKERS_KEY, &self.worker_id, crate::auth::unix_now()).ignore();
        pipe.expire(worker_sessions_key(&self.worker_id), (lease_secs * 4) as i64).ignore();
        for room in self.hub.rooms() {
            let (users, streams, extra, _) = keys(&room);
            for key in [users, streams, extra] {
                pipe.expire(key, self.room_ttl_secs() as i64).ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)?;
        Ok(renewed.is_some())
    }

    /// Removes the members of workers whose lease lapsed. Each dead worker is claimed by
    /// exactly one reaper (`ZREM` returns 1 to one caller only).
    async fn reap_dead_workers(&self) -> Result<usize, RoomError> {
        let mut conn = self.conn();
        let deadline = crate::auth::unix_now() - self.config.lease.as_secs() as i64;
        let candidates: Vec<String> =
            conn.zrangebyscore_limit(WORKERS_KEY, "-inf", deadline, 0, 16).await.map_err(unavailable)?;
        let mut reaped = 0;
        for worker in candidates {
            if worker == self.worker_id {
                continue;
            }
            let alive: bool = conn.exists(worker_key(&worker)).await.map_err(unavailable)?;
            if alive {
                continue;
            }
            let claimed: i64 = conn.zrem(WORKERS_KEY, &worker).await.map_err(unavailable)?;
            if claimed != 1 {
                continue;
            }
            let sessions_key = worker_sessions_key(&worker);
            let entries: Vec<String> = conn.smembers(&sessions_key).await.map_err(unavailable)?;
            for entry in &entries {
                if let Some(stream) = entry.strip_prefix(STREAM_ENTRY) {
                    let mut parts = stream.splitn(4, '\t');
                    if let (Some(app), Some(room_id), Some(user_id), Some(stream_id)) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                        && let Ok(app_id) = app.parse()
                    {
                        let room = RoomKey::new(app_id, room_id);
                        match self.run_remove_stream(&room, user_id, stream_id, &worker).await {
                            Ok(()) | Err(RoomError::StreamNotFound(_)) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    continue;
                }
                let mut parts = entry.splitn(4, '\t');
                let (Some(app), Some(room_id), Some(user_id), Some(session_id)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let Ok(app_id) = app.parse() else { continue };
                let room = RoomKey::new(app_id, room_id);
                if self.run_leave(&room, user_id, session_id, &sessions_key).await? {
                    reaped += 1;
                }
            }
            let _: () = conn.del(&sessions_key).await.map_err(unavailable)?;
            tracing::warn!(worker = %worker, sessions = entries.len(), "reaped a worker whose lease lapsed");
        }
        Ok(reaped)
    }

    /// Puts this worker's live sessions back after Redis lost them, then asks every member
    /// of those rooms to resync.
    async fn restore(&self) -> Result<(), RoomError> {
        self.register_lease().await?;
        let (sessions, extra) = {
            let local = self.local();
            let sessions: Vec<_> = local.sessions.values().cloned().collect();
            (sessions, local.extra.clone())
        };
        for (room, member, streams) in &sessions {
            let outcome = self.run_join(room, member, u32::MAX, "restore").await?;
            if outcome.is_none() {
                continue; // the user logged in elsewhere meanwhile
            }
            for stream in streams.values() {
                self.run_add_stream(room, &member.session_id, stream, "restore").await?;
            }
        }
        for (room, values) in &extra {
            for value in values.values() {
                self.run_room_extra_info(room, value, usize::MAX, "restore").await?;
            }
        }
        let mut rooms: Vec<&RoomKey> = sessions.iter().map(|(room, _, _)| room).collect();
        rooms.sort();
        rooms.dedup();
        for room in rooms {
            self.publish(room, RoomEvent::Resync).await?;
        }
        tracing::warn!(sessions = sessions.len(), "restored this worker's rooms into Redis");
        Ok(())
    }

    /// The join script; `None` when a restore found the user taken over by another session.
    async fn run_join(
        &self,
        room: &RoomKey,
        member: &Member,
        max_users: u32,
        mode: &str,
    ) -> Result<Option<JoinOutcome>, RoomError> {
        let (users, streams, extra, app_streams) = keys(room);
        let started = Instant::now();
        let reply: Vec<Value> = self
            .scripts
            .join
            .key(users)
            .key(streams)
            .key(extra)
            .key(app_streams)
            .key(worker_sessions_key(&self.worker_id))
            .arg(&member.user.user_id)
            .arg(encode(member)?)
            .arg(&member.session_id)
            .arg(max_users)
            .arg(channel(room))
            .arg(session_entry_prefix(room, &member.user.user_id))
            .arg(self.room_ttl_secs())
            .arg(mode)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
        let status: String =
            reply.first().map(redis::from_redis_value_ref).transpose().map_err(unparsable)?.unwrap_or_default();
        match status.as_str() {
            "ok" => {}
            "full" => return Err(RoomError::RoomFull(max_users)),
            "superseded" => return Ok(None),
            other => {
                return Err(RoomError::Corrupt(format!("join script answered {other:?}")));
            }
        }
        let field = |index: usize| -> Result<Vec<String>, RoomError> {
            reply
                .get(index)
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(unparsable)
                .map(Option::unwrap_or_default)
        };
        let replaced: String =
            reply.get(1).map(redis::from_redis_value_ref).transpose().map_err(unparsable)?.unwrap_or_default();
        let snapshot = Snapshot {
            members: decode_all(&field(2)?)?,
            streams: decode_all(&field(3)?)?,
            extra_info: decode_all(&field(4)?)?,
        }
        .normalized();
        Ok(Some(JoinOutcome { snapshot, replaced_session: (!replaced.is_empty()).then_some(replaced) }))
    }

    async fn run_leave(
        &self,
        room: &RoomKey,
        user_id: &str,
        session_id: &str,
        sessions_key: &str,
    ) -> Result<bool, RoomError> {
        let (users, streams, extra, app_streams) = keys(room);
        let entry = format!("{}{session_id}", session_entry_prefix(room, user_id));
        let started = Instant::now();
        let left: i64 = self
            .scripts
            .leave
            .key(users)
            .key(streams)
            .key(extra)
            .key(app_streams)
            .key(sessions_key)
            .arg(user_id)
            .arg(session_id)
            .arg(channel(room))
            .arg(entry)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
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
    ) -> Result<(), RoomError> {
        let (_, streams, _, app_streams) = keys(room);
        let mut invocation = self.scripts.remove_stream.key(streams);
        invocation.key(app_streams).arg(user_id).arg(stream_id).arg(channel(room)).arg(holder);
        self.run_stream_script(&mut invocation, stream_id).await
    }

    async fn run_add_stream(
        &self,
        room: &RoomKey,
        session_id: &str,
        stream: &StreamInfo,
        mode: &str,
    ) -> Result<(), RoomError> {
        let (users, streams, _, app_streams) = keys(room);
        let started = Instant::now();
        let status: String = self
            .scripts
            .add_stream
            .key(users)
            .key(streams)
            .key(app_streams)
            .arg(&stream.user.user_id)
            .arg(session_id)
            .arg(&stream.stream_id)
            .arg(encode(stream)?)
            .arg(&room.room_id)
            .arg(channel(room))
            .arg(format!("huddle:r:{}:", room.app_id))
            .arg(self.room_ttl_secs())
            .arg(mode)
            .arg(&self.worker_id)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
        match status.as_str() {
            "ok" => Ok(()),
            "not_member" => Err(RoomError::NotMember),
            "taken" => Err(RoomError::StreamIdTaken(stream.stream_id.clone())),
            other => Err(RoomError::Corrupt(format!("add_stream script answered {other:?}"))),
        }
    }

    async fn run_room_extra_info(
        &self,
        room: &RoomKey,
        extra: &RoomExtraInfo,
        max_keys: usize,
        mode: &str,
    ) -> Result<(), RoomError> {
        let (users, _, extra_key, _) = keys(room);
        let status: String = self
            .scripts
            .room_extra_info
            .key(users)
            .key(extra_key)
            .arg(&extra.key)
            .arg(encode(extra)?)
            .arg(max_keys.min(i64::MAX as usize))
            .arg(channel(room))
            .arg(self.room_ttl_secs())
            .arg(mode)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        match status.as_str() {
            "ok" => Ok(()),
            "not_member" => Err(RoomError::NotMember),
            "too_many" => Err(RoomError::TooManyExtraInfoKeys(max_keys)),
            other => Err(RoomError::Corrupt(format!("room_extra_info script answered {other:?}"))),
        }
    }

    /// Runs a script that answers `ok` or `not_found` about one of the user's streams.
    async fn run_stream_script(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        stream_id: &str,
    ) -> Result<(), RoomError> {
        let started = Instant::now();
        let status: String = invocation.invoke_async(&mut self.conn()).await.map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
        match status.as_str() {
            "ok" => Ok(()),
            "not_found" => Err(RoomError::StreamNotFound(stream_id.to_owned())),
            other => Err(RoomError::Corrupt(format!("stream script answered {other:?}"))),
        }
    }
}

/// Delivers pub/sub pushes to the hub. Runs inside the subscription connection's driver.
fn handle_push(hub: &Hub, missed_events: &AtomicBool, push: PushInfo) {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                return;
            };
            let (Ok(channel), Ok(payload)) =
                (redis::from_redis_value::<String>(channel), redis::from_redis_value::<String>(payload))
            else {
                return;
            };
            let Some(room) = room_of_channel(&channel) else {
                return;
            };
            match serde_json::from_str::<RoomEvent>(&payload) {
                Ok(event) => {
                    if let RoomEvent::Broadcast { message }
                    | RoomEvent::Barrage { message }
                    | RoomEvent::CustomCommand { message, .. } = &event
                    {
                        metrics::pubsub_lag(super::unix_millis() - message.send_time);
                    }
                    hub.dispatch(room, event)
                }
                Err(err) => tracing::warn!(%room, error = %err, "undecodable room event"),
            }
        }
        PushKind::Disconnection => {
            missed_events.store(true, Ordering::Release);
            metrics::pubsub_disconnected();
        }
        _ => {}
    }
}

/// Renews the lease, reaps dead workers and repairs after data loss, every third of a lease.
async fn lease_loop(rooms: Weak<RedisRooms>) {
    let period = match rooms.upgrade() {
        Some(rooms) => rooms.config.lease / 3,
        None => return,
    };
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(200)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(rooms) = rooms.upgrade() else { return };
        match rooms.renew_lease().await {
            Ok(true) => {}
            Ok(false) => {
                if let Err(err) = rooms.restore().await {
                    tracing::warn!(error = %err, "restoring rooms into Redis failed; will retry");
                    continue;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Redis lease renewal failed");
                continue;
            }
        }
        if rooms.missed_events.swap(false, Ordering::AcqRel) {
            // The subscription connection is back (the renewal above succeeded on the same
            // server): tell local members to re-read their rooms.
            for room in rooms.hub.rooms() {
                rooms.hub.dispatch(room, RoomEvent::Resync);
            }
        }
        if let Err(err) = rooms.reap_dead_workers().await {
            tracing::warn!(error = %err, "reaping dead workers failed");
        }
    }
}

#[async_trait]
impl RoomBackend for RedisRooms {
    async fn watch(&self, room: &RoomKey) -> Result<(), RoomError> {
        self.subscriptions.clone().subscribe(channel(room)).await.map_err(unavailable)
    }

    async fn unwatch(&self, room: &RoomKey) -> Result<(), RoomError> {
        self.local().extra.remove(room);
        self.subscriptions.clone().unsubscribe(channel(room)).await.map_err(unavailable)
    }

    async fn join(&self, room: &RoomKey, member: Member, max_users: u32) -> Result<JoinOutcome, RoomError> {
        let outcome = self
            .run_join(room, &member, max_users, "join")
            .await?
            .ok_or_else(|| RoomError::Corrupt("join answered superseded".to_owned()))?;
        let mut local = self.local();
        if let Some(replaced) = &outcome.replaced_session {
            local.sessions.remove(replaced);
        }
        let extra: BTreeMap<String, RoomExtraInfo> =
            outcome.snapshot.extra_info.iter().map(|e| (e.key.clone(), e.clone())).collect();
        local.extra.insert(room.clone(), extra);
        local.sessions.insert(member.session_id.clone(), (room.clone(), member, BTreeMap::new()));
        Ok(outcome)
    }

    async fn leave(&self, room: &RoomKey, user_id: &str, session_id: &str) -> Result<bool, RoomError> {
        self.local().sessions.remove(session_id);
        self.run_leave(room, user_id, session_id, &worker_sessions_key(&self.worker_id)).await
    }

    async fn add_stream(&self, room: &RoomKey, session_id: &str, stream: StreamInfo) -> Result<(), RoomError> {
        self.run_add_stream(room, session_id, &stream, "publish").await?;
        // The stream lives as long as this worker (its relay) does.
        let entry = stream_entry(room, &stream.user.user_id, &stream.stream_id);
        let _: () = self.conn().sadd(worker_sessions_key(&self.worker_id), entry).await.map_err(unavailable)?;
        if let Some((_, _, streams)) = self.local().sessions.get_mut(session_id) {
            streams.insert(stream.stream_id.clone(), stream);
        }
        Ok(())
    }

    async fn remove_stream(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError> {
        let removed = self.run_remove_stream(room, user_id, stream_id, "").await;
        let entry = stream_entry(room, user_id, stream_id);
        let _: () = self.conn().srem(worker_sessions_key(&self.worker_id), entry).await.map_err(unavailable)?;
        removed?;
        for (_, member, streams) in self.local().sessions.values_mut() {
            if member.user.user_id == user_id {
                streams.remove(stream_id);
            }
        }
        Ok(())
    }

    async fn set_stream_extra_info(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        extra_info: &str,
    ) -> Result<(), RoomError> {
        let (_, streams, _, _) = keys(room);
        let mut invocation = self.scripts.stream_extra_info.key(streams);
        invocation.arg(user_id).arg(stream_id).arg(extra_info).arg(channel(room));
        self.run_stream_script(&mut invocation, stream_id).await?;
        for (_, member, streams) in self.local().sessions.values_mut() {
            if let Some(stream) = streams.get_mut(stream_id).filter(|_| member.user.user_id == user_id) {
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
        self.run_room_extra_info(room, &extra, max_keys, "set").await?;
        self.local().extra.entry(room.clone()).or_default().insert(extra.key.clone(), extra);
        Ok(())
    }

    async fn publish(&self, room: &RoomKey, event: RoomEvent) -> Result<(), RoomError> {
        let payload = encode(&event)?;
        let started = Instant::now();
        let _: i64 = self.conn().publish(channel(room), payload).await.map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
        Ok(())
    }

    async fn snapshot(&self, room: &RoomKey) -> Result<Snapshot, RoomError> {
        let (users, streams, extra, _) = keys(room);
        let started = Instant::now();
        let (members, streams, extra): (Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
            .atomic()
            .hvals(users)
            .hvals(streams)
            .hvals(extra)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        metrics::redis_round_trip(started.elapsed());
        Ok(Snapshot { members: decode_all(&members)?, streams: decode_all(&streams)?, extra_info: decode_all(&extra)? }
            .normalized())
    }

    async fn find_stream(&self, app_id: u32, stream_id: &str) -> Result<Option<(RoomKey, StreamInfo)>, RoomError> {
        let mut conn = self.conn();
        let room_id: Option<String> = conn.hget(app_streams_key(app_id), stream_id).await.map_err(unavailable)?;
        let Some(room_id) = room_id else {
            return Ok(None);
        };
        let room = RoomKey::new(app_id, room_id);
        let (_, streams, _, _) = keys(&room);
        let raw: Option<String> = conn.hget(streams, stream_id).await.map_err(unavailable)?;
        raw.map(|raw| decode::<StreamInfo>(&raw).map(|stream| (room, stream))).transpose()
    }

    async fn ping(&self) -> Result<(), RoomError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await.map_err(unavailable)?;
        Ok(())
    }

    async fn announce_relay(&self, relay: RelayInfo) -> Result<(), RoomError> {
        let _: () = self.conn().hset(RELAYS_KEY, &relay.id, encode(&relay)?).await.map_err(unavailable)?;
        Ok(())
    }

    async fn relays(&self) -> Result<Vec<RelayInfo>, RoomError> {
        let mut conn = self.conn();
        let raw: Vec<String> = conn.hvals(RELAYS_KEY).await.map_err(unavailable)?;
        let now = super::unix_millis();
        let (fresh, stale): (Vec<RelayInfo>, Vec<RelayInfo>) =
            decode_all::<RelayInfo>(&raw)?.into_iter().partition(|r| r.is_fresh(now));
        if !stale.is_empty() {
            // Forget relays that stopped announcing (crashed or scaled down).
            let ids: Vec<&str> = stale.iter().map(|r| r.id.as_str()).collect();
            let _: () = conn.hdel(RELAYS_KEY, ids).await.map_err(unavailable)?;
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_to_rooms() {
        let room = RoomKey::new(42, "room-1.a~b_c");
        assert_eq!(room_of_channel(&channel(&room)), Some(room));
        assert_eq!(room_of_channel("huddle:ev:x:room"), None);
        assert_eq!(room_of_channel("other"), None);
    }

    #[test]
    fn lua_scripts_parse_with_the_prelude() {
        // Cheap structural check; behaviour is tested against real Redis in tests/rooms.rs.
        let scripts = Scripts::load();
        assert_ne!(scripts.join.get_hash(), scripts.leave.get_hash());
    }
}
