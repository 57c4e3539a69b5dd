//! Per-player forwarding state of one outgoing stream: which publisher track (and simulcast
//! layer) feeds it, the sequence-number and timestamp rebase, and the wait for a keyframe before
//! video starts or changes layer. A player's m-line carries one such stream, or, for a session
//! that receives simulcast itself (a cascade edge), one per layer, each on its own rid.

use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::format::{Codec, detect_vp8_keyframe, detect_vp9_keyframe};
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};

use super::simulcast::Vp8Ids;

/// A new player's VP8/VP9 video waits this long at most for a keyframe before it starts anyway.
const KEYFRAME_WAIT: Duration = Duration::from_secs(3);
/// First outgoing sequence number; leaves room below for packets reordered before the first one.
const FIRST_SEQ: i64 = 1000;

/// One outgoing stream of a player.
pub(crate) struct TrackOut {
    /// The player's mid.
    pub mid: Mid,
    /// The rid it is sent on, when the player receives simulcast (one `TrackOut` per layer).
    pub rid: Option<Rid>,
    /// The one publisher layer it carries, when the player receives simulcast: forwarded as an
    /// unlayered stream, whatever its rate.
    only_layer: Option<u8>,
    pub kind: MediaKind,
    /// The publisher's mid that feeds it.
    pub source: Mid,
    /// Outgoing = incoming extended sequence number + `seq_delta` (set on the first packet and
    /// whenever the publisher's SSRC changes).
    seq_delta: Option<i64>,
    ssrc_in: Option<Ssrc>,
    last_out: i64,
    /// A first packet went out (video starts on a keyframe, or after `KEYFRAME_WAIT`).
    started: bool,
    /// Since when video has been held back waiting for a keyframe (None: not waiting).
    waiting_since: Option<Instant>,
    /// The source's simulcast layers (0: it sends one encoding).
    layers: u8,
    /// The layer sent now (simulcast; None until the first keyframe).
    current: Option<u8>,
    /// The layer to send: switched to at its next keyframe.
    target: u8,
    /// Outgoing RTP timestamp = incoming + `ts_delta` (moves at a layer switch: layers need not
    /// share a timestamp base).
    ts_delta: u32,
    /// The last outgoing timestamp and when it was sent.
    last_ts_out: Option<(u32, Instant)>,
    /// VP8 picture ids made continuous across layers (simulcast VP8 only).
    vp8_ids: Option<Vp8Ids>,
}

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    Sent,
    /// Held back until the stream can start on a keyframe.
    WaitingKeyframe,
    /// A simulcast layer this player is not sent.
    OtherLayer,
    Dropped,
}

impl TrackOut {
    /// An m-line fed by the source track `source`, which sends `layers` simulcast layers (0 or 1:
    /// one encoding); `target` is the layer to start on.
    pub fn new(mid: Mid, kind: MediaKind, source: Mid, layers: u8, target: u8) -> Self {
        TrackOut {
            mid,
            rid: None,
            only_layer: None,
            kind,
            source,
            seq_delta: None,
            ssrc_in: None,
            last_out: FIRST_SEQ - 1,
            started: false,
            waiting_since: None,
            layers,
            current: None,
            target: if layers > 1 { target.min(layers - 1) } else { 0 },
            ts_delta: 0,
            last_ts_out: None,
            vp8_ids: (layers > 1).then(Vp8Ids::default),
        }
    }

    /// A stream of a player that receives simulcast: carries the publisher's `layer` of the
    /// source track `source` on the player's `rid`.
    pub fn for_layer(mid: Mid, rid: Rid, kind: MediaKind, source: Mid, layer: u8) -> Self {
        TrackOut { rid: Some(rid), only_layer: Some(layer), ..TrackOut::new(mid, kind, source, 0, 0) }
    }

    /// Starts over after a pause (the player muted this kind): the next packet continues after
    /// the last one sent, and video waits for a keyframe again.
    pub fn restart(&mut self) {
        self.seq_delta = None;
        self.started = false;
        self.waiting_since = None;
        self.current = None;
    }

    pub fn is_simulcast(&self) -> bool {
        self.layers > 1
    }

    /// The layer sent now, if any.
    pub fn current_layer(&self) -> Option<u8> {
        if self.is_simulcast() { self.current } else { self.started.then_some(self.only_layer.unwrap_or(0)) }
    }

    /// Asks for `layer` from its next keyframe on (simulcast only).
    pub fn set_target(&mut self, layer: u8) {
        if self.is_simulcast() {
            self.target = layer.min(self.layers - 1);
        }
    }

    /// The layer whose keyframe this m-line waits for: to start, or to switch to.
    pub fn awaited_keyframe(&self) -> Option<u8> {
        if self.is_simulcast() {
            (self.current != Some(self.target)).then_some(self.target)
        } else {
            (!self.started && self.kind == MediaKind::Video).then_some(self.only_layer.unwrap_or(0))
        }
    }

