//! One relay session: its `Rtc`, its role (publisher or player) and how it is set up from an
//! SDP offer and drained after every input.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt, Rid, Rids, Simulcast, SimulcastLayer};
use str0m::net::Transmit;
use str0m::rtp::{Extension, ExtensionMap, RtpPacket, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Output, Rtc, RtcConfig};

use super::forward::TrackOut;
use super::simulcast::{Layer, LayerChoice, MAX_LAYERS, choose_layer, probe_target};
use super::{PeerId, RelayError, StreamKey};
use crate::quality::{Level, LinkSample};

/// A relay session.
pub(crate) struct Peer {
    pub id: PeerId,
    pub stream: StreamKey,
    pub rtc: Rtc,
    /// Our ICE ufrag: the first half of the USERNAME in the peer's STUN requests.
    pub ufrag: String,
    pub role: Role,
    pub created: Instant,
    /// ICE + DTLS up (str0m's `Event::Connected`).
    pub connected: bool,
    /// The time str0m asked to be woken at.
    pub next_timeout: Option<Instant>,
    /// The earliest entry the engine's timer heap holds for this peer. A later `next_timeout`
    /// is not pushed (that entry fires first and re-arms), so forwarding a packet to a player
    /// — which moves its timeout a little later every time — costs no heap push.
    pub queued: Option<Instant>,
    /// Remote addresses the engine's address map points at this peer.
    pub addrs: Vec<SocketAddr>,
    /// Last NACK totals str0m reported per track, to count only what is new.
    pub nack_totals: NackTotals,
    /// The worst level of this peer's link measured since the engine last took it.
    pub worst_level: Option<crate::quality::Level>,
    /// UDP payload bytes received from and queued for this peer (usage records).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The time of its last input: the session's clock (str0m stamps what it sends with it).
    pub last_input: Instant,
    /// Packets were written to it that str0m sends at its next timeout (the engine's
    /// `written` list holds it once).
    pub write_pending: bool,
}

/// Cumulative NACK counts per (track, direction); str0m's stats are totals since start.
#[derive(Debug, Default)]
pub(crate) struct NackTotals(Vec<(str0m::media::Mid, bool, u64)>);

impl NackTotals {
    /// The increase since the last report of this track and direction.
    fn delta(&mut self, mid: str0m::media::Mid, egress: bool, total: u64) -> u64 {
        match self.0.iter_mut().find(|(m, e, _)| *m == mid && *e == egress) {
            Some((_, _, last)) => {
                let new = total.saturating_sub(*last);
                *last = total;
                new
            }
            None => {
                self.0.push((mid, egress, total));
                total
            }
        }
    }
}

pub(crate) enum Role {
    Publisher(Publisher),
    Player(Player),
    /// A pull of a stream from another relay (this relay is a cascade edge) whose offer was
    /// made and whose answer has not come yet. With the answer it becomes a `Publisher`.
    Pulling(Option<str0m::change::SdpPendingOffer>),
}

/// What a player is negotiated against: the publisher's tracks and codecs. Shared (in the
/// stream directory) with the shards whose players watch the stream.
#[derive(Debug)]
pub(crate) struct Source {
    pub tracks: Vec<TrackIn>,
    /// The payload types negotiated with the publisher (our numbering for its packets).
    pub params: Vec<PayloadParams>,
}

/// A player below the top simulcast layer has its bandwidth probed again this often.
const PROBE_EVERY: Duration = Duration::from_secs(3);

/// A publisher's incoming media and its audience.
pub(crate) struct Publisher {
    pub source: Arc<Source>,
    /// Players on this shard.
    pub players: Vec<PeerId>,
    /// Other shards with players of this stream: each is handed every packet once.
    pub shards: Vec<usize>,
    /// Bytes sent to players that already left, on any shard (the stream's bytes out are these
    /// plus the current players').
    pub players_bytes_out: u64,
    /// `StreamLive` was sent.
    pub live: bool,
    pub last_keyframe_request: Option<Instant>,
    /// Layers (bit per simulcast layer; bit 0 without) whose keyframe was asked for but not yet
    /// requested (rate limit, or no video stream yet).
    pub keyframe_wanted: u8,
    /// The business server muted this kind of media: it is not forwarded to players.
    pub audio_muted: bool,
    pub video_muted: bool,
    /// Pulled from another relay (not a client's publisher): closed once it has had no
    /// player for a while.
    pub pulled: bool,
    /// Since when it has had no player on any shard (None: it has players).
    pub idle_since: Option<Instant>,
    /// Cache: incoming SSRC → (index in `tracks`, layer).
    ssrcs: Vec<(Ssrc, usize, u8)>,
    /// Payload bytes received per track and layer since `measured_at` (simulcast tracks only).
    layer_bytes: Vec<[u64; MAX_LAYERS]>,
    measured_at: Option<Instant>,
}

