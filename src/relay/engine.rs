//! One shard's relay engine, sans-IO like str0m itself: it owns every session of its shard,
//! demultiplexes datagrams, drives str0m's timers, forwards RTP from publishers to players and
//! runs session lifecycles, but touches no socket, thread, channel or clock. Datagrams, time
//! and commands go in (`handle_datagram`, `handle_timeout`, `publish`/`play`/`close`/…, each
//! with the caller's `now`); datagrams and [`RelayEvent`]s come out of queues
//! (`poll_transmit`, `poll_event`), and `poll_timeout` says when to call `handle_timeout`
//! next. `shard.rs` runs it on a thread with a UDP socket; the virtual-clock tests
//! (`tests/virtual_clock.rs` here) run it against in-memory str0m clients.
//!
//! Shards meet in the stream directory (a mutex taken per publish, play and stream end), in
//! the load and traffic counters, and in crossings (`crossing.rs`): a stream whose players are
//! on several shards is handed from its origin shard to each of the others once per packet.
//! Crossings to send come out of `poll_crossing`; those received go in by `handle_crossing`.
//!
//! Timers: a min-heap keyed by each session's requested time, stale entries skipped; once a
//! second a sweep for sessions that never connected. After every input the session is
//! drained (`poll_output` until `Timeout`), and so is every session a keyframe request
//! touched. Packets written to a player are different: str0m sends what was written only at
//! the session's next timeout, so the engine lists the players written to and gives each one
//! timeout at the next `handle_timeout` (`poll_timeout` is then due at once). A burst of
//! packets read together (a video frame's packets, crossings from another shard) costs each
//! player one str0m timeout and one drain, not one per packet, and no timer-heap entry.
//!
//! Per packet the engine itself allocates nothing: the scratch vectors and output queues are
//! reused, an RTP payload is shared (`Arc<[u8]>`) with every player, and the timer heap is
//! compacted in place. What str0m allocates remains: the decrypted payload of every incoming
//! RTP packet, the send-buffer entry of every packet written to a player, and the encrypted
//! datagram of every transmit (queued as it is, not copied).
//!
//! Limits: building a session (DTLS certificate, SDP) runs on the shard's thread too, so a
//! burst of offers delays that shard's forwarding by a few milliseconds each. With several
//! advertised IPs on a wildcard bind, the datagram's real destination is unknown (no
//! `IP_PKTINFO`): the first advertised IP of the sender's family is assumed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::Input;
use str0m::bwe::Bitrate;
use str0m::config::CryptoProvider;
use str0m::ice::StunMessage;
use str0m::media::{KeyframeRequestKind, MediaKind, Rid, Rids};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::rtp::RtpPacket;

use super::crossing::{Crossing, Ending, MediaPacket, Mirror, shards_of};
use super::forward::{Forwarded, TrackOut};
use super::peer::{self, Happening, Peer, Player, Publisher, Role, Source};
use super::sdp;
use super::simulcast::{LayerChoice, MAX_LAYERS};
use super::{
    Directory, KEYFRAME_INTERVAL, MediaBytes, Origin, PeerId, PlayerMute, RelayError, RelayEvent, ShardInfo, Shared,
    StreamEntry, StreamKey,
};

/// A remote may reach us from this many addresses (ICE candidate pairs) at most.
const MAX_ADDRS_PER_PEER: usize = 16;
/// How often sessions that never connected are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// A stream pulled from another relay is let go after this long without players here (found
/// by the once-a-second sweep, so 2–3 s after the last one leaves).
const PULL_IDLE: Duration = Duration::from_secs(2);
/// A BWE player's session clock is moved to the present before a write once it is this far
/// behind (see `fan_out`): packets of one frame arriving together cost one clock update.
const CLOCK_SLACK: Duration = Duration::from_millis(1);
/// Every simulcast layer (a stream-wide video resume wants a keyframe of each).
const ALL_LAYERS: u8 = u8::MAX;
/// What a simulcast player's bandwidth estimate starts at, bits per second: its first layer is
/// the best that fits this, and probing finds out whether a higher one does.
const INITIAL_ESTIMATE: u64 = 1_000_000;

pub(crate) struct Engine {
    /// Advertised host candidates (public IP, bound port).
    candidates: Vec<SocketAddr>,
    /// Load and forwarding counters for the handle (the socket's own counters are the caller's).
    shared: Arc<Shared>,
    crypto: Arc<CryptoProvider>,
    peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    streams: HashMap<StreamKey, PeerId>,
    /// Streams published on another shard with players here, by publisher.
    mirrors: HashMap<PeerId, Mirror>,
    /// Publishers gone from here whose players on other shards are still being ended.
    ending: HashMap<PeerId, Ending>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    last_sweep: Instant,
    /// This shard's index and the directory of which shard holds which stream.
    index: usize,
    directory: Arc<Directory>,
    /// Ids of this shard: `index + k * shards`, so the handle routes by `id % shards`.
    next_id: PeerId,
    id_step: PeerId,
    /// Sessions not connected by then are dropped ([`super::CONNECT_TIMEOUT`] outside tests).
    connect_timeout: Duration,
    /// Datagrams to send, in order (str0m's transmits, not copied).
    transmits: VecDeque<Transmit>,
    /// Events to report, in order.
    events: VecDeque<RelayEvent>,
    /// Messages to other shards (shard index, message), in order.
    crossings: VecDeque<(usize, Crossing)>,
    /// The relay is stopping: every shard ends its own sessions, nobody waits for another.
    stopping: bool,
    /// Sessions to drain (scratch, reused).
    dirty: Vec<PeerId>,
    happenings: Vec<Happening>,
    closing: Vec<(PeerId, &'static str)>,
    /// Whether a player was written to since [`Engine::take_forwarded`] was last called.
    forwarded_in_turn: bool,
    /// Players written to whose packets go out at the next `handle_timeout`, each once (its
    /// `write_pending` flag), and when the first of them was written.
    written: Vec<PeerId>,
    written_at: Option<Instant>,
}

impl Engine {
    pub fn new(
        candidates: Vec<SocketAddr>,
        shared: Arc<Shared>,
        shard: ShardInfo,
        connect_timeout: Duration,
        now: Instant,
    ) -> Result<Engine, RelayError> {
        let id_step = shard.count.max(1) as PeerId;
        let crypto = catch_unwind(str0m::crypto::from_feature_flags)
            .map_err(|_| RelayError::Unavailable("no crypto provider for DTLS/SRTP".into()))?;
        Ok(Engine {
            candidates,
            shared,
            crypto: Arc::new(crypto),
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            streams: HashMap::new(),
            mirrors: HashMap::new(),
            ending: HashMap::new(),
            timers: BinaryHeap::new(),
            last_sweep: now,
            index: shard.index,
            directory: shard.directory,
            next_id: id_step + shard.index as PeerId,
            id_step,
            connect_timeout,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            crossings: VecDeque::new(),
            stopping: false,
            dirty: Vec::new(),
            happenings: Vec::new(),
            closing: Vec::new(),
            forwarded_in_turn: false,
            written: Vec::new(),
            written_at: None,
        })
    }