    /// Writes `pkt` (a publisher packet of codec `codec`, from simulcast layer `layer`) to the
    /// player's `rtc` as payload type `pt`.
    pub fn forward(
        &mut self,
        rtc: &mut Rtc,
        pkt: &RtpPacket,
        layer: u8,
        pt: Pt,
        codec: Codec,
        now: Instant,
    ) -> Forwarded {
        if self.only_layer.is_some_and(|only| only != layer) {
            return Forwarded::OtherLayer;
        }
        if self.is_simulcast() {
            if self.current != Some(layer) {
                if layer != self.target {
                    return Forwarded::OtherLayer;
                }
                // The old layer keeps flowing until the new one has a keyframe; a first layer
                // starts without one after `KEYFRAME_WAIT`, as unlayered video does.
                if !starts_keyframe(codec, &pkt.payload) && (self.current.is_some() || !self.waited_enough(now)) {
                    return Forwarded::WaitingKeyframe;
                }
                self.switch_to(layer, pkt.header.timestamp, now);
            }
        } else if !self.started {
            if self.kind == MediaKind::Video && !starts_keyframe(codec, &pkt.payload) && !self.waited_enough(now) {
                return Forwarded::WaitingKeyframe;
            }
            self.started = true;
        }
        let seq_in = *pkt.seq_no as i64;
        let delta = match self.seq_delta {
            Some(d) if self.ssrc_in == Some(pkt.header.ssrc) => d,
            _ => {
                // First packet, or the publisher restarted its stream: continue after the last sent.
                let d = self.last_out + 1 - seq_in;
                self.seq_delta = Some(d);
                self.ssrc_in = Some(pkt.header.ssrc);
                d
            }
        };
        let seq_out = seq_in + delta;
        if seq_out < 0 {
            return Forwarded::Dropped;
        }
        self.last_out = self.last_out.max(seq_out);
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, self.rid) else {
            return Forwarded::Dropped;
        };
        let ext = &pkt.header.ext_vals;
        let ext_vals = ExtensionValues {
            audio_level: ext.audio_level,
            voice_activity: ext.voice_activity,
            video_orientation: ext.video_orientation,
            video_content_type: ext.video_content_type,
            ..Default::default()
        };
        let ts_out = pkt.header.timestamp.wrapping_add(self.ts_delta);
        self.last_ts_out = Some((ts_out, now));
        let payload = match &mut self.vp8_ids {
            Some(ids) if codec == Codec::Vp8 => {
                ids.rewrite(&pkt.payload).map_or_else(|| pkt.payload.clone(), Into::into)
            }
            _ => pkt.payload.clone(),
        };
        let write = RtpWrite::new(pt, (seq_out as u64).into(), ts_out, pkt.timestamp, payload)
            .marker(pkt.header.marker)
            .ext_vals(ext_vals)
            .nackable(self.kind == MediaKind::Video);
        stream.write_rtp(write);
        Forwarded::Sent
    }

    /// Whether video held back for a keyframe may start without one.
    fn waited_enough(&mut self, now: Instant) -> bool {
        let since = *self.waiting_since.get_or_insert(now);
        now.saturating_duration_since(since) >= KEYFRAME_WAIT
    }

    /// Makes `layer` the one sent from its packet with timestamp `ts_in` on: sequence numbers,
    /// timestamps and VP8 picture ids continue from the old layer's.
    fn switch_to(&mut self, layer: u8, ts_in: u32, now: Instant) {
        self.current = Some(layer);
        self.started = true;
        // The sequence rebases itself on the new SSRC; the timestamp moves on by the time since
        // the last packet sent (at least one tick, so that the new frame is a new one).
        self.ts_delta = match self.last_ts_out {
            Some((ts, at)) => {
                let ticks = (now.saturating_duration_since(at).as_secs_f64() * VIDEO_CLOCK_HZ) as u32;
                ts.wrapping_add(ticks.max(1)).wrapping_sub(ts_in)
            }
            None => 0,
        };
        if let Some(ids) = &mut self.vp8_ids {
            ids.rebase();
        }
    }
}

/// RTP clock of video (all of the relay's video codecs).
const VIDEO_CLOCK_HZ: f64 = 90_000.0;

/// Whether an RTP payload begins a keyframe, for the codecs where that is reliable from one
/// packet. Other codecs (H264: parameter sets may ride in earlier packets) are not held back.
fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => detect_vp8_keyframe(payload),
        // P=0 (independent) on the packet that begins the frame (B bit).
        Codec::Vp9 => detect_vp9_keyframe(payload) && payload.first().is_some_and(|b| b & 0x08 != 0),
        _ => true,
    }
}
