//! The relay against real str0m clients over UDP on 127.0.0.1, each client in its own thread.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;

mod virtual_clock;

const FRAME: Duration = Duration::from_millis(20);
/// The publisher makes every KEY_EVERY-th frame a keyframe (and any frame after a PLI).
const KEY_EVERY: u32 = 100;

fn key(stream_id: &str) -> StreamKey {
    StreamKey { app_id: 7, stream_id: stream_id.into() }
}

fn config(threads: usize) -> RelayConfig {
    RelayConfig { udp_addr: "127.0.0.1:0".parse().unwrap(), public_ips: vec![], threads, udp_segmentation: true }
}

/// A relay on two shards: the single-stream tests also run through the shard routing.
fn start() -> (Relay, UnboundedReceiver<RelayEvent>) {
    let (tx, rx) = unbounded_channel();
    let relay = Relay::start(config(2), tx).expect("relay starts");
    (relay, rx)
}

/// Receives `n` events (in any order across shards), sorted for comparison.
async fn events_sorted(rx: &mut UnboundedReceiver<RelayEvent>, n: usize) -> Vec<RelayEvent> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next_event(rx).await);
    }
    got.sort_by_key(|e| format!("{e:?}"));
    got
}

fn sorted(mut events: Vec<RelayEvent>) -> Vec<RelayEvent> {
    events.sort_by_key(|e| format!("{e:?}"));
    events
}

/// The port of the (one) host candidate in an SDP answer.
fn candidate_port(answer: &str) -> u16 {
    let line = answer.lines().find(|l| l.starts_with("a=candidate")).expect("a candidate in the answer");
    line.split_whitespace().nth(5).and_then(|p| p.parse().ok()).expect("candidate port")
}

/// The next event, its byte counts zeroed so that tests compare by stream and peer.
async fn next_event(rx: &mut UnboundedReceiver<RelayEvent>) -> RelayEvent {
    match next_event_with_bytes(rx).await {
        RelayEvent::StreamStopped { stream, peer, .. } => stopped(stream, peer),
        other => other,
    }
}

async fn next_event_with_bytes(rx: &mut UnboundedReceiver<RelayEvent>) -> RelayEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a relay event in time").expect("open")
}

fn stopped(stream: StreamKey, peer: PeerId) -> RelayEvent {
    RelayEvent::StreamStopped { stream, peer, bytes: MediaBytes::default() }
}

/// A VP8-looking frame: byte 0 bit 0 clear on keyframes (with the keyframe start code), then
/// the frame number, then filler derived from it. Keyframes span several RTP packets.
fn video_frame(n: u32, keyframe: bool) -> Vec<u8> {
    let mut v = if keyframe {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
    } else {
        vec![0x31, 0x01, 0x00]
    };
    v.extend_from_slice(&n.to_be_bytes());
    let len = if keyframe { 3000 } else { 200 + (n as usize % 7) * 60 };
    while v.len() < len {
        v.push((v.len() as u32).wrapping_mul(31).wrapping_add(n) as u8);
    }
    v
}

fn frame_number(data: &[u8]) -> Option<(u32, bool)> {
    let keyframe = data.first()? & 1 == 0;
    let at = if keyframe { 10 } else { 3 };
    let n = u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?);
    Some((n, keyframe))
}

fn audio_frame(n: u32) -> Vec<u8> {
    let mut v = vec![0xfc];
    v.extend_from_slice(&n.to_be_bytes());
    v.resize(80, n as u8);
    v
}

#[derive(Debug)]
enum ClientEvent {
    Connected,
    Media { kind: MediaKind, data: Vec<u8>, keyframe: bool, at: Instant },
    KeyframeRequested,
    Closed,
}

struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    pending: Option<SdpPendingOffer>,
    audio: Option<Mid>,
    video: Option<Mid>,
}