    // ---- the sans-IO surface ----

    /// One datagram received from `source` at `now`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.datagram(data, source, now);
        self.close_pending();
    }

    /// Sends what was written to players, fires the session timers due at `now` and, once a
    /// second, drops sessions that never connected. Early calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.send_written(now);
        self.fire_timers(now);
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.last_sweep = now;
            self.sweep(now);
        }
        self.close_pending();
    }

    /// When `handle_timeout` is due next (may be in the past: then at once).
    pub fn poll_timeout(&self) -> Instant {
        let sweep = self.last_sweep + SWEEP_INTERVAL;
        let next = match self.timers.peek() {
            Some(Reverse((t, _))) => sweep.min(*t),
            None => sweep,
        };
        self.written_at.map_or(next, |t| next.min(t))
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// The next message for another shard: (its index, the message). Pass it on only after
    /// the events polled before it have been reported.
    pub fn poll_crossing(&mut self) -> Option<(usize, Crossing)> {
        self.crossings.pop_front()
    }

    /// A message from another shard.
    pub fn handle_crossing(&mut self, now: Instant, crossing: Crossing) {
        match crossing {
            Crossing::Subscribe { publisher, shard } => {
                if let Some(p) = self.local_publisher(publisher)
                    && !p.shards.contains(&shard)
                {
                    p.shards.push(shard);
                }
            }
            Crossing::Unsubscribe { publisher, shard, bytes_out } => {
                if let Some(p) = self.local_publisher(publisher) {
                    p.shards.retain(|&s| s != shard);
                    p.players_bytes_out += bytes_out;
                } else if let Some(ending) = self.ending.get_mut(&publisher) {
                    ending.bytes.bytes_out += bytes_out;
                }
            }
            Crossing::Media { publisher, media } => {
                let Some(mirror) = self.mirrors.get_mut(&publisher) else { return };
                let players = std::mem::take(&mut mirror.players);
                let awaited = self.fan_out(&players, &media, now);
                if let Some(mirror) = self.mirrors.get_mut(&publisher) {
                    mirror.players = players;
                }
                if awaited != 0 {
                    self.want_keyframe(publisher, awaited, now);
                }
            }
            Crossing::Keyframe { publisher, layers } => self.want_keyframe(publisher, layers, now),
            Crossing::End { publisher } => {
                let mut bytes_out = 0;
                if let Some(mirror) = self.mirrors.remove(&publisher) {
                    bytes_out = mirror.departed_bytes_out;
                    for pid in mirror.players {
                        if let Some(player) = self.unmap(pid) {
                            bytes_out += player.bytes_out;
                            self.events.push_back(RelayEvent::PlayerStopped { stream: player.stream, peer: pid });
                        }
                    }
                    self.update_load();
                }
                let origin = self.shard_of(publisher);
                self.crossings.push_back((origin, Crossing::Ended { publisher, shard: self.index, bytes_out }));
            }
            Crossing::Ended { publisher, shard, bytes_out } => {
                let Some(ending) = self.ending.get_mut(&publisher) else { return };
                ending.bytes.bytes_out += bytes_out;
                ending.waiting &= !(1u64 << shard);
                if ending.waiting == 0
                    && let Some(ending) = self.ending.remove(&publisher)
                {
                    let event =
                        RelayEvent::StreamStopped { stream: ending.stream, peer: publisher, bytes: ending.bytes };
                    self.events.push_back(event);
                }
            }
        }
    }

    fn local_publisher(&mut self, id: PeerId) -> Option<&mut Publisher> {
        match self.peers.get_mut(&id).map(|p| &mut p.role) {
            Some(Role::Publisher(p)) => Some(p),
            _ => None,
        }
    }

    /// The shard a session id belongs to.
    fn shard_of(&self, id: PeerId) -> usize {
        (id % self.id_step) as usize
    }

    /// Whether any packet was written to a player since the last call (for the forwarding
    /// latency metric).
    pub fn take_forwarded(&mut self) -> bool {
        std::mem::take(&mut self.forwarded_in_turn)
    }

    /// Ends a publisher (with its players) or a player.
    pub fn close(&mut self, peer: PeerId) -> Result<(), RelayError> {
        if !self.peers.contains_key(&peer) {
            return Err(RelayError::UnknownPeer);
        }
        self.closing.push((peer, "closed by the API"));
        self.close_pending();
        Ok(())
    }

    /// The worst quality level of each peer's link since the last call.
    pub fn link_levels(&mut self) -> Vec<(PeerId, crate::quality::Level)> {
        self.peers.values_mut().filter_map(|p| Some((p.id, p.worst_level.take()?))).collect()
    }

    /// Accepts a publisher's offer, or frees the stream's directory entry on failure.
    pub fn publish(&mut self, now: Instant, stream: StreamKey, offer: &str) -> Result<(PeerId, String), RelayError> {
        let result = self.publish_inner(stream.clone(), offer, now);
        if result.is_err() {
            self.release(&stream, None);
        }
        result
    }

    /// Accepts a player's offer for a stream published here or, as a mirror, on another shard
    /// (`origin` comes from the stream directory, see [`super::claim_player`]).
    pub fn play(
        &mut self,
        now: Instant,
        stream: StreamKey,
        origin: Origin,
        offer: &str,
    ) -> Result<(PeerId, String), RelayError> {
        self.play_inner(stream, origin, offer, now)
    }

    /// Stops or resumes forwarding a stream's audio/video (see [`super::Relay::mute`]).
    pub fn mute(
        &mut self,
        now: Instant,
        stream: &StreamKey,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<(), RelayError> {
        let publisher = *self.streams.get(stream).ok_or_else(|| RelayError::UnknownStream(stream.stream_id.clone()))?;
        let Some(source) = self.local_publisher(publisher) else {
            return Err(RelayError::UnknownStream(stream.stream_id.clone()));
        };
        source.audio_muted = audio.unwrap_or(source.audio_muted);
        let video_resumed = source.video_muted && video == Some(false);
        source.video_muted = video.unwrap_or(source.video_muted);
        if video_resumed {
            self.want_keyframe(publisher, ALL_LAYERS, now);
        }
        Ok(())
    }

    /// Stops or resumes what one player is sent (see [`super::Relay::mute_player`]).
    pub fn mute_player(
        &mut self,
        now: Instant,
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError> {
        let role = &mut self.peers.get_mut(&peer).ok_or(RelayError::UnknownPeer)?.role;
        let Role::Player(player) = role else {
            return Err(RelayError::NotAPlayer);
        };
        let mut video_resumed = false;
        for (kind, wanted) in [(MediaKind::Audio, audio), (MediaKind::Video, video)] {
            let Some(muted) = wanted else { continue };
            let flag = match kind {
                MediaKind::Audio => &mut player.mute.audio,
                MediaKind::Video => &mut player.mute.video,
            };
            if *flag && !muted {
                // Continue the sequence after the last packet sent, so the player sees no loss
                // to NACK; video waits for a keyframe.
                for track in player.tracks.iter_mut().filter(|t| t.kind == kind) {
                    track.restart();
                }
                video_resumed |= kind == MediaKind::Video;
            }
            *flag = muted;
        }
        let (state, publisher) = (player.mute, player.publisher);
        let awaited = player.choose_layers();
        if video_resumed && awaited != 0 {
            self.want_keyframe(publisher, awaited, now);
        }
        Ok(state)
    }

    /// Sets which simulcast layer a player is sent (see [`super::Relay::set_player_layer`]);
    /// returns how many layers the stream's video has (0: one encoding).
    pub fn set_player_layer(&mut self, now: Instant, peer: PeerId, choice: LayerChoice) -> Result<u8, RelayError> {
        let role = &mut self.peers.get_mut(&peer).ok_or(RelayError::UnknownPeer)?.role;
        let Role::Player(player) = role else {
            return Err(RelayError::NotAPlayer);
        };
        player.choice = choice;
        let awaited = player.choose_layers();
        let layers = player.source.tracks.iter().map(|t| t.layers.len()).max().unwrap_or(0) as u8;
        let publisher = player.publisher;
        self.update_probing(peer, now);
        if awaited != 0 {
            self.want_keyframe(publisher, awaited, now);
        }
        Ok(layers)
    }

    /// Points a player's BWE at what its top simulcast layer needs (see [`Player::probe_target`]).
    fn update_probing(&mut self, peer: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Role::Player(player) = &mut p.role else { return };
        if let Some(desired) = player.probe_target(now) {
            p.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        }
    }

    fn publish_inner(&mut self, stream: StreamKey, offer: &str, now: Instant) -> Result<(PeerId, String), RelayError> {
        if self.streams.contains_key(&stream) {
            return Err(RelayError::AlreadyPublished(stream.stream_id));
        }
        let accepted = peer::accept(offer, peer::base_config(&self.crypto), &self.candidates, now)?;
        let Some(source) = peer::received_source(&accepted.rtc, &accepted.medias) else {
            let mut relay = peer::base_config(&self.crypto);
            let codecs = sdp::codec_list(relay.codec_config().params().iter().map(|p| p.spec().codec));
            let usable = format!("the relay supports {codecs}");
            return Err(no_media(offer, &accepted.unmatched, usable));
        };
        let source = Arc::new(source);
        let role = Role::Publisher(Publisher::new(Arc::clone(&source), false));
        let id = self.insert(accepted.rtc, accepted.ufrag, stream.clone(), role, now)?;
        self.publish_here(stream, id, source);
        self.pump(id, now);
        Ok((id, accepted.answer))
    }

    /// Records an accepted publisher (a client's or a pull) as the stream's origin.
    fn publish_here(&mut self, stream: StreamKey, id: PeerId, source: Arc<Source>) {
        let origin = Origin { publisher: id, source };
        super::lock(&self.directory)
            .entry(stream.clone())
            .or_insert_with(|| StreamEntry::reserved(self.index))
            .origin = Some(origin);
        self.streams.insert(stream, id);
        self.update_load();
    }

    /// Starts pulling `stream` from another relay (this relay becomes a cascade edge for it):
    /// a session offering to receive its audio and video. Returns its id and the SDP offer to
    /// play at the origin relay; [`Engine::pull_answer`] completes it. Frees the stream's
    /// directory entry on failure.
    pub fn pull_offer(&mut self, now: Instant, stream: StreamKey) -> Result<(PeerId, String), RelayError> {
        let started = peer::pull_offer(peer::base_config(&self.crypto), &self.candidates, now).and_then(
            |(rtc, ufrag, offer, pending)| {
                let id = self.insert(rtc, ufrag, stream.clone(), Role::Pulling(Some(pending)), now)?;
                Ok((id, offer))
            },
        );
        match started {
            Ok((id, offer)) => {
                self.update_load();
                self.pump(id, now);
                Ok((id, offer))
            }
            Err(e) => {
                self.release(&stream, None);
                Err(e)
            }
        }
    }

    /// Completes a pull with the origin relay's SDP answer: the stream is then published here
    /// and players can join it. A bad answer ends the pull.
    pub fn pull_answer(&mut self, now: Instant, id: PeerId, answer: &str) -> Result<(), RelayError> {
        let peer = self.peers.get_mut(&id).ok_or(RelayError::UnknownPeer)?;
        let Role::Pulling(pending) = &mut peer.role else {
            return Err(RelayError::UnknownPeer);
        };
        let pending = pending.take().ok_or(RelayError::UnknownPeer)?;
        let accepted = str0m::change::SdpAnswer::from_sdp_string(answer)
            .map_err(|e| RelayError::BadOffer(sdp::parse_error(answer, &e.to_string())))
            .and_then(|parsed| {
                let rtc = &mut peer.rtc;
                match catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_answer(pending, parsed))) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(RelayError::BadOffer(format!("the origin's answer was refused: {e}"))),
                    Err(_) => Err(RelayError::BadOffer("the origin's answer was refused".into())),
                }
            });
        if let Err(e) = accepted {
            self.closing.push((id, "pull answer refused"));
            self.close_pending();
            return Err(e);
        }
        let (medias, _) = peer::negotiated_medias(&mut peer.rtc, answer);
        let Some(source) = peer::received_source(&peer.rtc, &medias) else {
            self.closing.push((id, "pull answer has no media"));
            self.close_pending();
            return Err(RelayError::NoMedia);
        };
        let source = Arc::new(source);
        let mut publisher = Publisher::new(Arc::clone(&source), true);
        publisher.idle_since = Some(now);
        peer.role = Role::Publisher(publisher);
        let stream = peer.stream.clone();
        self.publish_here(stream, id, source);
        self.pump(id, now);
        Ok(())
    }

    fn play_inner(
        &mut self,
        stream: StreamKey,
        origin: Origin,
        offer: &str,
        now: Instant,
    ) -> Result<(PeerId, String), RelayError> {
        let publisher = origin.publisher;
        let origin_shard = self.shard_of(publisher);
        if origin_shard == self.index && self.local_publisher(publisher).is_none() {
            return Err(RelayError::UnknownStream(stream.stream_id));
        }
        let source = &*origin.source;
        let video_layers = source.tracks.iter().filter(|t| t.kind == MediaKind::Video).map(|t| t.layers.len()).max();
        // A session that receives simulcast itself (a cascade edge) is sent every layer, each
        // on its own rid, and chooses for its own players: the offer is cut to the layers
        // there are.
        let (offer, takes_every_layer) = sdp::fit_simulcast_recv(offer, video_layers.unwrap_or(0));
        let simulcast = source.tracks.iter().any(|t| t.layers.len() > 1) && !takes_every_layer;
        let mut config = peer::config_with_codecs(&self.crypto, &source.params);
        if simulcast {
            // The estimate chooses the player's layer (`LayerChoice::Auto`).
            config = config.enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE)));
        } else {
            config = peer::without_bandwidth_feedback(config);
        }
        let accepted = peer::accept(&offer, config, &self.candidates, now)?;

        let mut tracks = Vec::new();
        let mut used = Vec::new();
        for &(mid, kind, _) in accepted.medias.iter().filter(|(_, _, dir)| dir.is_sending()) {
            let Some(src) = source.tracks.iter().find(|t| t.kind == kind && !used.contains(&t.mid)) else { continue };
            used.push(src.mid);
            match accepted.rtc.media(mid).map(|m| m.rids_tx()) {
                Some(Rids::Specific(rids)) if !rids.is_empty() => {
                    let layers = src.layers.len().max(1);
                    for (layer, rid) in rids.iter().take(layers).enumerate() {
                        tracks.push(TrackOut::for_layer(mid, *rid, kind, src.mid, layer as u8));
                    }
                }
                _ => tracks.push(TrackOut::new(mid, kind, src.mid, src.layers.len() as u8, 0)),
            }
        }
        let rtc = &accepted.rtc;
        let sendable = |pt| tracks.iter().any(|t| rtc.media(t.mid).is_some_and(|m| m.remote_pts().contains(&pt)));
        let pt_map: Vec<_> = source
            .params
            .iter()
            .filter_map(|p| rtc.codec_config().match_params(*p).map(|local| (p.pt(), local.pt())))
            .filter(|&(_, out)| sendable(out))
            .collect();
        if tracks.is_empty() || pt_map.is_empty() {
            let codecs = sdp::codec_list(source.params.iter().map(|p| p.spec().codec));
            let usable = format!("stream {} is sent as {codecs}", stream.stream_id);
            return Err(no_media(&offer, &accepted.unmatched, usable));
        }
        let mut player = Player {
            publisher,
            tracks,
            pt_map,
            mute: PlayerMute::default(),
            source: Arc::clone(&origin.source),
            choice: LayerChoice::Auto,
            estimate: simulcast.then_some(INITIAL_ESTIMATE),
            last_probe: None,
        };
        player.choose_layers();
        let id = self.insert(accepted.rtc, accepted.ufrag, stream, Role::Player(player), now)?;
        self.update_probing(id, now);
        if let Some(p) = self.local_publisher(publisher) {
            p.players.push(id);
        } else {
            let index = self.index;
            let mirror = self.mirrors.entry(publisher).or_insert_with(|| Mirror {
                origin: origin_shard,
                players: Vec::new(),
                departed_bytes_out: 0,
                last_keyframe_ask: None,
            });
            if mirror.players.is_empty() {
                self.crossings.push_back((origin_shard, Crossing::Subscribe { publisher, shard: index }));
            }
            mirror.players.push(id);
        }
        self.update_load();
        self.pump(id, now);
        Ok((id, accepted.answer))
    }

    fn insert(
        &mut self,
        rtc: str0m::Rtc,
        ufrag: String,
        stream: StreamKey,
        role: Role,
        now: Instant,
    ) -> Result<PeerId, RelayError> {
        if self.by_ufrag.contains_key(&ufrag) {
            return Err(RelayError::Unavailable("ICE ufrag collision, retry".into()));
        }
        let id = self.next_id;
        self.next_id += self.id_step;
        self.by_ufrag.insert(ufrag.clone(), id);
        let peer = Peer {
            id,
            stream,
            rtc,
            ufrag,
            role,
            created: now,
            connected: false,
            next_timeout: None,
            queued: None,
            addrs: Vec::new(),
            nack_totals: Default::default(),
            worst_level: None,
            bytes_in: 0,
            bytes_out: 0,
            last_input: now,
            write_pending: false,
        };
        self.peers.insert(id, peer);
        Ok(id)
    }

    // ---- network and time ----

    fn datagram(&mut self, data: &[u8], source: SocketAddr, now: Instant) {
        // RFC 7983 demultiplexing: first byte 0..=3 is STUN. STUN is routed by our ufrag (a new
        // or peer-reflexive remote address is learned that way); everything else by address.
        let is_stun = data.first().is_some_and(|b| *b < 4);
        let by_ufrag = if is_stun {
            let message = StunMessage::parse(data).ok();
            // USERNAME is "<our ufrag>:<their ufrag>" in requests to us.
            message.as_ref().and_then(|m| m.split_username()).and_then(|(ours, _)| self.by_ufrag.get(ours).copied())
        } else {
            None
        };
        let Some(id) = by_ufrag.or_else(|| self.by_addr.get(&source).copied()) else {
            return;
        };
        let destination = self.destination_for(source);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.bytes_in += data.len() as u64;
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        if !peer.input(input) {
            self.closing.push((id, "failed on input"));
            return;
        }
        self.pump(id, now);
    }

    /// The local address str0m must see as the datagram's destination: the advertised candidate.
    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        self.candidates
            .iter()
            .find(|c| c.is_ipv4() == source.is_ipv4())
            .or_else(|| self.candidates.first())
            .copied()
            .unwrap_or(source)
    }

    fn fire_timers(&mut self, now: Instant) {
        // Bounded: entries re-armed for `now` wait for the next turn instead of spinning here.
        let mut budget = self.timers.len();
        while budget > 0 {
            budget -= 1;
            let Some(&Reverse((t, id))) = self.timers.peek() else { break };
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            if peer.queued == Some(t) {
                peer.queued = None;
            }
            match peer.next_timeout {
                None => continue,
                // Not due yet (the session moved its time later): re-arm at the current time.
                Some(next) if next > now => {
                    if peer.queued.is_none_or(|queued| next < queued) {
                        peer.queued = Some(next);
                        self.timers.push(Reverse((next, id)));
                    }
                    continue;
                }
                Some(_) => {}
            }
            peer.next_timeout = None;
            if !peer.input(Input::Timeout(now)) {
                self.closing.push((id, "failed on timeout"));
                continue;
            }
            self.pump(id, now);
        }
        // Stale entries pile up when sessions move their times earlier; past a bound, rebuild
        // the heap from the sessions (O(sessions), no lookups) keeping its allocation.
        if self.timers.len() > 4 * self.peers.len() + 1024 {
            self.timers.clear();
            for peer in self.peers.values_mut() {
                peer.queued = peer.next_timeout;
                if let Some(t) = peer.next_timeout {
                    self.timers.push(Reverse((t, peer.id)));
                }
            }
        }
    }

    /// Gives every player written to since the last call its timeout, in which str0m sends
    /// the packets, and drains it.
    fn send_written(&mut self, now: Instant) {
        self.written_at = None;
        while let Some(id) = self.written.pop() {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            peer.write_pending = false;
            if !peer.input(Input::Timeout(now)) {
                self.closing.push((id, "failed on timeout"));
                continue;
            }
            self.pump(id, now);
        }
    }

    /// Drains `first`, acts on what came out, and drains every session that touched.
    fn pump(&mut self, first: PeerId, now: Instant) {
        self.dirty.push(first);
        let mut happenings = std::mem::take(&mut self.happenings);
        while let Some(id) = self.dirty.pop() {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            let before = peer.next_timeout;
            if peer.drain(&mut self.transmits, &mut happenings)
                && let Some(t) = peer.next_timeout
                && peer.next_timeout != before
                && peer.queued.is_none_or(|queued| t < queued)
            {
                peer.queued = Some(t);
                self.timers.push(Reverse((t, id)));
            }
            for happening in happenings.drain(..) {
                self.apply(id, happening, now);
            }
        }
        self.happenings = happenings;
    }

    fn apply(&mut self, from: PeerId, happening: Happening, now: Instant) {
        match happening {
            Happening::Destination(addr) => {
                let Some(peer) = self.peers.get_mut(&from) else { return };
                if !peer.addrs.contains(&addr) {
                    if peer.addrs.len() >= MAX_ADDRS_PER_PEER {
                        return;
                    }
                    peer.addrs.push(addr);
                }
                self.by_addr.insert(addr, from);
            }
            Happening::Gone(why) => self.closing.push((from, why)),
            Happening::Connected => {
                let Some(peer) = self.peers.get_mut(&from) else { return };
                peer.connected = true;
                if let Role::Player(player) = &mut peer.role {
                    let (publisher, awaited) = (player.publisher, player.choose_layers());
                    let event = RelayEvent::PlayerStarted { stream: peer.stream.clone(), peer: from };
                    self.events.push_back(event);
                    if awaited != 0 {
                        self.want_keyframe(publisher, awaited, now);
                    }
                }
            }
            Happening::KeyframeRequest(mid, rid) => {
                if let Some(Role::Player(player)) = self.peers.get(&from).map(|p| &p.role) {
                    let publisher = player.publisher;
                    // The layers it is sent now on that stream (all of its streams if it named
                    // none of them), and any it waits to switch to.
                    let named = player.tracks.iter().any(|t| t.mid == mid && t.rid == rid);
                    let layers = player
                        .tracks
                        .iter()
                        .filter(|t| !named || (t.mid == mid && t.rid == rid))
                        .flat_map(|t| [t.current_layer(), t.awaited_keyframe()])
                        .flatten()
                        .fold(0u8, |bits, layer| bits | 1 << layer);
                    self.want_keyframe(publisher, layers.max(1), now);
                }
            }
            Happening::Estimate(bps) => {
                let Some(Role::Player(player)) = self.peers.get_mut(&from).map(|p| &mut p.role) else { return };
                player.estimate = Some(bps);
                let (publisher, awaited) = (player.publisher, player.choose_layers());
                tracing::debug!(peer = from, bps, awaited, "player bandwidth estimate");
                self.update_probing(from, now);
                if awaited != 0 {
                    self.want_keyframe(publisher, awaited, now);
                }
            }
            Happening::Rtp(packet) => self.forward(from, packet, now),
        }
    }

    // ---- forwarding ----

    /// A publisher's packet: checked and resolved once, written to the players here and handed
    /// once to each other shard with players.
    fn forward(&mut self, from: PeerId, packet: RtpPacket, now: Instant) {
        let Some(peer) = self.peers.get_mut(&from) else { return };
        let Role::Publisher(source) = &mut peer.role else {
            return; // a player sending media (sendrecv offer): not relayed
        };
        if !source.live {
            source.live = true;
            self.events.push_back(RelayEvent::StreamLive { stream: peer.stream.clone(), peer: from });
        }
        let Some((track, layer)) = source.track_of(&mut peer.rtc, packet.header.ssrc) else { return };
        source.count_layer_bytes(track, layer, packet.payload.len(), now);
        let (mid, kind) = (source.source.tracks[track].mid, source.source.tracks[track].kind);
        let muted = match kind {
            MediaKind::Audio => source.audio_muted,
            MediaKind::Video => source.video_muted,
        };
        if muted {
            return;
        }
        let pt = packet.header.payload_type;
        let Some(codec) = source.params_of(pt).map(|p| p.spec().codec) else { return };
        let retry_keyframe = kind == MediaKind::Video && source.keyframe_wanted != 0;
        let players = std::mem::take(&mut source.players);
        let shards = std::mem::take(&mut source.shards);

        let media = MediaPacket { packet, mid, kind, codec, pt, layer };
        let awaited = self.fan_out(&players, &media, now);
        if !shards.is_empty() {
            // Shared by the receiving shards, not copied per shard or player.
            let media = Arc::new(media);
            for &shard in &shards {
                self.crossings.push_back((shard, Crossing::Media { publisher: from, media: Arc::clone(&media) }));
            }
            Shared::add(&self.shared.handed_off, shards.len() as u64);
        }
        if let Some(source) = self.local_publisher(from) {
            source.players = players;
            source.shards = shards;
        }
        if awaited != 0 {
            self.want_keyframe(from, awaited, now);
        } else if retry_keyframe {
            self.try_keyframe(from, now);
        }
    }

    /// Writes a publisher packet to `players` (sessions on this shard); returns the layers whose
    /// keyframes some of them wait for (bit per layer; bit 0 without simulcast).
    fn fan_out(&mut self, players: &[PeerId], media: &MediaPacket, now: Instant) -> u8 {
        let MediaPacket { packet, mid, kind, codec, pt: pt_in, layer } = media;
        let mut awaited = 0u8;
        for &pid in players {
            let Some(player_peer) = self.peers.get_mut(&pid) else { continue };
            if !player_peer.connected {
                continue;
            }
            let Role::Player(player) = &mut player_peer.role else { continue };
            if player.mute.muted(*kind) {
                continue;
            }
            let Some(&(_, pt_out)) = player.pt_map.iter().find(|(i, _)| i == pt_in) else { continue };
            if player.estimate.is_some() && now.saturating_duration_since(player_peer.last_input) >= CLOCK_SLACK {
                // The session's clock is its last input: a packet its pacer sends from this
                // write would be stamped with that older time, and the bandwidth estimate
                // (which compares send and arrival spacing) would read the gap as queueing.
                let rtc = &mut player_peer.rtc;
                if catch_unwind(AssertUnwindSafe(|| rtc.handle_input(Input::Timeout(now)))).is_err() {
                    self.closing.push((pid, "panicked on timeout"));
                    continue;
                }
                player_peer.last_input = now;
                self.dirty.push(pid);
            }
            let rtc = &mut player_peer.rtc;
            let tracks = &mut player.tracks;
            let written = catch_unwind(AssertUnwindSafe(|| {
                let (mut sent, mut waiting, mut switched) = (0u64, 0u8, 0u64);
                for t in tracks.iter_mut().filter(|t| t.source == *mid) {
                    let before = t.current_layer();
                    if t.forward(rtc, packet, *layer, pt_out, *codec, now) == Forwarded::Sent {
                        sent += 1;
                        if t.is_simulcast() && before.is_some_and(|b| Some(b) != t.current_layer()) {
                            switched += 1;
                        }
                    }
                    if let Some(l) = t.awaited_keyframe() {
                        waiting |= 1 << l;
                    }
                }
                (sent, waiting, switched)
            }));
            match written {
                Ok((sent, waiting, switched)) => {
                    awaited |= waiting;
                    if switched > 0 {
                        Shared::add(&self.shared.layer_switches, switched);
                    }
                    if sent > 0 {
                        self.forwarded_in_turn = true;
                        Shared::add(&self.shared.forwarded, sent);
                        if !player_peer.write_pending {
                            player_peer.write_pending = true;
                            self.written.push(pid);
                            self.written_at.get_or_insert(now);
                        }
                    }
                }
                Err(_) => self.closing.push((pid, "panicked on write")),
            }
        }
        awaited
    }

    /// A player of `publisher` needs a keyframe of `layers` (bit per simulcast layer): asked of
    /// the publisher here, or of its origin shard (at most once per [`KEYFRAME_INTERVAL`] and
    /// layer from this shard).
    fn want_keyframe(&mut self, publisher: PeerId, layers: u8, now: Instant) {
        if let Some(p) = self.local_publisher(publisher) {
            p.keyframe_wanted |= layers;
            self.try_keyframe(publisher, now);
        } else if let Some(mirror) = self.mirrors.get_mut(&publisher) {
            let asked = match mirror.last_keyframe_ask {
                Some((at, asked)) if now.saturating_duration_since(at) < KEYFRAME_INTERVAL => asked,
                _ => 0,
            };
            if layers & !asked == 0 {
                return;
            }
            let at = mirror.last_keyframe_ask.filter(|_| asked != 0).map_or(now, |(at, _)| at);
            mirror.last_keyframe_ask = Some((at, asked | layers));
            self.crossings.push_back((mirror.origin, Crossing::Keyframe { publisher, layers }));
        }
    }

    /// Sends a PLI for the publisher's wanted video layers if the rate limit allows.
    fn try_keyframe(&mut self, publisher: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&publisher) else { return };
        let Role::Publisher(p) = &mut peer.role else { return };
        if p.keyframe_wanted == 0
            || p.last_keyframe_request.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        // Only layers the video has (a stream-wide resume asks for all of them).
        let existing = p.source.tracks.iter().fold(0u8, |bits, t| bits | layer_bits(t.layers.len()));
        p.keyframe_wanted &= existing;
        let rtc = &mut peer.rtc;
        let mut asked = 0u8;
        for t in p.source.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
            let rids: Vec<(u8, Option<Rid>)> = if t.layers.is_empty() {
                vec![(0, None)]
            } else {
                t.layers.iter().enumerate().map(|(i, l)| (i as u8, Some(l.rid))).collect()
            };
            for (layer, rid) in rids.into_iter().filter(|(layer, _)| p.keyframe_wanted & 1 << layer != 0) {
                // No stream yet (no packet, no a=ssrc): stay wanted, retried on the next video packet.
                if let Some(rx) = rtc.direct_api().stream_rx_by_mid(t.mid, rid) {
                    rx.request_keyframe(KeyframeRequestKind::Pli);
                    asked |= 1 << layer;
                }
            }
        }
        if asked != 0 {
            p.keyframe_wanted &= !asked;
            p.last_keyframe_request = Some(now);
            Shared::add(&self.shared.keyframe_requests, 1);
            self.dirty.push(publisher);
        }
    }

    // ---- lifecycle ----

    /// Drops sessions that never connected in time or that str0m closed.
    fn sweep(&mut self, now: Instant) {
        // Every publisher's layer rates first, then the players' choices from them (one pass in
        // the map's order would let a player choose from its publisher's rates of a second ago).
        for peer in self.peers.values_mut() {
            if let Role::Publisher(p) = &mut peer.role {
                p.measure_layers(now);
            }
        }
        let mut rechosen = Vec::new();
        for peer in self.peers.values_mut() {
            match &mut peer.role {
                // Layers come and go with the publisher's uplink: choose again.
                Role::Player(player) if player.tracks.iter().any(|t| t.is_simulcast()) => {
                    let awaited = player.choose_layers();
                    rechosen.push((peer.id, player.publisher, awaited));
                }
                _ => {}
            }
            if let Role::Publisher(p) = &mut peer.role
                && p.pulled
            {
                if !p.players.is_empty() || !p.shards.is_empty() {
                    p.idle_since = None;
                } else if p.idle_since.is_some_and(|t| now.saturating_duration_since(t) >= PULL_IDLE) {
                    self.closing.push((peer.id, "pulled stream without players"));
                    continue;
                } else {
                    p.idle_since.get_or_insert(now);
                }
            }
            if !peer.rtc.is_alive() {
                self.closing.push((peer.id, "closed"));
            } else if !peer.connected && now.saturating_duration_since(peer.created) > self.connect_timeout {
                self.closing.push((peer.id, "never connected"));
            }
        }
        for (id, publisher, awaited) in rechosen {
            self.update_probing(id, now);
            if awaited != 0 {
                self.want_keyframe(publisher, awaited, now);
            }
        }
    }

    fn close_pending(&mut self) {
        while let Some((id, why)) = self.closing.pop() {
            self.remove(id, why);
        }
    }

    /// Removes a session (a publisher takes its players along) and reports it.
    fn remove(&mut self, id: PeerId, why: &'static str) {
        let Some(peer) = self.unmap(id) else { return };
        tracing::debug!(peer = id, stream = %peer.stream.stream_id, why, "relay session ended");
        let mut ended = Vec::new();
        match peer.role {
            Role::Publisher(publisher) => {
                let mut player_shards = 0;
                if self.streams.get(&peer.stream) == Some(&id) {
                    self.streams.remove(&peer.stream);
                    player_shards = self.release(&peer.stream, Some(id));
                }
                let mut bytes_out = publisher.players_bytes_out;
                for pid in publisher.players {
                    if let Some(player) = self.unmap(pid) {
                        bytes_out += player.bytes_out;
                        ended.push(RelayEvent::PlayerStopped { stream: player.stream, peer: pid });
                    }
                }
                let bytes = MediaBytes { bytes_in: peer.bytes_in, bytes_out };
                if player_shards == 0 || self.stopping {
                    ended.push(RelayEvent::StreamStopped { stream: peer.stream, peer: id, bytes });
                } else {
                    // Reported once every other shard has ended its players of the stream.
                    for shard in shards_of(player_shards) {
                        self.crossings.push_back((shard, Crossing::End { publisher: id }));
                    }
                    self.ending.insert(id, Ending { stream: peer.stream, bytes, waiting: player_shards });
                }
            }
            Role::Pulling(_) => {
                self.release(&peer.stream, None);
                let bytes = MediaBytes { bytes_in: peer.bytes_in, bytes_out: 0 };
                ended.push(RelayEvent::StreamStopped { stream: peer.stream, peer: id, bytes });
            }
            Role::Player(player) => {
                let publisher = player.publisher;
                if let Some(p) = self.local_publisher(publisher) {
                    p.players.retain(|&x| x != id);
                    p.players_bytes_out += peer.bytes_out;
                } else if let Some(mirror) = self.mirrors.get_mut(&publisher) {
                    mirror.players.retain(|&x| x != id);
                    mirror.departed_bytes_out += peer.bytes_out;
                    if mirror.players.is_empty()
                        && !self.stopping
                        && let Some(mirror) = self.mirrors.remove(&publisher)
                    {
                        let bytes_out = mirror.departed_bytes_out;
                        let unsubscribe = Crossing::Unsubscribe { publisher, shard: self.index, bytes_out };
                        self.crossings.push_back((mirror.origin, unsubscribe));
                    }
                }
                ended.push(RelayEvent::PlayerStopped { stream: peer.stream, peer: id });
            }
        }
        // Load first, so whoever reacts to the event already sees it.
        self.update_load();
        for event in ended {
            self.events.push_back(event);
        }
    }

    /// Takes a session out of every map.
    fn unmap(&mut self, id: PeerId) -> Option<Peer> {
        let mut peer = self.peers.remove(&id)?;
        // Tell the remote (RTCP BYE, DTLS close_notify) so it need not wait for an ICE timeout.
        let rtc = &mut peer.rtc;
        if let Ok(Ok(())) = catch_unwind(AssertUnwindSafe(|| rtc.close())) {
            peer.drain(&mut self.transmits, &mut Vec::new());
        }
        peer.rtc.disconnect();
        for addr in &peer.addrs {
            if self.by_addr.get(addr) == Some(&id) {
                self.by_addr.remove(addr);
            }
        }
        if self.by_ufrag.get(&peer.ufrag) == Some(&id) {
            self.by_ufrag.remove(&peer.ufrag);
        }
        Some(peer)
    }

    /// Frees `stream` in the directory if this shard holds it for `publisher` (which ended)
    /// or reserved it for a publish that failed (`None`). Returns the other shards that were
    /// given players of it.
    fn release(&self, stream: &StreamKey, publisher: Option<PeerId>) -> u64 {
        if self.streams.contains_key(stream) {
            return 0;
        }
        let mut directory = super::lock(&self.directory);
        let ours = directory
            .get(stream)
            .is_some_and(|entry| entry.shard == self.index && entry.origin.as_ref().map(|o| o.publisher) == publisher);
        if !ours {
            return 0;
        }
        directory.remove(stream).map_or(0, |entry| entry.player_shards & !(1u64 << self.index))
    }

    fn update_load(&self) {
        self.shared.peers.store(self.peers.len(), Ordering::Relaxed);
        self.shared.streams.store(self.streams.len(), Ordering::Relaxed);
    }

    /// Ends every session (the relay is stopping), reporting each.
    pub fn shutdown(&mut self) {
        self.stopping = true;
        let publishers: Vec<PeerId> = self.peers.values().filter(|p| p.is_publisher()).map(|p| p.id).collect();
        for id in publishers {
            self.remove(id, "relay stopped");
        }
        let rest: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in rest {
            self.remove(id, "relay stopped");
        }
    }
}

/// Why an accepted offer gives nothing to forward: its audio/video named no codec we use
/// (`unmatched` sections; `usable` says what would do), or it has none in the needed direction.
/// The bits of `count` simulcast layers (bit 0 alone for an unlayered track).
fn layer_bits(count: usize) -> u8 {
    match count {
        0 | 1 => 1,
        n => ((1u16 << n.min(MAX_LAYERS)) - 1) as u8,
    }
}

fn no_media(offer: &str, unmatched: &[MediaKind], usable: String) -> RelayError {
    if unmatched.is_empty() {
        return RelayError::NoMedia;
    }
    let offered = sdp::offered_codecs(offer);
    let offered = if offered.is_empty() { "none".to_owned() } else { offered.join(", ") };
    RelayError::NoSupportedCodec { offered, usable }
}
