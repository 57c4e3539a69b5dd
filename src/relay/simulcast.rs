//! Simulcast: a publisher sends up to [`MAX_LAYERS`] encodings of its video (RTP stream ids,
//! "rid"s), and each player is sent one of them: the one it asked for, or (asking for `Auto`)
//! the best that fits the bandwidth the relay estimates towards it.
//!
//! The publisher's shard measures each layer's incoming rate once a second into [`Layer`]s
//! shared with every shard that has players of the stream, so a player's shard can choose
//! without asking. Layers are ranked by that rate, not by their names: a WHIP encoder may call
//! them anything and list them in any order. A player switches layers only on a keyframe of the
//! new layer; until it comes the old layer keeps flowing, so video never freezes on a switch.
//! The switch hides itself from the player: sequence numbers, RTP timestamps and VP8 picture ids
//! continue where the old layer left off (see `forward.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use str0m::media::Rid;

/// Layers per track at most (a player's wanted-keyframe set is a bit per layer).
pub const MAX_LAYERS: usize = 4;

/// A layer is chosen under `Auto` while its rate is at most this share of the estimate...
const FITS: f64 = 0.9;
/// ...and a higher layer is moved up to only if its rate is at most this share: the gap keeps a
/// player from switching back and forth around one estimate.
const FITS_TO_GO_UP: f64 = 0.75;

/// One simulcast layer of a publisher's video track.
#[derive(Debug)]
pub(crate) struct Layer {
    pub rid: Rid,
    /// Incoming bits per second over the last second (0: not received lately).
    bitrate: AtomicU64,
}

impl Layer {
    pub fn new(rid: Rid) -> Self {
        Layer { rid, bitrate: AtomicU64::new(0) }
    }

    pub fn bitrate(&self) -> u64 {
        self.bitrate.load(Ordering::Relaxed)
    }

    fn set_bitrate(&self, bps: u64) {
        self.bitrate.store(bps, Ordering::Relaxed);
    }

    /// Takes one second's measured rate: rises at once (a layer must fit at its busiest to be
    /// chosen), falls smoothly (an encoder's rate swings by a third from one second to the
    /// next), and drops to 0 at once when nothing came (the layer stopped).
    pub fn measured(&self, bps: u64) {
        let before = self.bitrate();
        let smoothed = if bps == 0 || bps >= before { bps } else { (before as f64 * 0.7 + bps as f64 * 0.3) as u64 };
        self.set_bitrate(smoothed);
    }
}

/// Which layer a player wants (ZEGO's `setPlayStreamVideoType`: 0 small, 1 big, 2 auto).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LayerChoice {
    /// The lowest layer the publisher sends.
    Low,
    /// The highest layer the publisher sends.
    High,
    /// The highest layer that fits the relay's bandwidth estimate towards the player.
    #[default]
    Auto,
}

/// The layer (index into `layers`) a player should get.
///
/// Only layers received in the last second count (a publisher's browser drops its top layers
/// when its own uplink or CPU is short); if none has been measured yet, the layers are taken to
/// be listed from low to high, as browsers list their encodings. `estimate` is the bandwidth
/// towards the player in bits per second (None: unknown, no limit); `current` is the layer it
/// gets now.
pub(crate) fn choose_layer(layers: &[Layer], choice: LayerChoice, estimate: Option<u64>, current: Option<u8>) -> u8 {
    let last = layers.len().saturating_sub(1) as u8;
    let mut active: Vec<(u64, u8)> =
        layers.iter().enumerate().map(|(i, l)| (l.bitrate(), i as u8)).filter(|&(bps, _)| bps > 0).collect();
    if active.is_empty() {
        return match choice {
            LayerChoice::Low => 0,
            LayerChoice::High | LayerChoice::Auto => last,
        };
    }
    active.sort_unstable();
    let lowest = active[0].1;
    let highest = active[active.len() - 1].1;
    match (choice, estimate) {
        (LayerChoice::Low, _) => lowest,
        (LayerChoice::High, _) | (LayerChoice::Auto, None) => highest,
        (LayerChoice::Auto, Some(estimate)) => {
            let current_rate = current.and_then(|c| active.iter().find(|&&(_, i)| i == c)).map(|&(bps, _)| bps);
            let fits = |bps: u64| {
                let share = if current_rate.is_some_and(|now| bps > now) { FITS_TO_GO_UP } else { FITS };
                bps as f64 <= estimate as f64 * share
            };
            active.iter().rev().find(|&&(bps, _)| fits(bps)).map_or(lowest, |&(_, i)| i)
        }
    }
}