/// One incoming m-line of a publisher.
#[derive(Debug)]
pub(crate) struct TrackIn {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Its simulcast layers, in the order the publisher's SDP lists them (empty: one encoding).
    pub layers: Vec<Layer>,
}

/// A player: which publisher it watches and its outgoing m-lines.
pub(crate) struct Player {
    pub publisher: PeerId,
    pub tracks: Vec<TrackOut>,
    /// Publisher PT → this player's PT, per negotiated codec.
    pub pt_map: Vec<(Pt, Pt)>,
    /// What the player asked not to be sent.
    pub mute: super::PlayerMute,
    /// What it watches (its simulcast layers' rates are read from here).
    pub source: Arc<Source>,
    /// Which simulcast layer it asked for.
    pub choice: LayerChoice,
    /// The relay's bandwidth estimate towards it, bits per second (simulcast streams only).
    pub estimate: Option<u64>,
    /// When it last asked for a probe of its bandwidth.
    pub last_probe: Option<Instant>,
}

impl Player {
    /// Points every simulcast m-line at the layer the player's choice and estimate call for;
    /// returns the layers whose keyframes its video now awaits, to start or to switch (bit per
    /// layer; bit 0 without simulcast).
    pub fn choose_layers(&mut self) -> u8 {
        for t in self.tracks.iter_mut().filter(|t| t.is_simulcast()) {
            let Some(track) = self.source.tracks.iter().find(|s| s.mid == t.source) else { continue };
            t.set_target(choose_layer(&track.layers, self.choice, self.estimate, t.current_layer()));
        }
        self.tracks.iter().filter_map(TrackOut::awaited_keyframe).fold(0, |bits, layer| bits | 1 << layer)
    }

    /// The bitrate to ask str0m's BWE to discover (`desired`): what the top layer needs, raised
    /// a little once per [`PROBE_EVERY`] while the player is below the top layer, which asks
    /// str0m for another probe (it probes when the desired rate goes up). None without
    /// simulcast, or when the player asked for a fixed layer.
    pub fn probe_target(&mut self, now: Instant) -> Option<u64> {
        if self.choice != LayerChoice::Auto {
            return None;
        }
        let t = self.tracks.iter().find(|t| t.is_simulcast())?;
        let track = self.source.tracks.iter().find(|s| s.mid == t.source)?;
        let (desired, below_top) = probe_target(&track.layers, t.current_layer())?;
        if below_top && self.last_probe.is_none_or(|at| now.saturating_duration_since(at) >= PROBE_EVERY) {
            self.last_probe = Some(now);
            return Some(desired + desired / 50);
        }
        Some(desired)
    }
}

/// What draining a peer's outputs produced that the engine must act on.
// Not boxed: the scratch vector is reused, so an RTP packet costs no allocation here.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Happening {
    Connected,
    Rtp(RtpPacket),
    /// The remote asked for a keyframe on media we send it (players): on this m-line and rid.
    KeyframeRequest(Mid, Option<Rid>),
    /// A new estimate of the bandwidth towards the remote, bits per second (players with BWE).
    Estimate(u64),
    /// str0m transmits to a remote address the engine may not map yet.
    Destination(SocketAddr),
    /// Disconnected, closed, failed or panicked: remove it.
    Gone(&'static str),
}

/// An accepted offer: the session and facts read from its answer.
pub(crate) struct Accepted {
    pub rtc: Rtc,
    pub ufrag: String,
    pub answer: String,
    /// (mid, kind, our direction) of every enabled audio/video m-line.
    pub medias: Vec<(Mid, MediaKind, str0m::media::Direction)>,
    /// Audio/video m-lines the offer enabled but whose codecs none of ours matched.
    pub unmatched: Vec<MediaKind>,
}

