//! Who may do what: user tokens (JWT HS256, and ZEGO's "04" tokens at login), signed server
//! requests (HMAC-SHA256), the single-use nonce memory that makes signed requests
//! unreplayable, media grants, and TURN credentials (HMAC-SHA1, coturn's shared-secret scheme).

pub mod grant;
pub mod jwt;
pub mod nonce;
pub mod secret;
pub mod signature;
pub mod token;
pub mod token04;
pub mod turn;

pub use nonce::NonceStore;
pub use signature::{SignatureError, SignedHeaders};
pub use token::{Claims, Privileges, TokenError, TokenSpec};

/// Current unix time in seconds. Auth code takes `now` as a parameter everywhere so that
/// tests can move the clock; this is the one place that reads the real one.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