/// What a player's bandwidth estimate should be probed up to, in bits per second: what the top
/// layer needs to be chosen. `below_top`: the player is not on the top layer, so the estimate
/// should be probed again from time to time (a path that widened is found only by a probe; the
/// relay sends the player less than the estimate, and an estimate grows only slowly above what
/// is sent). None if there is nothing to probe for (one layer, or nothing measured).
///
/// No padding is asked for (`minimum` of str0m's `set_bitrate`): padding towards the next layer
/// kept the estimate towards Chromium at the media rate, even on an open path, where allocation
/// probes found the room (tests/browser/simulcast-bandwidth.test.mjs, docs/BENCHMARKS.md).
pub(crate) fn probe_target(layers: &[Layer], current: Option<u8>) -> Option<(u64, bool)> {
    let mut rates: Vec<u64> = layers.iter().map(Layer::bitrate).filter(|&bps| bps > 0).collect();
    rates.sort_unstable();
    let top = *rates.last()?;
    if rates.len() < 2 {
        return None;
    }
    let now = current.and_then(|c| layers.get(c as usize)).map_or(0, Layer::bitrate);
    Some(((top as f64 / FITS_TO_GO_UP) as u64, now < top))
}

/// Rewrites the VP8 payload descriptor's picture id and TL0PICIDX so that they continue across
/// layer switches: each layer numbers its pictures on its own, and a receiver that sees them jump
/// may wait for pictures that will never come.
#[derive(Debug, Default)]
pub(crate) struct Vp8Ids {
    /// Added to the incoming picture id (mod 2^15 or 2^7) and TL0PICIDX (mod 2^8).
    picture_delta: u16,
    tl0_delta: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
    /// The next packet is the first of a new layer: take new deltas from it.
    rebase: bool,
}

impl Vp8Ids {
    /// The next packet starts a new layer.
    pub fn rebase(&mut self) {
        self.rebase = true;
    }

    /// The VP8 RTP payload `payload` with its ids continued, or None if they stay as they are
    /// (no copy: a player that never switched costs nothing here). Payloads without the fields
    /// are left alone.
    pub fn rewrite(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let fields = Vp8Fields::parse(payload)?;
        let mut changes: Vec<(usize, u8)> = Vec::new();
        if let Some((at, wide)) = fields.picture_id {
            let (incoming, modulus) = if wide {
                (u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]]), 1u32 << 15)
            } else {
                (u16::from(payload[at] & 0x7f), 1u32 << 7)
            };
            if self.rebase {
                self.picture_delta = self.last_picture.map_or(0, |last| last.wrapping_add(1).wrapping_sub(incoming));
            }
            let out = ((u32::from(incoming) + u32::from(self.picture_delta)) % modulus) as u16;
            if out != incoming {
                if wide {
                    let [hi, lo] = out.to_be_bytes();
                    changes.extend([(at, 0x80 | hi), (at + 1, lo)]);
                } else {
                    changes.push((at, out as u8));
                }
            }
            self.last_picture = Some(out);
        }
        if let Some(at) = fields.tl0_pic_idx {
            let incoming = payload[at];
            if self.rebase {
                self.tl0_delta = self.last_tl0.map_or(0, |last| last.wrapping_add(1).wrapping_sub(incoming));
            }
            let out = incoming.wrapping_add(self.tl0_delta);
            if out != incoming {
                changes.push((at, out));
            }
            self.last_tl0 = Some(out);
        }
        self.rebase = false;
        if changes.is_empty() {
            return None;
        }
        let mut copy = payload.to_vec();
        for (at, byte) in changes {
            copy[at] = byte;
        }
        Some(copy)
    }
}

/// Where the optional fields of a VP8 payload descriptor (RFC 7741 §4.2) are.
struct Vp8Fields {
    /// Offset of the picture id and whether it is 15 bits (M set) rather than 7.
    picture_id: Option<(usize, bool)>,
    tl0_pic_idx: Option<usize>,
}

