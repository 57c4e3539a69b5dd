//! The sans-IO engine against in-memory str0m clients on a virtual clock: no thread, socket or
//! wall clock. A [`Sim`] moves datagrams between the engine and the clients with a fixed
//! one-way delay, drops a given fraction of a client's RTP packets by a seeded hash, and jumps
//! time to the next deadline. Every scenario runs twice with the same seed and must give the
//! same figures: what is asserted does not depend on the machine's speed or load.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::super::engine::Engine;
use super::*;

/// One-way delay of every datagram.
const LATENCY: Duration = Duration::from_millis(10);
/// Where the engine's sessions are told they are reachable.
const RELAY_ADDR: &str = "10.0.0.100:3478";

/// SplitMix64: a seeded, portable sequence (the loss pattern is part of the test's input).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// A str0m client (publisher or player) living in the simulation.
struct SimClient {
    name: &'static str,
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    audio: Option<Mid>,
    video: Option<Mid>,
    /// Its session id at the engine.
    peer: PeerId,
    publish: bool,
    /// Keyframes every this many frames (and the first, and after a request).
    key_every: u32,
    /// Fraction of the media packets to and from this client lost once it is connected (their
    /// retransmissions get through).
    loss: f64,
    /// Every datagram to and from it is lost (it has gone away without a word).
    silent: bool,
    timeout: Instant,
    connected_at: Option<Instant>,
    closed: bool,
    next_frame: Instant,
    frames_sent: u32,
    force_key: bool,
    keyframe_requests: u32,
    /// Frames received: (kind, frame number, keyframe).
    received: Vec<(MediaKind, u32, bool)>,
}

impl SimClient {
    fn new(name: &'static str, index: u8, now: Instant) -> SimClient {
        let addr: SocketAddr = format!("10.0.0.{}:5000", index + 1).parse().unwrap();
        let mut rtc = RtcConfig::new().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        SimClient {
            name,
            rtc,
            addr,
            pending: None,
            audio: None,
            video: None,
            peer: 0,
            publish: false,
            key_every: KEY_EVERY,
            loss: 0.0,
            silent: false,
            timeout: now,
            connected_at: None,
            closed: false,
            next_frame: now,
            frames_sent: 0,
            force_key: true,
            keyframe_requests: 0,
            received: Vec::new(),
        }
    }

    fn offer(&mut self, dir: Direction) -> String {
        let mut api = self.rtc.sdp_api();
        self.audio = Some(api.add_media(MediaKind::Audio, dir, None, None, None));
        self.video = Some(api.add_media(MediaKind::Video, dir, None, None, None));
        let (offer, pending) = api.apply().unwrap();
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        self.rtc.sdp_api().accept_answer(self.pending.take().unwrap(), answer).expect("answer accepted");
    }

    /// Writes the frames due by `now` (publishers, once connected).
    fn write_frames(&mut self, now: Instant) {
        if !self.publish || self.connected_at.is_none() || self.closed {
            return;
        }
        while self.next_frame <= now {
            let n = self.frames_sent;
            let keyframe = self.force_key || n.is_multiple_of(self.key_every);
            self.force_key = false;
            let at = self.next_frame;
            if let Some(w) = self.video.and_then(|mid| self.rtc.writer(mid)) {
                let pt = w.payload_params().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()).unwrap();
                let t = MediaTime::new(n as u64 * 1800, Frequency::NINETY_KHZ);
                w.write(pt, at, t, video_frame(n, keyframe)).unwrap();
            }
            if let Some(w) = self.audio.and_then(|mid| self.rtc.writer(mid)) {
                let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()).unwrap();
                let t = MediaTime::new(n as u64 * 960, Frequency::FORTY_EIGHT_KHZ);
                w.write(pt, at, t, audio_frame(n)).unwrap();
            }
            self.frames_sent += 1;
            self.next_frame += FRAME;
        }
    }

    /// Polls the client until it asks for a timeout; returns its datagrams.
    fn drain(&mut self, now: Instant, out: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        while !self.closed {
            if !self.rtc.is_alive() {
                self.closed = true;
                break;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push((self.addr, t.destination, t.contents.to_vec())),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected_at = Some(now);
                        self.next_frame = now;
                    }
                    Event::MediaData(m) => {
                        let kind = if Some(m.mid) == self.video { MediaKind::Video } else { MediaKind::Audio };
                        let n = match kind {
                            MediaKind::Video => frame_number(&m.data).map(|(n, _)| n),
                            _ => m.data.get(1..5).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes),
                        };
                        self.received.push((kind, n.expect("one of our frames"), m.is_keyframe()));
                    }
                    Event::KeyframeRequest(_) => {
                        self.force_key = true;
                        self.keyframe_requests += 1;
                    }
                    Event::Closed | Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.closed = true;
                    }
                    _ => {}
                },
                Err(_) => self.closed = true,
            }
        }
    }

    fn frames(&self, kind: MediaKind) -> Vec<(u32, bool)> {
        self.received.iter().filter(|(k, _, _)| *k == kind).map(|&(_, n, key)| (n, key)).collect()
    }
}

