//! Server secrets: generated from the OS CSPRNG, checked when supplied by an operator.

use rand::RngCore;
use thiserror::Error;

/// Length of a generated secret in bytes (printed as 64 hex characters).
const GENERATED_SECRET_BYTES: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a server secret must be 32 to 128 printable ASCII characters without spaces")]
pub struct WeakSecret;

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "a ZEGO ServerSecret must be exactly 32 printable ASCII characters without spaces (ZEGO's token generators and its AES-256 key need 32), got {0} characters"
)]
pub struct NotZegoSecret(pub usize);

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

/// Checks a ServerSecret imported from ZEGO: exactly 32 printable characters, as ZEGO issues
/// them, so that it is the AES-256 key of its "04" tokens.
pub fn validate_zego(secret: &str) -> Result<(), NotZegoSecret> {
    let printable = secret.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if secret.len() == crate::auth::token04::SECRET_LEN && printable {
        Ok(())
    } else {
        Err(NotZegoSecret(secret.chars().count()))
    }
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

    #[test]
    fn zego_secrets_are_exactly_32_printable_characters() {
        assert_eq!(validate_zego("fa94dd0f974cf2e293728a526b028271"), Ok(()));
        assert_eq!(validate_zego(&"a".repeat(31)), Err(NotZegoSecret(31)));
        assert_eq!(validate_zego(&"a".repeat(33)), Err(NotZegoSecret(33)));
        assert_eq!(validate_zego(&generate()), Err(NotZegoSecret(64)), "a Huddle secret is no ZEGO one");
        assert_eq!(validate_zego(&format!("{} {}", "a".repeat(15), "b".repeat(16))), Err(NotZegoSecret(32)));
        assert_eq!(validate_zego(&"é".repeat(16)), Err(NotZegoSecret(16)));
    }
}
