//! Usage records: one row per login session and per published stream, in the SQL store, and
//! the webhook events that go with them (written to the outbox in the same transaction).
//!
//! ```text
//! login ──► session_started ─┬─ INSERT usage_sessions            (open: logout_ms NULL)
//!                            ├─ live_rooms.sessions += 1         (0 → 1: room_started)
//!                            └─ outbox: room_started?, user_joined
//! end   ──► session_ended  ──┬─ UPDATE usage_sessions … WHERE logout_ms IS NULL (once only)
//!                            ├─ live_rooms.sessions -= 1         (1 → 0: room_finished)
//!                            └─ outbox: user_left, room_finished?
//! ```
//!
//! Times are unix milliseconds of this worker's clock. Every process writes under its own
//! worker id (the Redis worker id, or a fresh one per run without Redis).
//!
//! Dead workers: with rooms in Redis, the Redis lease reaper is the only judge (its lease is
//! kept on Redis's clock and survives a frozen Redis). The reaper that claims a dead worker
//! calls [`Usage`]'s [`ReapHook`]: the worker's open sessions and streams close with reason
//! `worker_lost` at its lease deadline (after the start rows of reaped sessions that have none
//! are written). No worker ever closes another's records on its own judgement, so an
//! unreachable or frozen database, or clocks that disagree, close nothing.
//! Without Redis (one process), the process renews a row in `usage_workers` every fifth of
//! the lease; the rows that were there when it started belong to earlier runs, and once such
//! a row is older than a lease, that run's records close at its last heartbeat.
//!
//! The report ([`report`]) clips every interval to `[from, to)`; see its docs for rounding.

mod records;
pub mod report;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::{Store, StoreError};

pub use records::{SessionStart, StreamStart};
pub use report::{GroupBy, UsageGroup, UsageQuery, UsageReport};

/// Group-commit writers on PostgreSQL.
const WRITERS_POSTGRES: usize = 4;
/// With `--usage-queue on` (rooms in Redis), records are queued, not waited for; past this many queued records
/// (the database is slow or down) new logins are refused (1007) rather than queued.
pub const MAX_QUEUED: usize = 10_000;
/// How long a stopping worker waits for its queued records before closing its sessions.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How a login session ended (snake_case in SQL and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client sent `logout`.
    Logout,
    /// Replaced by a newer login of the same user in the same room.
    Kickout,
    /// Removed by the business server (admin API), or ended for breaking the protocol.
    KickedByServer,
    /// The connection was lost (no frame within the heartbeat timeout, or dropped) and not
    /// resumed within the reconnect grace.
    HeartbeatTimeout,
    /// The worker holding the session died; closed at its Redis lease deadline (without Redis, at its last heartbeat).
    WorkerLost,
    /// The business server closed the room.
    RoomClosed,
    /// The token expired and was not renewed.
    TokenExpired,
    /// The worker shut down (drain time over, or stopped without a drain).
    Shutdown,
}

impl EndReason {
    pub const ALL: [EndReason; 8] = [
        EndReason::Logout,
        EndReason::Kickout,
        EndReason::KickedByServer,
        EndReason::HeartbeatTimeout,
        EndReason::WorkerLost,
        EndReason::RoomClosed,
        EndReason::TokenExpired,
        EndReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Kickout => "kickout",
            EndReason::KickedByServer => "kicked_by_server",
            EndReason::HeartbeatTimeout => "heartbeat_timeout",
            EndReason::WorkerLost => "worker_lost",
            EndReason::RoomClosed => "room_closed",
            EndReason::TokenExpired => "token_expired",
            EndReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndReason {
    type Err = UsageError;

    fn from_str(text: &str) -> Result<Self, UsageError> {
        EndReason::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| UsageError::UnknownReason(text.into()))
    }
}

#[derive(Debug, Error)]
pub enum UsageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown end reason {0:?}")]
    UnknownReason(String),
    #[error("{0}")]
    InvalidRange(String),
    #[error("usage record not written: {0}")]
    Write(String),
}

impl From<sqlx::Error> for UsageError {
    fn from(err: sqlx::Error) -> Self {
        UsageError::Store(StoreError::from(err))
    }
}

/// Writes usage records (and their webhook events) for one worker. Cheap to clone.
#[derive(Clone)]
pub struct Usage {
    store: Store,
    worker_id: Arc<str>,
    /// `--usage-records off`: nothing is written (and no webhook is queued).
    enabled: bool,
    /// How long a worker's row may stand still before the worker counts as dead.
    lease: Duration,
    /// Rooms are in Redis: its lease reaper closes dead workers' records ([`ReapHook`]), and
    /// no SQL heartbeat is kept.
    redis: bool,
    /// Records are queued, not waited for (`--usage-queue on`, rooms in Redis only).
    queued: bool,
    /// The group-commit writers' queues ([`Usage::start`] runs the writers).
    writers: Arc<records::Writers>,
}

