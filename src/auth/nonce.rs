//! Single-use nonces for signed requests, in bounded memory.
//!
//! The signature covers the request's timestamp, so a replay carries the same timestamp as the
//! original, and a request is accepted only while its timestamp is within
//! [`TIMESTAMP_WINDOW_SECS`] of the server clock. A nonce therefore only has to be remembered
//! together with its timestamp, and only until that timestamp leaves the window: nonces are
//! kept in buckets of [`BUCKET_SECS`] of *signed* timestamps, and a bucket is dropped as a
//! whole once every timestamp in it is too old to pass the check (5–6 minutes for requests
//! signed with the current time).
//!
//! In memory a nonce is an 8-byte keyed hash of (timestamp, nonce) in a hash set: 9 bytes
//! of table per nonce at full load, up to ~21 with the table's growth slack. Each app may
//! hold at most `cap_per_app` unexpired nonces; past that, its requests are refused with
//! [`SignatureError::NonceCapacity`] (before anything is remembered) until old buckets expire.
//! In Redis each app's bucket is a hash with one ~67-byte field per nonce, expiring as a
//! whole; the cap counts the fields of the app's buckets in the window.
//!
//! Nonces are claimed only after the signature has verified, so nobody without the secret
//! can fill this memory or burn another client's nonces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::signature::{SignatureError, TIMESTAMP_WINDOW_SECS};
use crate::metrics;

/// Width of a bucket of signed timestamps.
pub const BUCKET_SECS: i64 = 60;
/// Default cap on the unexpired nonces of one app (about 2 800 signed requests a second
/// sustained, at most ~21 MB of memory per app).
pub const DEFAULT_CAP_PER_APP: usize = 1_000_000;

/// Where claimed nonces live: this process (embedded defaults) or Redis (shared by workers).
pub enum NonceStore {
    Memory(MemoryNonces),
    Redis { connection: ConnectionManager, cap_per_app: usize },
}

impl NonceStore {
    pub fn memory(cap_per_app: usize) -> Self {
        NonceStore::Memory(MemoryNonces::new(cap_per_app))
    }

    pub fn redis(connection: ConnectionManager, cap_per_app: usize) -> Self {
        NonceStore::Redis { connection, cap_per_app }
    }

