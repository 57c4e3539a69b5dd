//! One task per websocket connection: reads frames, runs the client's requests one at a time,
//! writes replies and room events, pings, watches the token's expiry, and parks or ends the
//! session when the connection stops.
//!
//! The loop never waits on one thing only:
//! - A request runs as a future (a [`Job`]) polled beside the frame stream and the timers. It
//!   holds the session while it runs and hands it back with its outcome, so pings, pongs and
//!   close frames are handled while it waits on Redis or the store. Text frames that arrive
//!   meanwhile wait in a bounded queue; room events wait in the session's own queue, so their
//!   order is kept. A `resync` snapshot is read the same way.
//! - Every write to the socket is bounded by the heartbeat deadline (last frame from the client
//!   plus the heartbeat timeout): a client that stops reading while the server has something
//!   to send is ended like a silent one (5017, close 4017, session parked), whatever it sends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_ws::{CloseCode, CloseReason, Session};
use bytestring::ByteString;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::SignalingContext;
use super::drain::Phase;
use super::frames::{Broken, Frame, FrameReader, Inbound, Reassembly};
use super::limits::{self, RateLimit};
use super::protocol::{self, EncodedEvent, FrameError, Request};
use super::session::{self, SessionState};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;
use crate::rooms::{Delivery, RoomEvent};
use crate::usage::EndReason;

/// The longest the last frames (error, close) may wait for room in the socket once the
/// connection is ending; never longer than the heartbeat deadline.
const LAST_WRITES: Duration = Duration::from_secs(1);

/// How a connection ends.
struct Exit {
    /// Sent as an unattributed `error` frame before the close.
    notice: Option<ApiError>,
    /// The close frame; `None` closes without a status code.
    close: Option<CloseReason>,
    /// What becomes of the session, if the connection holds one.
    fate: Fate,
}

enum Fate {
    /// Kept for the reconnect grace period (the client may resume it).
    Park,
    /// The user leaves the room now; the usage record ends with this reason.
    End(EndReason),
    /// No longer a member (a newer session, the business server): stop listening, leave
    /// nothing; the cause says how its usage record ends.
    Abandon(crate::rooms::KickCause),
}

impl Exit {
    /// The client went away: its session waits for a resume.
    fn dropped() -> Exit {
        Exit { notice: None, close: None, fate: Fate::Park }
    }

    /// No frame from the client within the heartbeat timeout, or a write it did not take in
    /// that time: the same as a dropped connection, announced.
    fn heartbeat_timeout() -> Exit {
        let error = ApiError::new(ErrorCode::HeartbeatTimeout, "no frame or pong within the heartbeat timeout");
        Exit { close: Some(close_reason(&error)), notice: Some(error), fate: Fate::Park }
    }

    /// The client broke the websocket protocol (its session ends), or the transport failed.
    fn broken(broken: Broken) -> Exit {
        let ended = |code, why: String| {
            tracing::debug!(close = ?code, reason = %why, "websocket protocol violation; ending the session");
            // The server ends a session that broke the protocol.
            let fate = Fate::End(EndReason::KickedByServer);
            Exit { notice: None, close: Some(CloseReason { code, description: Some(why) }), fate }
        };
        match broken {
            Broken::TooLarge => {
                let error = ApiError::new(ErrorCode::FrameTooLarge, "message larger than 64 KiB");
                let close = CloseReason { code: CloseCode::Size, description: Some(error.message.clone()) };
                Exit { notice: Some(error), close: Some(close), fate: Fate::End(EndReason::KickedByServer) }
            }
            Broken::InvalidUtf8 => ended(CloseCode::Invalid, "text message is not valid UTF-8".into()),
            Broken::Protocol(why) => ended(CloseCode::Protocol, why),
            Broken::Transport(why) => {
                tracing::debug!(error = %why, "websocket transport error");
                Exit::dropped()
            }
        }
    }
}

/// Close codes in the 4000 range carry the error code's last three digits (docs/PROTOCOL.md).
fn close_reason(error: &ApiError) -> CloseReason {
    CloseReason {
        code: CloseCode::Other(4000 + (error.code.code() % 1000) as u16),
        description: Some(error.message.clone()),
    }
}

/// A request (or a `resync` snapshot) in progress. It owns the session while it runs.
type Job = Pin<Box<dyn Future<Output = Done>>>;

