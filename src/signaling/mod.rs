//! The websocket endpoint `GET /ws` (protocol in docs/PROTOCOL.md). This module only moves
//! messages: room logic lives in [`crate::rooms`], token checks in [`crate::auth`].

pub mod connection;
pub mod limits;
pub mod media;
pub mod protocol;
pub mod registry;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

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
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(30),
            max_connections: 100_000,
        }
    }
}

/// Shared by all connections of this process.
pub struct SignalingContext {
    pub rooms: RoomService,
    pub store: Store,
    /// The relay streams are published to and played from (this node's own, in `all` mode).
    pub relay: Option<Arc<crate::api::media::RelayNode>>,
    pub registry: registry::Registry,
    pub config: SignalingConfig,
    connections: AtomicUsize,
}

impl SignalingContext {
    pub fn new(
        rooms: RoomService,
        store: Store,
        relay: Option<Arc<crate::api::media::RelayNode>>,
        config: SignalingConfig,
    ) -> Self {
        SignalingContext { rooms, store, relay, registry: Default::default(), config, connections: AtomicUsize::new(0) }
    }

    /// Keeps a dropped session for the grace period, then leaves the room unless resumed.
    pub fn park(self: &Arc<Self>, state: session::SessionState) {
        let session_id = state.session_id.clone();
        let parking = self.registry.park(state);
        let ctx = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ctx.config.reconnect_grace).await;
            if let Some(state) = ctx.registry.expire(&session_id, parking) {
                tracing::debug!(session = %session_id, "reconnect grace over; leaving the room");
                // Leaving is guarded by the session id, so a session kicked while parked
                // leaves nothing behind and takes nothing from its successor.
                state.end(&ctx).await;
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

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Protocol version; default 1.
    v: Option<String>,
}

/// `GET /ws?v=1`: upgrades to the signaling websocket (pages of other origins than the
/// allowed ones are refused first).
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<WsQuery>,
    ctx: web::Data<SignalingContext>,
    origins: web::Data<OriginPolicy>,
) -> Result<HttpResponse, ApiError> {
    crate::api::cors::check_websocket_origin(&req, &origins)?;
    let version_ok = query.v.as_deref().is_none_or(|v| v == protocol::PROTOCOL_VERSION.to_string());
    if !version_ok {
        return Err(ApiError::new(ErrorCode::UnsupportedVersion, "this server speaks protocol version 1 (`?v=1`)"));
    }
    let ctx = ctx.into_inner();
    let slot = ctx
        .take_slot()
        .ok_or_else(|| ApiError::new(ErrorCode::TooManyConnections, "this worker is at its connection limit"))?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedFrame, format!("not a websocket upgrade: {e}")))?;
    let stream = stream
        .max_frame_size(limits::MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(limits::MAX_FRAME_BYTES);
    // Kept per connection only where it is used: a lone node handing out Host-based relay URLs.
    let follows_host = ctx.relay.as_deref().is_some_and(crate::api::media::RelayNode::follows_host);
    let base_url = if follows_host { crate::api::media::base_url_of(&req) } else { None };
    actix_web::rt::spawn(connection::run(ctx, session, stream, slot, base_url));
    Ok(response)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let query_errors = web::QueryConfig::default()
        .error_handler(|err, _| ApiError::new(ErrorCode::InvalidQuery, format!("query: {err}")).into());
    cfg.service(
        crate::api::resource("/ws", [(actix_web::http::Method::GET, web::to(websocket))]).app_data(query_errors),
    );
}
