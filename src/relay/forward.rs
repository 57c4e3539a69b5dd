//! Per-player forwarding state of one outgoing m-line: which publisher track feeds it, the
//! sequence-number rebase, and the wait for a keyframe before video starts.

use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::format::{Codec, detect_vp8_keyframe, detect_vp9_keyframe};
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};

/// A new player's VP8/VP9 video waits this long at most for a keyframe before it starts anyway.
const KEYFRAME_WAIT: Duration = Duration::from_secs(3);
/// First outgoing sequence number; leaves room below for packets reordered before the first one.
const FIRST_SEQ: i64 = 1000;

/// One outgoing m-line of a player.
pub(crate) struct TrackOut {
    /// The player's mid.
    pub mid: Mid,
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
}

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    Sent,
    /// Held back until the stream can start on a keyframe.
    WaitingKeyframe,
    Dropped,
}

impl TrackOut {
    pub fn new(mid: Mid, kind: MediaKind, source: Mid) -> Self {
        TrackOut {
            mid,
            kind,
            source,
            seq_delta: None,
            ssrc_in: None,
            last_out: FIRST_SEQ - 1,
            started: false,
            waiting_since: None,
        }
    }

    /// Starts over after a pause (the player muted this kind): the next packet continues after
    /// the last one sent, and video waits for a keyframe again.
    pub fn restart(&mut self) {
        self.seq_delta = None;
        self.started = false;
        self.waiting_since = None;
    }

    /// Writes `pkt` (a publisher packet of codec `codec`) to the player's `rtc` as payload type `pt`.
    pub fn forward(&mut self, rtc: &mut Rtc, pkt: &RtpPacket, pt: Pt, codec: Codec, now: Instant) -> Forwarded {
        if !self.started {
            if self.kind == MediaKind::Video && !starts_keyframe(codec, &pkt.payload) {
                let since = *self.waiting_since.get_or_insert(now);
                if now.saturating_duration_since(since) < KEYFRAME_WAIT {
                    return Forwarded::WaitingKeyframe;
                }
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
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
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
        let write =
            RtpWrite::new(pt, (seq_out as u64).into(), pkt.header.timestamp, pkt.timestamp, pkt.payload.clone())
                .marker(pkt.header.marker)
                .ext_vals(ext_vals)
                .nackable(self.kind == MediaKind::Video);
        stream.write_rtp(write);
        Forwarded::Sent
    }
}

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
