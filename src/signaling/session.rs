//! What a logged-in session is and what each request does to it. Transport-free: the
//! connection task feeds requests in and writes the replies and frames out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::SignalingContext;
use super::limits::{self, RateLimit};
use super::protocol::{self, LoginRequest, Request, ResumeRequest, RoomView};
use crate::auth::token::{self, Claims, Expected, LEEWAY_SECS};
use crate::auth::token04;
use crate::auth::{TokenError, unix_now};
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::rooms::{
    Delivery, ImMessage, KickCause, KickSignal, LocalMember, Member, RoomEvent, RoomExtraInfo, RoomKey, User,
    unix_millis,
};
use crate::usage::{EndReason, SessionStart};

/// How long before expiry `tokenWillExpire` is pushed.
pub const TOKEN_WARNING_SECS: i64 = 30;

/// A reply's data plus frames to send right after it.
#[derive(Debug, Default)]
pub struct Reply {
    pub data: Value,
    pub after: Vec<ByteString>,
}

impl Reply {
    fn data(data: Value) -> Self {
        Reply { data, after: Vec::new() }
    }
}

pub struct SessionState {
    pub session_id: String,
    resume_token: String,
    pub room: RoomKey,
    pub user: User,
    pub user_update: bool,
    pub claims: Claims,
    /// How this session's client reached the server (`http://HOST`), for relay URLs; set by
    /// the connection that holds the session.
    pub base_url: Option<String>,
    warned_expiry: bool,
    pub events: mpsc::Receiver<Arc<Delivery>>,
    pub overflowed: Arc<AtomicBool>,
    /// Raised when the session is removed from its room (see [`KickSignal`]).
    pub kicked: Arc<KickSignal>,
    requests: RateLimit,
    messages: RateLimit,
    quality_reports: RateLimit,
}

impl SessionState {
    pub fn resume_token_matches(&self, candidate: &str) -> bool {
        tokens_match(&self.resume_token, candidate)
    }

    pub(super) fn resume_token(&self) -> &str {
        &self.resume_token
    }
}

/// Compares two secrets in constant time.
pub(super) fn tokens_match(secret: &str, candidate: &str) -> bool {
    let (a, b) = (secret.as_bytes(), candidate.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buffer);
    hex::encode(buffer)
}

/// Message ids: milliseconds shifted left 12 bits plus a per-process counter that starts at a
/// random value. Stays below 2^53, so JavaScript numbers hold it exactly.
pub fn next_message_id() -> u64 {
    static COUNTER: std::sync::LazyLock<AtomicU64> =
        std::sync::LazyLock::new(|| AtomicU64::new(rand::random::<u64>() & 0xfff));
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff;
    ((unix_millis() as u64) << 12 | sequence) & ((1 << 53) - 1)
}

async fn verify_token(
    ctx: &SignalingContext,
    app_id: u32,
    token_text: &str,
    user_id: &str,
    room_id: &str,
) -> Result<(Claims, u32), ApiError> {
    // A JWT names its app in the clear: refuse another app's before touching the store. A
    // ZEGO 04 token's app id is inside its encryption, checked once decrypted.
    if !token04::is_token04(token_text) && token::app_id_of(token_text)? != app_id {
        return Err(TokenError::AppMismatch.into());
    }
    let app = ctx.store.active_app(app_id).await?;
    let expected = Expected { app_id, user_id, room_id: Some(room_id) };
    let claims = token::verify_login(token_text, app.server_secret.as_bytes(), expected, unix_now())?;
    Ok((claims, app.max_users_per_room))
}