impl Client {
    fn new(config: RtcConfig) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
        Client { rtc, socket, pending: None, audio: None, video: None }
    }

    /// An offer for audio + video in `dir`; `strip_candidates` leaves the relay to learn our
    /// address from STUN only (peer-reflexive).
    fn offer(&mut self, dir: Direction, strip_candidates: bool) -> String {
        self.offer_kinds(&[MediaKind::Audio, MediaKind::Video], dir, strip_candidates)
    }

    /// An offer with one m-section per entry of `kinds`, in that order.
    fn offer_kinds(&mut self, kinds: &[MediaKind], dir: Direction, strip_candidates: bool) -> String {
        let mut api = self.rtc.sdp_api();
        for &kind in kinds {
            let mid = Some(api.add_media(kind, dir, None, None, None));
            match kind {
                MediaKind::Audio => self.audio = mid,
                _ => self.video = mid,
            }
        }
        let (offer, pending) = api.apply().unwrap();
        self.pending = Some(pending);
        let sdp = offer.to_sdp_string();
        if strip_candidates {
            sdp.lines().filter(|l| !l.starts_with("a=candidate")).map(|l| format!("{l}\r\n")).collect()
        } else {
            sdp
        }
    }

    fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        self.rtc.sdp_api().accept_answer(self.pending.take().unwrap(), answer).expect("answer accepted");
    }

    /// Runs the client on its own thread; a publisher writes frames once connected.
    fn spawn(self, publish: bool) -> Running {
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || self.run(publish, tx, stop2));
        Running { events, stop, thread: Some(thread), seen: Vec::new() }
    }

    fn run(mut self, publish: bool, tx: mpsc::Sender<ClientEvent>, stop: Arc<AtomicBool>) {
        let local = self.socket.local_addr().unwrap();
        let mut buf = vec![0u8; 2000];
        let mut connected = false;
        let mut next_frame = Instant::now();
        let mut n = 0u32;
        let mut force_key = true;
        let mut closing = false;
        loop {
            if stop.load(Ordering::Relaxed) && !closing {
                closing = true;
                let _ = self.rtc.close();
            }
            let now = Instant::now();
            if publish && connected && !closing && now >= next_frame {
                next_frame += FRAME;
                let keyframe = force_key || n.is_multiple_of(KEY_EVERY);
                force_key = false;
                let wallclock = now;
                // Each kind the session negotiated (a rejected section has no writer).
                if let Some(w) = self.video.and_then(|video| self.rtc.writer(video)) {
                    let pt = w.payload_params().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt());
                    if let Some(pt) = pt {
                        let t = MediaTime::new(n as u64 * 1800, Frequency::NINETY_KHZ);
                        w.write(pt, wallclock, t, video_frame(n, keyframe)).unwrap();
                    }
                }
                if let Some(w) = self.audio.and_then(|audio| self.rtc.writer(audio)) {
                    let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
                    if let Some(pt) = pt {
                        let t = MediaTime::new(n as u64 * 960, Frequency::FORTY_EIGHT_KHZ);
                        w.write(pt, wallclock, t, audio_frame(n)).unwrap();
                    }
                }
                n += 1;
            }
            let timeout = loop {
                if !self.rtc.is_alive() {
                    let _ = tx.send(ClientEvent::Closed);
                    return;
                }
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::Connected => {
                            connected = true;
                            next_frame = Instant::now();
                            let _ = tx.send(ClientEvent::Connected);
                        }
                        Event::MediaData(m) => {
                            let kind = if Some(m.mid) == self.video { MediaKind::Video } else { MediaKind::Audio };
                            let keyframe = m.is_keyframe();
                            let _ = tx.send(ClientEvent::Media {
                                kind,
                                data: m.data.to_vec(),
                                keyframe,
                                at: Instant::now(),
                            });
                        }
                        Event::KeyframeRequest(_) => {
                            force_key = true;
                            let _ = tx.send(ClientEvent::KeyframeRequested);
                        }
                        Event::Closed | Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            let _ = tx.send(ClientEvent::Closed);
                            return;
                        }
                        _ => {}
                    },
                    Err(_) => {
                        let _ = tx.send(ClientEvent::Closed);
                        return;
                    }
                }
            };
            let now = Instant::now();
            let until = if publish && connected { timeout.min(next_frame) } else { timeout };
            let wait = until.saturating_duration_since(now).clamp(Duration::from_millis(1), Duration::from_millis(5));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            let input = match self.socket.recv_from(&mut buf) {
                Ok((len, source)) => match Receive::new(Protocol::Udp, source, local, &buf[..len]) {
                    Ok(r) => Input::Receive(Instant::now(), r),
                    Err(_) => continue,
                },
                Err(_) => Input::Timeout(Instant::now()),
            };
            if self.rtc.handle_input(input).is_err() {
                let _ = tx.send(ClientEvent::Closed);
                return;
            }
        }
    }
}

/// A client running on its thread, and what it has reported so far.
struct Running {
    events: mpsc::Receiver<ClientEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    seen: Vec<ClientEvent>,
}

impl Running {
    /// Collects events until `pred` holds for the collected list or `within` passes.
    fn wait_for(&mut self, within: Duration, pred: impl Fn(&[ClientEvent]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(e) = self.events.recv_timeout(left.min(Duration::from_millis(50))) {
                self.seen.push(e);
            }
        }
        true
    }

    fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    fn media(&self, kind: MediaKind) -> Vec<(&[u8], bool, Instant)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Media { kind: k, data, keyframe, at } if *k == kind => Some((&data[..], *keyframe, *at)),
                _ => None,
            })
            .collect()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.drain();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connected(events: &[ClientEvent]) -> bool {
    events.iter().any(|e| matches!(e, ClientEvent::Connected))
}

fn closed(events: &[ClientEvent]) -> bool {
    events.iter().any(|e| matches!(e, ClientEvent::Closed))
}

/// Asserts a player's video and audio are the publisher's frames, in order, without gaps, the
/// video starting on a keyframe. Returns how many video frames it got.
fn check_player(name: &str, player: &Running) -> usize {
    let video = player.media(MediaKind::Video);
    assert!(video.len() >= 10, "{name}: only {} video frames", video.len());
    assert!(video[0].1, "{name}: video must start on a keyframe");
    let mut last = None;
    for (data, keyframe, _) in &video {
        let (n, key) = frame_number(data).unwrap_or_else(|| panic!("{name}: not one of ours: {data:?}"));
        assert_eq!(key, *keyframe, "{name}: frame {n} keyframe flag");
        assert_eq!(*data, &video_frame(n, key)[..], "{name}: frame {n} payload differs");
        if let Some(prev) = last {
            assert_eq!(n, prev + 1, "{name}: video frames out of order or missing");
        }
        last = Some(n);
    }
    let audio = player.media(MediaKind::Audio);
    assert!(audio.len() >= 10, "{name}: only {} audio frames", audio.len());
    let mut last = None;
    for (data, _, _) in &audio {
        let n = u32::from_be_bytes(data[1..5].try_into().unwrap());
        assert_eq!(*data, &audio_frame(n)[..], "{name}: audio {n} payload differs");
        if let Some(prev) = last {
            assert_eq!(n, prev + 1, "{name}: audio frames out of order or missing");
        }
        last = Some(n);
    }
    video.len()
}

