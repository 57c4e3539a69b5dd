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
//! worker id (the Redis worker id, or a fresh one per run without Redis) and renews a row in
//! `usage_workers` every fifth of the lease. A worker whose row stops moving for a lease is
//! dead: another worker (PostgreSQL) or the next start (SQLite, one process) closes its open
//! sessions and streams with reason `worker_lost`, at its lease expiry (`last_seen + lease`;
//! on SQLite's start-up, at `last_seen`, the last moment the earlier run was known alive).
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
    /// The worker holding the session died; closed at its lease expiry.
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
    /// The group-commit writer's queue ([`Usage::start`] runs the writer).
    writer: tokio::sync::mpsc::UnboundedSender<records::Job>,
    jobs: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<records::Job>>>>,
}

impl Usage {
    pub fn new(store: Store, worker_id: impl Into<Arc<str>>, enabled: bool, lease: Duration) -> Usage {
        let (writer, jobs) = tokio::sync::mpsc::unbounded_channel();
        let jobs = Arc::new(std::sync::Mutex::new(Some(jobs)));
        Usage { store, worker_id: worker_id.into(), enabled, lease, writer, jobs }
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

    /// Registers this worker, closes what earlier runs left open (SQLite: they are over, the
    /// store has one process), then keeps the worker row fresh and (PostgreSQL) closes the
    /// sessions of workers that stopped renewing theirs. Runs until the process ends.
    pub async fn start(self) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(jobs) = jobs {
            // SQLite has one writer at a time anyway (more would only wait on its lock).
            let writers = if self.store.backend() == crate::store::Backend::Postgres { WRITERS_POSTGRES } else { 1 };
            let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
            for _ in 0..writers {
                tokio::spawn(self.clone().run_writer(jobs.clone()));
            }
        }
        self.heartbeat().await?;
        if self.store.backend() == crate::store::Backend::Sqlite {
            let closed = self.close_dead_workers(true).await?;
            if closed > 0 {
                tracing::warn!(closed, "closed sessions and streams left open by an earlier run (worker_lost)");
            }
        }
        let usage = self;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval((usage.lease / 5).max(Duration::from_millis(100)));
            loop {
                ticker.tick().await;
                if let Err(err) = usage.heartbeat().await {
                    tracing::warn!(error = %err, "could not renew this worker's usage row");
                }
                if usage.store.backend() == crate::store::Backend::Postgres
                    && let Err(err) = usage.close_dead_workers(false).await
                {
                    tracing::warn!(error = %err, "could not close the usage records of dead workers");
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
}