impl Vp8Fields {
    fn parse(payload: &[u8]) -> Option<Vp8Fields> {
        let first = *payload.first()?;
        if first & 0x80 == 0 {
            return Some(Vp8Fields { picture_id: None, tl0_pic_idx: None });
        }
        let ext = *payload.get(1)?;
        let mut at = 2;
        let mut picture_id = None;
        if ext & 0x80 != 0 {
            let wide = payload.get(at)? & 0x80 != 0;
            if wide {
                payload.get(at + 1)?;
            }
            picture_id = Some((at, wide));
            at += if wide { 2 } else { 1 };
        }
        let mut tl0_pic_idx = None;
        if ext & 0x40 != 0 {
            payload.get(at)?;
            tl0_pic_idx = Some(at);
        }
        Some(Vp8Fields { picture_id, tl0_pic_idx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(rates: &[u64]) -> Vec<Layer> {
        rates
            .iter()
            .enumerate()
            .map(|(i, &bps)| {
                let layer = Layer::new(Rid::from(["l", "m", "h", "x"][i]));
                layer.set_bitrate(bps);
                layer
            })
            .collect()
    }

    #[test]
    fn low_and_high_take_the_lowest_and_highest_rate_whatever_the_order() {
        let l = layers(&[1_200_000, 150_000, 500_000]);
        assert_eq!(choose_layer(&l, LayerChoice::Low, None, None), 1);
        assert_eq!(choose_layer(&l, LayerChoice::High, Some(10_000), None), 0);
        assert_eq!(choose_layer(&l, LayerChoice::Auto, None, None), 0);
    }

    #[test]
    fn auto_takes_the_highest_layer_that_fits_and_goes_up_only_with_room() {
        let l = layers(&[150_000, 500_000, 1_200_000]);
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(100_000), None), 0, "nothing fits: the lowest");
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(600_000), None), 1);
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(2_000_000), Some(0)), 2);
        // On layer 1, an estimate that fits layer 2 only just does not move it up...
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(1_400_000), Some(1)), 1);
        // ...but keeps it on layer 2 once there.
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(1_400_000), Some(2)), 2);
        assert_eq!(choose_layer(&l, LayerChoice::Auto, Some(1_300_000), Some(2)), 1, "no longer fits: down");
    }

    #[test]
    fn layers_not_received_lately_are_not_chosen() {
        let l = layers(&[150_000, 500_000, 0]);
        assert_eq!(choose_layer(&l, LayerChoice::High, None, Some(2)), 1);
        let unmeasured = layers(&[0, 0, 0]);
        assert_eq!(choose_layer(&unmeasured, LayerChoice::High, None, None), 2);
        assert_eq!(choose_layer(&unmeasured, LayerChoice::Low, None, None), 0);
        assert_eq!(choose_layer(&[], LayerChoice::Auto, None, None), 0);
    }

    #[test]
    fn a_layer_s_rate_rises_at_once_and_falls_smoothly() {
        let layer = Layer::new(Rid::from("h"));
        layer.measured(1_000_000);
        assert_eq!(layer.bitrate(), 1_000_000);
        layer.measured(500_000);
        assert_eq!(layer.bitrate(), 850_000);
        layer.measured(1_200_000);
        assert_eq!(layer.bitrate(), 1_200_000);
        layer.measured(0);
        assert_eq!(layer.bitrate(), 0, "stopped");
    }

    #[test]
    fn probing_aims_at_what_the_top_layer_needs() {
        let l = layers(&[150_000, 600_000, 1_500_000]);
        assert_eq!(probe_target(&l, Some(0)), Some((2_000_000, true)));
        assert_eq!(probe_target(&l, None), Some((2_000_000, true)));
        assert_eq!(probe_target(&l, Some(2)), Some((2_000_000, false)), "on the top layer");
        assert_eq!(probe_target(&layers(&[150_000]), Some(0)), None);
        assert_eq!(probe_target(&layers(&[150_000, 0, 0]), Some(0)), None, "one layer received");
    }

    /// Rewrites `payload` as the relay sends it.
    fn rewrite(ids: &mut Vp8Ids, payload: &mut Vec<u8>) {
        if let Some(copy) = ids.rewrite(payload) {
            *payload = copy;
        }
    }

    /// A VP8 descriptor with X, I (15-bit picture id), L (TL0PICIDX) and T set.
    fn descriptor(picture: u16, tl0: u8) -> Vec<u8> {
        let [hi, lo] = picture.to_be_bytes();
        vec![0x90, 0xe0, 0x80 | hi, lo, tl0, 0x20, 0xde, 0xad]
    }

    #[test]
    fn picture_ids_continue_across_a_layer_switch() {
        let mut ids = Vp8Ids::default();
        let mut first = descriptor(7000, 20);
        rewrite(&mut ids, &mut first);
        assert_eq!(first, descriptor(7000, 20), "the first layer is passed as it is");
        let mut next = descriptor(7001, 21);
        rewrite(&mut ids, &mut next);
        assert_eq!(next, descriptor(7001, 21));

        ids.rebase();
        let mut switched = descriptor(32_767, 250);
        rewrite(&mut ids, &mut switched);
        assert_eq!(switched, descriptor(7002, 22));
        let mut after = descriptor(0, 251);
        rewrite(&mut ids, &mut after);
        assert_eq!(after, descriptor(7003, 23), "wraps with the incoming numbering");
        assert_eq!(&after[6..], &[0xde, 0xad], "the payload after the descriptor is untouched");
    }

    #[test]
    fn short_and_truncated_descriptors_are_handled() {
        let mut ids = Vp8Ids::default();
        let mut short = vec![0x90, 0x80, 0x05, 0x00];
        rewrite(&mut ids, &mut short);
        ids.rebase();
        let mut switched = vec![0x90, 0x80, 0x70, 0x00];
        rewrite(&mut ids, &mut switched);
        assert_eq!(switched[2], 0x06, "7-bit ids continue too");
        for truncated in [vec![], vec![0x90], vec![0x90, 0x80], vec![0x90, 0x80, 0x80], vec![0x90, 0x40]] {
            let mut copy = truncated.clone();
            rewrite(&mut ids, &mut copy);
            assert_eq!(copy, truncated);
        }
    }
}