/// Verifies the token and joins the room.
pub async fn login(ctx: &SignalingContext, request: LoginRequest) -> Result<(SessionState, Reply), ApiError> {
    let started = Instant::now();
    ids::validate_room_id(&request.room_id)?;
    ids::validate_user_id(&request.user.user_id)?;
    // Absent, null or empty: others see the user id rather than a blank name.
    let user_name =
        request.user.user_name.filter(|name| !name.is_empty()).unwrap_or_else(|| request.user.user_id.clone());
    if user_name.len() > limits::MAX_USER_NAME_BYTES {
        return Err(ApiError::new(ErrorCode::InvalidUserName, "userName is longer than 256 bytes"));
    }
    let (claims, max_users) =
        verify_token(ctx, request.app_id, &request.token, &request.user.user_id, &request.room_id).await?;

    let room = RoomKey::new(request.app_id, request.room_id);
    let user = User { user_id: request.user.user_id, user_name };
    let session_id = random_hex(16);
    let (sender, events) = mpsc::channel(limits::SESSION_QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let kicked = Arc::new(KickSignal::default());
    let local = LocalMember {
        session_id: session_id.clone(),
        user_id: user.user_id.clone(),
        sender,
        overflowed: overflowed.clone(),
        kicked: kicked.clone(),
    };
    let login_ms = unix_millis();
    let member = Member {
        user: user.clone(),
        session_id: session_id.clone(),
        worker_id: ctx.rooms.worker_id().to_owned(),
        joined_at: login_ms / 1000,
        joined_ms: login_ms,
    };
    let outcome = ctx.rooms.enter(&room, member, max_users, local).await?;
    let record = SessionStart {
        app_id: room.app_id,
        room_id: room.room_id.clone(),
        user_id: user.user_id.clone(),
        session_id: session_id.clone(),
        login_ms,
        replaced: outcome.replaced_session.clone(),
    };
    if let Err(err) = ctx.usage.session_started(&record).await {
        // A session is acknowledged only once its usage record is written.
        crate::metrics::usage_write_failed("session_started");
        tracing::warn!(%room, error = %err, "login refused: its usage record could not be written");
        if let Err(exit) = ctx.rooms.exit(&room, &user.user_id, &session_id).await {
            tracing::warn!(%room, error = %exit, "leaving after a failed usage record failed too");
        }
        return Err(err.into());
    }
    let state = SessionState {
        session_id,
        resume_token: random_hex(32),
        room,
        user,
        user_update: request.user_update,
        claims,
        base_url: None,
        warned_expiry: false,
        events,
        overflowed,
        kicked,
        requests: RateLimit::new(limits::REQUESTS_PER_SEC, limits::REQUEST_BURST),
        messages: RateLimit::new(limits::MESSAGES_PER_SEC, limits::MESSAGE_BURST),
        quality_reports: RateLimit::new(limits::QUALITY_REPORTS_PER_SEC, limits::QUALITY_REPORT_BURST),
    };
    let view = RoomView::of(&state.room, &outcome.snapshot, &state.user.user_id, state.user_update);
    let reply = state.session_reply(ctx, &view, json!({}));
    crate::metrics::login_completed(started.elapsed());
    crate::metrics::session_started();
    tracing::debug!(room = %state.room, user = %state.user.user_id, "login");
    Ok((state, reply))
}

/// Takes over a parked session after a dropped connection.
pub async fn resume(ctx: &Arc<SignalingContext>, request: ResumeRequest) -> Result<(SessionState, Reply), ApiError> {
    let not_found = || ApiError::new(ErrorCode::SessionNotFound, "no session to resume; log in again");
    if let Some(cause) = ctx.registry.removed(&request.session_id, &request.resume_token) {
        return Err(removed_error(&cause));
    }
    let mut state = ctx.registry.resume(&request.session_id, &request.resume_token).ok_or_else(not_found)?;
    if unix_now() > state.claims.exp + LEEWAY_SECS {
        state.end(ctx, EndReason::TokenExpired).await;
        return Err(TokenError::Expired.into());
    }
    // Membership and streams come from a fresh snapshot; only messages are replayed.
    let mut replay = Vec::new();
    while let Ok(delivery) = state.events.try_recv() {
        match &delivery.event {
            RoomEvent::Kickout { session_id, cause, .. } if *session_id == state.session_id => {
                let cause = cause.clone();
                state.abandon(ctx, Some(&cause)).await;
                return Err(removed_error(&cause));
            }
            RoomEvent::Broadcast { .. } | RoomEvent::Barrage { .. } | RoomEvent::CustomCommand { .. } => {
                replay.extend(protocol::encode_event(&delivery.room, &delivery.event).frames)
            }
            _ => {}
        }
    }
    let missed_messages = state.overflowed.swap(false, Ordering::AcqRel);
    let snapshot = match ctx.rooms.backend().snapshot(&state.room).await {
        Ok(snapshot) => snapshot,
        Err(err) => {
            // Keep the session resumable: the client will retry.
            state.overflowed.store(missed_messages, Ordering::Release);
            ctx.park(state);
            return Err(err.into());
        }
    };
    let still_member = snapshot.members.iter().any(|m| m.session_id == state.session_id);
    if !still_member {
        // The membership went while the connection was down (taken over, or lost with a
        // Redis restart): the session ended with its connection, as far as usage goes (a
        // record a re-login already closed stays as it was).
        state.record_end(ctx, EndReason::HeartbeatTimeout).await;
        state.abandon(ctx, None).await;
        return Err(not_found());
    }
    let view = RoomView::of(&state.room, &snapshot, &state.user.user_id, state.user_update);
    let mut reply = state.session_reply(ctx, &view, json!({"missedMessages": missed_messages}));
    reply.after = replay;
    Ok((state, reply))
}

/// What `resume` answers for a session removed from its room while it was parked.
fn removed_error(cause: &KickCause) -> ApiError {
    match cause {
        KickCause::Replaced => ApiError::new(ErrorCode::KickedOut, "logged in from another connection meanwhile"),
        other => protocol::kickout_error(other).0,
    }
}

impl SessionState {
    /// The reply to login and resume: who the client is, how to resume, and the room.
    fn session_reply(&self, ctx: &SignalingContext, view: &RoomView, extra: Value) -> Reply {
        let mut data = json!({
            "sessionID": self.session_id,
            "resumeToken": self.resume_token,
            "user": self.user,
            "tokenExpiresAt": self.claims.exp,
            "reconnectGraceMs": ctx.config.reconnect_grace.as_millis() as u64,
            "room": view,
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        Reply { data, after: view.as_events(&self.room) }
    }

    /// Applies the per-session rate limits.
    pub fn check_rate(&mut self, request: &Request) -> Result<(), ApiError> {
        let now = Instant::now();
        let allowed = self.requests.allow(now)
            && (!request.is_message() || self.messages.allow(now))
            && (!matches!(request, Request::ReportQuality(_)) || self.quality_reports.allow(now));
        if allowed { Ok(()) } else { Err(ApiError::new(ErrorCode::RateLimited, "too many requests; slow down")) }
    }

    fn same_room(&self, named: &Option<String>) -> Result<(), ApiError> {
        match named {
            Some(room) if *room != self.room.room_id => {
                Err(ApiError::new(ErrorCode::WrongRoom, format!("this session is in room {:?}", self.room.room_id)))
            }
            _ => Ok(()),
        }
    }

    fn message(&self, text: String) -> Result<ImMessage, ApiError> {
        if text.len() > limits::MAX_MESSAGE_BYTES {
            return Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!("message is {} bytes; the limit is {}", text.len(), limits::MAX_MESSAGE_BYTES),
            ));
        }
        Ok(ImMessage {
            message: text,
            from_user: self.user.clone(),
            send_time: unix_millis(),
            message_id: next_message_id(),
        })
    }

    /// Handles a request of a logged-in session (not login, resume or logout).
    pub async fn handle(&mut self, ctx: &SignalingContext, request: Request) -> Result<Reply, ApiError> {
        let rooms = ctx.rooms.backend();
        match request {
            Request::Ping => Ok(Reply::data(json!({"time": unix_millis()}))),
            Request::PublishStream(publish) => {
                self.same_room(&publish.room_id)?;
                super::media::publish(ctx, self, publish).await
            }
            Request::StopPublishingStream(stream) => {
                self.same_room(&stream.room_id)?;
                super::media::stop_publishing(ctx, self, stream).await
            }
            Request::PlayStream(stream) => {
                self.same_room(&stream.room_id)?;
                super::media::play(ctx, self, stream).await
            }
            Request::StopPlayingStream(stream) => {
                self.same_room(&stream.room_id)?;
                super::media::stop_playing(ctx, self, stream).await
            }
            Request::SendBroadcastMessage(request) => {
                self.same_room(&request.room_id)?;
                let message = self.message(request.message)?;
                let message_id = message.message_id;
                rooms.publish(&self.room, RoomEvent::Broadcast { message }).await?;
                Ok(Reply::data(json!({"messageID": message_id})))
            }
            Request::SendBarrageMessage(request) => {
                self.same_room(&request.room_id)?;
                let message = self.message(request.message)?;
                let message_id = message.message_id;
                rooms.publish(&self.room, RoomEvent::Barrage { message }).await?;
                Ok(Reply::data(json!({"messageID": message_id})))
            }
            Request::SendCustomCommand(request) => {
                self.same_room(&request.room_id)?;
                if request.to_user_ids.len() > limits::MAX_COMMAND_TARGETS {
                    return Err(ApiError::new(ErrorCode::TooManyTargets, "at most 100 target users"));
                }
                for user_id in &request.to_user_ids {
                    ids::validate_user_id(user_id)?;
                }
                let message = self.message(request.command)?;
                let message_id = message.message_id;
                rooms
                    .publish(&self.room, RoomEvent::CustomCommand { message, to_user_ids: request.to_user_ids })
                    .await?;
                Ok(Reply::data(json!({"messageID": message_id})))
            }
            Request::SetRoomExtraInfo(request) => {
                self.same_room(&request.room_id)?;
                let key_ok = (1..=limits::MAX_EXTRA_KEY_BYTES).contains(&request.key.len());
                if !key_ok || request.value.len() > limits::MAX_EXTRA_VALUE_BYTES {
                    return Err(ApiError::new(
                        ErrorCode::InvalidExtraInfo,
                        "key must be 1-128 bytes and value at most 4096",
                    ));
                }
                let extra = RoomExtraInfo {
                    key: request.key,
                    value: request.value,
                    update_user: self.user.clone(),
                    update_time: unix_millis(),
                };
                rooms.set_room_extra_info(&self.room, extra, limits::MAX_ROOM_EXTRA_KEYS).await?;
                Ok(Reply::data(json!({})))
            }
            Request::SetStreamExtraInfo(request) => {
                self.same_room(&request.room_id)?;
                if request.extra_info.len() > limits::MAX_EXTRA_VALUE_BYTES {
                    return Err(ApiError::new(ErrorCode::InvalidExtraInfo, "extraInfo is longer than 4096 bytes"));
                }
                rooms
                    .set_stream_extra_info(&self.room, &self.user.user_id, &request.stream_id, &request.extra_info)
                    .await?;
                Ok(Reply::data(json!({"streamID": request.stream_id})))
            }
            Request::MuteStream(request) => {
                self.same_room(&request.room_id)?;
                if request.audio.is_none() && request.video.is_none() {
                    return Err(ApiError::new(
                        ErrorCode::MalformedFrame,
                        "`data` of muteStream: name `audio` and/or `video` (true to mute, false to unmute)",
                    ));
                }
                let stream = rooms
                    .set_publisher_muted(
                        &self.room,
                        &self.user.user_id,
                        &request.stream_id,
                        request.audio,
                        request.video,
                    )
                    .await?;
                crate::metrics::media_mute("publisher", request.audio, request.video);
                Ok(Reply::data(json!({
                    "streamID": stream.stream_id,
                    "publisherAudioMuted": stream.publisher_audio_muted,
                    "publisherVideoMuted": stream.publisher_video_muted,
                    "audioMuted": stream.audio_muted,
                    "videoMuted": stream.video_muted,
                })))
            }
            Request::ReportQuality(report) => {
                self.same_room(&report.room_id)?;
                let now = Instant::now();
                let board = ctx.rooms.hub().quality();
                board.client_report(&self.room, &self.user.user_id, report.upstream, report.downstream, now);
                crate::metrics::quality_sample("client", 1);
                Ok(Reply::data(json!({})))
            }
            Request::RenewToken(request) => {
                let (claims, _) =
                    verify_token(ctx, self.room.app_id, &request.token, &self.user.user_id, &self.room.room_id).await?;
                self.claims = claims;
                self.warned_expiry = false;
                Ok(Reply::data(json!({"tokenExpiresAt": self.claims.exp})))
            }
            Request::Login(_) | Request::Resume(_) => {
                Err(ApiError::new(ErrorCode::AlreadyLoggedIn, "this connection already holds a session"))
            }
            Request::Logout(_) => Err(ApiError::internal("logout reached the generic handler")),
        }
    }

    /// Leaves the room for good (logout, token expiry, grace period over), and closes the
    /// session's usage record with `reason`.
    pub async fn end(self, ctx: &SignalingContext, reason: EndReason) {
        super::media::end_session_media(ctx, &self.session_id).await;
        ctx.rooms.hub().quality().forget(&self.room, &self.user.user_id);
        if let Err(err) = ctx.rooms.exit(&self.room, &self.user.user_id, &self.session_id).await {
            tracing::warn!(
                room = %self.room,
                error = %err,
                "leaving the room failed; the member stays until the room's keys expire or the user logs in again"
            );
        }
        self.record_end(ctx, reason).await;
        crate::metrics::session_ended();
    }

    /// Stops listening without leaving: the session is no longer a member (a newer session
    /// holds the membership, or the business server removed it). After a re-login (no
    /// `cause`, or [`KickCause::Replaced`]) the usage record was closed (`kickout`, at the new
    /// login's time) by the login that replaced it, on whichever worker that ran; after a
    /// server kick or a room close this worker closes it.
    pub async fn abandon(self, ctx: &SignalingContext, cause: Option<&KickCause>) {
        super::media::end_session_media(ctx, &self.session_id).await;
        // Told about by the worker of the session that replaced it, if any: this one must not
        // announce the user as unknown once its last inputs go stale.
        ctx.rooms.hub().quality().forget(&self.room, &self.user.user_id);
        ctx.rooms.stop_listening(&self.room, &self.session_id).await;
        match cause.and_then(removal_end_reason) {
            Some(reason) => self.record_end(ctx, reason).await,
            // Normally a no-op (the login that replaced it closed the record). With queued
            // records (`--usage-queue on`) this login's record may have been committed after
            // that: then this closes it, after it in this room's order.
            None => self.record_end(ctx, EndReason::Kickout).await,
        }
        crate::metrics::session_ended();
    }

    async fn record_end(&self, ctx: &SignalingContext, reason: EndReason) {
        let (room, user) = (&self.room, &self.user.user_id);
        let ended = ctx.usage.session_ended(room.app_id, &room.room_id, user, &self.session_id, reason).await;
        crate::usage::log_failure("session_ended", ended);
    }

    /// After an overflow: drops the queued state events (the resync snapshot that follows
    /// covers them) and returns the queued messages' frames, which nothing else would repeat.
    pub fn drain_for_resync(&mut self) -> Vec<ByteString> {
        let mut frames = Vec::new();
        while let Ok(delivery) = self.events.try_recv() {
            if let RoomEvent::Broadcast { .. } | RoomEvent::Barrage { .. } | RoomEvent::CustomCommand { .. } =
                &delivery.event
            {
                frames.extend(delivery.encoded(protocol::encode_event).frames.iter().cloned());
            }
        }
        frames
    }

    /// The room as read at or after `asked` (when the session learned it must resync), as a
    /// `resync` event, for clients that may have missed events.
    pub async fn resync(&self, ctx: &SignalingContext, asked: std::time::Instant) -> Result<ByteString, ApiError> {
        let snapshot = ctx.rooms.snapshot_since(&self.room, asked).await?;
        let view = RoomView::of(&self.room, &snapshot, &self.user.user_id, self.user_update);
        Ok(protocol::event("resync", serde_json::to_value(&view).unwrap_or_default()))
    }

    /// When something about the token must happen next: the warning, then the end.
    pub fn token_deadline(&self) -> tokio::time::Instant {
        let wait_ms = (self.next_token_step_ms() - unix_millis()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(wait_ms)
    }

    /// Unix milliseconds of the next token step: the warning, then the end (after the
    /// leeway verification also grants). Millisecond precision, so the timer never fires
    /// early and spins.
    fn next_token_step_ms(&self) -> i64 {
        let seconds =
            if self.warned_expiry { self.claims.exp + LEEWAY_SECS + 1 } else { self.claims.exp - TOKEN_WARNING_SECS };
        seconds * 1000
    }

    /// Called at the token deadline: a warning frame, `None` when the token has expired, or
    /// an empty frame when there is nothing to do yet.
    pub fn on_token_deadline(&mut self) -> Option<ByteString> {
        if unix_millis() < self.next_token_step_ms() {
            return Some(ByteString::new());
        }
        if self.warned_expiry {
            return None;
        }
        self.warned_expiry = true;
        Some(protocol::event("tokenWillExpire", json!({"roomID": self.room.room_id, "expiresAt": self.claims.exp})))
    }
}

/// How a session removed from its room ends, for usage; `None` when a re-login replaced it
/// (that login closed the record).
fn removal_end_reason(cause: &KickCause) -> Option<EndReason> {
    match cause {
        KickCause::Replaced => None,
        KickCause::Server { .. } => Some(EndReason::KickedByServer),
        KickCause::RoomClosed { .. } => Some(EndReason::RoomClosed),
    }
}
