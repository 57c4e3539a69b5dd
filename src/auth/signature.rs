//! Signed server requests (the contract in the README's "Calling the REST API").
//!
//! ```text
//! X-Huddle-Signature = hex(HMAC-SHA256(serverSecret,
//!     appId + "\n" + timestamp + "\n" + nonce + "\n" + METHOD + "\n" + pathAndQuery + "\n" + hex(sha256(body))))
//! ```
//! The timestamp must be within [`TIMESTAMP_WINDOW_SECS`] of the server clock and the nonce
//! must not have been seen for this app inside that window (see [`super::nonce`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub const HEADER_APP_ID: &str = "x-huddle-appid";
pub const HEADER_TIMESTAMP: &str = "x-huddle-timestamp";
pub const HEADER_NONCE: &str = "x-huddle-nonce";
pub const HEADER_SIGNATURE: &str = "x-huddle-signature";

/// How far a request's timestamp may be from the server clock, either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {header} is malformed: {reason}")]
    InvalidHeader { header: &'static str, reason: &'static str },
    #[error("unknown app id {0}")]
    UnknownApp(u32),
    #[error("app {0} is disabled")]
    AppDisabled(u32),
    #[error("signature does not match the request")]
    BadSignature,
    #[error("timestamp is {skew_secs} s away from the server clock (allowed: 300 s)")]
    StaleTimestamp { skew_secs: i64 },
    #[error("nonce already used")]
    NonceReused,
    #[error(
        "this app has {cap} unexpired nonces, the most the server keeps; retry once older requests age out of the 300 s window"
    )]
    NonceCapacity { cap: usize },
    #[error("nonce store unavailable: {0}")]
    Unavailable(String),
}

impl SignatureError {
    /// Short label for the `huddle_signature_failures_total{reason}` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing_header",
            SignatureError::InvalidHeader { .. } => "invalid_header",
            SignatureError::UnknownApp(_) => "unknown_app",
            SignatureError::AppDisabled(_) => "app_disabled",
            SignatureError::BadSignature => "bad_signature",
            SignatureError::StaleTimestamp { .. } => "stale_timestamp",
            SignatureError::NonceReused => "nonce_reused",
            SignatureError::NonceCapacity { .. } => "nonce_capacity",
            SignatureError::Unavailable(_) => "unavailable",
        }
    }
}

/// The four signature headers, parsed and checked for shape.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    pub app_id: u32,
    pub timestamp: i64,
    pub nonce: String,
    signature: [u8; 32],
}