    /// Claims `nonce` of a request of `app_id` signed at `timestamp` (already checked to be
    /// within the window of `now`). `NonceReused` when it was claimed before, `NonceCapacity`
    /// when the app holds its cap of unexpired nonces.
    pub async fn claim(&self, app_id: u32, timestamp: i64, nonce: &str, now: i64) -> Result<(), SignatureError> {
        let outcome = match self {
            NonceStore::Memory(memory) => memory.claim(app_id, timestamp, nonce, now),
            NonceStore::Redis { connection, cap_per_app } => {
                claim_in_redis(connection, *cap_per_app, app_id, timestamp, nonce, now).await?
            }
        };
        match outcome {
            Claim::Fresh => Ok(()),
            Claim::Reused => Err(SignatureError::NonceReused),
            Claim::OverCapacity(cap) => {
                metrics::nonce_cap_refused();
                Err(SignatureError::NonceCapacity { cap })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Fresh,
    Reused,
    OverCapacity(usize),
}

fn bucket_of(timestamp: i64) -> i64 {
    timestamp.div_euclid(BUCKET_SECS)
}

/// Whether no timestamp of `bucket` can pass the window check at `now` any more.
fn bucket_expired(bucket: i64, now: i64) -> bool {
    let newest = (bucket + 1) * BUCKET_SECS - 1;
    newest + TIMESTAMP_WINDOW_SECS < now
}

/// The values are already uniformly distributed keyed hashes: hashing them again is waste.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type HashedNonces = HashSet<u64, BuildHasherDefault<PassThrough>>;

#[derive(Default)]
struct AppNonces {
    buckets: BTreeMap<i64, HashedNonces>,
    len: usize,
}

struct Inner {
    apps: HashMap<u32, AppNonces>,
    /// The `now` bucket of the last sweep: expired buckets are dropped once per bucket.
    swept: i64,
}

/// The in-memory nonce store of a single process.
pub struct MemoryNonces {
    cap_per_app: usize,
    /// Keyed per process, so nobody can choose nonces that collide.
    keys: RandomState,
    inner: Mutex<Inner>,
}

impl MemoryNonces {
    pub fn new(cap_per_app: usize) -> Self {
        MemoryNonces {
            cap_per_app,
            keys: RandomState::new(),
            inner: Mutex::new(Inner { apps: HashMap::new(), swept: i64::MIN }),
        }
    }

    /// Records the nonce unless it was seen with this timestamp or the app is at its cap.
    pub fn claim(&self, app_id: u32, timestamp: i64, nonce: &str, now: i64) -> Claim {
        let hashed = self.keys.hash_one((timestamp, nonce));
        // A poisoned lock only means another thread panicked mid-insert; the sets stay usable.
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if bucket_of(now) != inner.swept {
            inner.swept = bucket_of(now);
            sweep(&mut inner.apps, now);
        }
        let app = inner.apps.entry(app_id).or_default();
        let bucket = bucket_of(timestamp);
        if app.buckets.get(&bucket).is_some_and(|set| set.contains(&hashed)) {
            return Claim::Reused;
        }
        if app.len >= self.cap_per_app {
            return Claim::OverCapacity(self.cap_per_app);
        }
        app.buckets.entry(bucket).or_default().insert(hashed);
        app.len += 1;
        drop(inner);
        metrics::nonces_remembered(1);
        Claim::Fresh
    }

    /// Unexpired nonces held, over all apps.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.apps.values().map(|app| app.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the hash tables: each set allocates a power-of-two number of slots of
    /// 8 bytes (the hash) plus 1 control byte, for up to 7/8 of them filled.
    pub fn table_bytes(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slots: usize = inner
            .apps
            .values()
            .flat_map(|app| app.buckets.values())
            .filter(|set| set.capacity() > 0)
            .map(|set| (set.capacity() * 8).div_ceil(7).next_power_of_two())
            .sum();
        slots * (std::mem::size_of::<u64>() + 1)
    }
}

fn sweep(apps: &mut HashMap<u32, AppNonces>, now: i64) {
    let mut dropped = 0;
    for app in apps.values_mut() {
        while let Some(entry) = app.buckets.first_entry() {
            if !bucket_expired(*entry.key(), now) {
                break;
            }
            let set = entry.remove();
            app.len -= set.len();
            dropped += set.len();
        }
    }
    apps.retain(|_, app| app.len > 0);
    if dropped > 0 {
        metrics::nonces_remembered(-(dropped as i64));
    }
}

/// Checks and records a nonce in Redis in one script: refused when its bucket holds it, or
/// when the app's buckets over the window hold the cap.
const CLAIM_SCRIPT: &str = r"
-- KEYS: the app's buckets that a valid timestamp can be in, oldest first
-- ARGV: the nonce's field, index (into KEYS) of its bucket, that bucket's ttl, cap
local own = KEYS[tonumber(ARGV[2])]
if redis.call('HEXISTS', own, ARGV[1]) == 1 then
  return 0
end
local total = 0
for i = 1, #KEYS do
  total = total + redis.call('HLEN', KEYS[i])
end
if total >= tonumber(ARGV[4]) then
  return -1
end
redis.call('HSET', own, ARGV[1], '')
redis.call('EXPIRE', own, ARGV[3])
return 1
";

static CLAIM: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(CLAIM_SCRIPT));

/// A bucket of an app's nonces in Redis: one hash per app and bucket, under the app's hash
/// tag so that the script's keys share a cluster slot. One field per nonce costs ~67 bytes
/// (a key per nonce, with its own expiry, cost ~150).
fn redis_bucket_key(app_id: u32, bucket: i64) -> String {
    format!("huddle:nonce:{{{app_id}}}:{bucket}")
}

/// A nonce's field in its bucket: the timestamp's second within the bucket and 12 characters
/// of SHA-256 of the nonce (short whatever the nonce's length; 72 bits; the same on every
/// worker).
fn redis_nonce_field(timestamp: i64, nonce: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(nonce.as_bytes());
    let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]);
    format!("{:02}{short}", timestamp.rem_euclid(BUCKET_SECS))
}

