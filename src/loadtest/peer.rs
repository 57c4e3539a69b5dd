//! A WebRTC peer built on str0m that publishes synthetic media or plays a stream, over a real
//! UDP socket on its own thread. Used by `huddle loadtest media` and by the tests, the way a
//! browser or a WHIP encoder would use the relay.
//!
//! Synthetic media: VP8 frames at 30/s (a keyframe every 300th, and on every keyframe request
//! from the relay) and Opus frames at 50/s. Delta frames are [`PeerOptions::video_frame_bytes`]
//! long (1000 by default, ~240 kbit/s; str0m packetizes larger frames into several RTP
//! packets), keyframes three times that. Every
//! payload carries the peer's frame sequence number after a small header, then its simulcast
//! layer, so a player can check order and identity of what it receives. A publisher may send
//! up to three simulcast layers ([`PeerOptions::simulcast_layers`]): rids `s0`, `s1`, `s2`,
//! low to high, each a quarter the size of the next.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::light::LightHub;

/// What a peer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends VP8 video and Opus audio.
    Publish,
    /// Receives video and audio.
    Play,
}

/// Counters a peer keeps; read them with [`MediaPeer::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connected: AtomicBool,
    pub(super) closed: AtomicBool,
    pub(super) video_frames: AtomicU64,
    pub(super) audio_frames: AtomicU64,
    keyframes: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// Sequence numbers of received (player) or sent (publisher) video frames, in order;
    /// capped so long runs do not grow without bound.
    video_sequence: Mutex<Vec<u32>>,
    /// RTP timestamps of the same frames (publisher: of each frame sent, at the index of its
    /// sequence number; light player: of each complete frame received), capped alike.
    pub(super) video_timestamps: Mutex<Vec<u32>>,
    /// Light player: for each entry of `video_timestamps`, microseconds from the publisher's
    /// write of the frame to its last packet read here.
    pub(super) frame_latency_us: Mutex<Vec<u32>>,
    /// Publisher: the instant its RTP times count from (RTP time = elapsed since then).
    epoch: Mutex<Option<Instant>>,
    first_keyframe_after_connect: Mutex<Option<Duration>>,
    /// A light player: it counts frames from the RTP headers (see [`super::light`]).
    pub(super) light: AtomicBool,
    /// Player: video frames received per simulcast layer (0 for a stream of one encoding).
    layer_frames: [AtomicU64; MAX_SIMULCAST_LAYERS],
    /// Player: the layer of the last video frame received.
    last_layer: AtomicU64,
}

/// A copy of a peer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub connected: bool,
    pub closed: bool,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub video_sequence: Vec<u32>,
    /// RTP timestamps of the frames sent (publisher) or received complete (light player).
    pub video_timestamps: Vec<u32>,
    /// Light player: per entry of `video_timestamps`, µs from the publisher's write of the
    /// frame to its last packet read.
    pub frame_latency_us: Vec<u32>,
    /// From ICE+DTLS connected to the first keyframe received (full players).
    pub first_keyframe_after_connect: Option<Duration>,
    /// A light player (frames counted from RTP headers, by timestamp, not decrypted).
    pub light: bool,
    /// Full player: video frames received per simulcast layer of the publisher (0 for one
    /// encoding).
    pub layer_frames: [u64; MAX_SIMULCAST_LAYERS],
    /// Full player: the layer of the last video frame received.
    pub last_layer: u8,
}

/// At most this many sequence numbers are kept per peer ([`PeerStats::video_sequence`]).
pub const SEQUENCE_CAP: usize = 10_000;
/// Nominal video frame rate (frames are 33 ms apart).
pub const VIDEO_FPS: u64 = 30;
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_millis(33);
const AUDIO_FRAME_INTERVAL: Duration = Duration::from_millis(20);
/// Periodic keyframes are rare (every 10 s), as a real encoder's; a new player gets one
/// sooner only when the relay forwards its keyframe request to the publisher.
const KEYFRAME_EVERY: u32 = 300;

