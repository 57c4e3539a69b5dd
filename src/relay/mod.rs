//! The media relay: a small SFU on [`str0m`] (sans-IO WebRTC).
//!
//! ```no_run
//! # async fn demo(offer: String, player_offer: String) -> Result<(), huddle::relay::RelayError> {
//! use huddle::relay::{Relay, RelayConfig, StreamKey};
//! let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
//! let config =
//!     RelayConfig { udp_addr: "127.0.0.1:0".parse().unwrap(), public_ips: vec![], threads: 0, udp_segmentation: true };
//! let relay = Relay::start(config, events)?;
//! let key = StreamKey { app_id: 1, stream_id: "cam".into() };
//! let (publisher, answer) = relay.publish(key.clone(), offer).await?;
//! let (player, player_answer) = relay.play(key, player_offer).await?;
//! relay.close(publisher).await?; // ends `player` too
//! # Ok(()) }
//! ```
//!
//! Design:
//! - The relay is sharded: [`RelayConfig::threads`] engine threads (`shard.rs`), each owning
//!   its own UDP socket and an engine (`engine.rs`) with every [`str0m::Rtc`] on it. The
//!   engine is sans-IO like str0m: datagrams, time and commands in, datagrams and events out
//!   of queues, so it is tested on a virtual clock (`tests/virtual_clock.rs`). The [`Relay`]
//!   handle talks to the threads by messages (a command channel plus a oneshot reply), so the
//!   async methods never block their runtime and no `Rtc` is ever shared behind a lock.
//! - A stream's publisher goes to the shard with the fewest peers (its origin); its players go
//!   to the origin too until another shard has [`SPREAD_MARGIN`] fewer peers, then to the
//!   least loaded shard. The origin hands each packet once to every other shard with players
//!   of the stream (`crossing.rs`), so one stream's audience uses every core while a small
//!   room's packets never cross threads. A directory shared by the handle and the engines
//!   says which shard holds which stream. Peer ids are `k * shards + shard`, so
//!   [`Relay::close`] knows the shard from the id alone.
//! - ICE-lite on one advertised port per shard; datagrams are demultiplexed in O(1): by remote
//!   address, and STUN from a new address by the ICE ufrag in its USERNAME (peer-reflexive
//!   remotes work).
//! - RTP mode: each publisher packet is rewritten (payload type, sequence number) once per
//!   player and handed to the player's `StreamTx` without copying its payload; video is written
//!   as nackable so str0m answers NACKs from its send buffer.
//! - Keyframes are requested from the publisher when a player starts or asks (PLI/FIR), at most
//!   one per [`KEYFRAME_INTERVAL`] per publisher; a new player's VP8/VP9 video starts on a keyframe.
//!
//! Limits: a publisher's packets are received, decrypted and handed off by its one origin
//! shard; what scales over the cores is the per-player work (rewrite, SRTP, send).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc::UnboundedSender, oneshot};

mod crossing;
mod engine;
mod forward;
mod peer;
mod sdp;
mod shard;
mod simulcast;
#[cfg(test)]
mod tests;
mod udp_out;

/// At most one keyframe request per publisher in this interval.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// A peer that has not connected (ICE + DTLS) by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most engine threads (shards) one relay runs; `threads: 0` is capped at this too (a stream's
/// shards are a 64-bit set).
pub const MAX_THREADS: usize = 64;
/// A new player joins its stream's origin shard unless another shard has at least this many
/// fewer peers: small audiences stay on one thread (no hand-off), large ones spread evenly.
pub const SPREAD_MARGIN: usize = 8;