/// The engine, its clients and the network between them.
struct Sim {
    now: Instant,
    engine: Engine,
    shared: Arc<Shared>,
    relay: SocketAddr,
    clients: Vec<SimClient>,
    /// (arrival, from, to, datagram), in arrival order (one fixed delay keeps it sorted).
    in_flight: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    seed: u64,
    events: Vec<RelayEvent>,
    /// Datagrams the loss dropped.
    dropped: u64,
}

impl Sim {
    fn new(seed: u64, connect_timeout: Duration) -> Sim {
        let now = Instant::now();
        let relay: SocketAddr = RELAY_ADDR.parse().unwrap();
        let shared = Arc::new(Shared::default());
        let shard = ShardInfo { index: 0, count: 1, directory: Arc::new(Directory::default()) };
        let engine = Engine::new(vec![relay], Arc::clone(&shared), shard, connect_timeout, now).unwrap();
        Sim {
            now,
            engine,
            shared,
            relay,
            clients: Vec::new(),
            in_flight: VecDeque::new(),
            seed,
            events: Vec::new(),
            dropped: 0,
        }
    }

    /// A publisher of `stream`; returns its index among the clients.
    fn publisher(&mut self, name: &'static str, stream: &str) -> usize {
        let mut client = SimClient::new(name, self.clients.len() as u8, self.now);
        client.publish = true;
        let offer = client.offer(Direction::SendOnly);
        let (peer, answer) = self.engine.publish(self.now, key(stream), &offer).expect("publish accepted");
        client.accept(&answer);
        client.peer = peer;
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// A player of `stream` whose leg loses `loss` of its media packets once connected.
    fn player(&mut self, name: &'static str, stream: &str, loss: f64) -> usize {
        let mut client = SimClient::new(name, self.clients.len() as u8, self.now);
        client.loss = loss;
        let offer = client.offer(Direction::RecvOnly);
        let (peer, answer) = self.engine.play(self.now, key(stream), &offer).expect("play accepted");
        client.accept(&answer);
        client.peer = peer;
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// Whether a datagram between the relay and `client` is lost. The loss takes media packets
    /// only (not STUN, DTLS, RTCP or retransmissions), decided by a hash of the seed and the
    /// packet's clear-text payload type and sequence number: str0m's random SSRCs and DTLS
    /// change the order of datagrams between runs, so a draw per datagram in order would not
    /// repeat, and neither would the timing of a retransmission that is lost again.
    fn lost(&mut self, client: usize, data: &[u8]) -> bool {
        let c = &self.clients[client];
        if c.silent {
            return true;
        }
        if c.connected_at.is_none() || c.loss <= 0.0 {
            return false;
        }
        let loss = c.loss;
        // RTP: version 2, and not an RTCP packet type (200–223 in the second byte).
        let [first, second, seq_hi, seq_lo, ..] = *data else { return false };
        if first >> 6 != 2 || (192..=223).contains(&second) {
            return false;
        }
        let pt = second & 0x7f;
        let resend = c.rtc.codec_config().params().iter().any(|p| p.resend().is_some_and(|rtx| *rtx == pt));
        if resend {
            return false;
        }
        let key = (u64::from(pt) << 32) | u64::from(u16::from_be_bytes([seq_hi, seq_lo]));
        Rng(self.seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15)).chance(loss)
    }

    fn client_at(&self, addr: SocketAddr) -> Option<usize> {
        self.clients.iter().position(|c| c.addr == addr)
    }

    /// Collects every output of the engine and the clients, putting datagrams on the wire.
    fn collect(&mut self) {
        let mut out = Vec::new();
        for c in &mut self.clients {
            c.drain(self.now, &mut out);
        }
        while let Some(t) = self.engine.poll_transmit() {
            out.push((self.relay, t.destination, t.contents.to_vec()));
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
        for (from, to, data) in out {
            let client = if from == self.relay { self.client_at(to) } else { self.client_at(from) };
            let Some(client) = client else { continue };
            if self.lost(client, &data) {
                self.dropped += 1;
                continue;
            }
            self.in_flight.push_back((self.now + LATENCY, from, to, data));
        }
    }

    /// Runs the world until `until`, jumping from one deadline to the next.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.collect();
            let mut next = self.engine.poll_timeout();
            for c in self.clients.iter().filter(|c| !c.closed) {
                next = next.min(c.timeout);
                if c.publish && c.connected_at.is_some() {
                    next = next.min(c.next_frame);
                }
            }
            if let Some((t, ..)) = self.in_flight.front() {
                next = next.min(*t);
            }
            // Something already due was handled at `now`: step on, so that time always moves.
            let next = next.max(self.now + Duration::from_millis(1));
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            let now = self.now;
            while self.in_flight.front().is_some_and(|(t, ..)| *t <= now) {
                let Some((_, from, to, data)) = self.in_flight.pop_front() else { break };
                if to == self.relay {
                    self.engine.handle_datagram(now, from, &data);
                } else if let Some(c) = self.client_at(to).map(|i| &mut self.clients[i])
                    && !c.closed
                {
                    let receive = Receive::new(Protocol::Udp, from, to, &data).expect("a datagram");
                    if c.rtc.handle_input(Input::Receive(now, receive)).is_err() {
                        c.closed = true;
                    }
                }
            }
            if self.engine.poll_timeout() <= now {
                self.engine.handle_timeout(now);
            }
            for c in self.clients.iter_mut().filter(|c| !c.closed) {
                c.write_frames(now);
                if c.timeout <= now && c.rtc.handle_input(Input::Timeout(now)).is_err() {
                    c.closed = true;
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    fn keyframe_requests(&self) -> u64 {
        self.shared.keyframe_requests.load(Ordering::Relaxed)
    }
}

/// Asserts a player's video is the publisher's frames in order without gaps from a keyframe
/// on, and its audio in order; returns (video frames, audio frames, first video frame).
fn contiguous(client: &SimClient) -> (usize, usize, u32) {
    let video = client.frames(MediaKind::Video);
    let name = client.name;
    assert!(!video.is_empty(), "{name}: no video");
    assert!(video[0].1, "{name}: video must start on a keyframe");
    for pair in video.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "{name}: video frames out of order or missing");
    }
    let audio = client.frames(MediaKind::Audio);
    for pair in audio.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "{name}: audio frames out of order or missing");
    }
    (video.len(), audio.len(), video[0].0)
}