/// Smallest delta frame: the VP8 frame tag and the sequence number fit.
const MIN_FRAME_BYTES: usize = 16;
/// Largest delta frame (keyframes are three times as large): ~48 Mbit/s at 30 fps.
const MAX_FRAME_BYTES: usize = 200_000;

/// Most simulcast layers a publisher sends.
pub const MAX_SIMULCAST_LAYERS: usize = 3;

/// How a peer publishes (players ignore these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerOptions {
    /// Size of each delta video frame in bytes (clamped to 16..=200 000); keyframes are three
    /// times as large. At 30 fps, `bitrate_bps / 8 / 30`: 4167 bytes make ~1 Mbit/s. With
    /// simulcast, the top layer's; each lower layer's frames are a quarter of the next.
    pub video_frame_bytes: usize,
    /// Simulcast layers sent (0 or 1: one encoding; at most [`MAX_SIMULCAST_LAYERS`]).
    pub simulcast_layers: u8,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions { video_frame_bytes: 1000, simulcast_layers: 0 }
    }
}

impl PeerOptions {
    /// Options for a publisher sending about `kbps` kilobits of video per second.
    pub fn for_video_kbps(kbps: u32) -> PeerOptions {
        PeerOptions { video_frame_bytes: (u64::from(kbps) * 1000 / 8 / VIDEO_FPS) as usize, simulcast_layers: 0 }
    }

    fn frame_bytes(&self) -> usize {
        self.video_frame_bytes.clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES)
    }

    /// The rids of the simulcast layers sent, low to high (empty: one encoding).
    fn rids(&self) -> Vec<Rid> {
        let layers = usize::from(self.simulcast_layers).min(MAX_SIMULCAST_LAYERS);
        if layers < 2 { Vec::new() } else { (0..layers).map(|i| Rid::from(format!("s{i}").as_str())).collect() }
    }
}

/// A peer whose offer is made and whose answer is awaited.
pub struct PendingPeer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    socket: UdpSocket,
    role: Role,
    audio: Mid,
    video: Mid,
    options: PeerOptions,
}

impl PendingPeer {
    /// Binds a UDP socket on `ip` and makes an SDP offer (sendonly or recvonly audio+video).
    pub fn offer(role: Role, ip: std::net::IpAddr) -> Result<(PendingPeer, String), String> {
        Self::offer_with(role, ip, PeerOptions::default())
    }

    /// [`PendingPeer::offer`] with publishing options (the video frame size).
    pub fn offer_with(role: Role, ip: std::net::IpAddr, options: PeerOptions) -> Result<(PendingPeer, String), String> {
        // Idempotent; str0m needs a process-wide crypto provider before the first Rtc.
        static CRYPTO: std::sync::Once = std::sync::Once::new();
        CRYPTO.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = RtcConfig::new().build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        let direction = match role {
            Role::Publish => Direction::SendOnly,
            Role::Play => Direction::RecvOnly,
        };
        let simulcast = match (role, options.rids()) {
            (Role::Publish, rids) if !rids.is_empty() => Some(Simulcast {
                send: rids.iter().map(|rid| SimulcastLayer::new(&rid.to_string())).collect(),
                recv: Vec::new(),
            }),
            _ => None,
        };
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, direction, None, None, None);
        let video = change.add_media(MediaKind::Video, direction, None, None, simulcast);
        let (offer, pending) = change.apply().ok_or("no changes to offer")?;
        Ok((PendingPeer { rtc, pending, socket, role, audio, video, options }, offer.to_sdp_string()))
    }

    /// The local address of the peer's UDP socket.
    pub fn local_addr(&self) -> Result<SocketAddr, String> {
        self.socket.local_addr().map_err(|e| e.to_string())
    }

    /// Applies the answer and starts the peer's thread.
    pub fn connect(mut self, answer: &str) -> Result<MediaPeer, String> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| format!("answer: {e}"))?;
        self.rtc.sdp_api().accept_answer(self.pending, answer).map_err(|e| format!("accept answer: {e}"))?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_counters, thread_stop) = (counters.clone(), stop.clone());
        let (rtc, socket, role, mids) = (self.rtc, self.socket, self.role, (self.audio, self.video));
        let options = self.options;
        let thread = std::thread::Builder::new()
            .name("huddle-peer".into())
            .spawn(move || {
                let result = drive(rtc, socket, role, mids, options, &thread_counters, &thread_stop);
                if let Err(err) = result {
                    tracing::debug!(error = %err, "peer ended");
                }
                thread_counters.closed.store(true, Ordering::Release);
            })
            .map_err(|e| e.to_string())?;
        Ok(MediaPeer { counters, stop, thread: Some(thread) })
    }
}