impl SignedHeaders {
    /// Parses the headers through `get_all` (header name, lowercase → every value sent under
    /// it, in order; an `Option` for a lookup that can only find one). A header sent more than
    /// once is refused rather than read first-wins: a proxy in front might read the other one.
    pub fn parse<'a, V>(get_all: impl Fn(&'static str) -> V) -> Result<Self, SignatureError>
    where
        V: IntoIterator<Item = &'a str>,
    {
        let require = |name: &'static str| {
            let mut values = get_all(name).into_iter();
            let value = values.next().ok_or(SignatureError::MissingHeader(display_name(name)))?;
            match values.next() {
                None => Ok(value),
                Some(_) => {
                    Err(SignatureError::InvalidHeader { header: display_name(name), reason: "sent more than once" })
                }
            }
        };
        let app_id = require(HEADER_APP_ID)?;
        let timestamp = require(HEADER_TIMESTAMP)?;
        let nonce = require(HEADER_NONCE)?;
        let signature = require(HEADER_SIGNATURE)?;

        let app_id = parse_canonical_u64(app_id).and_then(|n| u32::try_from(n).ok()).filter(|n| *n != 0).ok_or(
            SignatureError::InvalidHeader {
                header: "X-Huddle-AppId",
                reason: "must be a decimal number from 1 to 4294967295",
            },
        )?;
        let timestamp = parse_canonical_u64(timestamp).and_then(|n| i64::try_from(n).ok()).ok_or(
            SignatureError::InvalidHeader {
                header: "X-Huddle-Timestamp",
                reason: "must be unix seconds as a decimal number",
            },
        )?;
        let nonce_ok = (8..=64).contains(&nonce.len()) && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !nonce_ok {
            return Err(SignatureError::InvalidHeader {
                header: "X-Huddle-Nonce",
                reason: "must be 8 to 64 printable ASCII characters without spaces",
            });
        }
        let mut signature_bytes = [0u8; 32];
        hex::decode_to_slice(signature, &mut signature_bytes).map_err(|_| SignatureError::InvalidHeader {
            header: "X-Huddle-Signature",
            reason: "must be 64 hex characters",
        })?;
        Ok(SignedHeaders { app_id, timestamp, nonce: nonce.to_owned(), signature: signature_bytes })
    }

    /// Refuses timestamps further than the window from `now`.
    pub fn check_timestamp(&self, now: i64) -> Result<(), SignatureError> {
        let skew_secs = self.timestamp - now;
        if skew_secs.abs() > TIMESTAMP_WINDOW_SECS {
            return Err(SignatureError::StaleTimestamp { skew_secs });
        }
        Ok(())
    }

    /// Checks the signature over the request in constant time.
    pub fn verify(&self, secret: &[u8], method: &str, path_and_query: &str, body: &[u8]) -> Result<(), SignatureError> {
        let mac = request_mac(secret, self.app_id, self.timestamp, &self.nonce, method, path_and_query, body);
        mac.verify_slice(&self.signature).map_err(|_| SignatureError::BadSignature)
    }
}

/// The string the signature covers (exposed for documentation tools and clients in Rust).
pub fn string_to_sign(
    app_id: u32,
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{app_id}\n{timestamp}\n{nonce}\n{method}\n{path_and_query}\n{body_hash}")
}

/// Computes `X-Huddle-Signature` for a request (used by the CLI, load tests and tests).
pub fn sign(
    secret: &[u8],
    app_id: u32,
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let mac = request_mac(secret, app_id, timestamp, nonce, method, path_and_query, body);
    hex::encode(mac.finalize().into_bytes())
}

fn request_mac(
    secret: &[u8],
    app_id: u32,
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it panic-free.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(string_to_sign(app_id, timestamp, nonce, method, path_and_query, body).as_bytes());
    mac
}