/// The codecs the relay speaks: Opus, VP8, H264, VP9.
pub(crate) fn base_config(crypto: &Arc<CryptoProvider>) -> RtcConfig {
    RtcConfig::new()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // Per-track NACK counts and receiver-reported loss, for the metrics.
        .set_stats_interval(Some(std::time::Duration::from_secs(1)))
        .set_crypto_provider(Arc::clone(crypto))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .enable_vp9(true)
}

/// A player's config: the publisher's negotiated codecs (`params`), so the answer names only
/// what the publisher sends. A kind the publisher does not send at all (an audio-only stream
/// played with a video+audio offer) still gets the relay's codecs of that kind: rejecting that
/// m-section (port 0) would reject the offer's BUNDLE-tagged transport when it comes first,
/// which browsers refuse ("Failed to setup RTCP mux") and aiortc too; accepted, it simply
/// carries nothing.
///
/// Those stand-in codecs take payload types the publisher's codecs (and their RTX/RED) do not
/// use: the publisher numbers its codecs its own way (aiortc puts Opus on 96, where the relay
/// puts VP8), and one PT must not name two codecs in one session.
pub(crate) fn config_with_codecs(crypto: &Arc<CryptoProvider>, params: &[PayloadParams]) -> RtcConfig {
    let mut config = base_config(crypto).clear_codecs();
    let mut taken: Vec<Pt> = params.iter().flat_map(|p| [Some(p.pt()), p.resend(), p.red()]).flatten().collect();
    for p in params {
        let spec = p.spec();
        config.codec_config().add_config(p.pt(), p.resend(), spec.codec, spec.clock_rate, spec.channels, spec.format);
    }
    let sends = |audio: bool| params.iter().any(|p| p.spec().codec.is_audio() == audio);
    let missing: Vec<bool> = [true, false].into_iter().filter(|&audio| !sends(audio)).collect();
    if missing.is_empty() {
        return config;
    }
    let mut relay_codecs = base_config(crypto);
    for p in relay_codecs.codec_config().params().iter().filter(|p| missing.contains(&p.spec().codec.is_audio())) {
        let Some(pt) = free_pt(&mut taken, p.pt()) else { break };
        let resend = p.resend().and_then(|rtx| free_pt(&mut taken, rtx));
        let spec = p.spec();
        config.codec_config().add_config(pt, resend, spec.codec, spec.clock_rate, spec.channels, spec.format);
    }
    config
}

/// A player's config when the relay runs no bandwidth estimate towards it (one encoding to
/// send, or every layer to a cascade edge): the answer leaves out the header extensions only an
/// estimate uses (transport-wide sequence numbers, absolute send time), so the player sends no
/// transport-wide feedback for the relay to receive, decrypt and discard, and the relay stamps
/// and records no sequence number per packet. NACK, PLI and receiver reports are unaffected.
pub(crate) fn without_bandwidth_feedback(mut config: RtcConfig) -> RtcConfig {
    let mut kept = ExtensionMap::empty();
    for (id, extension) in config.extension_map().iter() {
        if !matches!(extension, Extension::TransportSequenceNumber | Extension::AbsoluteSendTime) {
            kept.set(id, extension.clone());
        }
    }
    config.set_extension_map(kept)
}

/// `preferred` if nothing in `taken` uses it, else the first free dynamic payload type
/// (96–127, then 35–63); recorded as taken. None when all are taken.
fn free_pt(taken: &mut Vec<Pt>, preferred: Pt) -> Option<Pt> {
    let pt = std::iter::once(*preferred).chain(96..=127).chain(35..=63).map(Pt::from).find(|pt| !taken.contains(pt))?;
    taken.push(pt);
    Some(pt)
}

/// Parses `offer`, builds an ICE-lite session advertising `candidates` and answers the offer.
pub(crate) fn accept(
    offer: &str,
    config: RtcConfig,
    candidates: &[SocketAddr],
    now: Instant,
) -> Result<Accepted, RelayError> {
    let text = offer;
    let offer = SdpOffer::from_sdp_string(text)
        .map_err(|e| RelayError::BadOffer(super::sdp::parse_error(text, &e.to_string())))?;
    let built = catch_unwind(AssertUnwindSafe(move || {
        let mut rtc = config.build(now);
        for addr in candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        let answer = rtc.sdp_api().accept_offer(offer).map(|a| a.to_sdp_string());
        (rtc, answer)
    }));
    let not_negotiated = |why: &str| RelayError::BadOffer(format!("the SDP offer could not be negotiated{why}"));
    let (mut rtc, answer) = built.map_err(|_| not_negotiated(""))?;
    let answer = answer.map_err(|e| not_negotiated(&format!(": {}", super::sdp::without_addresses(&e.to_string()))))?;
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
    let (medias, unmatched) = negotiated_medias(&mut rtc, &answer);
    Ok(Accepted { rtc, ufrag, answer, medias, unmatched })
}

