//! Wiring: build the shared state from settings, then serve HTTP until a shutdown signal.

use std::net::TcpListener;

use actix_web::{App, HttpServer, middleware, web};
use redis::aio::ConnectionManager;
use thiserror::Error;

use std::sync::Arc;
use std::time::Duration;

use crate::api;
use crate::auth::NonceStore;
use crate::auth::turn::TurnConfig;
use crate::config::Settings;
use crate::config::{DevMode, Role};
use crate::media::{MediaService, RoomsLink};
use crate::relay::{Relay, RelayEvent};
use crate::rooms::redis::{RedisRooms, RedisRoomsConfig};
use crate::rooms::{Hub, RelayInfo, RoomError, RoomService};
use crate::signaling::SignalingContext;
use crate::store::{NewApp, Store, StoreError, redact_url};
use crate::usage::{EndReason, Usage};
use crate::webhooks::dispatcher::Dispatcher;
use tokio::sync::mpsc::UnboundedReceiver;

/// What every request handler can reach. Workers share it; nothing in it is per-connection.
pub struct AppState {
    pub store: Store,
    pub nonces: NonceStore,
    /// Present when `REDIS_URL` is set.
    pub redis: Option<ConnectionManager>,
    pub dev: bool,
    pub signaling: Arc<SignalingContext>,
    /// The media relay of this node (absent on `--role signaling`).
    pub relay: Option<Arc<MediaService>>,
    pub role: Role,
    /// TURN servers whose credentials go out with media grants (`--turn-urls`).
    pub turn: Option<Arc<TurnConfig>>,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot open the database {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error("cannot connect to Redis at {url}: {source}")]
    Redis { url: String, source: redis::RedisError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot start the media relay: {0}")]
    Relay(crate::relay::RelayError),
    #[error("cannot start the Redis room backend: {0}")]
    Rooms(RoomError),
    #[error("cannot prepare the dev app: {0}")]
    DevApp(StoreError),
    #[error(
        "dev mode was asked for, but app 1 is a real app (\"{0}\"), not the dev app: dev mode would mint tokens for it; \
         run without --dev, or on a store of its own"
    )]
    DevAppTaken(String),
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error("cannot start usage records: {0}")]
    Usage(crate::usage::UsageError),
    #[error("cannot start the webhook dispatcher: {0}")]
    Webhooks(String),
}

impl AppState {
    /// Refuses new work while this worker drains (1010: connect again, to another worker).
    pub fn refuse_if_draining(&self) -> Result<(), crate::error::ApiError> {
        if self.signaling.drain.is_draining() { Err(crate::signaling::draining()) } else { Ok(()) }
    }

    /// `http_addr` is the bound HTTP address (for the default public URL).
    pub async fn build(settings: &Settings, http_addr: std::net::SocketAddr) -> Result<AppState, StartError> {
        let store = Store::open(&settings.database_url)
            .await
            .map_err(|source| StartError::Store { url: redact_url(&settings.database_url), source })?;
        let redis = match &settings.redis_url {
            None => None,
            Some(url) => {
                let redis_error = |source| StartError::Redis { url: redact_url(url), source };
                let client = redis::Client::open(url.as_str()).map_err(redis_error)?;
                Some(
                    crate::rooms::redis::connection_manager(client, settings.redis_timeout)
                        .await
                        .map_err(redis_error)?,
                )
            }
        };
        let nonces = match &redis {
            Some(connection) => NonceStore::redis(connection.clone(), settings.nonce_cap_per_app),
            None => NonceStore::memory(settings.nonce_cap_per_app),
        };
        let dev = decide_dev_mode(&store, settings.dev).await?;
        // Usage records are written under a worker id that no earlier run used: the Redis
        // worker id, or a fresh one (in-memory rooms call every process "local").
        let usage_worker = uuid::Uuid::new_v4().simple().to_string();
        let usage = Usage::new(
            store.clone(),
            usage_worker.clone(),
            settings.usage_records,
            settings.redis_lease,
            settings.redis_url.is_some(),
            settings.usage_queue && settings.redis_url.is_some(),
        );
        if settings.usage_queue && settings.redis_url.is_none() {
            tracing::warn!("--usage-queue on has no effect without Redis: logins wait for their usage rows");
        }
        let rooms = match &settings.redis_url {
            None => RoomService::in_memory(),
            Some(url) => {
                let hub = Arc::new(Hub::default());
                let worker_id = usage_worker.clone();
                let config = RedisRoomsConfig { lease: settings.redis_lease, timeout: settings.redis_timeout };
                // The lease reaper closes the usage records of the workers it reaps.
                let hook: Arc<dyn crate::rooms::ReapHook> = Arc::new(usage.clone());
                let backend = RedisRooms::start(url, hub.clone(), worker_id.clone(), config, Some(hook))
                    .await
                    .map_err(StartError::Rooms)?;
                tracing::info!(worker = %worker_id, "rooms in Redis");
                RoomService::new(backend, hub, worker_id)
            }
        };
        let node_id = rooms.worker_id().to_owned();
        let turn = settings.turn.clone().map(Arc::new);
        if let Some(turn) = &turn {
            tracing::info!(urls = ?turn.urls(), ttl_secs = turn.ttl_secs(), "TURN credentials go out with media grants");
        }
        usage.clone().start().await.map_err(StartError::Usage)?;
        if settings.usage_records {
            let dispatcher = Dispatcher::new(store.clone(), usage_worker, settings.webhooks.clone())
                .map_err(|e| StartError::Webhooks(e.to_string()))?;
            tokio::spawn(dispatcher.run());
        } else {
            tracing::warn!(
                "usage records are off (--usage-records off): no session or stream is recorded, no webhook sent"
            );
        }
        // The media service is wired once: the relay, its events, and what they update.
        let relay = match settings.role {
            Role::Signaling => None,
            Role::All | Role::Relay => {
                let link = RoomsLink { rooms: rooms.clone(), store: store.clone(), usage: usage.clone() };
                Some(start_relay(settings, http_addr, link)?)
            }
        };
        let signaling = Arc::new(
            SignalingContext::new(
                rooms,
                store.clone(),
                relay.as_ref().map(|(node, _)| node.clone()),
                settings.signaling.clone(),
            )
            .with_turn(turn.clone())
            .with_usage(usage),
        );
        crate::signaling::quality::publish_changes(signaling.clone());
        let relay = match relay {
            Some((node, events)) => {
                node.clone().follow(events);
                node.clone().publish_link_levels();
                // Announced before the node says it listens: a relay that is up can be chosen.
                let info = relay_info(&node, &node_id, &signaling.config.region);
                if let Err(err) = signaling.rooms.backend().announce_relay(info).await {
                    tracing::warn!(error = %err, "could not announce the relay");
                }
                announce_relay(signaling.clone(), node.clone(), node_id);
                Some(node)
            }
            None => None,
        };
        Ok(AppState { store, nonces, redis, dev, signaling, relay, role: settings.role, turn })
    }
}