/// A player whose codecs use other payload types than the publisher (VP8 on 120, Opus only),
/// so the relay must rewrite PTs.
fn odd_pt_config() -> RtcConfig {
    let mut config = RtcConfig::new().clear_codecs().enable_opus(true, false);
    config.codec_config().add_config(
        120.into(),
        Some(121.into()),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    config
}

async fn publish(relay: &Relay, stream: &str, strip: bool) -> (PeerId, Running) {
    let (id, running, _) = publish_answer(relay, stream, strip).await;
    (id, running)
}

/// Publishes and also returns the relay's SDP answer.
async fn publish_answer(relay: &Relay, stream: &str, strip: bool) -> (PeerId, Running, String) {
    let mut client = Client::new(RtcConfig::new());
    let offer = client.offer(Direction::SendOnly, strip);
    let (id, answer) = relay.publish(key(stream), offer).await.expect("publish accepted");
    client.accept(&answer);
    (id, client.spawn(true), answer)
}

async fn play(relay: &Relay, stream: &str, config: RtcConfig, strip: bool) -> (PeerId, Running) {
    let (id, running, _) = play_answer(relay, stream, config, strip).await;
    (id, running)
}

async fn play_answer(relay: &Relay, stream: &str, config: RtcConfig, strip: bool) -> (PeerId, Running, String) {
    let mut client = Client::new(config);
    let offer = client.offer(Direction::RecvOnly, strip);
    let (id, answer) = relay.play(key(stream), offer).await.expect("play accepted");
    client.accept(&answer);
    (id, client.spawn(false), answer)
}

/// A video-only stream played with an audio+video offer (what browsers send when they do not
/// know the stream's kinds): the audio section is accepted and carries nothing, instead of
/// being rejected with port 0, which would drop the offer's BUNDLE-tagged first section and
/// make browsers refuse the answer.
#[tokio::test(flavor = "current_thread")]
async fn a_video_only_stream_keeps_the_players_bundle_whole() {
    let (relay, _events) = start();
    let mut client = Client::new(RtcConfig::new().clear_codecs().enable_vp8(true));
    let offer = client.offer(Direction::SendOnly, false);
    let (_, answer) = relay.publish(key("canvas"), offer).await.expect("publish accepted");
    assert!(answer.contains("m=audio 0 "), "the publisher's audio section is rejected:\n{answer}");
    client.accept(&answer);

    let (_, _player, answer) = play_answer(&relay, "canvas", RtcConfig::new(), false).await;
    assert!(!answer.contains("m=audio 0 "), "the player's audio section is accepted:\n{answer}");
    let bundle = answer.lines().find(|l| l.starts_with("a=group:BUNDLE")).expect("a BUNDLE group");
    assert_eq!(bundle.split_whitespace().count(), 3, "both sections bundled: {bundle}");
}

/// Every `a=rtpmap` payload type of an SDP with the encoding it names, per m-section; asserts
/// that no payload type names two encodings (bundled sections share one PT space, RFC 8843).
fn rtpmaps(sdp: &str) -> Vec<(String, u8, String)> {
    let mut section = String::new();
    let mut maps = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            section = m.to_owned();
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, encoding) = map.split_once(' ').expect("rtpmap: PT and encoding");
            let encoding = encoding.split('/').next().unwrap().to_ascii_uppercase();
            maps.push((section.clone(), pt.parse().expect("a numeric PT"), encoding));
        }
    }
    for (i, (_, pt, enc)) in maps.iter().enumerate() {
        for (m, other_pt, other) in &maps[i + 1..] {
            assert!(!(pt == other_pt && enc != other), "PT {pt} is both {enc} and {other} ({m}):\n{sdp}");
        }
    }
    maps
}

/// The config of a publisher that numbers its only codec its own way (aiortc puts Opus on 96,
/// where the relay and browsers put VP8).
fn single_codec_config(pt: u8, codec: Codec) -> RtcConfig {
    let mut config = RtcConfig::new().clear_codecs();
    let (clock, channels, format) = match codec {
        Codec::Opus => (
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() },
        ),
        _ => (Frequency::NINETY_KHZ, None, FormatParams::default()),
    };
    config.codec_config().add_config(pt.into(), None, codec, clock, channels, format);
    config
}

/// Publishes only `kind`, with its codec on payload type `pt`.
async fn publish_one_kind(relay: &Relay, stream: &str, kind: MediaKind, pt: u8) -> Running {
    let codec = if kind == MediaKind::Audio { Codec::Opus } else { Codec::Vp8 };
    let mut client = Client::new(single_codec_config(pt, codec));
    let offer = client.offer_kinds(&[kind], Direction::SendOnly, false);
    let (_, answer) = relay.publish(key(stream), offer).await.expect("publish accepted");
    client.accept(&answer);
    client.spawn(true)
}

/// Plays `stream` with an offer listing `kinds` in that order; checks the answer accepts every
/// section, bundles them all, and keeps one codec per payload type.
async fn play_kinds(relay: &Relay, stream: &str, config: RtcConfig, kinds: &[MediaKind]) -> (Running, String) {
    let mut client = Client::new(config);
    let offer = client.offer_kinds(kinds, Direction::RecvOnly, false);
    let (_, answer) = relay.play(key(stream), offer).await.expect("play accepted");
    for kind in ["audio", "video"] {
        assert!(!answer.contains(&format!("m={kind} 0 ")), "the {kind} section is rejected:\n{answer}");
    }
    let bundle = answer.lines().find(|l| l.starts_with("a=group:BUNDLE")).expect("a BUNDLE group");
    assert_eq!(bundle.split_whitespace().count(), kinds.len() + 1, "every section bundled: {bundle}");
    rtpmaps(&answer);
    client.accept(&answer);
    (client.spawn(false), answer)
}