fn twice<T: PartialEq + std::fmt::Debug>(scenario: impl Fn(u64) -> T) -> T {
    let first = scenario(7);
    let second = scenario(7);
    assert_eq!(first, second, "the same seed must give the same run");
    first
}

#[test]
fn forwards_every_frame_to_every_player() {
    let figures = twice(|seed| {
        let mut sim = Sim::new(seed, CONNECT_TIMEOUT);
        let publisher = sim.publisher("publisher", "cam");
        let players: Vec<usize> = ["p1", "p2", "p3"].into_iter().map(|name| sim.player(name, "cam", 0.0)).collect();
        sim.run_for(Duration::from_secs(3));
        let sent = sim.clients[publisher].frames_sent;
        assert!(sent >= 100, "the publisher wrote only {sent} frames");
        let mut per_player = Vec::new();
        for &p in &players {
            let (video, audio, first) = contiguous(&sim.clients[p]);
            assert_eq!(first, 0, "no loss, so every player starts on the first keyframe");
            // All but what is still in flight at the end.
            assert!(video + 3 >= sent as usize, "{}: {video} of {sent} video frames", sim.clients[p].name);
            assert!(audio + 3 >= sent as usize, "{}: {audio} of {sent} audio frames", sim.clients[p].name);
            per_player.push((video, audio));
        }
        // Every publisher packet went to all three players: at least one per frame and kind.
        assert!(sim.forwarded() >= 3 * 2 * u64::from(sent) - 20, "forwarded {}", sim.forwarded());
        let live = sim.events.iter().filter(|e| matches!(e, RelayEvent::StreamLive { .. })).count();
        let started = sim.events.iter().filter(|e| matches!(e, RelayEvent::PlayerStarted { .. })).count();
        assert_eq!((live, started), (1, 3));
        (sent, per_player, sim.forwarded())
    });
    println!("frames sent, (video, audio) per player, RTP packets forwarded: {figures:?}");
}

