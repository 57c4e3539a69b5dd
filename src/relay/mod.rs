//! The media relay: a small SFU on [`str0m`] (sans-IO WebRTC).
//!
//! ```no_run
//! # async fn demo(offer: String, player_offer: String) -> Result<(), huddle::relay::RelayError> {
//! use huddle::relay::{Relay, RelayConfig, StreamKey};
//! let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
//! let relay = Relay::start(RelayConfig { udp_addr: "127.0.0.1:0".parse().unwrap(), public_ips: vec![] }, events)?;
//! let key = StreamKey { app_id: 1, stream_id: "cam".into() };
//! let (publisher, answer) = relay.publish(key.clone(), offer).await?;
//! let (player, player_answer) = relay.play(key, player_offer).await?;
//! relay.close(publisher).await?; // ends `player` too
//! # Ok(()) }
//! ```
//!
//! Design:
//! - One engine thread (`engine.rs`) owns every [`str0m::Rtc`] and the one UDP socket; the
//!   [`Relay`] handle talks to it by messages (a command channel plus a oneshot reply), so the
//!   async methods never block their runtime and no `Rtc` is ever shared behind a lock.
//! - ICE-lite on one advertised port; datagrams are demultiplexed in O(1): by remote address, and
//!   STUN from a new address by the ICE ufrag in its USERNAME (peer-reflexive remotes work).
//! - RTP mode: each publisher packet is rewritten (payload type, sequence number) once per
//!   player and handed to the player's `StreamTx` without copying its payload; video is written
//!   as nackable so str0m answers NACKs from its send buffer.
//! - Keyframes are requested from the publisher when a player starts or asks (PLI/FIR), at most
//!   one per [`KEYFRAME_INTERVAL`] per publisher; a new player's VP8/VP9 video starts on a keyframe.
//!
//! One engine thread serves all peers and one socket; it is the unit to shard later (see the
//! limits noted in `engine.rs`).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::sync::{mpsc::UnboundedSender, oneshot};

mod engine;
mod forward;
mod peer;
#[cfg(test)]
mod tests;

/// At most one keyframe request per publisher in this interval.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// A peer that has not connected (ICE + DTLS) by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the relay listens and what it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Bind address of the one UDP socket, e.g. `127.0.0.1:0`.
    pub udp_addr: SocketAddr,
    /// IPs advertised as host candidates (same port as the socket). Empty: the bound IP, which
    /// must then be concrete (not `0.0.0.0`/`::`).
    pub public_ips: Vec<IpAddr>,
}

/// One published stream: an app's stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub app_id: u32,
    pub stream_id: String,
}

/// A relay session (publisher or player), unique within one [`Relay`].
pub type PeerId = u64;

/// What the relay reports, in order, on the channel given to [`Relay::start`].
///
/// Every accepted session ends with exactly one `StreamStopped` (publisher) or `PlayerStopped`
/// (player), also when it never connected, so bookkeeping keyed by [`PeerId`] can be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The publisher's media is flowing (ICE+DTLS connected and first RTP received).
    StreamLive { stream: StreamKey, peer: PeerId },
    /// The publisher is gone (closed via API, ICE timeout/disconnect, DTLS close) — its players were closed too.
    StreamStopped { stream: StreamKey, peer: PeerId },
    /// A player connected (ICE+DTLS).
    PlayerStarted { stream: StreamKey, peer: PeerId },
    /// A player ended.
    PlayerStopped { stream: StreamKey, peer: PeerId },
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    #[error("the offer has no audio or video to receive/send")]
    NoMedia,
    #[error("stream {0} already has a publisher")]
    AlreadyPublished(String),
    #[error("stream {0} is not being published on this relay")]
    UnknownStream(String),
    #[error("no such relay session")]
    UnknownPeer,
    #[error("relay unavailable: {0}")]
    Unavailable(String),
}

/// Current sessions, for load-based relay selection and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayLoad {
    /// Publishers plus players.
    pub peers: usize,
    /// Streams with a publisher.
    pub streams: usize,
}