fn audio_frames(player: &Running) -> usize {
    let audio = player.media(MediaKind::Audio);
    for (data, _, _) in &audio {
        let n = u32::from_be_bytes(data[1..5].try_into().unwrap());
        assert_eq!(*data, &audio_frame(n)[..], "audio {n} payload differs");
    }
    audio.len()
}

/// An audio-only publisher with Opus on PT 96 (aiortc), played with offers that list video
/// first (Chromium's `addTransceiver('video')` before audio): the video section, of a kind the
/// stream lacks, is accepted with a codec the player offered on a payload type that collides
/// with nothing, and the audio arrives. The relay used to leave video without a codec (its
/// fallback VP8 wanted PT 96, taken by the publisher's Opus) and answer `m=video 0`, which
/// rejects the BUNDLE-tagged first section.
#[tokio::test(flavor = "current_thread")]
async fn an_audio_only_stream_on_pt_96_plays_with_video_listed_first() {
    let (relay, _events) = start();
    let mut publisher = publish_one_kind(&relay, "voice", MediaKind::Audio, 96).await;
    assert!(publisher.wait_for(Duration::from_secs(2), connected), "the publisher connects");

    let video_first = [MediaKind::Video, MediaKind::Audio];
    let (mut player, answer) = play_kinds(&relay, "voice", RtcConfig::new(), &video_first).await;
    let maps = rtpmaps(&answer);
    assert!(maps.iter().any(|(m, _, enc)| m.starts_with("video") && enc == "VP8"), "{answer}");
    // A player whose video is H.264 only gets its section accepted too.
    let h264 = RtcConfig::new().clear_codecs().enable_opus(true, false).enable_h264(true);
    let (mut h264_player, answer) = play_kinds(&relay, "voice", h264, &video_first).await;
    assert!(rtpmaps(&answer).iter().any(|(m, _, enc)| m.starts_with("video") && enc == "H264"), "{answer}");

    for p in [&mut player, &mut h264_player] {
        let heard = |ev: &[ClientEvent]| {
            ev.iter().filter(|e| matches!(e, ClientEvent::Media { kind: MediaKind::Audio, .. })).count() >= 15
        };
        assert!(p.wait_for(Duration::from_secs(3), heard), "the player hears the publisher");
    }
    for p in [&mut player, &mut h264_player] {
        p.stop();
        assert!(audio_frames(p) >= 15);
        assert!(p.media(MediaKind::Video).is_empty(), "nothing on the stream's missing kind");
    }
    publisher.stop();
}

/// The mirror case: a video-only publisher with VP8 on Opus's usual PT 111, played with audio
/// listed first. The audio section gets a codec on a free PT; the video arrives.
#[tokio::test(flavor = "current_thread")]
async fn a_video_only_stream_on_pt_111_plays_with_audio_listed_first() {
    let (relay, _events) = start();
    let mut publisher = publish_one_kind(&relay, "screen", MediaKind::Video, 111).await;
    assert!(publisher.wait_for(Duration::from_secs(2), connected), "the publisher connects");

    let audio_first = [MediaKind::Audio, MediaKind::Video];
    let (mut player, answer) = play_kinds(&relay, "screen", RtcConfig::new(), &audio_first).await;
    assert!(rtpmaps(&answer).iter().any(|(m, _, enc)| m.starts_with("audio") && enc == "OPUS"), "{answer}");
    let got_video = |ev: &[ClientEvent]| {
        ev.iter().filter(|e| matches!(e, ClientEvent::Media { kind: MediaKind::Video, .. })).count() >= 15
    };
    assert!(player.wait_for(Duration::from_secs(3), got_video), "the player sees the publisher");
    player.stop();
    publisher.stop();
    let video = player.media(MediaKind::Video);
    assert!(video[0].1, "video starts on a keyframe");
    for (data, keyframe, _) in &video {
        let (n, key) = frame_number(data).expect("one of our frames");
        assert_eq!((*data, key), (&video_frame(n, key)[..], *keyframe), "frame {n}");
    }
    assert!(player.media(MediaKind::Audio).is_empty(), "nothing on the stream's missing kind");
}

