//! Per-app circuit breakers of one dispatcher: an app whose endpoint timed out or refused the
//! connection gets no more requests from this worker until its backoff is over, and then one
//! (a probe) before the rest.
//!
//! Why: a round waits for its slowest request. Without a breaker, an app whose endpoint hangs
//! would put one of its rooms' events into nearly every round (each room has its own retry
//! schedule), and every round would take the full request timeout: every other app's events
//! would wait behind it. With it, a dead endpoint costs one timeout per backoff period.
//! Only transport failures open a breaker: an endpoint that answers (even `500` for one
//! event) is up, and the other rooms' events go on.

use std::collections::HashMap;

/// What happens to one due event of an app in this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Send,
    /// Not sent; due again at this time (unix ms). Not counted as an attempt.
    Defer(i64),
}

#[derive(Debug, Clone, Copy)]
struct Breaker {
    /// Rounds in a row in which the app's endpoint could not be reached.
    failures: u32,
    /// Unix ms until which nothing is sent to the app.
    open_until: i64,
}

#[derive(Debug, Default)]
pub struct Breakers {
    apps: HashMap<i64, Breaker>,
}

impl Breakers {
    /// Decides, for a round's due events in order (their app ids), which are sent: all of a
    /// healthy app; none of an app whose breaker is open; the first of an app whose backoff is
    /// over (the probe), the others deferred for `probe_wait_ms`.
    pub fn admit(&self, apps: &[i64], now_ms: i64, probe_wait_ms: i64) -> Vec<Admission> {
        let mut probing = std::collections::HashSet::new();
        apps.iter()
            .map(|app| match self.apps.get(app) {
                None => Admission::Send,
                Some(breaker) if breaker.open_until > now_ms => Admission::Defer(breaker.open_until),
                Some(_) if probing.insert(*app) => Admission::Send,
                Some(_) => Admission::Defer(now_ms + probe_wait_ms),
            })
            .collect()
    }

    /// Records a round's outcome for an app: reached (any answer) closes its breaker; not
    /// reached opens it for `backoff(failures)` ms from `now_ms`.
    pub fn record(&mut self, app: i64, reached: bool, now_ms: i64, backoff: impl Fn(u32) -> i64) {
        if reached {
            self.apps.remove(&app);
            return;
        }
        let failures = self.apps.get(&app).map_or(0, |b| b.failures).saturating_add(1);
        let open_until = now_ms + backoff(failures);
        self.apps.insert(app, Breaker { failures, open_until });
    }

    /// Apps whose endpoint was not reached at its last attempt: held back, or waiting for its
    /// next probe. (Counting only those inside their backoff would make the gauge flap between
    /// 1 and 0 while an endpoint stays down.)
    pub fn unreachable_count(&self) -> usize {
        self.apps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_app_is_held_back_then_probed_once_then_released() {
        let mut breakers = Breakers::default();
        let backoff = |failures: u32| 1_000 * i64::from(failures);
        assert_eq!(breakers.admit(&[1, 2, 1], 0, 50), vec![Admission::Send; 3], "healthy apps all go");

        breakers.record(1, false, 0, backoff);
        breakers.record(2, true, 0, backoff);
        assert_eq!(breakers.unreachable_count(), 1);
        // Open: app 1 waits until its backoff is over; app 2 is unaffected.
        assert_eq!(
            breakers.admit(&[1, 2, 1], 500, 50),
            vec![Admission::Defer(1_000), Admission::Send, Admission::Defer(1_000)]
        );
        // Backoff over: one probe, the rest wait for its outcome; still unreachable until then.
        assert_eq!(breakers.unreachable_count(), 1);
        assert_eq!(
            breakers.admit(&[1, 1, 2, 1], 1_000, 50),
            vec![Admission::Send, Admission::Defer(1_050), Admission::Send, Admission::Defer(1_050)]
        );
        // The probe fails: open again for longer.
        breakers.record(1, false, 1_000, backoff);
        assert_eq!(breakers.admit(&[1], 2_500, 50), vec![Admission::Defer(3_000)]);
        // The next probe is answered: everything goes again.
        breakers.record(1, true, 3_000, backoff);
        assert_eq!(breakers.admit(&[1, 1], 3_000, 50), vec![Admission::Send, Admission::Send]);
        assert_eq!(breakers.unreachable_count(), 0);
    }
}
