//! Server secrets: generated from the OS CSPRNG, checked when supplied by an operator.

use rand::RngCore;
use thiserror::Error;

/// Length of a generated secret in bytes (printed as 64 hex characters).
const GENERATED_SECRET_BYTES: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a server secret must be 32 to 128 printable ASCII characters without spaces")]
pub struct WeakSecret;

/// A fresh secret: 32 random bytes, hex-encoded. `rand::rng()` is a ChaCha12 CSPRNG
/// seeded from (and periodically reseeded by) the operating system.
pub fn generate() -> String {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Checks an operator-supplied secret. Short secrets make HMAC keys guessable offline
/// from any captured token, so fewer than 32 characters is refused.
pub fn validate(secret: &str) -> Result<(), WeakSecret> {
    let printable = secret.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if (32..=128).contains(&secret.len()) && printable { Ok(()) } else { Err(WeakSecret) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_64_hex_chars_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(validate(&a), Ok(()));
    }

    #[test]
    fn short_or_spaced_secrets_are_refused() {
        assert_eq!(validate("short"), Err(WeakSecret));
        assert_eq!(validate(&format!("{} x", "a".repeat(40))), Err(WeakSecret));
        assert_eq!(validate(&"a".repeat(129)), Err(WeakSecret));
    }
}