/// Where the relay listens, what it advertises and how many engine threads it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Bind address of the first shard's UDP socket, e.g. `127.0.0.1:0`. The other shards bind
    /// the same IP: with port 0 each on a free port, with a fixed port P on P+1, P+2, … (so a
    /// fixed port P takes the range P..P+threads-1).
    pub udp_addr: SocketAddr,
    /// IPs advertised as host candidates (each shard advertises them with its own port). Empty:
    /// the bound IP, which must then be concrete (not `0.0.0.0`/`::`).
    pub public_ips: Vec<IpAddr>,
    /// Engine threads (shards), each with its own UDP socket. 0: one per available core (at
    /// most [`MAX_THREADS`]).
    pub threads: usize,
    /// Send a run of equal datagrams to one destination (a video frame's packets to one
    /// player) as one segmented message (`UDP_SEGMENT`); off: one message per datagram. The
    /// relay turns it off by itself if the kernel refuses.
    pub udp_segmentation: bool,
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
    /// `bytes`: what the stream moved through this relay over its life.
    StreamStopped { stream: StreamKey, peer: PeerId, bytes: MediaBytes },
    /// A player connected (ICE+DTLS).
    PlayerStarted { stream: StreamKey, peer: PeerId },
    /// A player ended.
    PlayerStopped { stream: StreamKey, peer: PeerId },
}

/// UDP bytes of one published stream: received from its publisher, and sent to all of its
/// players (those that left before it included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaBytes {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The offer does not parse or cannot be negotiated; the message says where and why.
    #[error("{0}")]
    BadOffer(String),
    #[error("the offer has no audio or video to receive/send")]
    NoMedia,
    /// The offer's audio/video sections name no codec the relay (to publish) or the stream (to
    /// play) uses: `offered` lists theirs, `usable` says what would do.
    #[error("no supported codec in the offer: it offers {offered}; {usable}")]
    NoSupportedCodec { offered: String, usable: String },
    #[error("stream {0} already has a publisher")]
    AlreadyPublished(String),
    #[error("stream {0} is not being published on this relay")]
    UnknownStream(String),
    #[error("no such relay session")]
    UnknownPeer,
    /// A player-side mute names a publisher's session.
    #[error("this relay session publishes a stream; only a play session can stop what it receives")]
    NotAPlayer,
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
    /// Publisher packets handed from their origin shard to another shard with players (one
    /// per packet and receiving shard).
    pub handed_off: u64,
    /// Players moved from one simulcast layer to another (at a keyframe of the new one).
    pub layer_switches: u64,
    /// Datagrams (of `packets_out`) that left in a segmented message with others.
    pub packets_segmented: u64,
    /// Messages handed to the kernel: `packets_out` less what segmentation saved.
    pub send_messages: u64,
}

/// Counters one engine writes and the handle reads (one per shard: no cache line is written by
/// two threads).
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
    handed_off: AtomicU64,
    layer_switches: AtomicU64,
    packets_segmented: AtomicU64,
    send_messages: AtomicU64,
    /// A sibling shard has queued a crossing and woken this shard's socket since the shard
    /// last emptied its channel: later senders need not wake it again.
    wake_pending: AtomicBool,
}