/// (mid, kind, our direction) of every audio/video m-line an answer (`sdp`, ours or the
/// remote's) enabled, and the kinds of those it disabled because no codec matched.
pub(crate) fn negotiated_medias(
    rtc: &mut Rtc,
    sdp: &str,
) -> (Vec<(Mid, MediaKind, str0m::media::Direction)>, Vec<MediaKind>) {
    let mut medias = Vec::new();
    let mut unmatched = Vec::new();
    for mid in sdp.lines().filter_map(|l| l.trim_end().strip_prefix("a=mid:")) {
        let Some(media) = rtc.media(Mid::from(mid)) else { continue };
        let kind = media.kind();
        if !matches!(kind, MediaKind::Audio | MediaKind::Video) {
            continue;
        }
        if !media.disabled() {
            medias.push((media.mid(), kind, media.direction()));
        } else if !media.stopped() {
            // Disabled without a port 0 from the offerer: none of its codecs matched ours.
            unmatched.push(kind);
        }
    }
    (medias, unmatched)
}

/// What a session receives (a publisher's, or a pull's): its receiving audio/video m-lines of
/// `medias` and the negotiated codecs the remote uses on them. None if either is empty.
pub(crate) fn received_source(rtc: &Rtc, medias: &[(Mid, MediaKind, str0m::media::Direction)]) -> Option<Source> {
    let tracks: Vec<TrackIn> = medias
        .iter()
        .filter(|(_, _, dir)| dir.is_receiving())
        .map(|&(mid, kind, _)| TrackIn { mid, kind, layers: simulcast_layers(rtc, mid) })
        .collect();
    let params: Vec<PayloadParams> = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|p| tracks.iter().any(|t| rtc.media(t.mid).is_some_and(|m| m.remote_pts().contains(&p.pt()))))
        .copied()
        .collect();
    (!tracks.is_empty() && !params.is_empty()).then_some(Source { tracks, params })
}

/// The simulcast layers the remote sends on `mid`, if it sends more than one (at most
/// [`MAX_LAYERS`]; further ones are never forwarded).
fn simulcast_layers(rtc: &Rtc, mid: Mid) -> Vec<Layer> {
    match rtc.media(mid).map(|m| m.rids_rx()) {
        Some(Rids::Specific(rids)) if rids.len() > 1 => {
            rids.iter().take(MAX_LAYERS).map(|rid| Layer::new(*rid)).collect()
        }
        _ => Vec::new(),
    }
}

/// STUN retransmission cap and count of a pull: the pull's ICE gives up on an origin that
/// has not answered for about 2.5 s (4 × 500 ms + 500 ms after the 250 ms first retry).
const PULL_MAX_STUN_RTO: std::time::Duration = std::time::Duration::from_millis(500);
const PULL_MAX_STUN_RETRANSMITS: usize = 5;

