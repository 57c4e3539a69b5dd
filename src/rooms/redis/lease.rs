//! Leases, reaping and repair: what keeps Redis true to the workers that are really alive.
//!
//! Timing, from the lease `L` (`--redis-lease-ms`): a worker renews every `L/5` and checks
//! for dead workers every `L/10`. A worker that renewed nothing for `7L/10` of Redis's clock
//! while Redis was answering is dead (three renewals missed), so removing its users starts at
//! most `7L/10 + L/10` after it dies, leaving `L/5` to remove them: within `L`.
//!
//! A lease is a deadline on Redis's clock (the worker's score in `huddle:leases`: renewal
//! time plus its own `7L/10`, so workers with different leases can share one Redis).
//! "While Redis was answering": every lease script notes Redis's time in `huddle:clock`;
//! when it finds that nobody wrote it for more than `L/3`, Redis was frozen, down or
//! restarted (or every worker was), and every deadline moves by that silence, so a stalled
//! Redis makes nobody look dead.

use std::collections::{BTreeSet, HashSet};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use redis::AsyncCommands;

use super::contract::{CLOCK_KEY, REAPED_KEY, RoomKeys, WORKERS_KEY, WorkerEntry, worker_entries_key};
use super::{LocalSession, RedisRooms};
use crate::metrics;
use crate::rooms::KickCause;
use crate::rooms::{Member, ReapedSession, ReapedStream, ReapedWorker, RoomError, RoomEvent, RoomKey};

/// Renew every this many ticks (a tick is a tenth of the lease).
const RENEW_EVERY_TICKS: u64 = 2;
/// Repair unprompted every this many ticks (four leases).
const REPAIR_EVERY_TICKS: u64 = 40;
/// Dead workers claimed per check.
const REAP_LIMIT: usize = 16;
/// Scripts in flight at once when removing a dead worker's sessions or repairing.
const PARALLEL_SCRIPTS: usize = 32;
/// Sessions checked per pipeline during repair.
const REPAIR_BATCH: usize = 500;

impl RedisRooms {
    fn tick(&self) -> Duration {
        (self.config.lease / 10).max(Duration::from_millis(50))
    }

    pub(super) fn gap_ms(&self) -> u64 {
        (self.config.lease.as_millis() as u64 / 3).max(1)
    }

    pub(super) fn dead_after_ms(&self) -> u64 {
        (self.config.lease.as_millis() as u64 * 7 / 10).max(1)
    }