impl Shared {
    /// Adds to a counter that only its shard's engine thread writes: a plain load and store,
    /// no locked read-modify-write on the per-packet path.
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Socket buffer size the relay asks for. A keyframe fanned out to hundreds of players, or
/// feedback from all of them arriving together, overflows Linux's default (~208 KiB) and the
/// kernel drops datagrams; the kernel caps the request at `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

fn enlarge_buffers(socket: &UdpSocket, local_addr: SocketAddr) {
    let socket = socket2::SockRef::from(socket);
    // Best effort: a smaller buffer than asked for is not an error, only less headroom.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let recv = socket.recv_buffer_size().unwrap_or(0);
    let send = socket.send_buffer_size().unwrap_or(0);
    tracing::debug!(%local_addr, recv, send, "relay socket buffers");
    if recv < SOCKET_BUFFER_BYTES {
        tracing::warn!(
            %local_addr,
            granted = recv,
            wanted = SOCKET_BUFFER_BYTES,
            "the relay's UDP receive buffer is smaller than asked for (raise net.core.rmem_max)"
        );
    }
}

/// Which shard holds each published stream. The handle reserves an entry before it sends a
/// publish to a shard (so two shards never take the same stream); the engine fills in the
/// publisher once it is accepted and removes the entry when the publish fails or the stream
/// ends.
pub(crate) type Directory = Mutex<HashMap<StreamKey, StreamEntry>>;

pub(crate) fn lock(directory: &Directory) -> MutexGuard<'_, HashMap<StreamKey, StreamEntry>> {
    directory.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stream in the [`Directory`].
#[derive(Debug)]
pub(crate) struct StreamEntry {
    /// The origin: the shard its publisher is (or is being set up) on.
    pub shard: usize,
    /// The accepted publisher; None while its offer is being answered.
    pub origin: Option<Origin>,
    /// Shards other than the origin that were given a player of this stream (bit i: shard i).
    /// Set before the play command is sent, never cleared: the origin tells each of them when
    /// the stream ends.
    pub player_shards: u64,
}

impl StreamEntry {
    pub fn reserved(shard: usize) -> StreamEntry {
        StreamEntry { shard, origin: None, player_shards: 0 }
    }
}

/// A published stream as a player's shard needs it.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub publisher: PeerId,
    pub source: Arc<peer::Source>,
}

/// Marks `shard` as holding a player of `stream` and returns what the player is set up
/// against; UnknownStream if nobody publishes it (yet).
pub(crate) fn claim_player(
    directory: &mut HashMap<StreamKey, StreamEntry>,
    stream: &StreamKey,
    shard: usize,
) -> Result<Origin, RelayError> {
    let entry = directory.get_mut(stream).ok_or_else(|| RelayError::UnknownStream(stream.stream_id.clone()))?;
    let origin = entry.origin.clone().ok_or_else(|| RelayError::UnknownStream(stream.stream_id.clone()))?;
    if shard != entry.shard {
        entry.player_shards |= 1 << shard;
    }
    Ok(origin)
}

/// What an engine needs to know about its place among the shards.
pub(crate) struct ShardInfo {
    pub index: usize,
    /// Number of shards: peer ids of shard `index` are `index + k * count` (k ≥ 1).
    pub count: usize,
    pub directory: Arc<Directory>,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, RelayError>>;

/// Messages from the handle to an engine thread.
pub(crate) enum Command {
    Publish {
        stream: StreamKey,
        offer: String,
        reply: Reply<(PeerId, String)>,
    },
    PullOffer {
        stream: StreamKey,
        reply: Reply<(PeerId, String)>,
    },
    PullAnswer {
        peer: PeerId,
        answer: String,
        reply: Reply<()>,
    },
    Play {
        stream: StreamKey,
        origin: Origin,
        offer: String,
        reply: Reply<(PeerId, String)>,
    },
    Close {
        peer: PeerId,
        reply: Reply<()>,
    },
    Mute {
        stream: StreamKey,
        audio: Option<bool>,
        video: Option<bool>,
        reply: Reply<()>,
    },
    MutePlayer {
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
        reply: Reply<PlayerMute>,
    },
    SetPlayerLayer {
        peer: PeerId,
        choice: LayerChoice,
        reply: Reply<u8>,
    },
    LinkLevels {
        reply: Reply<Vec<(PeerId, crate::quality::Level)>>,
    },
    /// From another shard's engine.
    Cross(crossing::Crossing),
    /// The last handle is gone: end every session and stop the thread.
    Stop,
}

pub use simulcast::LayerChoice;
pub(crate) use udp_out::DatagramSender;

/// What a player has asked the relay not to send it (see [`Relay::mute_player`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerMute {
    pub audio: bool,
    pub video: bool,
}

/// Handle to a running relay. Cheap to clone; every shard stops when the last clone is dropped.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    /// Never empty.
    shards: Vec<Shard>,
    directory: Arc<Directory>,
    spread_margin: AtomicUsize,
}

