//! Per-session limits: sizes of what a client may send, and token-bucket rate limits.

use std::time::Instant;

/// Largest websocket frame (and reassembled message) accepted.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest broadcast/barrage message or custom command.
pub const MAX_MESSAGE_BYTES: usize = 1024;
pub const MAX_USER_NAME_BYTES: usize = 256;
pub const MAX_EXTRA_KEY_BYTES: usize = 128;
pub const MAX_EXTRA_VALUE_BYTES: usize = 4096;
pub const MAX_ROOM_EXTRA_KEYS: usize = 32;
pub const MAX_COMMAND_TARGETS: usize = 100;
/// Events queued for one session before it is marked for resync (slow or away client).
pub const SESSION_QUEUE: usize = 1024;
/// Requests that may wait while one is in progress (e.g. on Redis); more are refused at once
/// with `5007`. Together they may hold at most [`MAX_QUEUED_BYTES`].
pub const MAX_QUEUED_REQUESTS: usize = 32;
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;

/// Any request: sustained per second, and burst.
pub const REQUESTS_PER_SEC: f64 = 50.0;
pub const REQUEST_BURST: f64 = 100.0;
/// Requests before login (login, resume, ping), per connection.
pub const ANONYMOUS_REQUESTS_PER_SEC: f64 = 5.0;
pub const ANONYMOUS_REQUEST_BURST: f64 = 20.0;
/// Broadcast, barrage and custom command: sustained per second, and burst.
pub const MESSAGES_PER_SEC: f64 = 10.0;
pub const MESSAGE_BURST: f64 = 20.0;

/// `reportQuality`: sustained per second, and burst (the SDK reports every 2-3 s).
pub const QUALITY_REPORTS_PER_SEC: f64 = 1.0;
pub const QUALITY_REPORT_BURST: f64 = 3.0;

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimit { rate, burst, tokens: burst, refilled: Instant::now() }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let mut limit = RateLimit::new(10.0, 3.0);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limit.allow(t0)));
        assert!(!limit.allow(t0));
        assert!(limit.allow(t0 + Duration::from_millis(100)));
        assert!(!limit.allow(t0 + Duration::from_millis(100)));
        assert!((0..3).all(|_| limit.allow(t0 + Duration::from_secs(60))), "refills up to the burst");
        assert!(!limit.allow(t0 + Duration::from_secs(60)));
    }
}