/// A pull of a stream from another relay: a full-ICE session (the other relay is ICE-lite)
/// offering to receive audio and every simulcast layer of the video, advertising
/// `candidates`. Returns the session, its ufrag, the SDP offer and what completes it.
pub(crate) fn pull_offer(
    config: RtcConfig,
    candidates: &[SocketAddr],
    now: Instant,
) -> Result<(Rtc, String, String, str0m::change::SdpPendingOffer), RelayError> {
    let built = catch_unwind(AssertUnwindSafe(move || {
        let mut config = config.set_ice_lite(false);
        // An origin that dies is noticed when its STUN answers stop: str0m's default (up to
        // ~20 s, sized for browsers on lossy paths) would leave the edges' players frozen that
        // long; between relay nodes ~2.5 s of silence means the origin is gone.
        config.set_max_stun_rto(PULL_MAX_STUN_RTO);
        config.set_max_stun_retransmits(PULL_MAX_STUN_RETRANSMITS);
        let mut rtc = config.build(now);
        for addr in candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, str0m::media::Direction::RecvOnly, None, None, None);
        // Every simulcast layer of the stream, so that players here get the one that suits
        // each (the origin cuts the list to the layers it has; one encoding comes on `l0`).
        let layers = (0..MAX_LAYERS).map(|i| SimulcastLayer::new(&format!("l{i}"))).collect();
        let simulcast = Simulcast { send: Vec::new(), recv: layers };
        api.add_media(MediaKind::Video, str0m::media::Direction::RecvOnly, None, None, Some(simulcast));
        let offer = api.apply();
        (rtc, offer)
    }));
    let unavailable = || RelayError::Unavailable("could not make an offer to pull the stream".into());
    let (mut rtc, offer) = built.map_err(|_| unavailable())?;
    let (offer, pending) = offer.ok_or_else(unavailable)?;
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
    Ok((rtc, ufrag, offer.to_sdp_string(), pending))
}

impl Publisher {
    pub fn new(source: Arc<Source>, pulled: bool) -> Self {
        Publisher {
            pulled,
            idle_since: None,
            source,
            players: Vec::new(),
            shards: Vec::new(),
            players_bytes_out: 0,
            live: false,
            last_keyframe_request: None,
            keyframe_wanted: 0,
            audio_muted: false,
            video_muted: false,
            layer_bytes: Vec::new(),
            measured_at: None,
            ssrcs: Vec::new(),
        }
    }

    /// The incoming track and simulcast layer (0 without simulcast) an RTP packet belongs to
    /// (asks str0m once per new SSRC). None for a layer the track does not list.
    pub fn track_of(&mut self, rtc: &mut Rtc, ssrc: Ssrc) -> Option<(usize, u8)> {
        if let Some(&(_, i, layer)) = self.ssrcs.iter().find(|(s, _, _)| *s == ssrc) {
            return Some((i, layer));
        }
        let mut api = rtc.direct_api();
        let rx = api.stream_rx(&ssrc)?;
        let (mid, rid) = (rx.mid(), rx.rid());
        let i = self.source.tracks.iter().position(|t| t.mid == mid)?;
        let layers = &self.source.tracks[i].layers;
        let layer = if layers.is_empty() { 0 } else { layers.iter().position(|l| Some(l.rid) == rid)? as u8 };
        self.ssrcs.push((ssrc, i, layer));
        Some((i, layer))
    }

    /// Counts a received packet towards its layer's rate (simulcast tracks only).
    pub fn count_layer_bytes(&mut self, track: usize, layer: u8, bytes: usize, now: Instant) {
        if self.source.tracks[track].layers.is_empty() {
            return;
        }
        if self.layer_bytes.len() < self.source.tracks.len() {
            self.layer_bytes.resize(self.source.tracks.len(), [0; MAX_LAYERS]);
            self.measured_at.get_or_insert(now);
        }
        self.layer_bytes[track][layer as usize] += bytes as u64;
    }

    /// Publishes each layer's rate since the last call (the engine calls it about once a second).
    pub fn measure_layers(&mut self, now: Instant) {
        let Some(since) = self.measured_at else { return };
        let seconds = now.saturating_duration_since(since).as_secs_f64();
        if seconds < 0.5 {
            return;
        }
        for (track, bytes) in self.source.tracks.iter().zip(self.layer_bytes.iter_mut()) {
            for (layer, count) in track.layers.iter().zip(bytes.iter_mut()) {
                layer.measured((*count as f64 * 8.0 / seconds) as u64);
                *count = 0;
            }
            if !track.layers.is_empty() {
                let rates: Vec<u64> = track.layers.iter().map(Layer::bitrate).collect();
                tracing::debug!(mid = %track.mid, ?rates, "simulcast layer rates");
            }
        }
        self.measured_at = Some(now);
    }

    pub fn params_of(&self, pt: Pt) -> Option<&PayloadParams> {
        self.source.params.iter().find(|p| p.pt() == pt)
    }
}

/// RTP timestamp units per millisecond of a track: audio is sent at 48 kHz (Opus), video at
/// 90 kHz; jitter in RTCP is counted in these units.
fn rtp_units_per_ms(rtc: &Rtc, mid: Mid) -> f64 {
    match rtc.media(mid).map(|m| m.kind()) {
        Some(MediaKind::Audio) => 48.0,
        _ => 90.0,
    }
}