struct Shard {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Plays sent to this shard and not yet answered: counted as load, so a burst of players
    /// spreads before the engines update their counts.
    plays_pending: Arc<AtomicUsize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The engines hold senders to each other's channels, so the channels never close on
        // their own.
        for shard in &self.shards {
            let _ = shard.commands.send(Command::Stop);
        }
    }
}

/// Counts a play as pending on its shard until it is answered or abandoned.
struct PendingPlay(Arc<AtomicUsize>);

impl PendingPlay {
    fn new(counter: &Arc<AtomicUsize>) -> PendingPlay {
        counter.fetch_add(1, Ordering::Relaxed);
        PendingPlay(Arc::clone(counter))
    }
}

impl Drop for PendingPlay {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("local_addrs", &self.local_addrs()).field("load", &self.load()).finish()
    }
}

impl Relay {
    /// Binds one UDP socket per shard and starts the engine threads. Events of every shard
    /// are sent on `events`.
    pub fn start(config: RelayConfig, events: UnboundedSender<RelayEvent>) -> Result<Relay, RelayError> {
        Self::start_with(config, events, CONNECT_TIMEOUT)
    }

    pub(crate) fn start_with(
        config: RelayConfig,
        events: UnboundedSender<RelayEvent>,
        connect_timeout: Duration,
    ) -> Result<Relay, RelayError> {
        let count = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS),
            n if n > MAX_THREADS => {
                return Err(RelayError::Unavailable(format!("at most {MAX_THREADS} relay threads, not {n}")));
            }
            n => n,
        };
        // Bind every socket before starting any thread: a port in use fails the whole start.
        let mut sockets = Vec::with_capacity(count);
        for index in 0..count {
            let addr = shard_addr(config.udp_addr, index)?;
            let socket = UdpSocket::bind(addr).map_err(|e| {
                let what = if index == 0 { String::new() } else { format!(" (relay thread {index} of {count})") };
                RelayError::Unavailable(format!("cannot bind UDP {addr}{what}: {e}"))
            })?;
            let local_addr = socket.local_addr().map_err(|e| RelayError::Unavailable(e.to_string()))?;
            enlarge_buffers(&socket, local_addr);
            let ips = if config.public_ips.is_empty() { vec![local_addr.ip()] } else { config.public_ips.clone() };
            let candidates: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, local_addr.port())).collect();
            for addr in &candidates {
                // The same check str0m makes when each session adds it: fail at start, not per offer.
                str0m::Candidate::host(*addr, "udp").map_err(|e| {
                    RelayError::Unavailable(format!("cannot advertise {addr} (set a concrete public IP): {e}"))
                })?;
            }
            sockets.push((socket, local_addr, candidates));
        }
        let directory = Arc::new(Directory::default());
        let mut receivers = Vec::with_capacity(count);
        let mut siblings = Vec::with_capacity(count);
        for (_, local_addr, _) in &sockets {
            let (commands, rx) = mpsc::channel();
            receivers.push(rx);
            siblings.push(shard::Sibling::new(commands, *local_addr, Arc::new(Shared::default())));
        }
        let mut shards: Vec<Shard> = siblings
            .iter()
            .map(|s| Shard {
                commands: s.commands.clone(),
                local_addr: s.addr,
                shared: Arc::clone(&s.shared),
                plays_pending: Arc::default(),
            })
            .collect();
        let siblings = Arc::new(siblings);
        for (index, ((socket, _, candidates), rx)) in sockets.into_iter().zip(receivers).enumerate() {
            let shared = Arc::clone(&shards[index].shared);
            let shard = ShardInfo { index, count, directory: Arc::clone(&directory) };
            let engine = engine::Engine::new(candidates, shared, shard, connect_timeout, Instant::now())?;
            let running = shard::Shard::new(
                engine,
                socket,
                events.clone(),
                Arc::clone(&siblings),
                index,
                config.udp_segmentation,
            )?;
            let spawned =
                std::thread::Builder::new().name(format!("huddle-relay-{index}")).spawn(move || running.run(rx));
            if let Err(e) = spawned {
                // Stop the threads already started.
                shards.truncate(index);
                drop(Inner { shards, directory, spread_margin: AtomicUsize::new(SPREAD_MARGIN) });
                return Err(RelayError::Unavailable(format!("cannot start relay thread {index}: {e}")));
            }
        }
        let inner = Inner { shards, directory, spread_margin: AtomicUsize::new(SPREAD_MARGIN) };
        Ok(Relay { inner: Arc::new(inner) })
    }

    /// Accepts a publisher's SDP offer (sendonly or sendrecv audio/video); returns the peer id and the SDP answer.
    ///
    /// The stream goes to the shard with the fewest peers.
    pub async fn publish(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        self.originate(stream, |stream, reply| Command::Publish { stream, offer, reply }).await
    }

    /// Starts pulling `stream` from another relay, making this relay a cascade edge for it:
    /// returns this relay's session id and an SDP offer (recvonly audio and video) to play at
    /// the origin relay (its WHEP-style play endpoint); give the origin's answer to
    /// [`Relay::pull_answer`]. Once answered the stream is published here as if its publisher
    /// were local: players join it, keyframe requests and NACKs go back to the origin, an end
    /// at the origin ends it here, and it is let go 2–3 s after its last player here leaves
    /// (reported like any stream: `StreamLive`, `StreamStopped`).
    pub async fn pull_offer(&self, stream: StreamKey) -> Result<(PeerId, String), RelayError> {
        self.originate(stream, |stream, reply| Command::PullOffer { stream, reply }).await
    }

    /// Completes [`Relay::pull_offer`] with the origin relay's SDP answer. A bad answer ends
    /// the pull (BadOffer, or NoMedia if it carries nothing to receive).
    pub async fn pull_answer(&self, peer: PeerId, answer: String) -> Result<(), RelayError> {
        let shard = (peer % self.inner.shards.len() as u64) as usize;
        self.ask(shard, |reply| Command::PullAnswer { peer, answer, reply }).await
    }

    /// Reserves `stream` on the idlest shard and sends it the command that publishes it there.
    async fn originate(
        &self,
        stream: StreamKey,
        command: impl FnOnce(StreamKey, Reply<(PeerId, String)>) -> Command,
    ) -> Result<(PeerId, String), RelayError> {
        let shard = self.reserve(&stream)?;
        let (reply, answer) = oneshot::channel();
        if self.inner.shards[shard].commands.send(command(stream.clone(), reply)).is_err() {
            // The engine is gone and cannot release the reservation itself (once it has the
            // command, the engine releases it on failure, also if this future is dropped).
            let mut directory = lock(&self.inner.directory);
            if directory.get(&stream).is_some_and(|e| e.shard == shard && e.origin.is_none()) {
                directory.remove(&stream);
            }
            return Err(stopped());
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Accepts a player's SDP offer (recvonly); fails with UnknownStream if nobody publishes `stream` here.
    ///
    /// The player goes to the stream's origin shard unless another has [`SPREAD_MARGIN`] fewer
    /// peers (then to the least loaded).
    pub async fn play(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        let (reply, answer) = oneshot::channel();
        let pending = {
            let mut directory = lock(&self.inner.directory);
            let origin_shard = directory.get(&stream).map(|e| e.shard);
            let Some(origin_shard) = origin_shard else {
                return Err(RelayError::UnknownStream(stream.stream_id));
            };
            let index = self.player_shard(origin_shard);
            let origin = claim_player(&mut directory, &stream, index)?;
            let shard = &self.inner.shards[index];
            let pending = PendingPlay::new(&shard.plays_pending);
            // Sent under the directory lock: an `End` the origin sends once it has removed the
            // stream from the directory comes after this command on the shard's channel.
            shard.commands.send(Command::Play { stream, origin, offer, reply }).map_err(|_| stopped())?;
            pending
        };
        let result = answer.await.map_err(|_| stopped())?;
        drop(pending);
        result
    }

    /// The shard for a new player of a stream whose publisher is on `origin`.
    fn player_shard(&self, origin: usize) -> usize {
        let shards = &self.inner.shards;
        let load = |i: usize| shards[i].load().peers + shards[i].plays_pending.load(Ordering::Relaxed);
        let Some(least) = (0..shards.len()).min_by_key(|&i| (load(i), i != origin)) else { return origin };
        let margin = self.inner.spread_margin.load(Ordering::Relaxed);
        if load(origin) < load(least) + margin { origin } else { least }
    }

    /// Overrides [`SPREAD_MARGIN`] (tests spread small audiences with 0).
    #[cfg(test)]
    pub(crate) fn set_spread_margin(&self, margin: usize) {
        self.inner.spread_margin.store(margin, Ordering::Relaxed);
    }

    /// Ends a publisher (which ends its players) or a player.
    pub async fn close(&self, peer: PeerId) -> Result<(), RelayError> {
        let shard = (peer % self.inner.shards.len() as u64) as usize;
        self.ask(shard, |reply| Command::Close { peer, reply }).await
    }

    /// Stops (`true`) or resumes (`false`) forwarding a stream's audio and/or video to its
    /// players (`None` leaves that kind as it is). The publisher keeps sending; a resumed
    /// video starts again on a keyframe asked for at once.
    pub async fn mute(&self, stream: StreamKey, audio: Option<bool>, video: Option<bool>) -> Result<(), RelayError> {
        let shard = lock(&self.inner.directory).get(&stream).map(|e| e.shard);
        let Some(shard) = shard else {
            return Err(RelayError::UnknownStream(stream.stream_id));
        };
        self.ask(shard, |reply| Command::Mute { stream, audio, video, reply }).await
    }

    /// Stops (`true`) or resumes (`false`) sending one player the stream's audio and/or video
    /// (`None` leaves that kind as it is); the stream's other players are not affected. A
    /// resumed kind continues the player's sequence numbers without a gap, and resumed video
    /// starts on a keyframe asked of the publisher at once. Returns the player's state after.
    pub async fn mute_player(
        &self,
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError> {
        let shard = (peer % self.inner.shards.len() as u64) as usize;
        self.ask(shard, |reply| Command::MutePlayer { peer, audio, video, reply }).await
    }

    /// Chooses which simulcast layer of its stream's video a player is sent: the lowest, the
    /// highest, or (`Auto`, the default) the best that fits the relay's bandwidth estimate
    /// towards it. The switch happens at the new layer's next keyframe, asked of the publisher
    /// at once. Returns how many layers the stream's video has (0: one encoding, the choice
    /// then has no effect until none).
    pub async fn set_player_layer(&self, peer: PeerId, choice: LayerChoice) -> Result<u8, RelayError> {
        let shard = (peer % self.inner.shards.len() as u64) as usize;
        self.ask(shard, |reply| Command::SetPlayerLayer { peer, choice, reply }).await
    }

    /// The worst quality level measured on each peer's link since the last call (peers with no
    /// measurement are left out): a publisher's from what the relay receives (loss, jitter), a
    /// player's from its RTCP receiver reports (loss, round trip, jitter). See [`crate::quality`].
    pub async fn link_levels(&self) -> Result<Vec<(PeerId, crate::quality::Level)>, RelayError> {
        let mut all = Vec::new();
        for shard in 0..self.inner.shards.len() {
            all.extend(self.ask(shard, |reply| Command::LinkLevels { reply }).await?);
        }
        Ok(all)
    }

    /// The first shard's bound UDP address (see [`Relay::local_addrs`] for all of them).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shards[0].local_addr
    }

    /// Every shard's bound UDP address, shard 0 first.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.shards.iter().map(|s| s.local_addr).collect()
    }

    /// Current peers and published streams, over all shards.
    pub fn load(&self) -> RelayLoad {
        self.inner
            .shards
            .iter()
            .map(|s| s.load())
            .fold(RelayLoad::default(), |a, b| RelayLoad { peers: a.peers + b.peers, streams: a.streams + b.streams })
    }

    /// Peers and published streams of each shard (engine thread), in thread order.
    pub fn thread_loads(&self) -> Vec<RelayLoad> {
        self.inner.shards.iter().map(|s| s.load()).collect()
    }

    /// Traffic counters since start, over all shards.
    pub fn stats(&self) -> RelayStats {
        let mut total = RelayStats::default();
        for shard in &self.inner.shards {
            let s = &shard.shared;
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            total.packets_in += get(&s.packets_in);
            total.packets_out += get(&s.packets_out);
            total.bytes_in += get(&s.bytes_in);
            total.bytes_out += get(&s.bytes_out);
            total.forwarded += get(&s.forwarded);
            total.keyframe_requests += get(&s.keyframe_requests);
            total.handed_off += get(&s.handed_off);
            total.layer_switches += get(&s.layer_switches);
            total.packets_segmented += get(&s.packets_segmented);
            total.send_messages += get(&s.send_messages);
        }
        total
    }

    /// Picks the shard for a new stream and records it, or refuses a stream already published.
    fn reserve(&self, stream: &StreamKey) -> Result<usize, RelayError> {
        let mut directory = lock(&self.inner.directory);
        if directory.contains_key(stream) {
            return Err(RelayError::AlreadyPublished(stream.stream_id.clone()));
        }
        // Fewest peers; among equals fewest streams, counting reservations not yet answered, so a
        // burst of publishes spreads before the engines report their load.
        let shards = &self.inner.shards;
        let mut streams = vec![0usize; shards.len()];
        for entry in directory.values() {
            if let Some(n) = streams.get_mut(entry.shard) {
                *n += 1;
            }
        }
        let shard = (0..shards.len()).min_by_key(|&i| (shards[i].load().peers, streams[i])).unwrap_or(0);
        directory.insert(stream.clone(), StreamEntry::reserved(shard));
        Ok(shard)
    }

    async fn ask<T>(&self, shard: usize, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, RelayError> {
        let shard = self.inner.shards.get(shard).ok_or(RelayError::UnknownPeer)?;
        let (reply, answer) = oneshot::channel();
        shard.commands.send(command(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl PlayerMute {
    pub fn muted(&self, kind: str0m::media::MediaKind) -> bool {
        match kind {
            str0m::media::MediaKind::Audio => self.audio,
            str0m::media::MediaKind::Video => self.video,
        }
    }
}

impl Shard {
    fn load(&self) -> RelayLoad {
        let s = &self.shared;
        RelayLoad { peers: s.peers.load(Ordering::Relaxed), streams: s.streams.load(Ordering::Relaxed) }
    }
}

/// The bind address of shard `index`: the configured one for shard 0; for the others the same
/// IP with port 0 (a free port) if the configured port is 0, else the configured port + index.
fn shard_addr(base: SocketAddr, index: usize) -> Result<SocketAddr, RelayError> {
    if index == 0 || base.port() == 0 {
        return Ok(base);
    }
    u16::try_from(index)
        .ok()
        .and_then(|i| base.port().checked_add(i))
        .map(|port| SocketAddr::new(base.ip(), port))
        .ok_or_else(|| {
            RelayError::Unavailable(format!("relay thread {index}: UDP port {} + {index} exceeds 65535", base.port()))
        })
}

fn stopped() -> RelayError {
    RelayError::Unavailable("the relay engine has stopped".into())
}