    /// Renews the lease on Redis's clock and keeps the local rooms' keys alive. Returns false
    /// when the worker was not registered (Redis lost its data, or this worker was reaped).
    pub(super) async fn renew_lease(&self) -> Result<bool, RoomError> {
        let mut script = self.scripts.renew_lease.prepare_invoke();
        script.key(WORKERS_KEY).key(CLOCK_KEY).arg(&self.worker_id).arg(self.gap_ms()).arg(self.dead_after_ms());
        let sent = crate::rooms::unix_millis();
        let (known, redis_now): (i64, i64) = self.invoke(&script).await?;
        let received = crate::rooms::unix_millis();
        self.clock_offset_ms.store(redis_now - (sent + received) / 2, Ordering::Release);
        let rooms = self.hub.rooms();
        if !rooms.is_empty() {
            let mut pipe = redis::pipe();
            for room in rooms {
                let keys = RoomKeys::of(&room);
                for key in [keys.users, keys.streams, keys.extra] {
                    pipe.expire(key, self.room_ttl_secs() as i64).ignore();
                }
            }
            pipe.query_async::<()>(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        }
        Ok(known == 1)
    }

    /// Claims dead workers and removes what they held.
    async fn reap_dead_workers(&self) -> Result<(), RoomError> {
        let mut script = self.scripts.reap.prepare_invoke();
        script.key(WORKERS_KEY).key(CLOCK_KEY).arg(&self.worker_id).arg(self.gap_ms()).arg(REAP_LIMIT);
        let claimed: Vec<String> = self.invoke(&script).await?;
        for pair in claimed.chunks(2) {
            let [worker, deadline] = pair else { continue };
            let deadline_ms: i64 = deadline.parse().map_err(super::unparsable)?;
            if let Err(err) = self.reap(worker, deadline_ms).await {
                // Give it back, with the deadline that passed, so that this or another worker
                // tries again.
                let _: Result<(), _> = self.conn().zadd(WORKERS_KEY, worker, deadline_ms).await;
                return Err(err);
            }
        }
        if self.reap_hook.is_some() {
            self.retry_pending_reaps().await?;
        }
        Ok(())
    }

    /// Removes every session and stream a dead worker held (DELETE events for their rooms),
    /// then tells the reap hook. What was removed is first noted in Redis ([`REAPED_KEY`]),
    /// so that a hook that fails (its database is down) or a reaper that dies is repeated.
    async fn reap(&self, worker: &str, deadline_ms: i64) -> Result<(), RoomError> {
        let entries_key = worker_entries_key(worker);
        let raw: Vec<String> = self.conn().smembers(&entries_key).await.map_err(|e| self.failed(e))?;
        let entries: Vec<WorkerEntry> = raw.iter().filter_map(|raw| WorkerEntry::decode(raw)).collect();
        let pending = match &self.reap_hook {
            Some(_) => Some(self.note_reap(worker, deadline_ms, &entries).await?),
            None => None,
        };
        let removed = self.remove_entries(&entries, worker, &entries_key).await?;
        let sessions = removed.iter().filter(|r| **r == Removed::Session).count();
        let streams = removed.iter().filter(|r| **r == Removed::Stream).count();
        let _: () = self.conn().del(&entries_key).await.map_err(|e| self.failed(e))?;
        metrics::redis_repair("reaped_session", sessions as u64);
        tracing::warn!(%worker, sessions, streams, deadline_ms, "reaped a worker whose lease lapsed");
        if let Some(pending) = pending {
            self.tell_reap_hook(&pending.reaped).await;
        }
        Ok(())
    }

    /// Notes in Redis what the reap of `worker` removes (merged with an earlier, unfinished
    /// reap of it): the sessions with their login times, read before they go.
    async fn note_reap(
        &self,
        worker: &str,
        deadline_ms: i64,
        entries: &[WorkerEntry],
    ) -> Result<PendingReap, RoomError> {
        let mut pipe = redis::pipe();
        for entry in entries {
            if let WorkerEntry::Session { user_id, .. } = entry {
                pipe.hget(RoomKeys::of(&entry.room()).users, user_id);
            }
        }
        let members: Vec<Option<String>> = if entries.iter().any(|e| matches!(e, WorkerEntry::Session { .. })) {
            pipe.query_async(&mut self.conn()).await.map_err(|e| self.failed(e))?
        } else {
            Vec::new()
        };
        let mut members = members.into_iter();
        let mut sessions = Vec::new();
        let mut streams = Vec::new();
        for entry in entries {
            match entry {
                WorkerEntry::Session { app_id, room_id, user_id, session_id } => {
                    let member = members.next().flatten().and_then(|raw| super::decode::<Member>(&raw).ok());
                    let joined_ms = member.filter(|m| m.session_id == *session_id).map(|m| m.joined_ms());
                    sessions.push(ReapedSession {
                        app_id: *app_id,
                        room_id: room_id.clone(),
                        user_id: user_id.clone(),
                        session_id: session_id.clone(),
                        joined_ms,
                    });
                }
                WorkerEntry::Stream { app_id, room_id, user_id, stream_id } => streams.push(ReapedStream {
                    app_id: *app_id,
                    room_id: room_id.clone(),
                    user_id: user_id.clone(),
                    stream_id: stream_id.clone(),
                }),
            }
        }
        let mut conn = self.conn();
        let earlier: Option<String> = conn.hget(REAPED_KEY, worker).await.map_err(|e| self.failed(e))?;
        let mut reaped = ReapedWorker { worker_id: worker.to_owned(), deadline_ms, sessions, streams };
        if let Some(earlier) = earlier.and_then(|raw| serde_json::from_str::<PendingReap>(&raw).ok()) {
            reaped.deadline_ms = reaped.deadline_ms.min(earlier.reaped.deadline_ms);
            for session in earlier.reaped.sessions {
                if !reaped.sessions.iter().any(|s| s.session_id == session.session_id) {
                    reaped.sessions.push(session);
                }
            }
            for stream in earlier.reaped.streams {
                if !reaped.streams.contains(&stream) {
                    reaped.streams.push(stream);
                }
            }
        }
        let pending = PendingReap { reaped, noted_ms: crate::rooms::unix_millis() };
        let _: () = conn.hset(REAPED_KEY, worker, super::encode(&pending)?).await.map_err(|e| self.failed(e))?;
        Ok(pending)
    }

    /// Hands a reaped worker to the hook; forgets it once the hook took it.
    async fn tell_reap_hook(&self, reaped: &ReapedWorker) {
        let Some(hook) = &self.reap_hook else { return };
        match hook.worker_reaped(reaped).await {
            Ok(()) => {
                let forgotten: Result<(), _> = self.conn().hdel(REAPED_KEY, &reaped.worker_id).await;
                if let Err(err) = forgotten {
                    tracing::warn!(error = %err, worker = %reaped.worker_id, "could not forget a finished reap");
                }
            }
            Err(err) => {
                metrics::redis_repair("reap_hook_failed", 1);
                tracing::warn!(error = %err, worker = %reaped.worker_id, "the reap hook failed; it is repeated later");
            }
        }
    }

    /// Repeats reaps whose hook failed or whose reaper died (noted more than a lease ago).
    async fn retry_pending_reaps(&self) -> Result<(), RoomError> {
        let pending: Vec<(String, String)> = self.conn().hgetall(REAPED_KEY).await.map_err(|e| self.failed(e))?;
        let now = crate::rooms::unix_millis();
        for (worker, raw) in pending {
            let Ok(mut pending) = serde_json::from_str::<PendingReap>(&raw) else {
                tracing::warn!(%worker, "dropping an unreadable pending reap");
                let _: Result<(), _> = self.conn().hdel(REAPED_KEY, &worker).await;
                continue;
            };
            if pending.noted_ms + self.config.lease.as_millis() as i64 > now {
                continue;
            }
            // Noted again first, so that other workers leave it for another lease.
            pending.noted_ms = now;
            let _: () =
                self.conn().hset(REAPED_KEY, &worker, super::encode(&pending)?).await.map_err(|e| self.failed(e))?;
            self.tell_reap_hook(&pending.reaped).await;
        }
        Ok(())
    }

    /// Removes what the entries name, a few scripts at a time (the multiplexed connection
    /// pipelines them).
    async fn remove_entries(
        &self,
        entries: &[WorkerEntry],
        holder: &str,
        entries_key: &str,
    ) -> Result<Vec<Removed>, RoomError> {
        let removals: Vec<BoxFuture<'_, Result<Removed, RoomError>>> =
            entries.iter().map(|entry| self.remove_entry(entry, holder, entries_key).boxed()).collect();
        futures_util::stream::iter(removals).buffer_unordered(PARALLEL_SCRIPTS).try_collect().await
    }

    /// Removes what one entry of `holder`'s set names (guarded: a session only if it still
    /// holds its membership, a stream only if `holder` still holds it).
    async fn remove_entry(&self, entry: &WorkerEntry, holder: &str, entries_key: &str) -> Result<Removed, RoomError> {
        let room = entry.room();
        match entry {
            WorkerEntry::Session { user_id, session_id, .. } => {
                let left = self.run_leave(&room, user_id, session_id, entries_key).await?;
                Ok(if left { Removed::Session } else { Removed::Nothing })
            }
            WorkerEntry::Stream { user_id, stream_id, .. } => {
                match self.run_remove_stream(&room, user_id, stream_id, holder, entries_key).await {
                    Ok(()) => Ok(Removed::Stream),
                    Err(RoomError::StreamNotFound(_)) => Ok(Removed::Nothing),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// Makes Redis agree with what this worker holds: entries of sessions and streams it does
    /// not hold are removed (ghosts: a join that ran after its client was told it failed, a
    /// leave that failed), and sessions, streams and extra info that Redis lost are put back
    /// (a restart, keys expired while Redis was frozen). Members of rooms that changed are
    /// told to resync.
    pub(super) async fn repair(&self) -> Result<(), RoomError> {
        self.dirty.store(false, Ordering::Release);
        // A restarted Redis has no script cached: the first call of each script would pay
        // NOSCRIPT and a load inside its request's deadline (the first broadcast after a
        // restart was refused with 1007 on a busy machine). Loaded here, before the requests.
        for (_, script) in self.scripts.all() {
            let _: String = script.prepare_invoke().load_async(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        }
        let own = self.own_entries_key();
        let raw: Vec<String> = self.conn().smembers(&own).await.map_err(|e| self.failed(e))?;
        let ghosts: Vec<WorkerEntry> = {
            let local = self.local();
            raw.iter()
                .filter_map(|raw| WorkerEntry::decode(raw))
                .filter(|entry| match entry {
                    WorkerEntry::Session { session_id, .. } => {
                        !local.sessions.contains_key(session_id) && !local.joining.contains(session_id)
                    }
                    WorkerEntry::Stream { user_id, stream_id, .. } => {
                        let room = entry.room();
                        let of_local_session = local.sessions.values().any(|s| {
                            s.room == room && s.member.user.user_id == *user_id && s.streams.contains_key(stream_id)
                        });
                        let remote = (room, user_id.clone(), stream_id.clone());
                        !of_local_session && !local.remote_streams.contains(&remote)
                    }
                })
                .collect()
        };
        let removed = self.remove_entries(&ghosts, &self.worker_id, &own).await?;
        let removed = removed.iter().filter(|r| **r != Removed::Nothing).count() as u64;
        if removed > 0 {
            metrics::redis_repair("ghost_removed", removed);
            tracing::warn!(removed, "removed members and streams this worker does not hold");
        }

        let sessions: Vec<(String, LocalSession)> = {
            let local = self.local();
            local.sessions.iter().map(|(id, session)| (id.clone(), session.clone())).collect()
        };
        let mut changed_rooms = BTreeSet::new();
        for batch in sessions.chunks(REPAIR_BATCH) {
            changed_rooms.extend(self.repair_sessions(batch).await?);
        }
        if !changed_rooms.is_empty() {
            let extra = self.local().extra.clone();
            for room in &changed_rooms {
                for value in extra.get(room).into_iter().flat_map(|values| values.values()) {
                    self.run_room_extra_info(room, value, usize::MAX, "restore", 0).await?;
                }
            }
            tracing::warn!(rooms = changed_rooms.len(), "put back what Redis lost; members resync");
            for room in changed_rooms {
                self.hub.dispatch(room, RoomEvent::Resync);
            }
        }
        Ok(())
    }

    /// Checks a batch of local sessions against Redis and puts back what is missing. Returns
    /// the rooms that changed.
    async fn repair_sessions(&self, batch: &[(String, LocalSession)]) -> Result<HashSet<RoomKey>, RoomError> {
        let mut pipe = redis::pipe();
        for (_, session) in batch {
            let keys = RoomKeys::of(&session.room);
            pipe.hget(&keys.users, &session.member.user.user_id);
            for stream_id in session.streams.keys() {
                pipe.hexists(&keys.streams, stream_id);
            }
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await.map_err(|e| self.failed(e))?;
        let mut replies = replies.into_iter();
        let mut changed = HashSet::new();
        for (session_id, session) in batch {
            let member: Option<String> =
                replies.next().map(redis::from_redis_value).transpose().map_err(super::unparsable)?.flatten();
            let streams_present: Vec<bool> = session
                .streams
                .keys()
                .map(|_| {
                    replies
                        .next()
                        .map(redis::from_redis_value::<bool>)
                        .transpose()
                        .map(|present| present.unwrap_or(false))
                })
                .collect::<Result<_, _>>()
                .map_err(super::unparsable)?;
            let holder = member.as_deref().map(super::decode::<Member>).transpose()?.map(|m| m.session_id);
            match holder {
                Some(holder) if holder == *session_id => {
                    for (stream, present) in session.streams.values().zip(streams_present) {
                        if !present {
                            self.restore_stream(&session.room, session_id, stream).await?;
                            changed.insert(session.room.clone());
                        }
                    }
                }
                Some(_) => self.superseded(session_id, session, KickCause::Replaced),
                None => {
                    if self.restore_session(session_id, session).await? {
                        changed.insert(session.room.clone());
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Puts a local session back into Redis (silently); false when another session of the
    /// same user took the membership meanwhile.
    async fn restore_session(&self, session_id: &str, session: &LocalSession) -> Result<bool, RoomError> {
        match self.run_join(&session.room, &session.member, u32::MAX, "restore", 0).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.superseded(session_id, session, KickCause::Replaced);
                return Ok(false);
            }
            // The business server removed it while this worker missed the kickout.
            Err(RoomError::Removed(cause)) => {
                self.superseded(session_id, session, cause);
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
        for stream in session.streams.values() {
            self.restore_stream(&session.room, session_id, stream).await?;
        }
        metrics::redis_repair("session_restored", 1);
        // The session may have left while it was being put back: leave again (a no-op unless
        // the restore came after the leave).
        if !self.local().sessions.contains_key(session_id) {
            self.run_leave(&session.room, &session.member.user.user_id, session_id, &self.own_entries_key()).await?;
        }
        Ok(true)
    }

    async fn restore_stream(
        &self,
        room: &RoomKey,
        session_id: &str,
        stream: &crate::rooms::StreamInfo,
    ) -> Result<(), RoomError> {
        match self.run_add_stream(room, session_id, stream, "restore", 0).await {
            // Another user took the id, or the session is gone: nothing of ours to put back.
            Ok(()) | Err(RoomError::StreamIdTaken(_)) | Err(RoomError::NotMember) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// A newer session of the same user holds the membership (or the business server removed
    /// the session), and this worker missed the kickout: end the local session as the kickout
    /// would have.
    fn superseded(&self, session_id: &str, session: &LocalSession, cause: KickCause) {
        self.local().sessions.remove(session_id);
        let event = RoomEvent::Kickout {
            user_id: session.member.user.user_id.clone(),
            session_id: session_id.to_owned(),
            cause,
        };
        self.hub.dispatch(session.room.clone(), event);
    }
}

/// A reap whose hook has not taken it yet (the value of [`REAPED_KEY`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingReap {
    reaped: ReapedWorker,
    /// When it was noted or last repeated (unix ms of the worker that did).
    noted_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    Session,
    Stream,
    Nothing,
}

/// Renews, reaps and repairs on a fixed tick, for as long as the backend lives.
pub(super) async fn run(rooms: Weak<RedisRooms>) {
    let tick = match rooms.upgrade() {
        Some(rooms) => rooms.tick(),
        None => return,
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        ticks += 1;
        let Some(rooms) = rooms.upgrade() else { return };
        if ticks.is_multiple_of(RENEW_EVERY_TICKS) {
            match rooms.renew_lease().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("this worker's lease was gone (Redis lost its data, or it was reaped); repairing");
                    rooms.dirty.store(true, Ordering::Release);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Redis lease renewal failed");
                    continue;
                }
            }
        }
        if let Err(err) = rooms.reap_dead_workers().await {
            tracing::warn!(error = %err, "reaping dead workers failed");
            continue;
        }
        if (rooms.dirty.load(Ordering::Acquire) || ticks.is_multiple_of(REPAIR_EVERY_TICKS))
            && let Err(err) = rooms.repair().await
        {
            rooms.dirty.store(true, Ordering::Release);
            tracing::warn!(error = %err, "repairing room state in Redis failed; will retry");
        }
    }
}
