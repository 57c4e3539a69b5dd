//! The websocket endpoint `GET /ws` (protocol in docs/PROTOCOL.md). This module only moves
//! messages: room logic lives in [`crate::rooms`], token checks in [`crate::auth`].

pub mod connection;
pub mod drain;
pub mod frames;
pub mod limits;
pub mod media;
pub mod protocol;
pub mod quality;
pub mod registry;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::cors::OriginPolicy;
use crate::error::{ApiError, ErrorCode};
use crate::rooms::RoomService;
use crate::store::Store;

/// Timings and caps of the websocket service.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// How often the server pings.
    pub heartbeat_interval: Duration,
    /// Silence (no frame, no pong) after which the connection is considered dead.
    pub heartbeat_timeout: Duration,
    /// How long a dropped session waits for its client to resume.
    pub reconnect_grace: Duration,
    /// Websocket connections this process accepts at once.
    pub max_connections: usize,
    /// Players go to another relay (a cascade edge) once the stream's relay announces this
    /// many peers and another announces fewer (0: never).
    pub cascade_above: u64,
    /// Where this node runs (empty: unnamed). Relays announce it; clients of this node are sent
    /// to relays of the same region when there are any.
    pub region: String,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(30),
            max_connections: 100_000,
            cascade_above: 400,
            region: String::new(),
        }
    }
}

/// Shared by all connections of this process.
pub struct SignalingContext {
    pub rooms: RoomService,
    pub store: Store,
    /// The relay streams are published to and played from (this node's own, in `all` mode).
    pub relay: Option<Arc<crate::media::MediaService>>,
    pub registry: registry::Registry,
    pub config: SignalingConfig,
    /// Serving, or leaving gracefully (see [`drain`]).
    pub drain: drain::Drain,
    /// TURN servers whose credentials go out with publish and play replies.
    pub turn: Option<Arc<crate::auth::turn::TurnConfig>>,
    /// Usage records (and webhook events) of sessions and streams.
    pub usage: crate::usage::Usage,
    connections: AtomicUsize,
}

impl SignalingContext {
    pub fn new(
        rooms: RoomService,
        store: Store,
        relay: Option<Arc<crate::media::MediaService>>,
        config: SignalingConfig,
    ) -> Self {
        let usage =
            crate::usage::Usage::new(store.clone(), rooms.worker_id(), false, Duration::from_secs(15), false, false);
        SignalingContext {
            rooms,
            store,
            relay,
            registry: Default::default(),
            config,
            drain: Default::default(),
            turn: None,
            usage,
            connections: AtomicUsize::new(0),
        }
    }

    /// Websocket connections open on this process.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Hands out credentials of these TURN servers with every publish and play reply.
    pub fn with_turn(mut self, turn: Option<Arc<crate::auth::turn::TurnConfig>>) -> Self {
        self.turn = turn;
        self
    }

    /// Records usage (and queues webhooks) through `usage` (disabled until this is called).
    pub fn with_usage(mut self, usage: crate::usage::Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Keeps a dropped session for the grace period, then leaves the room unless resumed.
    pub fn park(self: &Arc<Self>, state: session::SessionState) {
        let session_id = state.session_id.clone();
        let kicked = state.kicked.clone();
        let parking = self.registry.park(state);
        let ctx = self.clone();
        tokio::spawn(async move {
            // Removed from the room meanwhile (a newer login, the business server): the
            // session ends at once (its relay peers with it) rather than after the grace.
            let removed = tokio::select! {
                _ = tokio::time::sleep(ctx.config.reconnect_grace) => None,
                cause = kicked.removed() => Some(cause),
            };
            let Some(state) = ctx.registry.expire(&session_id, parking) else { return };
            match removed {
                None => {
                    tracing::debug!(session = %session_id, "reconnect grace over; leaving the room");
                    // Leaving is guarded by the session id, so a session kicked while parked
                    // leaves nothing behind and takes nothing from its successor. The
                    // connection was lost and not resumed: a heartbeat timeout, for usage.
                    state.end(&ctx, crate::usage::EndReason::HeartbeatTimeout).await;
                }
                Some(cause) => {
                    tracing::debug!(session = %session_id, ?cause, "parked session removed from its room");
                    ctx.registry.remember_removed(&state, cause.clone(), ctx.config.reconnect_grace);
                    state.abandon(&ctx, Some(&cause)).await;
                }
            }
        });
    }

    /// Takes a connection slot, or refuses when the process is at its cap.
    fn take_slot(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let taken = self.connections.fetch_add(1, Ordering::AcqRel);
        if taken >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        crate::metrics::ws_connection_opened();
        Some(ConnectionSlot(self.clone()))
    }
}

/// One counted connection; released when dropped.
pub struct ConnectionSlot(Arc<SignalingContext>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::ws_connection_closed();
    }
}