impl PendingPeer {
    /// Applies the answer and hands the peer to `hub`, which drives it as a light player
    /// together with many others on one thread (see [`super::light`]); `answer` names the
    /// payload types it counts.
    /// `publisher_epoch` (the publisher's [`MediaPeer::epoch`]) lets it time each frame.
    pub(super) fn connect_light(
        mut self,
        answer: &str,
        hub: &LightHub,
        publisher_epoch: Option<Instant>,
    ) -> Result<MediaPeer, String> {
        let sdp = SdpAnswer::from_sdp_string(answer).map_err(|e| format!("answer: {e}"))?;
        self.rtc.sdp_api().accept_answer(self.pending, sdp).map_err(|e| format!("accept answer: {e}"))?;
        let counters = Arc::new(Counters::default());
        counters.light.store(true, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        hub.join(self.rtc, self.socket, answer, counters.clone(), stop.clone(), publisher_epoch)?;
        Ok(MediaPeer { counters, stop, thread: None })
    }
}

/// A running peer; stops when dropped.
pub struct MediaPeer {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MediaPeer {
    pub fn stats(&self) -> PeerStats {
        let c = &self.counters;
        PeerStats {
            connected: c.connected.load(Ordering::Acquire),
            closed: c.closed.load(Ordering::Acquire),
            video_frames: c.video_frames.load(Ordering::Relaxed),
            audio_frames: c.audio_frames.load(Ordering::Relaxed),
            keyframes: c.keyframes.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            video_sequence: c.video_sequence.lock().map(|v| v.clone()).unwrap_or_default(),
            video_timestamps: c.video_timestamps.lock().map(|v| v.clone()).unwrap_or_default(),
            frame_latency_us: c.frame_latency_us.lock().map(|v| v.clone()).unwrap_or_default(),
            first_keyframe_after_connect: c.first_keyframe_after_connect.lock().ok().and_then(|v| *v),
            light: c.light.load(Ordering::Relaxed),
            layer_frames: std::array::from_fn(|i| c.layer_frames[i].load(Ordering::Relaxed)),
            last_layer: c.last_layer.load(Ordering::Relaxed) as u8,
        }
    }

    /// A publisher's RTP time origin: a frame with RTP time `t` (90 kHz) was written at
    /// `epoch + t / 90 000 s`. `None` until its thread runs, and for players.
    pub fn epoch(&self) -> Option<Instant> {
        self.counters.epoch.lock().ok().and_then(|e| *e)
    }