/// Keeps the worse of the level so far and a new known one.
fn note_level(worst: &mut Option<Level>, level: Level) {
    if level.is_known() && worst.is_none_or(|w| level > w) {
        *worst = Some(level);
    }
}

impl Peer {
    /// Polls the session until it asks for a timeout, queueing its datagrams on `transmits`.
    /// Returns false if the session is dead (also pushed as [`Happening::Gone`]).
    pub fn drain(&mut self, transmits: &mut VecDeque<Transmit>, out: &mut Vec<Happening>) -> bool {
        let rtc = &mut self.rtc;
        let nacks = &mut self.nack_totals;
        let worst_level = &mut self.worst_level;
        let bytes_out = &mut self.bytes_out;
        let mut last_dest = self.addrs.last().copied();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            loop {
                if !rtc.is_alive() {
                    return Err("closed");
                }
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) => return Ok(t),
                    Ok(Output::Transmit(t)) => {
                        if last_dest != Some(t.destination) {
                            last_dest = Some(t.destination);
                            out.push(Happening::Destination(t.destination));
                        }
                        *bytes_out += t.contents.len() as u64;
                        transmits.push_back(t);
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::Connected => out.push(Happening::Connected),
                        Event::RtpPacket(p) => out.push(Happening::Rtp(p)),
                        Event::KeyframeRequest(request) => {
                            out.push(Happening::KeyframeRequest(request.mid, request.rid))
                        }
                        Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                            out.push(Happening::Estimate(estimate.as_u64()))
                        }
                        // A player's track: NACKs it sent us, and the loss it reports.
                        Event::MediaEgressStats(stats) => {
                            let new = nacks.delta(stats.mid, true, stats.nacks);
                            crate::metrics::relay_nacks("from_players", new);
                            if let Some(loss) = stats.loss {
                                crate::metrics::relay_receiver_loss(loss);
                            }
                            let per_ms = rtp_units_per_ms(rtc, stats.mid);
                            let sample = LinkSample {
                                loss: stats.loss,
                                rtt_ms: stats.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                                jitter_ms: stats.remote.as_ref().map(|r| f64::from(r.jitter) / per_ms),
                            };
                            note_level(worst_level, sample.level());
                        }
                        // A publisher's track: NACKs we sent it for what we missed.
                        Event::MediaIngressStats(stats) => {
                            let new = nacks.delta(stats.mid, false, stats.nacks);
                            crate::metrics::relay_nacks("to_publishers", new);
                            let per_ms = rtp_units_per_ms(rtc, stats.mid);
                            let sample = LinkSample {
                                loss: stats.loss,
                                rtt_ms: stats.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                                jitter_ms: Some(f64::from(stats.jitter) / per_ms),
                            };
                            note_level(worst_level, sample.level());
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            return Err("ice disconnected");
                        }
                        Event::Closed => return Err("closed by remote"),
                        _ => {}
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "relay session failed");
                        return Err("session error");
                    }
                }
            }
        }));
        match polled {
            Ok(Ok(t)) => {
                self.next_timeout = Some(t);
                true
            }
            Ok(Err(why)) => {
                out.push(Happening::Gone(why));
                false
            }
            Err(_) => {
                out.push(Happening::Gone("panicked"));
                false
            }
        }
    }

    /// Feeds one input; false (and the session disconnected) if str0m failed or panicked.
    pub fn input(&mut self, input: str0m::Input<'_>) -> bool {
        let (str0m::Input::Timeout(now) | str0m::Input::Receive(now, _)) = &input;
        self.last_input = self.last_input.max(*now);
        let rtc = &mut self.rtc;
        match catch_unwind(AssertUnwindSafe(|| rtc.handle_input(input))) {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(peer = self.id, error = %e, "relay input rejected");
                // A bad datagram is not fatal for str0m's own errors on e.g. a corrupt packet;
                // only a closed session is.
                self.rtc.is_alive()
            }
            Err(_) => {
                self.rtc.disconnect();
                false
            }
        }
    }

    pub fn is_publisher(&self) -> bool {
        matches!(self.role, Role::Publisher(_))
    }
}
