//! The outbox dispatcher: one task per worker that sends due events and records the outcome.
//!
//! A round takes the *heads* of the rooms' queues — per room, the oldest event not yet done,
//! if it is due — up to [`DispatchConfig::batch`] of them, sends them concurrently (one per
//! room, so a room's order holds), then marks each delivered or schedules its retry.
//! - PostgreSQL: the round runs in a transaction that locks its rows
//!   (`FOR UPDATE SKIP LOCKED`): another worker skips them, and cannot take a later event of
//!   the same room either, since the locked head is still undone. A worker that dies
//!   mid-round releases its locks; its events are sent again (at least once).
//! - SQLite: one process at a time dispatches, the holder of the `webhook_dispatch_lease` row
//!   (renewed every round, released on shutdown).
//!
//! Retries: after the n-th failed attempt (any status but 2xx, a timeout, a refused
//! connection, no URL configured) the next one is due after a delay drawn uniformly from
//! `[d/2, d]`, `d = min(base · 2^(n-1), max_delay)`. An event still failing
//! `retry_for` after it was written is given up (`outcome = 'abandoned'`), which lets its
//! room's later events go.

use std::time::Duration;

use futures_util::future::join_all;
use rand::Rng;
use sqlx::{Any, AnyConnection, Transaction};

use super::breaker::{Admission, Breakers};
use crate::rooms::unix_millis;
use crate::store::{Backend, Store, StoreError};

/// Timings of the dispatcher (`--webhook-*` flags).
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// One request's limit (connect + response).
    pub timeout: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest delay between two attempts.
    pub retry_max_delay: Duration,
    /// How long an event is retried before it is given up (at least 24 h in production).
    pub retry_for: Duration,
    /// Events (rooms) sent per round.
    pub batch: usize,
    /// How long to wait when nothing is due.
    pub idle_poll: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            batch: 64,
            idle_poll: Duration::from_millis(200),
        }
    }
}

/// How long delivered and given-up events stay in the outbox (for inspection).
pub const KEEP_DONE: Duration = Duration::from_secs(7 * 24 * 3600);
const PURGE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, sqlx::FromRow)]
struct Due {
    seq: i64,
    event_id: String,
    app_id: i64,
    body: String,
    created_ms: i64,
    attempts: i64,
}

enum Outcome {
    Delivered,
    /// The endpoint answered, but not `2xx` (or the app has no URL any more).
    Failed(String),
    /// The endpoint could not be reached (timeout, refused connection): its breaker opens.
    Unreachable(String),
    /// Not sent: the app's breaker holds it back until then (unix ms); not an attempt.
    Deferred(i64),
}

/// Sends one worker's share of the outbox until the process ends.
pub struct Dispatcher {
    store: Store,
    worker_id: String,
    config: DispatchConfig,
    http: reqwest::Client,
    breakers: std::sync::Mutex<Breakers>,
}

/// The due heads of the rooms' queues, oldest first (a macro so that the query stays a
/// `&'static str` with or without its locking clause).
macro_rules! heads {
    ($tail:literal) => {
        concat!(
            "SELECT o.seq, o.event_id, o.app_id, o.body, o.created_ms, o.attempts FROM webhook_outbox o \
             WHERE o.done_ms IS NULL AND o.next_attempt_ms <= $1 AND NOT EXISTS (\
             SELECT 1 FROM webhook_outbox p WHERE p.app_id = o.app_id AND p.room_id = o.room_id \
             AND p.done_ms IS NULL AND p.seq < o.seq) ORDER BY o.seq LIMIT $2",
            $tail
        )
    };
}

impl Dispatcher {
    pub fn new(store: Store, worker_id: String, config: DispatchConfig) -> Result<Dispatcher, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("huddle-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Dispatcher { store, worker_id, config, http, breakers: Default::default() })
    }

