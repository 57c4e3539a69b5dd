//! Single-use nonces for signed requests.
//!
//! A nonce must be remembered for as long as a request carrying it could still pass the
//! timestamp check: a timestamp is accepted for 2 × 300 s of wall time, so every nonce is
//! kept for [`NONCE_TTL_SECS`]. Nonces are claimed only after the signature has verified,
//! so nobody without the secret can fill this memory or burn another client's nonces.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::signature::{SignatureError, TIMESTAMP_WINDOW_SECS};

/// How long a nonce stays claimed.
pub const NONCE_TTL_SECS: u64 = 2 * TIMESTAMP_WINDOW_SECS as u64;

/// Where claimed nonces live: this process (embedded defaults) or Redis (shared by workers).
pub enum NonceStore {
    Memory(MemoryNonces),
    Redis(ConnectionManager),
}

impl NonceStore {
    pub fn memory() -> Self {
        NonceStore::Memory(MemoryNonces::new(Duration::from_secs(NONCE_TTL_SECS)))
    }

    /// Claims `nonce` for `app_id`. `Err(NonceReused)` when it was claimed before.
    pub async fn claim(&self, app_id: u32, nonce: &str) -> Result<(), SignatureError> {
        let fresh = match self {
            NonceStore::Memory(memory) => memory.claim(app_id, nonce, Instant::now()),
            NonceStore::Redis(connection) => {
                let key = format!("huddle:nonce:{app_id}:{nonce}");
                let mut connection = connection.clone();
                let reply: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(NONCE_TTL_SECS)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| SignatureError::Unavailable(e.to_string()))?;
                reply.is_some()
            }
        };
        if fresh { Ok(()) } else { Err(SignatureError::NonceReused) }
    }
}

/// Two generations of nonce sets swapped every TTL: a nonce is remembered for at least one
/// TTL and at most two, with O(1) work per claim and no per-entry timers.
pub struct MemoryNonces {
    ttl: Duration,
    inner: Mutex<Generations>,
}

struct Generations {
    current: HashSet<(u32, String)>,
    previous: HashSet<(u32, String)>,
    started: Instant,
}

impl MemoryNonces {
    pub fn new(ttl: Duration) -> Self {
        let inner = Generations { current: HashSet::new(), previous: HashSet::new(), started: Instant::now() };
        MemoryNonces { ttl, inner: Mutex::new(inner) }
    }

    /// True when the nonce was not seen before (and is now recorded).
    pub fn claim(&self, app_id: u32, nonce: &str, now: Instant) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the sets stay usable.
        let mut generations = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_duration_since(generations.started) >= self.ttl {
            generations.previous = std::mem::take(&mut generations.current);
            generations.started = now;
        }
        let key = (app_id, nonce.to_owned());
        if generations.previous.contains(&key) {
            return false;
        }
        generations.current.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_single_use_per_app() {
        let nonces = MemoryNonces::new(Duration::from_secs(600));
        let now = Instant::now();
        assert!(nonces.claim(1, "abcdefgh", now));
        assert!(!nonces.claim(1, "abcdefgh", now));
        assert!(nonces.claim(2, "abcdefgh", now), "another app has its own nonces");
    }

    #[test]
    fn a_nonce_survives_one_rotation_and_is_forgotten_after_two() {
        let ttl = Duration::from_secs(600);
        let nonces = MemoryNonces::new(ttl);
        let start = Instant::now();
        assert!(nonces.claim(1, "abcdefgh", start));
        assert!(!nonces.claim(1, "abcdefgh", start + ttl), "still remembered one TTL later");
        assert!(!nonces.claim(1, "abcdefgh", start + ttl + Duration::from_secs(599)));
        assert!(nonces.claim(1, "abcdefgh", start + ttl * 2 + Duration::from_secs(1)), "forgotten after two TTLs");
    }
}