/// The protocol version a query string asks for (`v`; absent means 1). Refuses a query string
/// that is not well-formed `application/x-www-form-urlencoded` (a `%` not followed by two hex
/// digits anywhere, names or values that do not decode to UTF-8) and a repeated `v`; other
/// parameters are ignored.
fn requested_version(query: &str) -> Result<Option<String>, ApiError> {
    let malformed = |what: String| ApiError::new(ErrorCode::InvalidQuery, format!("malformed query string: {what}"));
    let mut version = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name).ok_or_else(|| malformed(format!("cannot decode {name:?}")))?;
        let value = form_decode(value).ok_or_else(|| malformed(format!("cannot decode {value:?}")))?;
        if name == "v" && version.replace(value).is_some() {
            return Err(malformed("`v` is given more than once".into()));
        }
    }
    Ok(version)
}

/// Strict form decoding: `+` is a space, `%XY` a byte; anything else after `%`, or bytes that
/// are not UTF-8, is `None`.
fn form_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = char::from(input.next()?).to_digit(16)?;
                let low = char::from(input.next()?).to_digit(16)?;
                (high * 16 + low) as u8
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

/// `GET /ws?v=1`: upgrades to the signaling websocket. Checked in this order: the query
/// string, the page's origin, the version, the connection cap, the upgrade itself.
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    ctx: web::Data<SignalingContext>,
    origins: web::Data<OriginPolicy>,
) -> Result<HttpResponse, ApiError> {
    let version = requested_version(req.query_string())?;
    crate::api::cors::check_websocket_origin(&req, &origins)?;
    if ctx.drain.is_draining() {
        return Err(draining());
    }
    let version_ok = version.as_deref().is_none_or(|v| v == protocol::PROTOCOL_VERSION.to_string());
    if !version_ok {
        return Err(ApiError::new(ErrorCode::UnsupportedVersion, "this server speaks protocol version 1 (`?v=1`)"));
    }
    let ctx = ctx.into_inner();
    let slot = ctx
        .take_slot()
        .ok_or_else(|| ApiError::new(ErrorCode::TooManyConnections, "this worker is at its connection limit"))?;
    // actix-ws answers the upgrade and writes frames; the frames from the client are read here
    // (frames::FrameReader), so actix-ws gets an empty body for the reader it would build.
    let mut no_body = actix_web::dev::Payload::None;
    let empty =
        <web::Payload as actix_web::FromRequest>::from_request(&req, &mut no_body).await.map_err(ApiError::internal)?;
    let (response, session, _) = actix_ws::handle(&req, empty)
        .map_err(|e| ApiError::new(ErrorCode::MalformedFrame, format!("not a websocket upgrade: {e}")))?;
    let frames = frames::FrameReader::new(body.into_inner(), limits::MAX_FRAME_BYTES);
    // Kept per connection only where it is used: a lone node handing out Host-based relay URLs.
    let follows_host = ctx.relay.as_deref().is_some_and(crate::media::MediaService::follows_host);
    let base_url = if follows_host { crate::media::base_url_of(&req) } else { None };
    actix_web::rt::spawn(connection::run(ctx, session, frames, slot, base_url));
    Ok(response)
}

/// What new websockets, logins and relay sessions get while this worker drains.
pub fn draining() -> ApiError {
    ApiError::new(ErrorCode::Draining, "this worker is shutting down; connect again (to another worker)")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::api::resource("/ws", [(actix_web::http::Method::GET, web::to(websocket))]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_strictly() {
        let version = |query: &str| requested_version(query).map_err(|e| e.code);
        assert_eq!(version(""), Ok(None));
        assert_eq!(version("v=1"), Ok(Some("1".into())));
        assert_eq!(version("v=%31&sdk=web%2F1.0+beta&flag&&"), Ok(Some("1".into())));
        assert_eq!(version("v=2"), Ok(Some("2".into())));
        assert_eq!(version("v"), Ok(Some("".into())));
        for bad in ["v=%ZZ", "v=1&%zz=1", "v=1&x=%", "v=1&x=%4", "v=%FF", "v=1&v=1", "v=1&x=%e2%82"] {
            assert_eq!(version(bad), Err(ErrorCode::InvalidQuery), "{bad}");
        }
    }
}