struct Done {
    /// The session after the job: taken in by login/resume, gone after logout.
    session: Option<SessionState>,
    work: Finished,
}

enum Finished {
    Request { id: Value, outcome: Result<(session::Reply, Option<Exit>), ApiError> },
    Resync(Result<ByteString, ApiError>),
}

struct Connection {
    ctx: Arc<SignalingContext>,
    ws: Session,
    /// The logged-in session, while no job holds it.
    session: Option<SessionState>,
    job: Option<Job>,
    /// Text frames that arrived while a job ran, oldest first, and their total size.
    waiting: VecDeque<ByteString>,
    waiting_bytes: usize,
    reassembly: Reassembly,
    /// When the client last sent anything (any frame counts).
    last_seen: Instant,
    /// Requests without a session (login, resume, ping) are limited per connection.
    anonymous_requests: RateLimit,
    /// `http://HOST` of the upgrade request, handed to the session for relay URLs.
    base_url: Option<String>,
    /// Set once the connection is ending: writes wait at most [`LAST_WRITES`].
    closing: bool,
    /// The client was told to move (the worker drains).
    told_to_move: bool,
}

/// Runs a connection to its end. `_slot` releases the connection count when dropped.
pub async fn run(
    ctx: Arc<SignalingContext>,
    ws: Session,
    mut frames: FrameReader<Payload>,
    _slot: super::ConnectionSlot,
    base_url: Option<String>,
) {
    let mut connection = Connection {
        ctx: ctx.clone(),
        ws,
        session: None,
        job: None,
        waiting: VecDeque::new(),
        waiting_bytes: 0,
        reassembly: Reassembly::new(limits::MAX_FRAME_BYTES),
        last_seen: Instant::now(),
        anonymous_requests: RateLimit::new(limits::ANONYMOUS_REQUESTS_PER_SEC, limits::ANONYMOUS_REQUEST_BURST),
        base_url,
        closing: false,
        told_to_move: false,
    };
    let mut phase = ctx.drain.watch();
    // A connection that opened just as the drain began hears of it at once.
    phase.mark_changed();
    let hello = protocol::hello(ctx.config.heartbeat_interval.as_millis() as u64, limits::MAX_FRAME_BYTES);
    if let Some(exit) = connection.send(hello).await {
        return connection.finish(exit).await;
    }
    let mut heartbeat = tokio::time::interval(ctx.config.heartbeat_interval);
    heartbeat.reset();
    let exit = loop {
        let token_deadline = connection.session.as_ref().map(SessionState::token_deadline);
        let kicked = connection.session.as_ref().map(|s| s.kicked.clone());
        // Biased: a finished job first (its reply, then the next request); the token's
        // deadline before the client's frames, so that no stream of frames puts it off; the
        // frames before the heartbeat, so that a pong already received counts when it looks;
        // room events last (they only flow while no job holds the session).
        let step = tokio::select! {
            biased;
            done = job_done(&mut connection.job) => connection.on_done(done).await,
            _ = sleep_until(token_deadline) => connection.on_token_deadline().await,
            frame = frames.next() => connection.on_frame(frame).await,
            now = phase_change(&mut phase) => connection.on_phase(now).await,
            _ = heartbeat.tick() => connection.on_heartbeat().await,
            Some(delivery) = next_event(&mut connection.session) => connection.on_event(delivery).await,
            // Normally the Kickout arrives in the queue (above); this catches one a full queue
            // dropped, once everything queued before it was delivered.
            cause = removed(kicked.as_deref()) => connection.on_removed(&cause).await,
        };
        if let Some(exit) = step {
            break exit;
        }
    };
    connection.finish(exit).await;
}

/// The next phase of the worker's life (pending for ever once nothing can change it).
async fn phase_change(phase: &mut tokio::sync::watch::Receiver<Phase>) -> Phase {
    if phase.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    *phase.borrow_and_update()
}