    /// Asks the peer's thread to close without waiting for it (then [`MediaPeer::stop`] or drop
    /// joins it); lets many peers close at once.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Closes the peer (a clean DTLS close, as a browser's `pc.close()`).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Vanishes without a word, like a crashed browser: the socket just goes quiet.
    pub fn vanish(mut self) {
        self.counters.closed.store(true, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        // The thread notices `stop` and exits without closing DTLS (see `drive`).
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MediaPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A synthetic VP8 frame: a valid VP8 frame tag (keyframes with the start code and a
/// 320x240 size) followed by the sequence number, the simulcast layer and filler;
/// `frame_bytes` long (delta) or three times that (keyframe).
fn vp8_frame(sequence: u32, keyframe: bool, frame_bytes: usize, layer: u8) -> Vec<u8> {
    let mut frame = if keyframe {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    frame.extend_from_slice(&sequence.to_be_bytes());
    frame.push(layer);
    frame.resize(if keyframe { 3 * frame_bytes } else { frame_bytes }, 0x5a);
    frame
}

/// (sequence number, simulcast layer) of a [`vp8_frame`].
fn sequence_of(frame: &[u8], keyframe: bool) -> Option<(u32, u8)> {
    let at = if keyframe { 10 } else { 3 };
    let bytes = frame.get(at..at + 5)?;
    Some((u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]), bytes[4]))
}

/// Delta frame size of simulcast layer `layer` of `layers` (each a quarter of the next).
fn layer_frame_bytes(top: usize, layer: usize, layers: usize) -> usize {
    (top >> (2 * layers.saturating_sub(layer + 1))).max(MIN_FRAME_BYTES)
}

/// The next send time on a fixed schedule, so that late wake-ups (socket timeouts are rounded
/// up to the kernel's tick) do not lower the frame rate; after a long stall it restarts from now.
fn next_tick(scheduled: Instant, interval: Duration, now: Instant) -> Instant {
    let next = scheduled + interval;
    if next + 2 * interval < now { now + interval } else { next }
}

fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    role: Role,
    (audio_mid, video_mid): (Mid, Mid),
    options: PeerOptions,
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<(), String> {
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let frame_bytes = options.frame_bytes();
    // One encoding is written without a rid.
    let rids: Vec<Option<Rid>> = match options.rids() {
        rids if rids.is_empty() => vec![None],
        rids => rids.into_iter().map(Some).collect(),
    };
    let mut buffer = vec![0u8; 2000];
    let mut connected_at: Option<Instant> = None;
    let started = Instant::now();
    if role == Role::Publish
        && let Ok(mut epoch) = counters.epoch.lock()
    {
        *epoch = Some(started);
    }
    let (mut next_video, mut next_audio) = (Instant::now(), Instant::now());
    let mut video_sequence = 0u32;
    let mut keyframe_requested = false;
    let mut closing_since: Option<Instant> = None;
    let mut audio_sequence = 0u32;
    loop {
        if stop.load(Ordering::Acquire) {
            // `vanish` marks the peer closed first: it goes quiet without a goodbye.
            if counters.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            match closing_since {
                // A clean close, as `pc.close()`: RTCP BYE and DTLS close_notify, drained by the
                // loop below until str0m is done (bounded, in case the relay is gone).
                None => {
                    closing_since = Some(Instant::now());
                    rtc.close().map_err(|e| e.to_string())?;
                }
                Some(since) if since.elapsed() > Duration::from_secs(1) => return Ok(()),
                Some(_) => {}
            }
        }
        let deadline = match rtc.poll_output().map_err(|e| e.to_string())? {
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(event) => {
                match event {
                    Event::Connected => {
                        counters.connected.store(true, Ordering::Release);
                        connected_at = Some(Instant::now());
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return Ok(()),
                    Event::KeyframeRequest(_) => keyframe_requested = true,
                    Event::MediaData(data) => {
                        counters.bytes.fetch_add(data.data.len() as u64, Ordering::Relaxed);
                        if data.mid == video_mid {
                            counters.video_frames.fetch_add(1, Ordering::Relaxed);
                            let keyframe = data.data.first().is_some_and(|b| b & 1 == 0);
                            if keyframe {
                                counters.keyframes.fetch_add(1, Ordering::Relaxed);
                                if let (Ok(mut first), Some(at)) =
                                    (counters.first_keyframe_after_connect.lock(), connected_at)
                                    && first.is_none()
                                {
                                    *first = Some(at.elapsed());
                                }
                            }
                            let identity = sequence_of(&data.data, keyframe);
                            if let Some((_, layer)) = identity
                                && let Some(count) = counters.layer_frames.get(usize::from(layer))
                            {
                                count.fetch_add(1, Ordering::Relaxed);
                                counters.last_layer.store(u64::from(layer), Ordering::Relaxed);
                            }
                            if let (Some((sequence, _)), Ok(mut seen)) = (identity, counters.video_sequence.lock())
                                && seen.len() < SEQUENCE_CAP
                            {
                                seen.push(sequence);
                            }
                        } else {
                            counters.audio_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Output::Timeout(at) => at,
        };
        let now = Instant::now();
        let mut wrote = false;
        if role == Role::Publish && connected_at.is_some() {
            if now >= next_video {
                let mid = video_mid;
                // A keyframe request for any layer is answered on every layer.
                let keyframe = video_sequence.is_multiple_of(KEYFRAME_EVERY) || std::mem::take(&mut keyframe_requested);
                let ticks = (now - started).as_micros() as u64 * 90 / 1000;
                let rtp_time = MediaTime::new(ticks, Frequency::NINETY_KHZ);
                let mut written = false;
                for (layer, rid) in rids.iter().enumerate() {
                    let Some(writer) = rtc.writer(mid) else { break };
                    let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt())
                    else {
                        break;
                    };
                    let writer = match rid {
                        Some(rid) => writer.rid(*rid),
                        None => writer,
                    };
                    let frame = vp8_frame(
                        video_sequence,
                        keyframe,
                        layer_frame_bytes(frame_bytes, layer, rids.len()),
                        layer as u8,
                    );
                    written |= writer.write(pt, now, rtp_time, frame).is_ok();
                }
                if written {
                    wrote = true;
                    counters.video_frames.fetch_add(1, Ordering::Relaxed);
                    if let (Ok(mut sent), Ok(mut timestamps)) =
                        (counters.video_sequence.lock(), counters.video_timestamps.lock())
                        && sent.len() < SEQUENCE_CAP
                    {
                        sent.push(video_sequence);
                        // str0m sends the RTP time as given, modulo 2^32; one-layer
                        // streams keep it through the relay.
                        timestamps.push(ticks as u32);
                    }
                    video_sequence += 1;
                }
                next_video = next_tick(next_video, VIDEO_FRAME_INTERVAL, now);
            }
            if now >= next_audio {
                let mid = audio_mid;
                if let Some(writer) = rtc.writer(mid) {
                    let pt = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
                    if let Some(pt) = pt {
                        let ticks = (now - started).as_micros() as u64 * 48 / 1000;
                        let rtp_time = MediaTime::new(ticks, Frequency::FORTY_EIGHT_KHZ);
                        let mut frame = audio_sequence.to_be_bytes().to_vec();
                        frame.resize(80, 0x11);
                        if writer.write(pt, now, rtp_time, frame).is_ok() {
                            wrote = true;
                            counters.audio_frames.fetch_add(1, Ordering::Relaxed);
                            audio_sequence += 1;
                        }
                    }
                }
                next_audio = next_tick(next_audio, AUDIO_FRAME_INTERVAL, now);
            }
            if wrote {
                // Out now, as an encoder's frame would be: str0m sends what was written at its
                // next timeout, and the deadline above was taken before the write.
                rtc.handle_input(Input::Timeout(now)).map_err(|e| e.to_string())?;
                continue;
            }
        }
        let mut wake = deadline.min(now + Duration::from_millis(10));
        if role == Role::Publish && connected_at.is_some() {
            wake = wake.min(next_video).min(next_audio);
        }
        let wait = wake.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
        let input = match socket.recv_from(&mut buffer) {
            Ok((n, source)) => match Receive::new(Protocol::Udp, source, local, &buffer[..n]) {
                Ok(receive) => Input::Receive(Instant::now(), receive),
                Err(_) => continue,
            },
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Input::Timeout(Instant::now())
            }
            Err(e) => return Err(e.to_string()),
        };
        rtc.handle_input(input).map_err(|e| e.to_string())?;
        if !rtc.is_alive() {
            return Ok(());
        }
    }
}