#[test]
fn a_player_joining_mid_stream_starts_on_a_requested_keyframe() {
    let figures = twice(|seed| {
        let mut sim = Sim::new(seed, CONNECT_TIMEOUT);
        let publisher = sim.publisher("publisher", "cam");
        // No periodic keyframes: only the first and those asked for.
        sim.clients[publisher].key_every = u32::MAX;
        let early = sim.player("early", "cam", 0.0);
        sim.run_for(Duration::from_secs(2));
        let requests_before = sim.clients[publisher].keyframe_requests;
        let relay_requests_before = sim.keyframe_requests();
        let frames_before = sim.clients[publisher].frames_sent;
        assert!(frames_before >= 50, "the stream is running ({frames_before} frames)");

        let late = sim.player("late", "cam", 0.0);
        sim.run_for(Duration::from_secs(2));
        let publisher_got = sim.clients[publisher].keyframe_requests - requests_before;
        assert!(publisher_got >= 1, "the publisher was not asked for a keyframe");
        assert!(sim.keyframe_requests() > relay_requests_before);
        let (late_video, _, late_first) = contiguous(&sim.clients[late]);
        assert!(late_first >= frames_before, "the late player started on old frame {late_first}");
        assert!(late_video >= 40, "late: {late_video} video frames");
        let (early_video, ..) = contiguous(&sim.clients[early]);
        assert!(early_video + 3 >= sim.clients[publisher].frames_sent as usize);
        (publisher_got, late_first, late_video, early_video)
    });
    println!("keyframe requests, late player's first frame, late/early video frames: {figures:?}");
}

#[test]
fn nacks_repair_loss_on_a_player_leg() {
    const LOSS: f64 = 0.1;
    let figures = twice(|seed| {
        let mut sim = Sim::new(seed, CONNECT_TIMEOUT);
        let publisher = sim.publisher("publisher", "cam");
        let lossy = sim.player("lossy", "cam", LOSS);
        sim.run_for(Duration::from_secs(5));
        // Count the frames written so far, once retransmissions have had time to arrive.
        let sent = sim.clients[publisher].frames_sent;
        sim.run_for(Duration::from_millis(1500));
        let received = |kind| sim.clients[lossy].frames(kind).iter().filter(|(n, _)| *n < sent).count() as u32;
        let (video, audio) = (received(MediaKind::Video), received(MediaKind::Audio));
        assert!(sim.dropped > 50, "the leg lost only {} datagrams", sim.dropped);
        // Audio is not retransmitted, so it shows the loss; video is NACKed and repaired (all
        // but a frame whose first packet was lost before the player saw any: nothing to NACK).
        assert!(f64::from(audio) < 0.95 * f64::from(sent), "audio {audio} of {sent}: was anything lost?");
        assert!(video + 1 >= sent, "video {video} of {sent}: the loss was not repaired");
        (sim.dropped, video, audio, sent)
    });
    println!("datagrams lost, video and audio frames received, frames sent: {figures:?}");
}