/// Monotonic counters since start (UDP datagrams and bytes as seen on the socket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// RTP packets handed to a player (one publisher packet to three players counts three).
    pub forwarded: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
}

/// Counters the engine writes and the handle reads.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    peers: AtomicUsize,
    streams: AtomicUsize,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    forwarded: AtomicU64,
    keyframe_requests: AtomicU64,
}

impl Shared {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, RelayError>>;

/// Messages from the handle to the engine thread.
pub(crate) enum Command {
    Publish { stream: StreamKey, offer: String, reply: Reply<(PeerId, String)> },
    Play { stream: StreamKey, offer: String, reply: Reply<(PeerId, String)> },
    Close { peer: PeerId, reply: Reply<()> },
}

/// Handle to a running relay. Cheap to clone; the engine stops when the last clone is dropped.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("local_addr", &self.inner.local_addr).field("load", &self.load()).finish()
    }
}

impl Relay {
    /// Binds the UDP socket and starts the engine thread. Events are sent on `events`.
    pub fn start(config: RelayConfig, events: UnboundedSender<RelayEvent>) -> Result<Relay, RelayError> {
        Self::start_with(config, events, CONNECT_TIMEOUT)
    }

    pub(crate) fn start_with(
        config: RelayConfig,
        events: UnboundedSender<RelayEvent>,
        connect_timeout: Duration,
    ) -> Result<Relay, RelayError> {
        let socket = UdpSocket::bind(config.udp_addr)
            .map_err(|e| RelayError::Unavailable(format!("cannot bind UDP {}: {e}", config.udp_addr)))?;
        let local_addr = socket.local_addr().map_err(|e| RelayError::Unavailable(e.to_string()))?;
        let ips = if config.public_ips.is_empty() { vec![local_addr.ip()] } else { config.public_ips.clone() };
        let candidates: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, local_addr.port())).collect();
        for addr in &candidates {
            // The same check str0m makes when each session adds it: fail at start, not per offer.
            str0m::Candidate::host(*addr, "udp").map_err(|e| {
                RelayError::Unavailable(format!("cannot advertise {addr} (set a concrete public IP): {e}"))
            })?;
        }
        let shared = Arc::new(Shared::default());
        let (commands, rx) = mpsc::channel();
        let engine = engine::Engine::new(socket, candidates, events, Arc::clone(&shared), connect_timeout)?;
        std::thread::Builder::new()
            .name("huddle-relay".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| RelayError::Unavailable(format!("cannot start the relay thread: {e}")))?;
        Ok(Relay { inner: Arc::new(Inner { commands, local_addr, shared }) })
    }

    /// Accepts a publisher's SDP offer (sendonly or sendrecv audio/video); returns the peer id and the SDP answer.
    pub async fn publish(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        self.ask(|reply| Command::Publish { stream, offer, reply }).await
    }

    /// Accepts a player's SDP offer (recvonly); fails with UnknownStream if nobody publishes `stream` here.
    pub async fn play(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        self.ask(|reply| Command::Play { stream, offer, reply }).await
    }

    /// Ends a publisher (which ends its players) or a player.
    pub async fn close(&self, peer: PeerId) -> Result<(), RelayError> {
        self.ask(|reply| Command::Close { peer, reply }).await
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Current peers and published streams.
    pub fn load(&self) -> RelayLoad {
        let s = &self.inner.shared;
        RelayLoad { peers: s.peers.load(Ordering::Relaxed), streams: s.streams.load(Ordering::Relaxed) }
    }

    /// Traffic counters since start.
    pub fn stats(&self) -> RelayStats {
        let s = &self.inner.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            packets_in: get(&s.packets_in),
            packets_out: get(&s.packets_out),
            bytes_in: get(&s.bytes_in),
            bytes_out: get(&s.bytes_out),
            forwarded: get(&s.forwarded),
            keyframe_requests: get(&s.keyframe_requests),
        }
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, RelayError> {
        let (reply, answer) = oneshot::channel();
        self.inner.commands.send(command(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> RelayError {
    RelayError::Unavailable("the relay engine has stopped".into())
}