/// Starts the media engine; its events come out of the returned receiver.
fn start_relay(
    settings: &Settings,
    http_addr: std::net::SocketAddr,
    link: RoomsLink,
) -> Result<(Arc<MediaService>, UnboundedReceiver<RelayEvent>), StartError> {
    let (events, received) = tokio::sync::mpsc::unbounded_channel();
    let relay = Relay::start(settings.relay.clone(), events).map_err(StartError::Relay)?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
    let follows_host = settings.public_url.is_none() && settings.redis_url.is_none();
    if follows_host {
        tracing::info!(udp = %relay.local_addr(), "relay started; relay URLs follow the Host each client used");
    } else {
        tracing::info!(udp = %relay.local_addr(), %public_url, "relay started");
    }
    let node = MediaService::new(Arc::new(relay), public_url, follows_host, link);
    Ok((Arc::new(node), received))
}

/// Tells the rooms backend where this relay is and how busy, every few seconds, so that
/// signaling nodes can send publishers to the least-loaded relay.
fn announce_relay(signaling: Arc<SignalingContext>, node: Arc<MediaService>, node_id: String) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            ticker.tick().await;
            if signaling.drain.is_draining() {
                return; // withdrawn by the drain: no new streams for it
            }
            if let Err(err) =
                signaling.rooms.backend().announce_relay(relay_info(&node, &node_id, &signaling.config.region)).await
            {
                tracing::warn!(error = %err, "could not announce the relay");
            }
            if signaling.drain.is_draining() {
                // The drain began during the announcement: take it back.
                let _ = signaling.rooms.backend().withdraw_relay(&node_id).await;
                return;
            }
        }
    });
}

/// What a relay announces: where it is and how busy.
fn relay_info(node: &MediaService, node_id: &str, region: &str) -> RelayInfo {
    let load = node.load();
    RelayInfo {
        id: node_id.to_owned(),
        url: node.public_url().to_owned(),
        peers: load.peers as u64,
        streams: load.streams as u64,
        region: region.to_owned(),
        updated_at: crate::rooms::unix_millis(),
    }
}

/// Settles dev mode and says at start-up which it is. Asked for, it is on (with the dev app
/// created on first start); on embedded defaults it is on only while the store holds no app
/// but the dev app, so `huddle app create` followed by `huddle serve` never serves tokens
/// for a real app.
async fn decide_dev_mode(store: &Store, mode: DevMode) -> Result<bool, StartError> {
    let real_apps = || async {
        let apps = store.list_apps().await.map_err(StartError::DevApp)?;
        Ok::<usize, StartError>(apps.iter().filter(|app| !api::dev::is_dev_app(app)).count())
    };
    let on = match mode {
        DevMode::Off => false,
        DevMode::On => true,
        DevMode::Auto => {
            let real = real_apps().await?;
            if real > 0 {
                tracing::info!(
                    apps = real,
                    "dev mode is off: the store holds apps of its own (pass --dev to turn it on for the dev app only)"
                );
            }
            real == 0
        }
    };
    if on {
        ensure_dev_app(store).await?;
        tracing::warn!(
            app_id = api::dev::DEV_APP_ID,
            "dev mode is on: GET /dev/token mints tokens of the dev app for anyone; never expose this to a network"
        );
    } else {
        tracing::info!("dev mode is off: GET /dev/token is not served");
    }
    Ok(on)
}