#[tokio::test(flavor = "current_thread")]
async fn publish_to_three_players() {
    let (relay, mut events) = start();
    // Publisher and player B offer no candidates: the relay learns them from STUN (peer-reflexive).
    let (pub_id, mut publisher) = publish(&relay, "cam", true).await;
    assert_eq!(next_event(&mut events).await, RelayEvent::StreamLive { stream: key("cam"), peer: pub_id });
    assert!(publisher.wait_for(Duration::from_secs(1), connected));

    let (a_id, mut a) = play(&relay, "cam", RtcConfig::new(), false).await;
    let (b_id, mut b) = play(&relay, "cam", RtcConfig::new(), true).await;
    let mut started = vec![next_event(&mut events).await, next_event(&mut events).await];
    started.sort_by_key(|e| format!("{e:?}"));
    let mut want = vec![
        RelayEvent::PlayerStarted { stream: key("cam"), peer: a_id },
        RelayEvent::PlayerStarted { stream: key("cam"), peer: b_id },
    ];
    want.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(started, want);
    assert_eq!(relay.load(), RelayLoad { peers: 3, streams: 1 });

    std::thread::sleep(Duration::from_millis(1200));

    // A late joiner with different payload types gets a keyframe quickly.
    let (c_id, mut c) = play(&relay, "cam", odd_pt_config(), false).await;
    assert_eq!(next_event(&mut events).await, RelayEvent::PlayerStarted { stream: key("cam"), peer: c_id });
    assert!(c.wait_for(Duration::from_secs(2), connected), "player C connects");
    let joined = Instant::now();
    let got_key = |ev: &[ClientEvent]| {
        ev.iter().any(|e| matches!(e, ClientEvent::Media { kind: MediaKind::Video, keyframe: true, .. }))
    };
    assert!(c.wait_for(Duration::from_secs(3), got_key), "player C receives a keyframe within 3 s");
    let first_key_at = c.media(MediaKind::Video).iter().find(|m| m.1).map(|m| m.2).unwrap();
    eprintln!("player C: first keyframe {:?} after connecting", first_key_at.saturating_duration_since(joined));
    std::thread::sleep(Duration::from_millis(600));

    for p in [&mut a, &mut b, &mut c] {
        p.stop();
    }
    publisher.stop();
    let counts = [check_player("A", &a), check_player("B", &b), check_player("C", &c)];
    eprintln!("video frames per player: {counts:?}; stats {:?}", relay.stats());
    assert!(counts[0] >= 50 && counts[1] >= 50, "A and B saw over a second of video: {counts:?}");
    assert!(
        publisher.seen.iter().any(|e| matches!(e, ClientEvent::KeyframeRequested)),
        "the relay asked the publisher for keyframes"
    );
    let stats = relay.stats();
    assert!(stats.keyframe_requests >= 1 && stats.forwarded > 0 && stats.packets_in > 0 && stats.bytes_out > 0);
    // A keyframe's packets to one player left as one segmented message, and every frame
    // checked above arrived whole: the segmentation is invisible on the wire.
    assert!(stats.packets_segmented > 0, "no run of packets was segmented: {stats:?}");
    assert!(stats.send_messages < stats.packets_out, "{stats:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn closing_the_publisher_ends_its_players() {
    let (relay, mut events) = start();
    let (pub_id, _publisher) = publish(&relay, "talk", false).await;
    assert!(matches!(next_event(&mut events).await, RelayEvent::StreamLive { .. }));
    let (p1, mut player1) = play(&relay, "talk", RtcConfig::new(), false).await;
    let (p2, _player2) = play(&relay, "talk", RtcConfig::new(), false).await;
    for _ in 0..2 {
        assert!(matches!(next_event(&mut events).await, RelayEvent::PlayerStarted { .. }));
    }

    // A player leaving ends only itself.
    relay.close(p2).await.expect("close player");
    assert_eq!(next_event(&mut events).await, RelayEvent::PlayerStopped { stream: key("talk"), peer: p2 });
    assert_eq!(relay.load(), RelayLoad { peers: 2, streams: 1 });

    relay.close(pub_id).await.expect("close publisher");
    assert_eq!(next_event(&mut events).await, RelayEvent::PlayerStopped { stream: key("talk"), peer: p1 });
    match next_event_with_bytes(&mut events).await {
        RelayEvent::StreamStopped { stream, peer, bytes } => {
            assert_eq!((stream, peer), (key("talk"), pub_id));
            assert!(bytes.bytes_in > 0 && bytes.bytes_out > 0, "the stream's bytes are counted: {bytes:?}");
        }
        other => panic!("expected the stream to stop, got {other:?}"),
    }
    assert_eq!(relay.load(), RelayLoad::default());
    // The relay closed DTLS politely, so the remote player notices at once.
    assert!(player1.wait_for(Duration::from_secs(2), closed), "player told of the close");
    assert!(matches!(relay.close(pub_id).await, Err(RelayError::UnknownPeer)));
    assert!(matches!(relay.play(key("talk"), "v=0".into()).await, Err(RelayError::UnknownStream(_))));
}

#[tokio::test(flavor = "current_thread")]
async fn a_publisher_that_goes_away_stops_the_stream() {
    let (relay, mut events) = start();
    let (pub_id, mut publisher) = publish(&relay, "gone", false).await;
    assert!(matches!(next_event(&mut events).await, RelayEvent::StreamLive { .. }));
    let (p1, _player) = play(&relay, "gone", RtcConfig::new(), false).await;
    assert!(matches!(next_event(&mut events).await, RelayEvent::PlayerStarted { .. }));
    publisher.stop(); // the client closes its session (DTLS close_notify)
    assert_eq!(next_event(&mut events).await, RelayEvent::PlayerStopped { stream: key("gone"), peer: p1 });
    assert_eq!(next_event(&mut events).await, stopped(key("gone"), pub_id));
    assert_eq!(relay.load(), RelayLoad::default());
}

#[tokio::test(flavor = "current_thread")]
async fn bad_input_is_refused_and_leaves_nothing_behind() {
    let (relay, mut events) = start();
    assert!(matches!(relay.publish(key("x"), "hello".into()).await, Err(RelayError::BadOffer(_))));

    let mut data_only = Client::new(RtcConfig::new());
    let mut api = data_only.rtc.sdp_api();
    api.add_channel("chat".into());
    let (offer, _) = api.apply().unwrap();
    let offer = offer.to_sdp_string();
    assert!(matches!(relay.publish(key("x"), offer.clone()).await, Err(RelayError::NoMedia)));

    // A recvonly offer has nothing for a publisher to send.
    let recv_only = Client::new(RtcConfig::new()).offer(Direction::RecvOnly, false);
    assert!(matches!(relay.publish(key("x"), recv_only).await, Err(RelayError::NoMedia)));

    let player_offer = Client::new(RtcConfig::new()).offer(Direction::RecvOnly, false);
    assert!(matches!(relay.play(key("x"), player_offer).await, Err(RelayError::UnknownStream(s)) if s == "x"));

    let send_offer = Client::new(RtcConfig::new()).offer(Direction::SendOnly, false);
    let (first, _) = relay.publish(key("x"), send_offer).await.expect("first publisher");
    let again = Client::new(RtcConfig::new()).offer(Direction::SendOnly, false);
    assert!(matches!(relay.publish(key("x"), again).await, Err(RelayError::AlreadyPublished(s)) if s == "x"));
    assert!(matches!(relay.play(key("x"), offer).await, Err(RelayError::NoMedia)));
    assert!(matches!(relay.play(key("x"), "garbage".into()).await, Err(RelayError::BadOffer(_))));
    assert!(matches!(relay.close(424242).await, Err(RelayError::UnknownPeer)));
    assert_eq!(relay.load(), RelayLoad { peers: 1, streams: 1 });

    relay.close(first).await.expect("close");
    assert_eq!(next_event(&mut events).await, stopped(key("x"), first));
    assert_eq!(relay.load(), RelayLoad::default());
    assert!(events.try_recv().is_err(), "refused offers report nothing");
}

#[test]
fn start_refuses_a_wildcard_bind_without_public_ips() {
    let (tx, _rx) = unbounded_channel();
    let r = Relay::start(
        RelayConfig { udp_addr: "0.0.0.0:0".parse().unwrap(), public_ips: vec![], threads: 1, udp_segmentation: true },
        tx,
    );
    assert!(matches!(r, Err(RelayError::Unavailable(_))));
    let (tx, _rx) = unbounded_channel();
    let r = Relay::start(
        RelayConfig {
            udp_addr: "0.0.0.0:0".parse().unwrap(),
            public_ips: vec!["127.0.0.1".parse().unwrap()],
            threads: 2,
            udp_segmentation: true,
        },
        tx,
    );
    assert!(r.is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn a_session_that_never_connects_is_dropped() {
    let (tx, mut events) = unbounded_channel();
    let relay = Relay::start_with(config(1), tx, Duration::from_millis(500)).expect("relay starts");
    let offer = Client::new(RtcConfig::new()).offer(Direction::SendOnly, false);
    let (id, _) = relay.publish(key("silent"), offer).await.expect("accepted");
    let started = Instant::now();
    assert_eq!(next_event(&mut events).await, stopped(key("silent"), id));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(relay.load(), RelayLoad::default());
}

#[tokio::test(flavor = "current_thread")]
async fn streams_spread_over_shards_and_stay_on_theirs() {
    let (tx, mut events) = unbounded_channel();
    let relay = Relay::start(config(3), tx).expect("relay starts");
    let addrs = relay.local_addrs();
    assert_eq!(addrs.len(), 3);
    assert_eq!(addrs[0], relay.local_addr());

    let names = ["s0", "s1", "s2"];
    let mut publishers = Vec::new();
    for name in names {
        let (id, running, answer) = publish_answer(&relay, name, false).await;
        publishers.push((id, running, candidate_port(&answer)));
    }
    // Each went to an idle shard: three ports (one per shard socket), ids routing to three shards.
    let mut ports: Vec<u16> = publishers.iter().map(|p| p.2).collect();
    ports.sort_unstable();
    let mut shard_ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
    shard_ports.sort_unstable();
    assert_eq!(ports, shard_ports, "one publisher per shard");
    let mut shards: Vec<u64> = publishers.iter().map(|p| p.0 % 3).collect();
    shards.sort_unstable();
    assert_eq!(shards, vec![0, 1, 2]);
    // A stream is one stream whichever shard holds it.
    let again = Client::new(RtcConfig::new()).offer(Direction::SendOnly, false);
    assert!(matches!(relay.publish(key("s1"), again).await, Err(RelayError::AlreadyPublished(s)) if s == "s1"));
    let live = names.iter().zip(&publishers).map(|(n, p)| RelayEvent::StreamLive { stream: key(n), peer: p.0 });
    assert_eq!(events_sorted(&mut events, 3).await, sorted(live.collect()));

    let mut players = Vec::new();
    for (name, publisher) in names.iter().zip(&publishers) {
        let (id, running, answer) = play_answer(&relay, name, RtcConfig::new(), false).await;
        assert_eq!(candidate_port(&answer), publisher.2, "{name}: the player is on its publisher's shard");
        assert_eq!(id % 3, publisher.0 % 3);
        players.push((id, running));
    }
    let started = names.iter().zip(&players).map(|(n, p)| RelayEvent::PlayerStarted { stream: key(n), peer: p.0 });
    assert_eq!(events_sorted(&mut events, 3).await, sorted(started.collect()));
    assert_eq!(relay.load(), RelayLoad { peers: 6, streams: 3 });

    let enough = |ev: &[ClientEvent]| {
        let n = |k| ev.iter().filter(|e| matches!(e, ClientEvent::Media { kind, .. } if *kind == k)).count();
        n(MediaKind::Video) >= 15 && n(MediaKind::Audio) >= 15
    };
    for (name, (_, player)) in names.iter().zip(&mut players) {
        assert!(player.wait_for(Duration::from_secs(3), enough), "{name}: the player receives media");
    }
    for (name, (_, player)) in names.iter().zip(&mut players) {
        player.drain();
        check_player(name, player);
    }

    // Closing works on every shard: a player on one, publishers (with their players) on others.
    relay.close(players[1].0).await.expect("close player s1");
    assert_eq!(next_event(&mut events).await, RelayEvent::PlayerStopped { stream: key("s1"), peer: players[1].0 });
    assert!(matches!(relay.close(players[1].0).await, Err(RelayError::UnknownPeer)));
    relay.close(publishers[2].0).await.expect("close publisher s2");
    relay.close(publishers[0].0).await.expect("close publisher s0");
    let ended = vec![
        RelayEvent::PlayerStopped { stream: key("s2"), peer: players[2].0 },
        stopped(key("s2"), publishers[2].0),
        RelayEvent::PlayerStopped { stream: key("s0"), peer: players[0].0 },
        stopped(key("s0"), publishers[0].0),
    ];
    assert_eq!(events_sorted(&mut events, 4).await, sorted(ended));
    assert_eq!(relay.load(), RelayLoad { peers: 1, streams: 1 });
    let late = Client::new(RtcConfig::new()).offer(Direction::RecvOnly, false);
    assert!(matches!(relay.play(key("s0"), late).await, Err(RelayError::UnknownStream(_))));
    // An ended stream is free again, on whichever shard is idlest now.
    let offer = Client::new(RtcConfig::new()).offer(Direction::SendOnly, false);
    let (id, _) = relay.publish(key("s2"), offer).await.expect("republished");
    assert_ne!(id % 3, publishers[1].0 % 3, "not on the busy shard");
    relay.close(id).await.expect("close");
    assert_eq!(next_event(&mut events).await, stopped(key("s2"), id));
    let stats = relay.stats();
    assert!(stats.forwarded > 0 && stats.packets_in > 0 && stats.keyframe_requests >= 3, "{stats:?}");
    for (_, mut p) in players {
        p.stop();
    }
    for (_, mut p, _) in publishers {
        p.stop();
    }
}

#[test]
fn shard_ports_and_thread_limits() {
    let base: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    assert_eq!(shard_addr(base, 0).unwrap(), base);
    assert_eq!(shard_addr(base, 3).unwrap().port(), 5003);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(shard_addr(any, 5).unwrap(), any);
    assert!(matches!(shard_addr("127.0.0.1:65535".parse().unwrap(), 1), Err(RelayError::Unavailable(_))));
    let (tx, _rx) = unbounded_channel();
    assert!(matches!(Relay::start(config(MAX_THREADS + 1), tx), Err(RelayError::Unavailable(_))));
    let (tx, _rx) = unbounded_channel();
    let relay = Relay::start(config(0), tx).expect("one shard per core");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    assert_eq!(relay.local_addrs().len(), cores);
}

#[tokio::test(flavor = "current_thread")]
async fn one_stream_over_two_shards() {
    let (relay, mut events) = start();
    relay.set_spread_margin(0);
    let (pub_id, mut publisher) = publish(&relay, "wide", false).await;
    assert!(matches!(next_event(&mut events).await, RelayEvent::StreamLive { .. }));
    let mut players = Vec::new();
    for _ in 0..4 {
        players.push(play(&relay, "wide", RtcConfig::new(), false).await);
    }
    for _ in 0..4 {
        assert!(matches!(next_event(&mut events).await, RelayEvent::PlayerStarted { .. }));
    }
    // Five peers on two shards, three and two (the origin wins a tie).
    let on_origin = players.iter().filter(|(id, _)| id % 2 == pub_id % 2).count();
    assert_eq!(on_origin, 2, "players spread: {:?}", players.iter().map(|p| p.0).collect::<Vec<_>>());
    let enough = |ev: &[ClientEvent]| {
        let n = |k| ev.iter().filter(|e| matches!(e, ClientEvent::Media { kind, .. } if *kind == k)).count();
        n(MediaKind::Video) >= 30 && n(MediaKind::Audio) >= 30
    };
    for (id, player) in &mut players {
        assert!(player.wait_for(Duration::from_secs(5), enough), "player {id} receives media");
    }
    for (id, player) in &mut players {
        player.drain();
        check_player(&format!("player {id}"), player);
    }
    let stats = relay.stats();
    assert!(stats.handed_off > 0 && stats.handed_off < stats.forwarded / 2, "{stats:?}");

    // The publisher hangs up (DTLS close): all four players stop, then the stream.
    publisher.stop();
    let mut stopped_players = Vec::new();
    for _ in 0..4 {
        match next_event(&mut events).await {
            RelayEvent::PlayerStopped { peer, .. } => stopped_players.push(peer),
            other => panic!("a player must stop before the stream: got {other:?}"),
        }
    }
    stopped_players.sort_unstable();
    let mut ids: Vec<PeerId> = players.iter().map(|p| p.0).collect();
    ids.sort_unstable();
    assert_eq!(stopped_players, ids);
    match next_event_with_bytes(&mut events).await {
        RelayEvent::StreamStopped { peer, bytes, .. } => {
            assert_eq!(peer, pub_id);
            // Two players per shard: more than the origin's two alone could have been sent.
            assert!(bytes.bytes_out > 2 * bytes.bytes_in, "every player's bytes are counted: {bytes:?}");
        }
        other => panic!("expected the stream to stop, got {other:?}"),
    }
    assert_eq!(relay.load(), RelayLoad::default());
    for (_, player) in &mut players {
        assert!(player.wait_for(Duration::from_secs(2), closed), "player told of the end");
    }
}

/// Makes `edge` pull `stream` from `origin` (the offer/answer a node sends over HTTP).
async fn pull(edge: &Relay, origin: &Relay, stream: &str) -> (PeerId, PeerId) {
    let (edge_id, offer) = edge.pull_offer(key(stream)).await.expect("pull offer");
    let (origin_id, answer) = origin.play(key(stream), offer).await.expect("the origin plays it to the edge");
    edge.pull_answer(edge_id, answer).await.expect("pull answer accepted");
    (edge_id, origin_id)
}

/// Waits for the first event matching `pred`, skipping others.
async fn event_where(rx: &mut UnboundedReceiver<RelayEvent>, pred: impl Fn(&RelayEvent) -> bool) -> RelayEvent {
    loop {
        let event = next_event_with_bytes(rx).await;
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_stream_cascades_over_a_chain_of_relays() {
    let (tx, mut origin_events) = unbounded_channel();
    let origin = Relay::start(config(1), tx).expect("origin starts");
    let (tx, mut edge1_events) = unbounded_channel();
    let edge1 = Relay::start(config(2), tx).expect("edge 1 starts");
    edge1.set_spread_margin(0);
    let (tx, mut edge2_events) = unbounded_channel();
    let edge2 = Relay::start(config(1), tx).expect("edge 2 starts");

    let (pub_id, mut publisher) = publish(&origin, "casc", false).await;
    assert!(matches!(next_event(&mut origin_events).await, RelayEvent::StreamLive { .. }));
    // Edge 1 pulls from the origin, edge 2 from edge 1 (a chain).
    let (edge1_pull, edge1_at_origin) = pull(&edge1, &origin, "casc").await;
    let (edge2_pull, edge2_at_edge1) = pull(&edge2, &edge1, "casc").await;
    let mut players = Vec::new();
    for relay in [&edge1, &edge1, &edge2, &edge2] {
        players.push(play(relay, "casc", RtcConfig::new(), false).await);
    }
    let enough = |ev: &[ClientEvent]| {
        let n = |k| ev.iter().filter(|e| matches!(e, ClientEvent::Media { kind, .. } if *kind == k)).count();
        n(MediaKind::Video) >= 30 && n(MediaKind::Audio) >= 30
    };
    for (id, player) in &mut players {
        assert!(player.wait_for(Duration::from_secs(5), enough), "player {id} receives media");
    }
    for (i, (_, player)) in players.iter_mut().enumerate() {
        player.drain();
        // Every player starts on a keyframe, asked for through the chain.
        check_player(&format!("player {i}"), player);
    }
    publisher.drain();
    assert!(
        publisher.seen.iter().any(|e| matches!(e, ClientEvent::KeyframeRequested)),
        "keyframe requests travelled back to the publisher"
    );
    // The origin serves one session per edge: its publisher and edge 1, whatever the audience.
    assert_eq!(origin.load(), RelayLoad { peers: 2, streams: 1 });
    assert_eq!(edge1.load(), RelayLoad { peers: 4, streams: 1 }, "pull, two players, edge 2's pull");
    let (origin_stats, edge1_stats) = (origin.stats(), edge1.stats());
    assert!(
        edge1_stats.forwarded >= 2 * origin_stats.forwarded,
        "the origin sent each packet once ({origin_stats:?}), edge 1 to three sessions ({edge1_stats:?})"
    );

    // Edge 2's last player leaves: edge 2 lets the stream go, and edge 1 sees its player go.
    for (id, _) in players.drain(2..) {
        edge2.close(id).await.expect("close an edge 2 player");
    }
    let stopped_at_edge2 =
        event_where(&mut edge2_events, |e| matches!(e, RelayEvent::StreamStopped { peer, .. } if *peer == edge2_pull));
    tokio::time::timeout(Duration::from_secs(6), stopped_at_edge2).await.expect("edge 2 let the stream go");
    let gone = event_where(
        &mut edge1_events,
        |e| matches!(e, RelayEvent::PlayerStopped { peer, .. } if *peer == edge2_at_edge1),
    );
    tokio::time::timeout(Duration::from_secs(3), gone).await.expect("edge 1 saw edge 2 leave");

    // The publisher hangs up: the stream ends at the origin and at edge 1, players first.
    publisher.stop();
    let mut edge1_ended = Vec::new();
    while edge1_ended.len() < 3 {
        let event = next_event_with_bytes(&mut edge1_events).await;
        if matches!(event, RelayEvent::PlayerStopped { .. } | RelayEvent::StreamStopped { .. }) {
            edge1_ended.push(event);
        }
    }
    assert!(matches!(edge1_ended[2], RelayEvent::StreamStopped { peer, .. } if peer == edge1_pull), "{edge1_ended:?}");
    let at_origin =
        event_where(&mut origin_events, |e| matches!(e, RelayEvent::StreamStopped { peer, .. } if *peer == pub_id));
    at_origin.await;
    for (id, player) in &mut players {
        assert!(player.wait_for(Duration::from_secs(2), closed), "player {id} told of the end");
    }
    assert_eq!(edge1.load(), RelayLoad::default());
    assert_eq!(origin.load(), RelayLoad::default());
    let _ = edge1_at_origin;
}

#[tokio::test(flavor = "current_thread")]
async fn a_bad_pull_answer_ends_the_pull() {
    let (tx, mut events) = unbounded_channel();
    let edge = Relay::start(config(1), tx).expect("edge starts");
    let (id, _) = edge.pull_offer(key("p")).await.expect("pull offer");
    assert!(matches!(edge.pull_offer(key("p")).await, Err(RelayError::AlreadyPublished(_))));
    assert!(matches!(edge.pull_answer(id, "garbage".into()).await, Err(RelayError::BadOffer(_))));
    assert_eq!(next_event(&mut events).await, stopped(key("p"), id));
    assert_eq!(edge.load(), RelayLoad::default());
    assert!(matches!(edge.pull_answer(id, "v=0".into()).await, Err(RelayError::UnknownPeer)));
    // The stream is free again.
    let (again, _) = edge.pull_offer(key("p")).await.expect("pull offer again");
    edge.close(again).await.expect("close");
    assert_eq!(next_event(&mut events).await, stopped(key("p"), again));
}