async fn claim_in_redis(
    connection: &ConnectionManager,
    cap_per_app: usize,
    app_id: u32,
    timestamp: i64,
    nonce: &str,
    now: i64,
) -> Result<Claim, SignatureError> {
    let first = bucket_of(now - TIMESTAMP_WINDOW_SECS);
    let last = bucket_of(now + TIMESTAMP_WINDOW_SECS);
    let own = bucket_of(timestamp).clamp(first, last);
    // The bucket lives until its newest timestamp leaves the window, plus a second for rounding.
    let bucket_ttl = ((own + 1) * BUCKET_SECS + TIMESTAMP_WINDOW_SECS - now + 1).max(1);
    let mut invocation = CLAIM.prepare_invoke();
    for bucket in first..=last {
        invocation.key(redis_bucket_key(app_id, bucket));
    }
    invocation.arg(redis_nonce_field(timestamp, nonce)).arg(own - first + 1).arg(bucket_ttl).arg(cap_per_app);
    let reply: i64 = invocation
        .invoke_async(&mut connection.clone())
        .await
        .map_err(|e| SignatureError::Unavailable(e.to_string()))?;
    Ok(match reply {
        1 => Claim::Fresh,
        0 => Claim::Reused,
        _ => Claim::OverCapacity(cap_per_app),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_nonce_is_single_use_per_app_and_timestamp() {
        let nonces = MemoryNonces::new(100);
        assert_eq!(nonces.claim(1, NOW, "abcdefgh", NOW), Claim::Fresh);
        assert_eq!(nonces.claim(1, NOW, "abcdefgh", NOW + 10), Claim::Reused);
        assert_eq!(nonces.claim(2, NOW, "abcdefgh", NOW), Claim::Fresh, "another app has its own nonces");
        // A replay cannot change the timestamp (the signature covers it): the same nonce with
        // another timestamp is another request.
        assert_eq!(nonces.claim(1, NOW + 1, "abcdefgh", NOW), Claim::Fresh);
    }

    #[test]
    fn a_nonce_is_remembered_exactly_as_long_as_its_timestamp_passes_the_window() {
        let nonces = MemoryNonces::new(100);
        for signed in [NOW - TIMESTAMP_WINDOW_SECS, NOW, NOW + TIMESTAMP_WINDOW_SECS] {
            assert_eq!(nonces.claim(1, signed, "n0nce-xy", NOW), Claim::Fresh);
            // Still refused at the last second its timestamp is accepted.
            let last_valid = signed + TIMESTAMP_WINDOW_SECS;
            assert_eq!(nonces.claim(1, signed, "n0nce-xy", last_valid), Claim::Reused, "{signed}");
        }
        // Once the bucket's newest timestamp is out of the window, the bucket is gone.
        let later = NOW + 2 * TIMESTAMP_WINDOW_SECS + BUCKET_SECS + 1;
        assert_eq!(nonces.claim(9, later, "other-one", later), Claim::Fresh);
        assert_eq!(nonces.len(), 1, "only the new nonce is left");
    }

    #[test]
    fn each_app_is_capped_without_touching_the_others() {
        let nonces = MemoryNonces::new(3);
        for n in 0..3 {
            assert_eq!(nonces.claim(1, NOW, &format!("nonce-{n:03}"), NOW), Claim::Fresh);
        }
        assert_eq!(nonces.claim(1, NOW, "nonce-999", NOW), Claim::OverCapacity(3));
        assert_eq!(nonces.claim(1, NOW, "nonce-000", NOW), Claim::Reused, "a replay is still a replay");
        assert_eq!(nonces.claim(2, NOW, "nonce-999", NOW), Claim::Fresh);
        // The cap frees up as the old nonces expire.
        let later = NOW + TIMESTAMP_WINDOW_SECS + BUCKET_SECS + 1;
        assert_eq!(nonces.claim(1, later, "nonce-999", later), Claim::Fresh);
    }

    #[test]
    fn a_nonce_costs_a_few_bytes_of_table() {
        let nonces = MemoryNonces::new(usize::MAX);
        let count = 200_000;
        for n in 0..count {
            // Spread over the window like a steady load, all still valid at NOW.
            let signed = NOW - 250 + (n as i64 % 300);
            assert_eq!(nonces.claim(1, signed, &format!("{n:016x}"), NOW), Claim::Fresh);
        }
        let per_nonce = nonces.table_bytes() as f64 / count as f64;
        assert!((9.0..=24.0).contains(&per_nonce), "{per_nonce:.1} bytes per nonce");
    }
}