#[test]
fn a_peer_silent_past_the_timeout_is_closed() {
    let figures = twice(|seed| {
        let connect_timeout = Duration::from_secs(5);
        let mut sim = Sim::new(seed, connect_timeout);
        let start = sim.now;
        let publisher = sim.publisher("publisher", "cam");
        let quiet = sim.player("quiet", "cam", 0.0);
        let never = sim.player("never", "cam", 0.0);
        // `never` got its answer but sends nothing at all.
        sim.clients[never].silent = true;
        sim.run_for(Duration::from_secs(2));
        assert!(sim.clients[quiet].connected_at.is_some());
        let (never_id, quiet_id) = (sim.clients[never].peer, sim.clients[quiet].peer);
        let stopped_at = |sim: &Sim, id: PeerId| {
            sim.events.iter().position(|e| matches!(e, RelayEvent::PlayerStopped { peer, .. } if *peer == id))
        };

        // `quiet` goes away without a word at 2 s.
        sim.clients[quiet].silent = true;
        let mut never_closed = None;
        let mut quiet_closed = None;
        while sim.now < start + Duration::from_secs(60) && (never_closed.is_none() || quiet_closed.is_none()) {
            sim.run_for(Duration::from_millis(100));
            let since = sim.now - start;
            if never_closed.is_none() && stopped_at(&sim, never_id).is_some() {
                never_closed = Some(since.as_millis());
            }
            if quiet_closed.is_none() && stopped_at(&sim, quiet_id).is_some() {
                quiet_closed = Some(since.as_millis());
            }
        }
        let never_closed = never_closed.expect("the never-connected player was closed");
        let quiet_closed = quiet_closed.expect("the silent player was closed");
        assert!(never_closed > connect_timeout.as_millis(), "closed at {never_closed} ms");
        assert!(never_closed <= (connect_timeout + Duration::from_millis(1100)).as_millis());
        assert!(quiet_closed > 2000, "closed at {quiet_closed} ms");
        // The stream itself goes on.
        assert!(!sim.events.iter().any(|e| matches!(e, RelayEvent::StreamStopped { .. })));
        assert!(!sim.clients[publisher].closed);
        let players = sim.events.iter().filter(|e| matches!(e, RelayEvent::PlayerStarted { .. })).count();
        assert_eq!(players, 1, "only `quiet` ever connected");
        (never_closed, quiet_closed)
    });
    println!("never-connected and silent players closed at (ms): {figures:?}");
}

#[test]
fn a_publisher_closing_ends_its_players() {
    let figures = twice(|seed| {
        let mut sim = Sim::new(seed, CONNECT_TIMEOUT);
        let publisher = sim.publisher("publisher", "cam");
        let players: Vec<usize> = ["p1", "p2"].into_iter().map(|name| sim.player(name, "cam", 0.0)).collect();
        sim.run_for(Duration::from_secs(2));
        assert!(players.iter().all(|&p| sim.clients[p].connected_at.is_some()));
        let before = sim.events.len();

        // The publisher hangs up (RTCP BYE, DTLS close_notify).
        sim.clients[publisher].rtc.close().unwrap();
        sim.run_for(Duration::from_secs(1));
        let id = sim.clients[publisher].peer;
        let ended = sorted(sim.events[before..].to_vec());
        let mut expected = vec![RelayEvent::StreamStopped {
            stream: key("cam"),
            peer: id,
            bytes: match ended.iter().find(|e| matches!(e, RelayEvent::StreamStopped { .. })) {
                Some(RelayEvent::StreamStopped { bytes, .. }) => *bytes,
                _ => panic!("no StreamStopped in {ended:?}"),
            },
        }];
        for &p in &players {
            expected.push(RelayEvent::PlayerStopped { stream: key("cam"), peer: sim.clients[p].peer });
        }
        assert_eq!(ended, sorted(expected));
        // The players are told too, not left to time out.
        for &p in &players {
            assert!(sim.clients[p].closed, "{} was not closed", sim.clients[p].name);
        }
        let RelayEvent::StreamStopped { bytes, .. } =
            ended.iter().find(|e| matches!(e, RelayEvent::StreamStopped { .. })).unwrap()
        else {
            unreachable!()
        };
        assert!(bytes.bytes_in > 0 && bytes.bytes_out > bytes.bytes_in, "{bytes:?}");
        // (Byte counts are not compared between runs: DTLS signatures vary in length.)
        ended.len()
    });
    println!("events at the end: {figures:?}");
}
