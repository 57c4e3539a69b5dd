//! One task per websocket connection: reads requests, writes replies and room events,
//! pings, watches the token's expiry, and parks the session when the socket drops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_ws::{CloseCode, CloseReason, Session};
use bytestring::ByteString;

use super::SignalingContext;
use super::frames::{Broken, Frame, FrameReader, Inbound, Reassembly};
use super::limits::{self, RateLimit};
use super::protocol::{self, EncodedEvent, Request};
use super::session::{self, SessionState};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;
use crate::rooms::{Delivery, RoomEvent};

/// Why the loop stopped, and what becomes of the session.
enum Exit {
    /// The client went away or stopped answering: keep the session for the grace period.
    Dropped,
    /// Logged out, kicked or token expired: the session is already dealt with.
    Closed(CloseReason),
}

/// Close codes in the 4000 range carry the error code's last three digits (docs/PROTOCOL.md).
fn close_reason(error: &ApiError) -> CloseReason {
    CloseReason {
        code: CloseCode::Other(4000 + (error.code.code() % 1000) as u16),
        description: Some(error.message.clone()),
    }
}

struct Connection {
    ctx: Arc<SignalingContext>,
    ws: Session,
    session: Option<SessionState>,
    reassembly: Reassembly,
    last_seen: Instant,
    /// Requests without a session (login, resume, ping) are limited per connection.
    anonymous_requests: RateLimit,
    /// `http://HOST` of the upgrade request, handed to the session for relay URLs.
    base_url: Option<String>,
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
        reassembly: Reassembly::new(limits::MAX_FRAME_BYTES),
        last_seen: Instant::now(),
        anonymous_requests: RateLimit::new(limits::ANONYMOUS_REQUESTS_PER_SEC, limits::ANONYMOUS_REQUEST_BURST),
        base_url,
    };
    let hello = protocol::hello(ctx.config.heartbeat_interval.as_millis() as u64, limits::MAX_FRAME_BYTES);
    if connection.ws.text(hello).await.is_err() {
        return;
    }
    let mut heartbeat = tokio::time::interval(ctx.config.heartbeat_interval);
    heartbeat.reset();
    let exit = loop {
        let token_deadline = connection.session.as_ref().map(SessionState::token_deadline);
        let step = tokio::select! {
            frame = frames.next() => connection.on_frame(frame).await,
            Some(delivery) = next_event(&mut connection.session) => connection.on_event(delivery).await,
            _ = heartbeat.tick() => connection.on_heartbeat().await,
            _ = sleep_until(token_deadline) => connection.on_token_deadline().await,
        };
        if let Some(exit) = step {
            break exit;
        }
    };
    connection.finish(exit).await;
}