impl Usage {
    pub fn new(
        store: Store,
        worker_id: impl Into<Arc<str>>,
        enabled: bool,
        lease: Duration,
        redis: bool,
        queued: bool,
    ) -> Usage {
        // SQLite has one writer at a time anyway (more would only wait on its lock).
        let count = if store.backend() == crate::store::Backend::Postgres { WRITERS_POSTGRES } else { 1 };
        let writers = Arc::new(records::Writers::new(count));
        Usage { store, worker_id: worker_id.into(), enabled, lease, redis, queued: queued && redis, writers }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the group-commit writers. Without Redis, also registers this worker, keeps its
    /// row fresh and closes what earlier runs left open once their rows are older than a
    /// lease (at their last heartbeat).
    pub async fn start(self) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        for jobs in self.writers.take_receivers() {
            tokio::spawn(self.clone().run_writer(jobs));
        }
        if self.redis {
            return Ok(()); // dead workers are the Redis lease reaper's (see ReapHook)
        }
        // Rows present before this run's first heartbeat are earlier runs (one process).
        let earlier = self.earlier_runs().await?;
        self.heartbeat().await?;
        let usage = self;
        tokio::spawn(async move {
            let mut earlier = earlier;
            let mut ticker = tokio::time::interval((usage.lease / 5).max(Duration::from_millis(100)));
            loop {
                ticker.tick().await;
                if let Err(err) = usage.heartbeat().await {
                    tracing::warn!(error = %err, "could not renew this worker's usage row");
                }
                if !earlier.is_empty() {
                    match usage.close_earlier_runs(&earlier).await {
                        Ok(left) => earlier = left,
                        Err(err) => tracing::warn!(error = %err, "could not close the usage records of earlier runs"),
                    }
                }
            }
        });
        Ok(())
    }

    /// Ends every session this worker still holds open (it stops now) with `reason`.
    pub async fn close_own(&self, reason: EndReason) {
        if !self.enabled {
            return;
        }
        // What is queued commits first (its ends and starts come before this close).
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, self.writers.flushed()).await;
        if flushed.is_err() {
            tracing::warn!(queued = self.writers.queued(), "usage records still queued at shutdown are lost");
        }
        match self.close_worker(&self.worker_id, crate::rooms::unix_millis(), reason).await {
            Ok(closed) if closed > 0 => tracing::info!(closed, %reason, "closed this worker's open usage records"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not close this worker's usage records"),
        }
        if let Err(err) = self.forget_worker().await {
            tracing::debug!(error = %err, "could not remove this worker's usage row");
        }
    }
}

/// The Redis lease reaper claimed a dead worker: its records close at the lease deadline.
#[async_trait::async_trait]
impl crate::rooms::ReapHook for Usage {
    async fn worker_reaped(&self, reaped: &crate::rooms::ReapedWorker) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let closed = self.close_reaped(reaped).await.map_err(|e| e.to_string())?;
        crate::metrics::usage_worker_lost_records(closed as u64);
        tracing::warn!(worker = %reaped.worker_id, closed, at_ms = reaped.deadline_ms, "closed the usage records of a dead worker");
        Ok(())
    }
}

/// Usage calls made where a failure must not stop what the user is doing (a session ending,
/// a stream stopping): logged and counted, never returned.
pub fn log_failure(what: &'static str, result: Result<(), UsageError>) {
    if let Err(err) = result {
        crate::metrics::usage_write_failed(what);
        tracing::warn!(error = %err, what, "could not write a usage record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_round_trip_as_snake_case() {
        for reason in EndReason::ALL {
            assert_eq!(reason.as_str().parse::<EndReason>().unwrap(), reason);
            assert_eq!(serde_json::to_value(reason).unwrap(), serde_json::json!(reason.as_str()));
        }
        assert_eq!(EndReason::KickedByServer.as_str(), "kicked_by_server");
        assert!("nope".parse::<EndReason>().is_err());
    }

    /// Rooms in Redis: a login's record is queued, not waited for; while the database fails
    /// the writer keeps it (and the session's end behind it) and writes both, in order, once
    /// the database is back.
    #[tokio::test]
    async fn queued_records_outlive_a_failing_database_in_room_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("huddle.db").display())).await.unwrap();
        let app = store.create_app(crate::store::NewApp { name: "a".into(), ..Default::default() }).await.unwrap();
        let usage = Usage::new(store.clone(), "w1", true, Duration::from_secs(2), true, true);
        usage.clone().start().await.unwrap();
        let pool = store.pool().unwrap().clone();
        sqlx::query("ALTER TABLE usage_sessions RENAME TO usage_sessions_away").execute(&pool).await.unwrap();
        let start = SessionStart {
            app_id: app.app_id,
            room_id: "r".into(),
            user_id: "u".into(),
            session_id: "s1".into(),
            login_ms: 1_000,
            replaced: None,
        };
        usage.session_started(&start).await.unwrap();
        usage.session_ended(app.app_id, "r", "u", "s1", EndReason::Logout).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(usage.writers.queued(), 2, "kept while the writes fail");
        sqlx::query("ALTER TABLE usage_sessions_away RENAME TO usage_sessions").execute(&pool).await.unwrap();
        tokio::time::timeout(Duration::from_secs(3), usage.writers.flushed()).await.expect("written once back");
        let (login, logout, reason): (i64, Option<i64>, Option<String>) =
            sqlx::query_as("SELECT login_ms, logout_ms, end_reason FROM usage_sessions WHERE session_id = 's1'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((login, reason.as_deref()), (1_000, Some("logout")));
        assert!(logout.is_some_and(|ms| ms >= 1_000));
    }
}
