//! Network quality levels on ZEGO's scale, and how Huddle computes them: from one link's loss,
//! round trip and jitter (the relay's measurements, and the SDK's from the browser's stats),
//! and a user's level as the worse of what its client reports and what the relay measured.
//! docs/PROTOCOL.md (`reportQuality`, `networkQuality`) documents the same thresholds.
//!
//! ```
//! use huddle::quality::{Level, LinkSample, combine};
//! let lossy = LinkSample { loss: Some(0.06), rtt_ms: Some(40.0), jitter_ms: Some(5.0) };
//! assert_eq!(lossy.level(), Level::MIDDLE);
//! // A client that says "excellent" while the relay sees 6 % loss is "middle".
//! assert_eq!(combine(Some(Level::EXCELLENT), Some(lossy.level())), Level::MIDDLE);
//! assert_eq!(combine(None, None), Level::UNKNOWN);
//! ```

use serde::{Deserialize, Serialize};

/// One of ZEGO's `QualityGrade` values: -1 unknown, 0 excellent, 1 good, 2 middle, 3 poor,
/// 4 die (unusable). Larger is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i8")]
pub struct Level(i8);

impl Level {
    pub const UNKNOWN: Level = Level(-1);
    pub const EXCELLENT: Level = Level(0);
    pub const GOOD: Level = Level(1);
    pub const MIDDLE: Level = Level(2);
    pub const POOR: Level = Level(3);
    pub const DIE: Level = Level(4);

    pub fn value(self) -> i8 {
        self.0
    }

    pub fn is_known(self) -> bool {
        self.0 >= 0
    }
}

impl TryFrom<i64> for Level {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        match value {
            -1..=4 => Ok(Level(value as i8)),
            other => Err(format!("a quality level is an integer from -1 (unknown) to 4 (die), not {other}")),
        }
    }
}

impl From<Level> for i8 {
    fn from(level: Level) -> i8 {
        level.0
    }
}

/// Upper bounds (inclusive) of excellent, good, middle and poor for one measure; above the
/// last is die.
struct Thresholds([f64; 4]);

impl Thresholds {
    fn level(&self, value: f64) -> Level {
        let worse = self.0.iter().take_while(|bound| value > **bound).count();
        Level(worse as i8)
    }
}

/// Packet loss, as a fraction: 1 %, 3 %, 8 %, 20 %.
const LOSS: Thresholds = Thresholds([0.01, 0.03, 0.08, 0.20]);
/// Round-trip time in ms.
const RTT_MS: Thresholds = Thresholds([100.0, 200.0, 400.0, 800.0]);
/// Interarrival jitter in ms.
const JITTER_MS: Thresholds = Thresholds([20.0, 50.0, 100.0, 200.0]);

/// What was measured on one link (a publisher's uplink to the relay, or the relay's downlink
/// to a player); a measure not available is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSample {
    /// Fraction of packets lost, 0.0–1.0.
    pub loss: Option<f32>,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
}

impl LinkSample {
    /// The worst of the levels of the measures present; unknown when none is.
    pub fn level(&self) -> Level {
        let levels = [
            self.loss.map(|loss| LOSS.level(f64::from(loss))),
            self.rtt_ms.map(|rtt| RTT_MS.level(rtt)),
            self.jitter_ms.map(|jitter| JITTER_MS.level(jitter)),
        ];
        levels.into_iter().flatten().max().unwrap_or(Level::UNKNOWN)
    }
}

/// A user's level in one direction: the worse of what its client reported and what the relay
/// measured; either may be missing or unknown, both missing or unknown is unknown.
pub fn combine(client: Option<Level>, relay: Option<Level>) -> Level {
    [client, relay].into_iter().flatten().filter(|l| l.is_known()).max().unwrap_or(Level::UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_measure_has_five_levels_and_the_worst_wins() {
        let loss = |l: f32| LinkSample { loss: Some(l), ..Default::default() }.level();
        let levels: Vec<i8> = [0.0, 0.01, 0.02, 0.05, 0.1, 0.5].into_iter().map(|l| loss(l).value()).collect();
        assert_eq!(levels, [0, 0, 1, 2, 3, 4]);
        let rtt = |ms: f64| LinkSample { rtt_ms: Some(ms), ..Default::default() }.level();
        assert_eq!([rtt(50.0), rtt(150.0), rtt(300.0), rtt(600.0), rtt(900.0)].map(Level::value), [0, 1, 2, 3, 4]);
        let jitter = |ms: f64| LinkSample { jitter_ms: Some(ms), ..Default::default() }.level();
        assert_eq!(
            [jitter(5.0), jitter(30.0), jitter(80.0), jitter(150.0), jitter(250.0)].map(Level::value),
            [0, 1, 2, 3, 4]
        );
        let mixed = LinkSample { loss: Some(0.0), rtt_ms: Some(300.0), jitter_ms: Some(30.0) };
        assert_eq!(mixed.level(), Level::MIDDLE);
        assert_eq!(LinkSample::default().level(), Level::UNKNOWN);
    }

    #[test]
    fn a_user_is_as_bad_as_the_worse_side() {
        assert_eq!(combine(Some(Level::EXCELLENT), Some(Level::POOR)), Level::POOR);
        assert_eq!(combine(Some(Level::DIE), Some(Level::GOOD)), Level::DIE);
        assert_eq!(combine(Some(Level::GOOD), None), Level::GOOD);
        assert_eq!(combine(None, Some(Level::MIDDLE)), Level::MIDDLE);
        assert_eq!(combine(Some(Level::UNKNOWN), Some(Level::GOOD)), Level::GOOD, "unknown is no information");
        assert_eq!(combine(Some(Level::UNKNOWN), None), Level::UNKNOWN);
    }

    #[test]
    fn levels_outside_the_scale_are_refused() {
        assert_eq!(serde_json::from_str::<Level>("3").unwrap(), Level::POOR);
        assert_eq!(serde_json::from_str::<Level>("-1").unwrap(), Level::UNKNOWN);
        for bad in ["5", "-2", "1.5", "\"1\"", "null"] {
            assert!(serde_json::from_str::<Level>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&Level::DIE).unwrap(), "4");
    }
}