/// Dev mode needs an app to mint tokens for: app 1 named "dev", created on first start. An
/// app 1 that an operator created for real is never used as the dev app.
async fn ensure_dev_app(store: &Store) -> Result<(), StartError> {
    if let Some(app) = store.find_app(api::dev::DEV_APP_ID).await.map_err(StartError::DevApp)? {
        return if api::dev::is_dev_app(&app) { Ok(()) } else { Err(StartError::DevAppTaken(app.name)) };
    }
    let new =
        NewApp { app_id: Some(api::dev::DEV_APP_ID), name: api::dev::DEV_APP_NAME.to_owned(), ..NewApp::default() };
    match store.create_app(new).await {
        Ok(_) | Err(StoreError::AppExists(_)) => Ok(()),
        Err(err) => Err(StartError::DevApp(err)),
    }
}

/// SIGTERM or SIGINT: drain (clients move to other workers, see `signaling::drain`; on a relay
/// node, `move_media`: its publishers move to other relays), then stop the HTTP server. A
/// second signal stops at once.
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    signaling: Arc<SignalingContext>,
    drain: Duration,
    move_media: bool,
) {
    shutdown_signal().await;
    if drain.is_zero() {
        tracing::info!("shutdown signal: stopping");
    } else {
        tokio::select! {
            _ = crate::signaling::drain::run(&signaling, drain, move_media) => {}
            _ = shutdown_signal() => tracing::warn!("second shutdown signal: stopping without finishing the drain"),
        }
    }
    server.stop(true).await;
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Sets `TCP_USER_TIMEOUT` on an accepted connection.
fn drop_stalled_peers_after(connection: &dyn std::any::Any, limit: std::time::Duration) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(limit))
    {
        tracing::debug!(error = %err, "could not set TCP_USER_TIMEOUT");
    }
}

/// Serves until SIGINT/SIGTERM. Prints `huddle listening on http://ADDR` on stdout once
/// bound (tests and scripts wait for that line; with port 0 it tells the chosen port).
pub async fn run(settings: Settings) -> Result<(), StartError> {
    let listener = TcpListener::bind(settings.http_addr)
        .map_err(|source| StartError::Bind { addr: settings.http_addr.to_string(), source })?;
    let local_addr = listener.local_addr().map_err(StartError::Server)?;
    let state = web::Data::new(AppState::build(&settings, local_addr).await?);
    if !state.dev && settings.allowed_origins.is_none() {
        tracing::warn!(
            "pages of any origin may open the websocket and call the HTTP API; \
             restrict them with --allowed-origins / HUDDLE_ALLOWED_ORIGINS (e.g. https://app.example.com)"
        );
    }
    let origins = web::Data::new(api::cors::OriginPolicy::new(
        settings.allowed_origins.clone().unwrap_or_default(),
        settings.public_url.as_deref(),
    ));
    tracing::info!(
        addr = %local_addr,
        store = state.store.backend().name(),
        redis = state.redis.is_some(),
        dev = state.dev,
        "huddle started"
    );
    let dev = state.dev;
    let role = state.role;
    let server_state = state.clone();
    let signaling = web::Data::from(state.signaling.clone());
    let unacknowledged_limit = settings.signaling.heartbeat_timeout;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(server_state.clone())
            .app_data(signaling.clone())
            .app_data(origins.clone())
            // CORS inside the metrics, so that preflights it answers are counted too.
            .wrap(api::cors::layer(&origins))
            .wrap(middleware::from_fn(api::record_metrics))
            .configure(|cfg| api::configure(cfg, dev, role))
            .default_service(web::to(api::not_found))
    })
    .workers(settings.http_workers)
    // Realtime traffic is many small frames: without this, a reply written right after an
    // unacknowledged frame waits for the peer's delayed ACK (~40 ms).
    .tcp_nodelay(true)
    // A peer that acknowledges nothing (a client that stopped reading keeps answering
    // zero-window probes) would hold its socket for ever once the websocket gave up on it:
    // the kernel drops a connection whose data stays unacknowledged this long.
    .on_connect(move |connection, _| drop_stalled_peers_after(connection, unacknowledged_limit))
    // Signals are handled below (drain first); what is left after the drain gets a second.
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(|source| StartError::Bind { addr: local_addr.to_string(), source })?
    .run();
    let move_media = settings.role == Role::Relay;
    actix_web::rt::spawn(stop_on_signal(server.handle(), state.signaling.clone(), settings.drain_timeout, move_media));
    println!("huddle listening on http://{local_addr}");
    server.await.map_err(StartError::Server)?;
    // Whatever is still open here ends now (without a drain, nothing ended it).
    state.signaling.usage.close_own(EndReason::Shutdown).await;
    Dispatcher::release(&state.store, state.signaling.usage.worker_id()).await;
    state.store.close().await;
    tracing::info!("huddle stopped");
    Ok(())
}