async fn next_event(session: &mut Option<SessionState>) -> Option<Arc<Delivery>> {
    match session {
        Some(state) => state.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn send(&mut self, frame: ByteString) -> Option<Exit> {
        self.ws.text(frame).await.err().map(|_| Exit::Dropped)
    }

    async fn send_all(&mut self, frames: impl IntoIterator<Item = ByteString>) -> Option<Exit> {
        for frame in frames {
            if let Some(exit) = self.send(frame).await {
                return Some(exit);
            }
        }
        None
    }

    /// A frame from the client (`None`: its side of the connection ended).
    async fn on_frame(&mut self, frame: Option<Result<Frame, Broken>>) -> Option<Exit> {
        self.last_seen = Instant::now();
        let inbound = match frame.map(|frame| frame.and_then(|frame| self.reassembly.push(frame))) {
            None => return Some(Exit::Dropped),
            Some(Err(broken)) => return self.on_broken(broken).await,
            Some(Ok(None)) => return None,
            Some(Ok(Some(inbound))) => inbound,
        };
        match inbound {
            Inbound::Text(text) => self.on_text(&text).await,
            Inbound::Binary(_) => {
                let error = ApiError::new(ErrorCode::MalformedFrame, "binary frames are not part of the protocol");
                metrics::error_returned(error.code);
                self.send(protocol::error(&error)).await
            }
            Inbound::Ping(payload) => self.ws.pong(&payload).await.err().map(|_| Exit::Dropped),
            Inbound::Pong => None,
            Inbound::Close => Some(Exit::Dropped),
        }
    }

    /// The client broke the websocket protocol: its session ends (the user leaves now). A
    /// transport failure only drops the connection.
    async fn on_broken(&mut self, broken: Broken) -> Option<Exit> {
        let (code, why, notice) = match broken {
            Broken::Transport(why) => {
                tracing::debug!(error = %why, "websocket transport error");
                return Some(Exit::Dropped);
            }
            Broken::TooLarge => {
                let error = ApiError::new(ErrorCode::FrameTooLarge, "message larger than 64 KiB");
                (CloseCode::Size, error.message.clone(), Some(error))
            }
            Broken::InvalidUtf8 => (CloseCode::Invalid, "text message is not valid UTF-8".to_owned(), None),
            Broken::Protocol(why) => (CloseCode::Protocol, why, None),
        };
        tracing::debug!(close = ?code, reason = %why, "websocket protocol violation; ending the session");
        if let Some(error) = notice {
            metrics::error_returned(error.code);
            let _ = self.ws.text(protocol::error(&error)).await;
        }
        if let Some(state) = self.session.take() {
            state.end(&self.ctx).await;
        }
        Some(Exit::Closed(CloseReason { code, description: Some(why) }))
    }

    async fn on_text(&mut self, text: &str) -> Option<Exit> {
        let (id, request) = match protocol::parse(text) {
            Ok(parsed) => parsed,
            Err(failure) => {
                metrics::error_returned(failure.error.code);
                let frame = match &failure.id {
                    Some(id) => protocol::reply_error(id, &failure.error),
                    None => protocol::error(&failure.error),
                };
                return self.send(frame).await;
            }
        };
        metrics::ws_message(request.kind());
        match self.dispatch(request).await {
            Ok((reply, exit)) => {
                if let Some(exit) = self.send(protocol::reply_ok(&id, reply.data)).await {
                    return Some(exit);
                }
                if let Some(exit) = self.send_all(reply.after).await {
                    return Some(exit);
                }
                exit
            }
            Err(error) => {
                metrics::error_returned(error.code);
                self.send(protocol::reply_error(&id, &error)).await
            }
        }
    }

    /// Routes a request by session state. Returns the reply and, for logout, the exit.
    async fn dispatch(&mut self, request: Request) -> Result<(session::Reply, Option<Exit>), ApiError> {
        let ctx = self.ctx.clone();
        if self.session.is_none() && !self.anonymous_requests.allow(Instant::now()) {
            return Err(ApiError::new(ErrorCode::RateLimited, "too many requests before login; slow down"));
        }
        match (request, self.session.as_mut()) {
            (Request::Login(login), None) => {
                let (mut state, reply) = session::login(&ctx, login).await?;
                state.base_url = self.base_url.clone();
                self.session = Some(state);
                Ok((reply, None))
            }
            (Request::Resume(resume), None) => {
                let (mut state, reply) = session::resume(&ctx, resume).await?;
                state.base_url = self.base_url.clone();
                tracing::debug!(session = %state.session_id, "resumed");
                self.session = Some(state);
                Ok((reply, None))
            }
            (Request::Logout(room), Some(_)) => {
                let state = self.session.take().ok_or_else(|| ApiError::internal("session vanished"))?;
                if room.room_id.as_ref().is_some_and(|r| *r != state.room.room_id) {
                    let wrong = ApiError::new(ErrorCode::WrongRoom, "this session is in another room");
                    self.session = Some(state);
                    return Err(wrong);
                }
                state.end(&ctx).await;
                let reason = CloseReason { code: CloseCode::Normal, description: Some("logged out".into()) };
                Ok((session::Reply { data: serde_json::json!({}), after: Vec::new() }, Some(Exit::Closed(reason))))
            }
            (request, Some(state)) => {
                state.check_rate(&request)?;
                Ok((state.handle(&ctx, request).await?, None))
            }
            (Request::Ping, None) => Ok((
                session::Reply { data: serde_json::json!({"time": crate::rooms::unix_millis()}), after: Vec::new() },
                None,
            )),
            (_, None) => Err(ApiError::new(ErrorCode::NotLoggedIn, "log in first")),
        }
    }

    async fn on_event(&mut self, delivery: Arc<Delivery>) -> Option<Exit> {
        let state = self.session.as_ref()?;
        match &delivery.event {
            RoomEvent::Kickout { session_id, .. } if *session_id == state.session_id => {
                let error = ApiError::new(ErrorCode::KickedOut, "the same user logged in from another connection");
                let frame = protocol::event(
                    "kickout",
                    serde_json::json!({"roomID": state.room.room_id, "error": error.body()}),
                );
                let _ = self.ws.text(frame).await;
                if let Some(state) = self.session.take() {
                    state.abandon(&self.ctx).await;
                }
                return Some(Exit::Closed(close_reason(&error)));
            }
            RoomEvent::Kickout { .. } => return None,
            RoomEvent::Resync => return self.send_resync().await,
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
        self.send_resync().await
    }

    async fn send_resync(&mut self) -> Option<Exit> {
        let state = self.session.as_ref()?;
        match state.resync(&self.ctx).await {
            Ok(frame) => self.send(frame).await,
            Err(error) => {
                // Try again with the next event (or on resume).
                state.overflowed.store(true, Ordering::Release);
                tracing::warn!(error = %error, "resync failed; will retry");
                None
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Option<Exit> {
        if self.last_seen.elapsed() > self.ctx.config.heartbeat_timeout {
            let error = ApiError::new(ErrorCode::HeartbeatTimeout, "no frame or pong within the heartbeat timeout");
            metrics::error_returned(error.code);
            let _ = self.ws.text(protocol::error(&error)).await;
            let _ = self.ws.clone().close(Some(close_reason(&error))).await;
            return Some(Exit::Dropped);
        }
        self.ws.ping(b"").await.err().map(|_| Exit::Dropped)
    }

    async fn on_token_deadline(&mut self) -> Option<Exit> {
        let state = self.session.as_mut()?;
        match state.on_token_deadline() {
            Some(frame) if frame.is_empty() => None,
            Some(frame) => self.send(frame).await,
            None => {
                let error = ApiError::new(ErrorCode::TokenExpired, "the token expired; log in with a new one");
                metrics::error_returned(error.code);
                let _ = self.ws.text(protocol::error(&error)).await;
                if let Some(state) = self.session.take() {
                    state.end(&self.ctx).await;
                }
                Some(Exit::Closed(close_reason(&error)))
            }
        }
    }

    async fn finish(self, exit: Exit) {
        match exit {
            Exit::Closed(reason) => {
                let _ = self.ws.close(Some(reason)).await;
            }
            Exit::Dropped => {
                let _ = self.ws.close(None).await;
                if let Some(state) = self.session {
                    self.ctx.park(state);
                }
            }
        }
    }
}
