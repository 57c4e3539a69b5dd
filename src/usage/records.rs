//! The writes: each record change, its live-room count and its webhook events in one
//! transaction, so that the outbox never holds an event whose record is not there (or the
//! other way round).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use sqlx::{Any, AnyConnection, Transaction};

use super::{EndReason, Usage, UsageError};
use crate::rooms::unix_millis;
use crate::webhooks::{self, EventKind, WebhookEvent};

/// A session that just logged in.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    pub session_id: String,
    pub login_ms: i64,
    /// The same user's older session this login replaced (it ends with `kickout` now).
    pub replaced: Option<String>,
}

/// A stream whose media went live on this worker's relay.
#[derive(Debug, Clone)]
pub struct StreamStart {
    /// Unique per relay session: this worker's id and the relay's peer id.
    pub record_id: String,
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    pub stream_id: String,
    pub start_ms: i64,
}

/// Adds one session to a room's live count; true when the room just started (0 → 1).
async fn room_entered(conn: &mut AnyConnection, app_id: u32, room_id: &str, at_ms: i64) -> Result<bool, sqlx::Error> {
    let sessions: i64 = sqlx::query_scalar(
        "INSERT INTO live_rooms (app_id, room_id, sessions, started_ms) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (app_id, room_id) DO UPDATE SET sessions = live_rooms.sessions + 1, \
         started_ms = CASE WHEN live_rooms.sessions = 0 THEN excluded.started_ms ELSE live_rooms.started_ms END \
         RETURNING sessions",
    )
    .bind(i64::from(app_id))
    .bind(room_id)
    .bind(at_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(sessions == 1)
}

/// Takes one session off a room's live count; true when the room just finished (1 → 0).
async fn room_left(conn: &mut AnyConnection, app_id: u32, room_id: &str) -> Result<bool, sqlx::Error> {
    let sessions: Option<i64> = sqlx::query_scalar(
        "UPDATE live_rooms SET sessions = sessions - 1 WHERE app_id = $1 AND room_id = $2 AND sessions > 0 \
         RETURNING sessions",
    )
    .bind(i64::from(app_id))
    .bind(room_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(sessions == Some(0))
}

/// Takes the room's `live_rooms` row lock (PostgreSQL; SQLite serialises every writer) before
/// a transaction adds events of the room that do not change its count (streams): events of a
/// room get their outbox sequence numbers in commit order, which is what the dispatcher's
/// per-room order relies on (a later number must never become visible before an earlier one).
async fn lock_room(conn: &mut AnyConnection, app_id: u32, room_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE live_rooms SET sessions = sessions WHERE app_id = $1 AND room_id = $2")
        .bind(i64::from(app_id))
        .bind(room_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Closes an open session row; true if it was open (each session is closed once).
async fn close_session(
    conn: &mut AnyConnection,
    session_id: &str,
    at_ms: i64,
    reason: EndReason,
) -> Result<bool, sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE usage_sessions SET logout_ms = CASE WHEN login_ms > $1 THEN login_ms ELSE $1 END, end_reason = $2 \
         WHERE session_id = $3 AND logout_ms IS NULL",
    )
    .bind(at_ms)
    .bind(reason.as_str())
    .bind(session_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(closed == 1)
}

/// Writes a session's start row if it has none (its login was never committed: the worker
/// died first), as the login would have: the room's live count and `room_started`/`user_joined`.
async fn restore_session(
    conn: &mut AnyConnection,
    worker_id: &str,
    start: &SessionStart,
    hooks: bool,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO usage_sessions (session_id, app_id, room_id, user_id, worker_id, login_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
    )
    .bind(&start.session_id)
    .bind(i64::from(start.app_id))
    .bind(&start.room_id)
    .bind(&start.user_id)
    .bind(worker_id)
    .bind(start.login_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted != 1 {
        return Ok(false);
    }
    let started = room_entered(conn, start.app_id, &start.room_id, start.login_ms).await?;
    if hooks {
        if started {
            let event = WebhookEvent::new(EventKind::RoomStarted, start.app_id, start.room_id.clone(), start.login_ms);
            webhooks::enqueue(conn, &event).await?;
        }
        let event = WebhookEvent::new(EventKind::UserJoined, start.app_id, start.room_id.clone(), start.login_ms)
            .user(&start.user_id, &start.session_id);
        webhooks::enqueue(conn, &event).await?;
    }
    Ok(true)
}

/// A session was closed: its `user_left`, and `room_finished` if it was the room's last.
async fn after_session_closed(conn: &mut AnyConnection, hooks: bool, event: WebhookEvent) -> Result<(), sqlx::Error> {
    let finished = room_left(conn, event.app_id, &event.room_id).await?;
    if hooks {
        let (app_id, room_id, at_ms) = (event.app_id, event.room_id.clone(), event.timestamp_ms);
        webhooks::enqueue(conn, &event).await?;
        if finished {
            webhooks::enqueue(conn, &WebhookEvent::new(EventKind::RoomFinished, app_id, room_id, at_ms)).await?;
        }
    }
    Ok(())
}

/// A stream row was closed: its `stream_unpublished`.
async fn close_stream(
    conn: &mut AnyConnection,
    record_id: &str,
    at_ms: i64,
    bytes: Option<(u64, u64)>,
    reason: Option<EndReason>,
) -> Result<bool, sqlx::Error> {
    let (bytes_in, bytes_out) = bytes.map_or((None, None), |(i, o)| (Some(i as i64), Some(o as i64)));
    let closed = sqlx::query(
        "UPDATE usage_streams SET stop_ms = CASE WHEN start_ms > $1 THEN start_ms ELSE $1 END, \
         bytes_in = COALESCE($2, bytes_in), bytes_out = COALESCE($3, bytes_out), end_reason = $4 \
         WHERE record_id = $5 AND stop_ms IS NULL",
    )
    .bind(at_ms)
    .bind(bytes_in)
    .bind(bytes_out)
    .bind(reason.map(EndReason::as_str))
    .bind(record_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(closed == 1)
}

/// Most records one group commit writes.
pub(super) const MAX_BATCH: usize = 256;

/// A record change waiting for the writer.
#[derive(Debug)]
pub(super) enum Op {
    SessionStarted { start: SessionStart, hooks: bool },
    SessionEnded { session_id: String, reason: EndReason, event: WebhookEvent, hooks: bool },
    StreamStarted { start: StreamStart, hooks: bool },
    StreamStopped { record_id: String, app_id: u32, room_id: String, at_ms: i64, bytes: (u64, u64), hooks: bool },
}

impl Op {
    /// The room the record belongs to: a room's records all go through one writer, in the
    /// order they were handed over.
    fn room(&self) -> (u32, &str) {
        match self {
            Op::SessionStarted { start, .. } => (start.app_id, &start.room_id),
            Op::SessionEnded { event, .. } => (event.app_id, &event.room_id),
            Op::StreamStarted { start, .. } => (start.app_id, &start.room_id),
            Op::StreamStopped { app_id, room_id, .. } => (*app_id, room_id),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::SessionStarted { .. } => "session_started",
            Op::SessionEnded { .. } => "session_ended",
            Op::StreamStarted { .. } => "stream_started",
            Op::StreamStopped { .. } => "stream_stopped",
        }
    }
}

pub(super) struct Job {
    op: Op,
    /// Someone waits for the commit: answered with the first outcome. A job nobody waits for
    /// (`--usage-queue on`) is written again, with backoff, until it commits.
    done: Option<oneshot::Sender<Result<(), UsageError>>>,
    /// Times it failed alone while the database answered (a record that cannot be written).
    refused: u32,
}

/// How long a writer lets a batch gather when nobody waits for it (`--usage-queue on`).
const LINGER: Duration = Duration::from_millis(50);
/// A job that failed alone this many times while the database answered is given up.
const MAX_REFUSALS: u32 = 3;
/// Backoff between attempts at a failed batch: doubling from the first, up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The writers' queues, one per writer; a room's records always go to the same one.
pub(super) struct Writers {
    senders: Vec<mpsc::UnboundedSender<Job>>,
    receivers: std::sync::Mutex<Vec<mpsc::UnboundedReceiver<Job>>>,
    /// Records handed over and not yet committed or given up.
    queued: AtomicUsize,
    /// Woken when `queued` drops to zero.
    idle: tokio::sync::Notify,
}

impl Writers {
    pub(super) fn new(count: usize) -> Writers {
        let (senders, receivers) = (0..count.max(1)).map(|_| mpsc::unbounded_channel()).unzip();
        Writers {
            senders,
            receivers: std::sync::Mutex::new(receivers),
            queued: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        }
    }

    /// The queues to run writers on (once: later calls get none).
    pub(super) fn take_receivers(&self) -> Vec<mpsc::UnboundedReceiver<Job>> {
        std::mem::take(&mut *self.receivers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn send(&self, job: Job) -> Result<(), UsageError> {
        let (app_id, room_id) = job.op.room();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (app_id, room_id).hash(&mut hasher);
        let index = (hasher.finish() % self.senders.len() as u64) as usize;
        crate::metrics::usage_queue(self.queued.fetch_add(1, Ordering::AcqRel) + 1);
        self.senders[index].send(job).map_err(|_| {
            self.finished(1);
            UsageError::Write("the usage writer is not running".into())
        })
    }

    fn finished(&self, jobs: usize) {
        let left = self.queued.fetch_sub(jobs, Ordering::AcqRel).saturating_sub(jobs);
        crate::metrics::usage_queue(left);
        if left == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Returns once nothing is queued.
    pub(super) async fn flushed(&self) {
        loop {
            let idle = self.idle.notified();
            if self.queued() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// `"($1, $2, $3), ($4, $5, $6)"` for `rows` rows of `columns` placeholders, numbered from
/// `after + 1`.
fn placeholders(after: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (1..=columns).map(|c| format!("${}", after + row * columns + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plain logins (no session replaced) in three statements whatever their number (two on
/// PostgreSQL, where the first two are one): the session rows, the rooms' live counts (rooms in
/// a fixed order, so that two batches never wait on each other in a cycle), and their events,
/// in the order the logins came.
async fn bulk_logins(
    conn: &mut AnyConnection,
    postgres: bool,
    worker_id: &str,
    logins: &[&Op],
) -> Result<(), sqlx::Error> {
    let starts: Vec<(&SessionStart, bool)> = logins
        .iter()
        .filter_map(|op| match op {
            Op::SessionStarted { start, hooks } => Some((start, *hooks)),
            _ => None,
        })
        .collect();
    if starts.is_empty() {
        return Ok(());
    }
    let mut rooms: std::collections::BTreeMap<(u32, &str), (i64, i64)> = Default::default();
    for (start, _) in &starts {
        let entry = rooms.entry((start.app_id, start.room_id.as_str())).or_insert((0, start.login_ms));
        entry.0 += 1;
    }
    // Only placeholders are formatted into the SQL; every value is bound.
    let sessions_sql = format!(
        "INSERT INTO usage_sessions (session_id, app_id, room_id, user_id, worker_id, login_ms) VALUES {}",
        placeholders(0, starts.len(), 6)
    );
    let rooms_sql = format!(
        "INSERT INTO live_rooms (app_id, room_id, sessions, started_ms) VALUES {} \
         ON CONFLICT (app_id, room_id) DO UPDATE SET sessions = live_rooms.sessions + excluded.sessions, \
         started_ms = CASE WHEN live_rooms.sessions = 0 THEN excluded.started_ms ELSE live_rooms.started_ms END \
         RETURNING app_id, room_id, sessions",
        placeholders(if postgres { starts.len() * 6 } else { 0 }, rooms.len(), 4)
    );
    let bind_sessions = |mut query: sqlx::query::QueryAs<'static, Any, (i64, String, i64), sqlx::any::AnyArguments>| {
        for (start, _) in &starts {
            query = query
                .bind(start.session_id.clone())
                .bind(i64::from(start.app_id))
                .bind(start.room_id.clone())
                .bind(start.user_id.clone())
                .bind(worker_id.to_owned())
                .bind(start.login_ms);
        }
        query
    };
    let bind_rooms = |mut query: sqlx::query::QueryAs<'static, Any, (i64, String, i64), sqlx::any::AnyArguments>| {
        for ((app_id, room_id), (count, first_login)) in &rooms {
            query = query.bind(i64::from(*app_id)).bind(room_id.to_string()).bind(*count).bind(*first_login);
        }
        query
    };
    // Not prepared for reuse: their shape changes with the batch size.
    let upsert = if postgres {
        // One round trip: PostgreSQL runs a data-modifying WITH to completion.
        let sql = format!("WITH sessions AS ({sessions_sql}) {rooms_sql}");
        bind_rooms(bind_sessions(sqlx::query_as(sqlx::AssertSqlSafe(sql)).persistent(false)))
    } else {
        let insert = bind_sessions(sqlx::query_as(sqlx::AssertSqlSafe(sessions_sql)).persistent(false));
        insert.fetch_all(&mut *conn).await?;
        bind_rooms(sqlx::query_as(sqlx::AssertSqlSafe(rooms_sql)).persistent(false))
    };
    let counts: Vec<(i64, String, i64)> = upsert.fetch_all(&mut *conn).await?;
    // A room started in this batch if its count is exactly what the batch added.
    let mut started: HashMap<(i64, String), bool> = counts
        .into_iter()
        .map(|(app_id, room_id, sessions)| {
            let added = u32::try_from(app_id).ok().and_then(|a| rooms.get(&(a, room_id.as_str()))).map_or(0, |r| r.0);
            ((app_id, room_id), sessions == added)
        })
        .collect();

    let mut events = Vec::new();
    for (start, hooks) in &starts {
        if !hooks {
            continue;
        }
        let key = (i64::from(start.app_id), start.room_id.clone());
        if started.get(&key) == Some(&true) {
            started.insert(key, false); // once, before the room's first join
            events.push(WebhookEvent::new(EventKind::RoomStarted, start.app_id, start.room_id.clone(), start.login_ms));
        }
        events.push(
            WebhookEvent::new(EventKind::UserJoined, start.app_id, start.room_id.clone(), start.login_ms)
                .user(&start.user_id, &start.session_id),
        );
    }
    webhooks::enqueue_all(conn, &events).await
}

/// Writes one record change (its row, the live-room count, its events) inside `conn`'s
/// transaction.
async fn apply(conn: &mut AnyConnection, worker_id: &str, op: &Op) -> Result<(), sqlx::Error> {
    match op {
        Op::SessionStarted { start, hooks } => {
            sqlx::query(
                "INSERT INTO usage_sessions (session_id, app_id, room_id, user_id, worker_id, login_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&start.session_id)
            .bind(i64::from(start.app_id))
            .bind(&start.room_id)
            .bind(&start.user_id)
            .bind(worker_id)
            .bind(start.login_ms)
            .execute(&mut *conn)
            .await?;
            // A replaced session hands its place over: the room's count and membership stay.
            let handed_over = match &start.replaced {
                Some(old) => close_session(conn, old, start.login_ms, EndReason::Kickout).await?,
                None => false,
            };
            if !handed_over {
                let started = room_entered(conn, start.app_id, &start.room_id, start.login_ms).await?;
                if *hooks {
                    if started {
                        let event = WebhookEvent::new(
                            EventKind::RoomStarted,
                            start.app_id,
                            start.room_id.clone(),
                            start.login_ms,
                        );
                        webhooks::enqueue(conn, &event).await?;
                    }
                    let event =
                        WebhookEvent::new(EventKind::UserJoined, start.app_id, start.room_id.clone(), start.login_ms)
                            .user(&start.user_id, &start.session_id);
                    webhooks::enqueue(conn, &event).await?;
                }
            }
        }
        Op::SessionEnded { session_id, reason, event, hooks } => {
            if close_session(conn, session_id, event.timestamp_ms, *reason).await? {
                after_session_closed(conn, *hooks, event.clone()).await?;
            }
        }
        Op::StreamStarted { start, hooks } => {
            let inserted = sqlx::query(
                "INSERT INTO usage_streams (record_id, app_id, room_id, user_id, stream_id, relay_id, start_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (record_id) DO NOTHING",
            )
            .bind(&start.record_id)
            .bind(i64::from(start.app_id))
            .bind(&start.room_id)
            .bind(&start.user_id)
            .bind(&start.stream_id)
            .bind(worker_id)
            .bind(start.start_ms)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if inserted == 1 && *hooks {
                lock_room(conn, start.app_id, &start.room_id).await?;
                let event =
                    WebhookEvent::new(EventKind::StreamPublished, start.app_id, start.room_id.clone(), start.start_ms)
                        .user_only(&start.user_id)
                        .stream(&start.stream_id);
                webhooks::enqueue(conn, &event).await?;
            }
        }
        Op::StreamStopped { record_id, app_id, at_ms, bytes, hooks, .. } => {
            if close_stream(conn, record_id, *at_ms, Some(*bytes), None).await? && *hooks {
                let row: Option<OpenStream> = sqlx::query_as(
                    "SELECT record_id, app_id, room_id, user_id, stream_id FROM usage_streams WHERE record_id = $1",
                )
                .bind(record_id)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(row) = row {
                    lock_room(conn, *app_id, &row.room_id).await?;
                    let event = WebhookEvent::new(EventKind::StreamUnpublished, *app_id, row.room_id, *at_ms)
                        .user_only(&row.user_id)
                        .stream(&row.stream_id);
                    webhooks::enqueue(conn, &event).await?;
                }
            }
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OpenSession {
    session_id: String,
    app_id: i64,
    room_id: String,
    user_id: String,
}

#[derive(sqlx::FromRow)]
struct OpenStream {
    record_id: String,
    app_id: i64,
    room_id: String,
    user_id: String,
    stream_id: String,
}

impl Usage {
    /// A transaction for usage records. On PostgreSQL its commit does not wait for the WAL
    /// flush (`synchronous_commit = off`): the record survives any crash of Huddle at once,
    /// and a crash of PostgreSQL itself may lose the last ~0.6 s of records (3 × its
    /// `wal_writer_delay`), never corrupt them. SQLite runs with the WAL and
    /// `synchronous = NORMAL` (see `store::Store::open`).
    async fn begin(&self) -> Result<Transaction<'static, Any>, UsageError> {
        let pool = self.store.pool()?;
        Ok(match self.store.backend() {
            // One round trip for both (a simple query).
            crate::store::Backend::Postgres => pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?,
            crate::store::Backend::Sqlite => pool.begin().await?,
        })
    }

    /// Whether the app wants webhooks (read through the app cache).
    async fn hooks(&self, app_id: u32) -> Result<bool, UsageError> {
        Ok(self.store.app(app_id).await?.is_some_and(|app| app.webhook_url.is_some()))
    }

    /// Records a login (and closes the session it replaced). Login waits for the commit (a
    /// session is acknowledged only once its record is written), except with
    /// `--usage-queue on` (rooms in Redis): then it is queued and login goes on (the lease
    /// reaper writes the start row of a dead worker's session that has none); past
    /// [`super::MAX_QUEUED`] queued records the login is refused.
    pub async fn session_started(&self, start: &SessionStart) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        if self.queued && self.writers.queued() >= super::MAX_QUEUED {
            return Err(UsageError::Write(format!("{} usage records are queued already", self.writers.queued())));
        }
        let hooks = self.hooks(start.app_id).await?;
        self.write(Op::SessionStarted { start: start.clone(), hooks }).await
    }

    /// Records the end of a session; a session already closed (by a newer login, or as a
    /// dead worker's) stays as it was.
    pub async fn session_ended(
        &self,
        app_id: u32,
        room_id: &str,
        user_id: &str,
        session_id: &str,
        reason: EndReason,
    ) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        let hooks = self.hooks(app_id).await?;
        let event = WebhookEvent::new(EventKind::UserLeft, app_id, room_id.to_owned(), unix_millis())
            .user(user_id, session_id)
            .reason(reason);
        self.write(Op::SessionEnded { session_id: session_id.to_owned(), reason, event, hooks }).await
    }

    /// Records a stream going live on this worker's relay.
    pub async fn stream_started(&self, start: &StreamStart) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        let hooks = self.hooks(start.app_id).await?;
        self.write(Op::StreamStarted { start: start.clone(), hooks }).await
    }

    /// Records a stream's end with the bytes its relay session received and sent.
    pub async fn stream_stopped(
        &self,
        record_id: &str,
        app_id: u32,
        room_id: &str,
        bytes_in: u64,
        bytes_out: u64,
    ) -> Result<(), UsageError> {
        if !self.enabled {
            return Ok(());
        }
        let hooks = self.hooks(app_id).await?;
        let op = Op::StreamStopped {
            record_id: record_id.to_owned(),
            app_id,
            room_id: room_id.to_owned(),
            at_ms: unix_millis(),
            bytes: (bytes_in, bytes_out),
            hooks,
        };
        self.write(op).await
    }

    /// Hands a record to its room's writer; waits for its commit unless records are queued.
    async fn write(&self, op: Op) -> Result<(), UsageError> {
        if self.queued {
            return self.writers.send(Job { op, done: None, refused: 0 });
        }
        let (done, committed) = oneshot::channel();
        self.writers.send(Job { op, done: Some(done), refused: 0 })?;
        committed.await.map_err(|_| UsageError::Write("the usage writer stopped".into()))?
    }

    /// Group commit: takes what is waiting in this writer's queue (up to [`MAX_BATCH`]) and
    /// writes it in one transaction; while it commits, the next batch gathers. A failed batch
    /// is written again one record at a time, so that one bad record fails alone: a waiter
    /// hears the outcome; a queued record that failed while the database answered is tried
    /// [`MAX_REFUSALS`] times, then given up (logged, counted); the rest is tried again,
    /// with backoff, before anything newer of this writer's rooms (their order holds).
    pub(super) async fn run_writer(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        loop {
            let Some(first) = jobs.recv().await else { return };
            if self.queued {
                // Nobody waits for the commit: let the batch gather (fewer, larger
                // transactions, less work for the database on the same machine).
                tokio::time::sleep(LINGER).await;
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut backoff = RETRY_FIRST;
            loop {
                batch = self.write_batch(batch).await;
                if batch.is_empty() {
                    break;
                }
                crate::metrics::usage_retry();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }

    /// Writes a batch; returns the jobs to try again.
    async fn write_batch(&self, mut batch: Vec<Job>) -> Vec<Job> {
        let began = Instant::now();
        let ops: Vec<&Op> = batch.iter().map(|job| &job.op).collect();
        let outcome = self.apply(&ops).await;
        let err = match outcome {
            Ok(()) => {
                crate::metrics::usage_batch(batch.len(), began.elapsed());
                for job in batch {
                    self.settled(job, Ok(()), began);
                }
                return Vec::new();
            }
            Err(err) => err,
        };
        if batch.len() > 1 {
            tracing::warn!(error = %err, records = batch.len(), "a usage batch failed; writing its records one by one");
        }
        let mut again = Vec::new();
        let mut failed = None;
        for job in batch.drain(..) {
            if failed.is_some() {
                // Behind a queued record that failed: not before it (a room's order holds).
                again.push(job);
                continue;
            }
            let began = Instant::now();
            match self.apply(&[&job.op]).await {
                Ok(()) => self.settled(job, Ok(()), began),
                Err(err) if job.done.is_some() => self.settled(job, Err(err), began),
                Err(err) => failed = Some((job, err)),
            }
        }
        let Some((mut job, err)) = failed else { return again };
        // Did the record fail, or the database? Only the former counts against the record.
        let answering = match self.store.pool() {
            Ok(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
            Err(_) => false,
        };
        if answering {
            job.refused += 1;
        }
        if job.refused >= MAX_REFUSALS {
            tracing::error!(error = %err, kind = job.op.kind(), "a usage record was refused repeatedly; given up");
            self.settled(job, Err(err), began);
        } else {
            again.insert(0, job);
        }
        if !again.is_empty() {
            tracing::warn!(records = again.len(), "usage records not written; trying again");
        }
        again
    }

    /// A job is done: committed, or failed for good.
    fn settled(&self, job: Job, outcome: Result<(), UsageError>, began: Instant) {
        match &outcome {
            Ok(()) => crate::metrics::usage_written(job.op.kind(), began.elapsed()),
            Err(_) => crate::metrics::usage_write_failed(job.op.kind()),
        }
        self.writers.finished(1);
        if let Some(done) = job.done {
            let _ = done.send(outcome);
        }
    }

    async fn apply(&self, ops: &[&Op]) -> Result<(), UsageError> {
        let mut tx = self.begin().await?;
        // Plain logins (the hot path) go in a few multi-row statements; the rest one by one,
        // after them (nothing else in a batch can concern a session whose login is in it:
        // its end can only be asked for once its login was answered).
        let (logins, others): (Vec<&Op>, Vec<&Op>) = ops
            .iter()
            .copied()
            .partition(|op| matches!(op, Op::SessionStarted { start, .. } if start.replaced.is_none()));
        let postgres = self.store.backend() == crate::store::Backend::Postgres;
        bulk_logins(&mut tx, postgres, &self.worker_id, &logins).await?;
        for op in others {
            apply(&mut tx, &self.worker_id, op).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Renews this worker's row.
    pub(super) async fn heartbeat(&self) -> Result<(), UsageError> {
        let now = unix_millis();
        sqlx::query(
            "INSERT INTO usage_workers (worker_id, started_ms, last_seen_ms, lease_ms) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (worker_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&*self.worker_id)
        .bind(now)
        .bind(self.lease.as_millis() as i64)
        .execute(self.store.pool()?)
        .await?;
        Ok(())
    }

    pub(super) async fn forget_worker(&self) -> Result<(), UsageError> {
        sqlx::query("DELETE FROM usage_workers WHERE worker_id = $1")
            .bind(&*self.worker_id)
            .execute(self.store.pool()?)
            .await?;
        Ok(())
    }

    /// The workers registered before this one (earlier runs of the one process), with the
    /// last heartbeat each showed.
    pub(super) async fn earlier_runs(&self) -> Result<Vec<(String, i64)>, UsageError> {
        Ok(sqlx::query_as("SELECT worker_id, last_seen_ms FROM usage_workers WHERE worker_id <> $1")
            .bind(&*self.worker_id)
            .fetch_all(self.store.pool()?)
            .await?)
    }

    /// Closes the records of the earlier runs whose rows are older than a lease, at their last
    /// heartbeat; returns the runs still waiting (a row that moved is a live process: kept
    /// until it stops moving).
    pub(super) async fn close_earlier_runs(&self, earlier: &[(String, i64)]) -> Result<Vec<(String, i64)>, UsageError> {
        let now = unix_millis();
        let mut waiting = Vec::new();
        for (worker, _) in earlier {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT last_seen_ms, lease_ms FROM usage_workers WHERE worker_id = $1")
                    .bind(worker)
                    .fetch_optional(self.store.pool()?)
                    .await?;
            let Some((last_seen, lease)) = row else { continue };
            if last_seen + lease.max(self.lease.as_millis() as i64) >= now {
                waiting.push((worker.clone(), last_seen));
                continue;
            }
            let count =
                self.close_records(worker, last_seen, EndReason::WorkerLost, Some((worker, last_seen)), &[]).await?;
            if count > 0 {
                tracing::warn!(%worker, closed = count, at_ms = last_seen, "closed the usage records of an earlier run");
            }
            crate::metrics::usage_worker_lost_records(count as u64);
        }
        Ok(waiting)
    }

    /// A dead worker the Redis lease reaper claimed: the start rows of its reaped sessions
    /// that have none are written (with their login times), then everything it holds open
    /// closes at its lease deadline, in one transaction. Idempotent: a repeated call finds
    /// the rows there and closed.
    pub(super) async fn close_reaped(&self, reaped: &crate::rooms::ReapedWorker) -> Result<usize, UsageError> {
        let restore: Vec<SessionStart> = reaped
            .sessions
            .iter()
            .filter_map(|s| {
                s.joined_ms.map(|login_ms| SessionStart {
                    app_id: s.app_id,
                    room_id: s.room_id.clone(),
                    user_id: s.user_id.clone(),
                    session_id: s.session_id.clone(),
                    login_ms,
                    replaced: None,
                })
            })
            .collect();
        self.close_records(&reaped.worker_id, reaped.deadline_ms, EndReason::WorkerLost, None, &restore).await
    }

    /// Closes what `worker` (this one, stopping) holds open, at `at_ms`.
    pub(super) async fn close_worker(&self, worker: &str, at_ms: i64, reason: EndReason) -> Result<usize, UsageError> {
        self.close_records(worker, at_ms, reason, None, &[]).await
    }

    /// Closes what `worker` holds open, at `at_ms`, in one transaction with their live-room
    /// counts and events. With `claim`, the worker's row is deleted in the same transaction
    /// (only if it still shows that `last_seen`), so exactly one run closes an earlier run's
    /// records. `restore`: sessions of `worker` whose start rows may be missing (written first,
    /// if absent, as their logins would have: live count and `user_joined`).
    async fn close_records(
        &self,
        worker: &str,
        at_ms: i64,
        reason: EndReason,
        claim: Option<(&str, i64)>,
        restore: &[SessionStart],
    ) -> Result<usize, UsageError> {
        let pool = self.store.pool()?;
        let sessions: Vec<OpenSession> = sqlx::query_as(
            "SELECT session_id, app_id, room_id, user_id FROM usage_sessions WHERE worker_id = $1 AND logout_ms IS NULL",
        )
        .bind(worker)
        .fetch_all(pool)
        .await?;
        let streams: Vec<OpenStream> = sqlx::query_as(
            "SELECT record_id, app_id, room_id, user_id, stream_id FROM usage_streams \
             WHERE relay_id = $1 AND stop_ms IS NULL",
        )
        .bind(worker)
        .fetch_all(pool)
        .await?;
        let mut sessions = sessions;
        for start in restore {
            if !sessions.iter().any(|s| s.session_id == start.session_id) {
                sessions.push(OpenSession {
                    session_id: start.session_id.clone(),
                    app_id: i64::from(start.app_id),
                    room_id: start.room_id.clone(),
                    user_id: start.user_id.clone(),
                });
            }
        }
        let mut hooks = HashMap::new();
        for app_id in sessions.iter().map(|s| s.app_id).chain(streams.iter().map(|s| s.app_id)) {
            if let std::collections::hash_map::Entry::Vacant(entry) = hooks.entry(app_id) {
                entry.insert(self.hooks(u32::try_from(app_id).unwrap_or(0)).await?);
            }
        }
        let mut tx = self.begin().await?;
        if let Some((worker, last_seen)) = claim {
            let claimed = sqlx::query("DELETE FROM usage_workers WHERE worker_id = $1 AND last_seen_ms = $2")
                .bind(worker)
                .bind(last_seen)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed != 1 {
                return Ok(0); // renewed meanwhile, or another run claimed it
            }
        }
        for start in restore {
            let hooks = hooks.get(&i64::from(start.app_id)) == Some(&true);
            restore_session(&mut tx, worker, start, hooks).await?;
        }
        let mut closed = 0;
        for stream in streams {
            if close_stream(&mut tx, &stream.record_id, at_ms, None, Some(reason)).await? {
                closed += 1;
                let app_id = u32::try_from(stream.app_id).unwrap_or(0);
                if hooks.get(&stream.app_id) == Some(&true) {
                    lock_room(&mut tx, app_id, &stream.room_id).await?;
                    let event = WebhookEvent::new(EventKind::StreamUnpublished, app_id, stream.room_id, at_ms)
                        .user_only(&stream.user_id)
                        .stream(&stream.stream_id)
                        .reason(reason);
                    webhooks::enqueue(&mut tx, &event).await?;
                }
            }
        }
        for session in sessions {
            if close_session(&mut tx, &session.session_id, at_ms, reason).await? {
                closed += 1;
                let app_id = u32::try_from(session.app_id).unwrap_or(0);
                let event = WebhookEvent::new(EventKind::UserLeft, app_id, session.room_id, at_ms)
                    .user(&session.user_id, &session.session_id)
                    .reason(reason);
                after_session_closed(&mut tx, hooks.get(&session.app_id) == Some(&true), event).await?;
            }
        }
        tx.commit().await?;
        Ok(closed)
    }
}