/// Only canonical decimals ("42", not "042" or "+42"), so that the signed text and the
/// parsed value cannot disagree.
fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn display_name(lowercase: &'static str) -> &'static str {
    match lowercase {
        HEADER_APP_ID => "X-Huddle-AppId",
        HEADER_TIMESTAMP => "X-Huddle-Timestamp",
        HEADER_NONCE => "X-Huddle-Nonce",
        _ => "X-Huddle-Signature",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn headers(app: &str, ts: &str, nonce: &str, sig: &str) -> HashMap<&'static str, String> {
        HashMap::from([
            (HEADER_APP_ID, app.to_owned()),
            (HEADER_TIMESTAMP, ts.to_owned()),
            (HEADER_NONCE, nonce.to_owned()),
            (HEADER_SIGNATURE, sig.to_owned()),
        ])
    }

    fn parse(map: &HashMap<&'static str, String>) -> Result<SignedHeaders, SignatureError> {
        SignedHeaders::parse(|name| map.get(name).map(String::as_str))
    }

    #[test]
    fn known_answer_vector() {
        // Computed independently with Python's hmac/hashlib, as in the README's recipe.
        let body = br#"{"userId":"alice","roomId":"room-1"}"#;
        assert_eq!(
            sign(SECRET, 1, 1_700_000_000, "n0nce-123", "POST", "/v1/tokens", body),
            "a4ad454f503c64fc3c46bc0719b45358e986fec73a4c08e4567b89f965e56bf8"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let body = br#"{"userId":"alice"}"#;
        let sig = sign(SECRET, 7, 1_700_000_000, "abcdefgh", "POST", "/v1/tokens?x=1", body);
        let parsed = parse(&headers("7", "1700000000", "abcdefgh", &sig)).unwrap();
        assert!(parsed.verify(SECRET, "POST", "/v1/tokens?x=1", body).is_ok());
        assert!(parsed.verify(SECRET, "POST", "/v1/tokens?x=2", body).is_err());
        assert!(parsed.verify(SECRET, "GET", "/v1/tokens?x=1", body).is_err());
        assert!(parsed.verify(SECRET, "POST", "/v1/tokens?x=1", br#"{"userId":"mallory"}"#).is_err());
        assert!(parsed.verify(b"another-secret-another-secret-xx", "POST", "/v1/tokens?x=1", body).is_err());
        let other_nonce = parse(&headers("7", "1700000000", "abcdefgi", &sig)).unwrap();
        assert!(matches!(
            other_nonce.verify(SECRET, "POST", "/v1/tokens?x=1", body),
            Err(SignatureError::BadSignature)
        ));
    }

    #[test]
    fn missing_headers_are_named() {
        let mut map = headers("7", "1", "abcdefgh", &"0".repeat(64));
        map.remove(HEADER_NONCE);
        match parse(&map) {
            Err(SignatureError::MissingHeader(name)) => assert_eq!(name, "X-Huddle-Nonce"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let sig = "0".repeat(64);
        for (app, ts, nonce, sig) in [
            ("0", "1", "abcdefgh", sig.as_str()),
            ("007", "1", "abcdefgh", sig.as_str()),
            ("4294967296", "1", "abcdefgh", sig.as_str()),
            ("x", "1", "abcdefgh", sig.as_str()),
            ("7", "-1", "abcdefgh", sig.as_str()),
            ("7", "1.5", "abcdefgh", sig.as_str()),
            ("7", "1", "short", sig.as_str()),
            ("7", "1", "has space", sig.as_str()),
            ("7", "1", &"n".repeat(65), sig.as_str()),
            ("7", "1", "abcdefgh", "zz"),
            ("7", "1", "abcdefgh", &"0".repeat(63)),
        ] {
            let result = parse(&headers(app, ts, nonce, sig));
            assert!(
                matches!(result, Err(SignatureError::InvalidHeader { .. })),
                "{app} {ts} {nonce} {sig}: {result:?}"
            );
        }
    }

    #[test]
    fn repeated_headers_are_refused_by_name_even_with_equal_values() {
        let map = headers("7", "1", "abcdefgh", &"0".repeat(64));
        for repeated in [HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE] {
            let result = SignedHeaders::parse(|name| {
                let value = map[name].as_str();
                if name == repeated { vec![value, value] } else { vec![value] }
            });
            match result {
                Err(SignatureError::InvalidHeader { header, reason }) => {
                    assert_eq!(header, display_name(repeated));
                    assert_eq!(reason, "sent more than once");
                }
                other => panic!("{repeated} twice: {other:?}"),
            }
        }
        assert!(SignedHeaders::parse(|name| vec![map[name].as_str()]).is_ok());
    }

    #[test]
    fn timestamp_window_is_inclusive_300_seconds() {
        let sig = "0".repeat(64);
        let at = |ts: i64| parse(&headers("7", &ts.to_string(), "abcdefgh", &sig)).unwrap();
        assert!(at(1000).check_timestamp(1300).is_ok());
        assert!(at(1600).check_timestamp(1300).is_ok());
        assert!(matches!(at(999).check_timestamp(1300), Err(SignatureError::StaleTimestamp { skew_secs: -301 })));
        assert!(matches!(at(1601).check_timestamp(1300), Err(SignatureError::StaleTimestamp { skew_secs: 301 })));
    }
}