async fn job_done(job: &mut Option<Job>) -> Done {
    match job {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

async fn next_event(session: &mut Option<SessionState>) -> Option<Arc<Delivery>> {
    match session {
        Some(state) => state.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn removed(signal: Option<&crate::rooms::KickSignal>) -> crate::rooms::KickCause {
    match signal {
        Some(signal) => signal.removed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The result of a bounded write.
fn written(result: Result<Result<(), actix_ws::Closed>, tokio::time::error::Elapsed>) -> Option<Exit> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(actix_ws::Closed)) => Some(Exit::dropped()),
        // The client took nothing for the whole heartbeat timeout: it is not reading.
        Err(_) => Some(Exit::heartbeat_timeout()),
    }
}

impl Connection {
    /// Writes must be taken by the socket before this.
    fn write_deadline(&self) -> Instant {
        let heartbeat = self.last_seen + self.ctx.config.heartbeat_timeout;
        if self.closing { heartbeat.min(Instant::now() + LAST_WRITES) } else { heartbeat }
    }

    async fn send(&mut self, frame: ByteString) -> Option<Exit> {
        written(tokio::time::timeout_at(self.write_deadline(), self.ws.text(frame)).await)
    }

    async fn send_all(&mut self, frames: impl IntoIterator<Item = ByteString>) -> Option<Exit> {
        for frame in frames {
            if let Some(exit) = self.send(frame).await {
                return Some(exit);
            }
        }
        None
    }

    async fn send_failure(&mut self, failure: FrameError) -> Option<Exit> {
        metrics::error_returned(failure.error.code);
        let frame = match &failure.id {
            Some(id) => protocol::reply_error(id, &failure.error),
            None => protocol::error(&failure.error),
        };
        self.send(frame).await
    }

    /// A frame from the client (`None`: its side of the connection ended).
    async fn on_frame(&mut self, frame: Option<Result<Frame, Broken>>) -> Option<Exit> {
        self.last_seen = Instant::now();
        let frame = match frame {
            None => return Some(Exit::dropped()),
            Some(Err(broken)) => return Some(Exit::broken(broken)),
            Some(Ok(frame)) => frame,
        };
        match self.reassembly.push(frame) {
            Err(broken) => Some(Exit::broken(broken)),
            Ok(None) => None,
            Ok(Some(Inbound::Text(text))) => self.on_text(text).await,
            Ok(Some(Inbound::Binary(_))) => {
                let error = ApiError::new(ErrorCode::MalformedFrame, "binary frames are not part of the protocol");
                self.send_failure(FrameError { id: None, error }).await
            }
            Ok(Some(Inbound::Ping(payload))) => {
                written(tokio::time::timeout_at(self.write_deadline(), self.ws.pong(&payload)).await)
            }
            Ok(Some(Inbound::Pong)) => None,
            Ok(Some(Inbound::Close)) => Some(Exit::dropped()),
        }
    }

    /// A request: run now, or queue behind the one in progress, or refuse when too many wait.
    async fn on_text(&mut self, text: ByteString) -> Option<Exit> {
        if self.job.is_none() && self.waiting.is_empty() {
            return self.start_request(&text).await;
        }
        let full = self.waiting.len() >= limits::MAX_QUEUED_REQUESTS
            || self.waiting_bytes + text.len() > limits::MAX_QUEUED_BYTES;
        if !full {
            self.waiting_bytes += text.len();
            self.waiting.push_back(text);
            return if self.job.is_none() { self.next_request().await } else { None };
        }
        let failure = match protocol::parse(&text) {
            Err(failure) => failure,
            Ok((id, _)) => FrameError {
                id: Some(id),
                error: ApiError::new(
                    ErrorCode::RateLimited,
                    "too many requests waiting for the one in progress; wait for their replies",
                ),
            },
        };
        self.send_failure(failure).await
    }

    /// Starts the next waiting requests until one runs as a job or none is left.
    async fn next_request(&mut self) -> Option<Exit> {
        while self.job.is_none() {
            let text = self.waiting.pop_front()?;
            self.waiting_bytes -= text.len();
            if let Some(exit) = self.start_request(&text).await {
                return Some(exit);
            }
        }
        None
    }

    /// Parses a request and starts it as the job, or answers it at once when it cannot run.
    async fn start_request(&mut self, text: &str) -> Option<Exit> {
        let (id, request) = match protocol::parse(text) {
            Ok(parsed) => parsed,
            Err(failure) => return self.send_failure(failure).await,
        };
        metrics::ws_message(request.kind());
        if self.session.is_none() && !self.anonymous_requests.allow(std::time::Instant::now()) {
            let error = ApiError::new(ErrorCode::RateLimited, "too many requests before login; slow down");
            return self.send_failure(FrameError { id: Some(id), error }).await;
        }
        let ctx = self.ctx.clone();
        let base_url = self.base_url.clone();
        let mut session = self.session.take();
        self.job = Some(Box::pin(async move {
            let outcome = dispatch(&ctx, &mut session, request, base_url).await;
            Done { session, work: Finished::Request { id, outcome } }
        }));
        None
    }

    /// Reads the room for a `resync` event, as a job (the room may live in Redis): as read at
    /// or after `asked` (when what calls for the resync happened here).
    fn start_resync(&mut self, asked: std::time::Instant) {
        let Some(state) = self.session.take() else {
            return;
        };
        let ctx = self.ctx.clone();
        self.job = Some(Box::pin(async move {
            let snapshot = state.resync(&ctx, asked).await;
            Done { session: Some(state), work: Finished::Resync(snapshot) }
        }));
    }

    async fn on_done(&mut self, done: Done) -> Option<Exit> {
        self.job = None;
        self.session = done.session;
        let exit = match done.work {
            Finished::Request { id, outcome } => self.reply(id, outcome).await,
            Finished::Resync(snapshot) => self.on_resync(snapshot).await,
        };
        if exit.is_some() {
            return exit;
        }
        self.next_request().await
    }

    async fn reply(&mut self, id: Value, outcome: Result<(session::Reply, Option<Exit>), ApiError>) -> Option<Exit> {
        match outcome {
            Ok((reply, exit)) => {
                if let Some(exit) = self.send(protocol::reply_ok(&id, reply.data)).await {
                    return Some(exit);
                }
                if let Some(exit) = self.send_all(reply.after).await {
                    return Some(exit);
                }
                exit
            }
            Err(error) => self.send_failure(FrameError { id: Some(id), error }).await,
        }
    }

    async fn on_resync(&mut self, snapshot: Result<ByteString, ApiError>) -> Option<Exit> {
        match snapshot {
            Ok(frame) => self.send(frame).await,
            Err(error) => {
                // Try again with the next event (or on resume).
                if let Some(state) = &self.session {
                    state.overflowed.store(true, Ordering::Release);
                }
                tracing::warn!(error = %error, "resync failed; will retry");
                None
            }
        }
    }

    async fn on_event(&mut self, delivery: Arc<Delivery>) -> Option<Exit> {
        let state = self.session.as_ref()?;
        match &delivery.event {
            RoomEvent::Kickout { session_id, cause, .. } if *session_id == state.session_id => {
                return self.on_removed(cause).await;
            }
            RoomEvent::Kickout { .. } => return None,
            RoomEvent::Resync => {
                // Every member here was told at once: they share a read started since.
                self.start_resync(delivery.dispatched_at);
                return None;
            }
            _ => {}
        }
        let encoded = delivery.encoded(protocol::encode_event);
        let EncodedEvent { user_update, frames } = &*encoded;
        if state.user_update
            && let Some(frame) = user_update
            && let Some(exit) = self.send(frame.clone()).await
        {
            return Some(exit);
        }
        if let Some(exit) = self.send_all(frames.iter().cloned()).await {
            return Some(exit);
        }
        let overflowed = self.session.as_ref().is_some_and(|s| s.overflowed.swap(false, Ordering::AcqRel));
        if !overflowed {
            return None;
        }
        // Events were dropped: what is still queued is older than the snapshot about to be
        // sent, so only its messages are worth delivering.
        let messages = self.session.as_mut().map(SessionState::drain_for_resync).unwrap_or_default();
        if let Some(exit) = self.send_all(messages).await {
            return Some(exit);
        }
        // Events were dropped before now.
        self.start_resync(std::time::Instant::now());
        None
    }

    /// The session was removed from its room (a newer login, the business server): the
    /// client hears `kickout` with the cause's code and reason, and the session is over.
    async fn on_removed(&mut self, cause: &crate::rooms::KickCause) -> Option<Exit> {
        let room_id = self.session.as_ref()?.room.room_id.clone();
        let (error, reason) = protocol::kickout_error(cause);
        let mut data = json!({"roomID": room_id, "error": error.body()});
        if let (Some(reason), Some(data)) = (reason, data.as_object_mut()) {
            data.insert("reason".into(), Value::String(reason.to_owned()));
        }
        // Whether or not the client takes it, the session is over.
        let _ = self.send(protocol::event("kickout", data)).await;
        Some(Exit { notice: None, close: Some(close_reason(&error)), fate: Fate::Abandon(cause.clone()) })
    }

    /// The worker drains: the client is asked once to move to another worker (it keeps its
    /// session here until it logs in there); when the drain time is over, the session ends.
    async fn on_phase(&mut self, phase: Phase) -> Option<Exit> {
        match phase {
            Phase::Serving => None,
            Phase::Draining { until } if !self.told_to_move => {
                self.told_to_move = true;
                let within = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                self.send(protocol::event("goaway", json!({"reason": "draining", "reconnectWithinMs": within}))).await
            }
            Phase::Draining { .. } => None,
            Phase::Closing => {
                let close =
                    CloseReason { code: CloseCode::Away, description: Some("the server is shutting down".into()) };
                Some(Exit { notice: None, close: Some(close), fate: Fate::End(EndReason::Shutdown) })
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Option<Exit> {
        if self.last_seen.elapsed() > self.ctx.config.heartbeat_timeout {
            return Some(Exit::heartbeat_timeout());
        }
        written(tokio::time::timeout_at(self.write_deadline(), self.ws.ping(b"")).await)
    }

    async fn on_token_deadline(&mut self) -> Option<Exit> {
        let state = self.session.as_mut()?;
        match state.on_token_deadline() {
            Some(frame) if frame.is_empty() => None,
            Some(frame) => self.send(frame).await,
            None => {
                let error = ApiError::new(ErrorCode::TokenExpired, "the token expired; log in with a new one");
                let fate = Fate::End(EndReason::TokenExpired);
                Some(Exit { close: Some(close_reason(&error)), notice: Some(error), fate })
            }
        }
    }

    async fn finish(mut self, exit: Exit) {
        self.closing = true;
        // A job still holds the session: let it finish (the backends bound it in time), and
        // deliver its reply if the socket still takes it.
        if let Some(job) = self.job.take() {
            let done = job.await;
            self.session = done.session;
            if let Finished::Request { id, outcome } = done.work {
                let _ = self.reply(id, outcome).await;
            }
        }
        if let Some(error) = &exit.notice {
            metrics::error_returned(error.code);
            let _ = self.send(protocol::error(error)).await;
        }
        if let Some(state) = self.session.take() {
            match exit.fate {
                Fate::Park => self.ctx.park(state),
                Fate::End(reason) => state.end(&self.ctx, reason).await,
                Fate::Abandon(cause) => state.abandon(&self.ctx, Some(&cause)).await,
            }
        }
        let deadline = self.write_deadline();
        let _ = tokio::time::timeout_at(deadline, self.ws.close(exit.close)).await;
    }
}

/// Runs a request against the session it was given (taking a session in on login and resume,
/// giving it up on logout). Returns the reply and, for logout, how the connection ends.
async fn dispatch(
    ctx: &Arc<SignalingContext>,
    session: &mut Option<SessionState>,
    request: Request,
    base_url: Option<String>,
) -> Result<(session::Reply, Option<Exit>), ApiError> {
    match (request, session.as_mut()) {
        (Request::Login(_) | Request::Resume(_), None) if ctx.drain.is_draining() => Err(super::draining()),
        (Request::Login(login), None) => {
            let (mut state, reply) = session::login(ctx, login).await?;
            state.base_url = base_url;
            *session = Some(state);
            Ok((reply, None))
        }
        (Request::Resume(resume), None) => {
            let (mut state, reply) = session::resume(ctx, resume).await?;
            state.base_url = base_url;
            tracing::debug!(session = %state.session_id, "resumed");
            *session = Some(state);
            Ok((reply, None))
        }
        (Request::Logout(room), Some(state)) => {
            if room.room_id.as_ref().is_some_and(|r| *r != state.room.room_id) {
                return Err(ApiError::new(ErrorCode::WrongRoom, "this session is in another room"));
            }
            if let Some(state) = session.take() {
                state.end(ctx, EndReason::Logout).await;
            }
            let close = CloseReason { code: CloseCode::Normal, description: Some("logged out".into()) };
            let exit = Exit { notice: None, close: Some(close), fate: Fate::End(EndReason::Logout) };
            Ok((session::Reply { data: json!({}), after: Vec::new() }, Some(exit)))
        }
        (request, Some(state)) => {
            state.check_rate(&request)?;
            Ok((state.handle(ctx, request).await?, None))
        }
        (Request::Ping, None) => {
            Ok((session::Reply { data: json!({"time": crate::rooms::unix_millis()}), after: Vec::new() }, None))
        }
        (_, None) => Err(ApiError::new(ErrorCode::NotLoggedIn, "log in first")),
    }
}
