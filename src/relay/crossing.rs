//! How one stream is served by several shards (engine threads): the publisher's shard (the
//! origin) forwards to its own players and hands every packet once to each other shard that
//! has players of the stream; there a mirror fans it out to the local players. The packet is
//! shared (`Arc`), not copied, across shards and players.
//!
//! Shards talk by [`Crossing`] messages on the same channel as the handle's commands:
//! - a mirror `Subscribe`s when it gets its first player and `Unsubscribe`s (with the bytes
//!   its players were sent) when its last one leaves; the origin hands packets to the
//!   subscribed shards only;
//! - players' keyframe needs go back to the origin as `Keyframe`;
//! - when the publisher ends, the origin sends `End` to every shard the stream directory says
//!   was given a player of it (the handle marks the shard there, under the directory lock,
//!   before it sends the play command, so `End` always comes after that command on the
//!   shard's channel). Each answers `Ended` after its players' `PlayerStopped` went out, and
//!   the origin reports `StreamStopped` after the last answer: the rest of the server sees a
//!   stream's players stop before the stream, as on one shard.

use std::sync::Arc;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::RtpPacket;

use super::{MediaBytes, PeerId, StreamKey};

/// A message from one shard's engine to another's. `publisher` names the stream (a publisher
/// id is unique in the relay, a stream key is not over time).
#[derive(Debug)]
pub(crate) enum Crossing {
    /// Shard `shard` has players of the stream: hand it the packets.
    Subscribe { publisher: PeerId, shard: usize },
    /// Shard `shard` has no players of the stream left; they were sent `bytes_out`.
    Unsubscribe { publisher: PeerId, shard: usize, bytes_out: u64 },
    /// One publisher packet, already checked and resolved by the origin.
    Media { publisher: PeerId, media: Arc<MediaPacket> },
    /// A player on the sending shard needs a keyframe of these simulcast layers (bit per layer;
    /// bit 0 without simulcast).
    Keyframe { publisher: PeerId, layers: u8 },
    /// The publisher has ended: end its players here and answer `Ended`.
    End { publisher: PeerId },
    /// Shard `shard` ended its players of the stream; they were sent `bytes_out` since the
    /// shard's last `Unsubscribe`.
    Ended { publisher: PeerId, shard: usize, bytes_out: u64 },
}

/// A publisher packet and what the origin resolved about it (its track, kind and codec).
#[derive(Debug)]
pub(crate) struct MediaPacket {
    pub packet: RtpPacket,
    /// The publisher's mid the packet arrived on.
    pub mid: Mid,
    pub kind: MediaKind,
    pub codec: Codec,
    /// The publisher's payload type (players map it to theirs).
    pub pt: Pt,
    /// Its simulcast layer (0 without simulcast).
    pub layer: u8,
}

/// A stream's players on a shard other than its origin.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub origin: usize,
    pub players: Vec<PeerId>,
    /// Bytes sent to players here that already left.
    pub departed_bytes_out: u64,
    /// When keyframes were last asked of the origin, and of which layers since (each layer at
    /// most once per [`super::KEYFRAME_INTERVAL`]; the origin keeps wanting one until it can ask).
    pub last_keyframe_ask: Option<(Instant, u8)>,
}

/// A publisher that has ended while other shards still end its players.
#[derive(Debug)]
pub(crate) struct Ending {
    pub stream: StreamKey,
    pub bytes: MediaBytes,
    /// Shards whose `Ended` has not come yet (bit i: shard i).
    pub waiting: u64,
}

/// The shards of a bit set, lowest first.
pub(crate) fn shards_of(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let shard = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(shard)
    })
}

#[cfg(test)]
mod tests {
    use super::shards_of;

    #[test]
    fn shards_of_lists_the_set_bits() {
        assert_eq!(shards_of(0).count(), 0);
        assert_eq!(shards_of(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(shards_of(1 << 63).collect::<Vec<_>>(), vec![63]);
    }
}