    /// Runs rounds for ever (spawn it).
    pub async fn run(self) {
        let mut last_backlog = std::time::Instant::now() - Duration::from_secs(60);
        let mut last_purge = std::time::Instant::now() - PURGE_EVERY;
        loop {
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = std::time::Instant::now();
                match self.purge().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "removed webhook events done more than 7 days ago"),
                    Err(err) => tracing::debug!(error = %err, "could not purge old webhook events"),
                }
            }
            if last_backlog.elapsed() >= Duration::from_secs(2) {
                last_backlog = std::time::Instant::now();
                match self.backlog().await {
                    Ok(count) => crate::metrics::webhook_backlog(count),
                    Err(err) => tracing::debug!(error = %err, "could not count the webhook backlog"),
                }
            }
            let sent = match self.round().await {
                Ok(sent) => sent,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook dispatch round failed");
                    0
                }
            };
            if sent == 0 {
                tokio::time::sleep(self.config.idle_poll).await;
            }
        }
    }

    /// Gives the SQLite lease back (graceful stop), so the next run dispatches at once.
    pub async fn release(store: &Store, worker_id: &str) {
        if store.backend() == Backend::Sqlite
            && let Ok(pool) = store.pool()
        {
            let _ =
                sqlx::query("DELETE FROM webhook_dispatch_lease WHERE holder = $1").bind(worker_id).execute(pool).await;
        }
    }

    /// Forgets events delivered or given up more than [`KEEP_DONE`] ago.
    async fn purge(&self) -> Result<u64, StoreError> {
        let before = unix_millis() - KEEP_DONE.as_millis() as i64;
        Ok(sqlx::query("DELETE FROM webhook_outbox WHERE done_ms IS NOT NULL AND done_ms < $1")
            .bind(before)
            .execute(self.store.pool()?)
            .await?
            .rows_affected())
    }

    async fn backlog(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE done_ms IS NULL")
            .fetch_one(self.store.pool()?)
            .await?)
    }

    /// One round; returns how many events it attempted.
    pub async fn round(&self) -> Result<usize, StoreError> {
        match self.store.backend() {
            Backend::Postgres => self.round_locked().await,
            Backend::Sqlite => {
                if !self.hold_lease().await? {
                    return Ok(0);
                }
                let due: Vec<Due> = sqlx::query_as(heads!(""))
                    .bind(unix_millis())
                    .bind(self.config.batch as i64)
                    .fetch_all(self.store.pool()?)
                    .await?;
                let outcomes = self.send_all(&due).await;
                // One write transaction for the round's outcomes: one turn of SQLite's write
                // lock, not one per event (logins write through the same lock).
                let mut tx = self.store.pool()?.begin().await?;
                self.record_all(&mut tx, &due, outcomes).await?;
                tx.commit().await?;
                Ok(due.len())
            }
        }
    }

    async fn round_locked(&self) -> Result<usize, StoreError> {
        let mut tx: Transaction<'_, Any> = self.store.pool()?.begin().await?;
        let due: Vec<Due> = sqlx::query_as(heads!(" FOR UPDATE OF o SKIP LOCKED"))
            .bind(unix_millis())
            .bind(self.config.batch as i64)
            .fetch_all(&mut *tx)
            .await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let outcomes = self.send_all(&due).await;
        self.record_all(&mut tx, &due, outcomes).await?;
        tx.commit().await?;
        Ok(due.len())
    }

    /// Takes or renews the SQLite dispatch lease; false when another process holds it.
    async fn hold_lease(&self) -> Result<bool, StoreError> {
        let now = unix_millis();
        let until = now + (self.config.timeout + Duration::from_secs(5)).as_millis() as i64;
        let held = sqlx::query(
            "INSERT INTO webhook_dispatch_lease (id, holder, until_ms) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE webhook_dispatch_lease.holder = excluded.holder OR webhook_dispatch_lease.until_ms < $3",
        )
        .bind(&self.worker_id)
        .bind(until)
        .bind(now)
        .execute(self.store.pool()?)
        .await?
        .rows_affected();
        Ok(held == 1)
    }

    /// Sends a round's events concurrently, but none to an app whose endpoint this worker
    /// could not reach lately (see [`super::breaker`]); then updates the breakers.
    async fn send_all(&self, due: &[Due]) -> Vec<Outcome> {
        let apps: Vec<i64> = due.iter().map(|event| event.app_id).collect();
        // A deferred event waits for its app's probe to come back, at most a timeout.
        let probe_wait_ms = (self.config.timeout + Duration::from_secs(1)).as_millis() as i64;
        let admissions = self.breakers().admit(&apps, unix_millis(), probe_wait_ms);
        let outcomes = join_all(due.iter().zip(&admissions).map(|(event, admission)| async move {
            match admission {
                Admission::Send => self.send(event).await,
                Admission::Defer(until) => Outcome::Deferred(*until),
            }
        }))
        .await;
        let now = unix_millis();
        let mut reached: std::collections::HashMap<i64, bool> = std::collections::HashMap::new();
        for (app, outcome) in apps.iter().zip(&outcomes) {
            match outcome {
                Outcome::Delivered | Outcome::Failed(_) => {
                    reached.insert(*app, true);
                }
                Outcome::Unreachable(_) => {
                    reached.entry(*app).or_insert(false);
                }
                Outcome::Deferred(_) => {}
            }
        }
        let mut breakers = self.breakers();
        for (app, reached) in reached {
            let backoff = |failures: u32| retry_delay(&self.config, i64::from(failures)).as_millis() as i64;
            breakers.record(app, reached, now, backoff);
        }
        crate::metrics::webhook_endpoints_unreachable(breakers.unreachable_count());
        outcomes
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, Breakers> {
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, event: &Due) -> Outcome {
        let app = match self.store.app(u32::try_from(event.app_id).unwrap_or(0)).await {
            Ok(Some(app)) => app,
            Ok(None) => return Outcome::Failed("the app no longer exists".into()),
            Err(err) => return Outcome::Failed(format!("app lookup failed: {err}")),
        };
        let (Some(url), Some(secret)) = (app.webhook_url.as_deref(), app.webhook_secret.as_deref()) else {
            return Outcome::Failed("the app has no webhook URL".into());
        };
        let signature = super::sign(secret.as_bytes(), crate::auth::unix_now(), event.body.as_bytes());
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(super::ID_HEADER, &event.event_id)
            .header(super::SIGNATURE_HEADER, signature)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => Outcome::Failed(format!("HTTP {}", response.status().as_u16())),
            Err(err) if err.is_timeout() => Outcome::Unreachable("timed out".into()),
            Err(err) if err.is_connect() => Outcome::Unreachable("connection failed".into()),
            Err(_) => Outcome::Failed("request failed".into()),
        }
    }

    /// Records a round's outcomes: the delivered events in one statement, each failure in
    /// its own (they carry their own next attempt and error).
    async fn record_all(
        &self,
        conn: &mut AnyConnection,
        due: &[Due],
        outcomes: Vec<Outcome>,
    ) -> Result<(), StoreError> {
        let now = unix_millis();
        let mut delivered = Vec::new();
        for (due, outcome) in due.iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered => delivered.push(due),
                Outcome::Failed(error) | Outcome::Unreachable(error) => {
                    self.record_failure(conn, due, error, now).await?
                }
                // Held back past the retry period: given up like a failed attempt would be.
                Outcome::Deferred(_) if now - due.created_ms >= self.config.retry_for.as_millis() as i64 => {
                    let error = "not sent: the endpoint could not be reached".to_owned();
                    self.record_failure(conn, due, error, now).await?
                }
                Outcome::Deferred(until) => {
                    sqlx::query("UPDATE webhook_outbox SET next_attempt_ms = $1 WHERE seq = $2")
                        .bind(until)
                        .bind(due.seq)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        if delivered.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = (0..delivered.len()).map(|i| format!("${}", i + 2)).collect();
        // Only placeholders are formatted into the SQL; every value is bound.
        let sql = format!(
            "UPDATE webhook_outbox SET done_ms = $1, outcome = 'delivered', attempts = attempts + 1, \
             last_error = NULL WHERE seq IN ({})",
            list.join(", ")
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false).bind(now);
        for due in &delivered {
            update = update.bind(due.seq);
        }
        update.execute(&mut *conn).await?;
        for due in delivered {
            crate::metrics::webhook_attempt("delivered");
            crate::metrics::webhook_delivered(Duration::from_millis((now - due.created_ms).max(0) as u64));
        }
        Ok(())
    }

    async fn record_failure(
        &self,
        conn: &mut AnyConnection,
        due: &Due,
        error: String,
        now: i64,
    ) -> Result<(), StoreError> {
        let attempts = due.attempts + 1;
        let give_up = now - due.created_ms >= self.config.retry_for.as_millis() as i64;
        let next = now + retry_delay(&self.config, attempts).as_millis() as i64;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = $1, next_attempt_ms = $2, last_error = $3, \
             done_ms = $4, outcome = $5 WHERE seq = $6",
        )
        .bind(attempts)
        .bind(next)
        .bind(&error)
        .bind(give_up.then_some(now))
        .bind(give_up.then_some("abandoned"))
        .bind(due.seq)
        .execute(&mut *conn)
        .await?;
        crate::metrics::webhook_attempt(if give_up { "abandoned" } else { "failed" });
        tracing::debug!(event = %due.event_id, attempts, %error, give_up, "webhook attempt failed");
        if give_up {
            tracing::warn!(event = %due.event_id, attempts, %error, "webhook given up after the retry period");
        }
        Ok(())
    }
}

/// The delay before attempt `attempts + 1`: uniform in `[d/2, d]`,
/// `d = min(base · 2^(attempts-1), max_delay)`.
pub fn retry_delay(config: &DispatchConfig, attempts: i64) -> Duration {
    let exponent = (attempts.max(1) - 1).min(30) as u32;
    let full = config.retry_base.saturating_mul(1u32 << exponent).min(config.retry_max_delay);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rand::rng().random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let config = DispatchConfig::default();
        for _ in 0..100 {
            let first = retry_delay(&config, 1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let fifth = retry_delay(&config, 5);
            assert!(fifth >= Duration::from_secs(8) && fifth <= Duration::from_secs(16), "{fifth:?}");
            let late = retry_delay(&config, 40);
            assert!(late >= Duration::from_secs(1800) && late <= Duration::from_secs(3600), "{late:?}");
        }
        // Retrying for 24 h takes this many attempts at most (the delays' lower bounds add up).
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < config.retry_for {
            attempts += 1;
            elapsed += retry_delay(&DispatchConfig { ..config.clone() }, attempts).max(Duration::from_secs(1));
        }
        assert!(attempts < 60, "{attempts}");
    }
}
