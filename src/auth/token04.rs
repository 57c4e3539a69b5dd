//! ZEGO "04" tokens, accepted at login besides Huddle's own JWTs, so that a business moving
//! off ZEGO keeps its token server: an app imported with its ZEGO AppID and 32-character
//! ServerSecret (`huddle app create --app-id N --server-secret S`) verifies the tokens that
//! ZEGO's published generators (`zego_server_assistant`, `GenerateToken04`) mint with them.
//!
//! The format, as those generators lay it out (integers big-endian):
//!
//! ```text
//! "04" + base64( expire: i64 | nonce length: u16 | nonce | data length: u16 | data | mode: u8? )
//! ```
//!
//! The key is the ServerSecret's 32 bytes (AES-256). Mode byte 1 is AES-GCM: a 12-byte nonce,
//! the 16-byte tag at the end of `data`, no associated data. Without a mode byte (or with 0) it
//! is the older AES-CBC layout ZEGO has deprecated: a 16-byte IV, PKCS#7 padding and no
//! authentication at all, so a CBC token is trusted only as far as its plaintext decrypts,
//! unpads and parses, and its copy of `expire` matches the one outside.
//!
//! The plaintext is JSON `{app_id, user_id, nonce, ctime, expire, payload}`. `payload` is a
//! string: empty for ZEGO's basic token, or the JSON of its privilege token
//! `{room_id, privilege: {"1": login, "2": publish}, stream_id_list}`. Both map onto Huddle's
//! [`Claims`] (`TryFrom<Token04> for Claims` says how) and go through a JWT's checks.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::collections::HashMap;

use super::token::{self, Claims, Expected, Privileges, TokenError};

/// What every "04" token starts with (a JWT starts with `eyJ`, so the two never mix).
pub const PREFIX: &str = "04";
/// ZEGO's ServerSecret length: its generators refuse any other, and it is the AES-256 key.
pub const SECRET_LEN: usize = 32;
/// Longer text than this is refused before decoding: real tokens are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 8192;
/// `iss` of the claims a "04" token is mapped to.
pub const ISSUER: &str = "zego-04";
const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;
const AES_BLOCK: usize = 16;
const MODE_CBC: u8 = 0;
const MODE_GCM: u8 = 1;
const PRIVILEGE_LOGIN: &str = "1";
const PRIVILEGE_PUBLISH: &str = "2";

/// Whether `text` is a ZEGO "04" token rather than a JWT.
pub fn is_token04(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// How a token's data was encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Gcm,
    Cbc,
}

/// The encrypted JSON, as ZEGO's generators write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Token04 {
    pub app_id: u32,
    pub user_id: String,
    pub ctime: i64,
    pub expire: i64,
    /// Random per token (an int32 in every generator); kept as the claims' `jti`.
    pub nonce: i64,
    #[serde(default)]
    pub payload: String,
}

/// ZEGO's privilege payload. Fields ZEGO may add later are ignored.
#[derive(Debug, Default, Deserialize)]
struct PrivilegePayload {
    /// The one room the token opens; empty or absent: any room.
    #[serde(default)]
    room_id: Option<String>,
    /// Privilege bit ("1" login, "2" publish) to 1 (granted) or 0 (refused).
    #[serde(default)]
    privilege: Option<HashMap<String, i64>>,
    /// The streams the token may publish; null or empty: any stream.
    #[serde(default)]
    stream_id_list: Option<Vec<String>>,
}

/// The binary frame inside the base64.
struct Frame<'a> {
    outer_expire: i64,
    nonce: &'a [u8],
    data: &'a [u8],
    cipher: Cipher,
}

fn malformed(why: impl Into<String>) -> TokenError {
    TokenError::Malformed(why.into())
}

/// Reads `len` bytes at `*at`, or says the token is cut short.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize, what: &str) -> Result<&'a [u8], TokenError> {
    let end = at
        .checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| malformed(format!("04 token is cut short in its {what}")))?;
    let slice = &bytes[*at..end];
    *at = end;
    Ok(slice)
}

fn u16_at(bytes: &[u8], at: &mut usize, what: &str) -> Result<usize, TokenError> {
    let raw = take(bytes, at, 2, what)?;
    Ok(usize::from(u16::from_be_bytes([raw[0], raw[1]])))
}

fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, TokenError> {
    let mut at = 0;
    let expire = take(bytes, &mut at, 8, "expiry")?;
    let mut expire_bytes = [0u8; 8];
    expire_bytes.copy_from_slice(expire);
    let nonce_len = u16_at(bytes, &mut at, "nonce length")?;
    let nonce = take(bytes, &mut at, nonce_len, "nonce")?;
    let data_len = u16_at(bytes, &mut at, "data length")?;
    let data = take(bytes, &mut at, data_len, "encrypted data")?;
    let cipher = match &bytes[at..] {
        [] | [MODE_CBC] => Cipher::Cbc,
        [MODE_GCM] => Cipher::Gcm,
        [mode] => return Err(malformed(format!("04 token has unknown encryption mode {mode}"))),
        rest => return Err(malformed(format!("04 token has {} bytes after its data", rest.len()))),
    };
    Ok(Frame { outer_expire: i64::from_be_bytes(expire_bytes), nonce, data, cipher })
}

/// Decrypts a frame with the app's secret. Any failure means the token was not made with this
/// secret, or was changed since.
fn decrypt(frame: &Frame<'_>, secret: &[u8]) -> Result<Vec<u8>, TokenError> {
    let mut buffer = frame.data.to_vec();
    match frame.cipher {
        Cipher::Gcm => {
            if frame.nonce.len() != GCM_NONCE_LEN {
                return Err(malformed(format!(
                    "04 token's GCM nonce is {} bytes, not {GCM_NONCE_LEN}",
                    frame.nonce.len()
                )));
            }
            if buffer.len() < GCM_TAG_LEN {
                return Err(malformed("04 token's GCM data is shorter than its tag"));
            }
            let key = UnboundKey::new(&AES_256_GCM, secret).map_err(|_| TokenError::SecretNotZego)?;
            let nonce = Nonce::try_assume_unique_for_key(frame.nonce)
                .map_err(|_| malformed("04 token's GCM nonce is unusable"))?;
            let plain = LessSafeKey::new(key)
                .open_in_place(nonce, Aad::empty(), &mut buffer)
                .map_err(|_| TokenError::BadSignature)?;
            Ok(plain.to_vec())
        }
        Cipher::Cbc => {
            let iv: [u8; CBC_IV_LEN] = frame.nonce.try_into().map_err(|_| {
                malformed(format!("04 token's CBC IV is {} bytes, not {CBC_IV_LEN}", frame.nonce.len()))
            })?;
            if buffer.is_empty() || !buffer.len().is_multiple_of(AES_BLOCK) {
                return Err(malformed("04 token's CBC data is not a whole number of AES blocks"));
            }
            let key = UnboundCipherKey::new(&AES_256, secret)
                .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
                .map_err(|_| TokenError::SecretNotZego)?;
            let plain = key
                .decrypt(&mut buffer, DecryptionContext::Iv128(FixedLength::from(iv)))
                .map_err(|_| TokenError::BadSignature)?;
            Ok(plain.to_vec())
        }
    }
}

/// Decodes and decrypts a "04" token with `secret`, checking only that it is well formed and
/// was made with this secret (not who it is for, nor when).
pub fn open(text: &str, secret: &[u8]) -> Result<(Token04, Cipher), TokenError> {
    if secret.len() != SECRET_LEN {
        return Err(TokenError::SecretNotZego);
    }
    let encoded = text.strip_prefix(PREFIX).ok_or_else(|| malformed("not a 04 token"))?;
    if encoded.len() > MAX_TOKEN_LEN {
        return Err(malformed(format!("04 token is longer than {MAX_TOKEN_LEN} characters")));
    }
    let bytes = STANDARD.decode(encoded).map_err(|e| malformed(format!("04 token is not base64: {e}")))?;
    let frame = parse_frame(&bytes)?;
    let plain = decrypt(&frame, secret)?;
    let not_zego = |why: String| match frame.cipher {
        // Authenticated: whoever holds the secret wrote this, and it is not ZEGO's JSON.
        Cipher::Gcm => malformed(format!("04 token's contents are not ZEGO's token JSON: {why}")),
        // Unauthenticated: garbage here almost always means another key or a changed token.
        Cipher::Cbc => TokenError::BadSignature,
    };
    // An object only: serde would also fill the struct from a JSON array, by position.
    let value: serde_json::Value = serde_json::from_slice(&plain).map_err(|e| not_zego(e.to_string()))?;
    if !value.is_object() {
        return Err(not_zego("not an object".to_owned()));
    }
    let token: Token04 = serde_json::from_value(value).map_err(|e| not_zego(e.to_string()))?;
    // The expiry outside is not covered by the encryption: it must repeat the one inside.
    if token.expire != frame.outer_expire {
        return Err(TokenError::BadSignature);
    }
    if token.expire < token.ctime {
        return Err(malformed("04 token expires before it was created"));
    }
    Ok((token, frame.cipher))
}

impl TryFrom<Token04> for Claims {
    type Error = TokenError;

    /// ZEGO's basic token (empty payload) proves who the user is and nothing more; ZEGO then
    /// lets that user into any room and publish any stream (room and stream checks are its
    /// opt-in "privilege authentication"), and so does Huddle. A privilege token is strict:
    /// a room id binds the room, only a privilege bit set to 1 grants (an absent bit refuses),
    /// and a non-empty stream list is the publish allow-list.
    fn try_from(token: Token04) -> Result<Claims, TokenError> {
        let (room_id, privileges, stream_ids) = if token.payload.trim().is_empty() {
            (None, Privileges { login_room: true, publish_stream: true }, None)
        } else {
            let not_zego = |why: String| malformed(format!("04 token's payload is not ZEGO's privilege JSON: {why}"));
            // An object only: serde would also fill the struct from a JSON array, by position.
            let value: serde_json::Value = serde_json::from_str(&token.payload).map_err(|e| not_zego(e.to_string()))?;
            if !value.is_object() {
                return Err(not_zego("not an object".to_owned()));
            }
            let payload: PrivilegePayload = serde_json::from_value(value).map_err(|e| not_zego(e.to_string()))?;
            let granted = |bit: &str| payload.privilege.as_ref().is_some_and(|bits| bits.get(bit) == Some(&1));
            let privileges =
                Privileges { login_room: granted(PRIVILEGE_LOGIN), publish_stream: granted(PRIVILEGE_PUBLISH) };
            let room_id = payload.room_id.filter(|room| !room.is_empty());
            let stream_ids = payload.stream_id_list.filter(|streams| !streams.is_empty());
            (room_id, privileges, stream_ids)
        };
        Ok(Claims {
            iss: ISSUER.to_owned(),
            app_id: token.app_id,
            user_id: token.user_id,
            room_id,
            privileges,
            stream_ids,
            iat: token.ctime,
            nbf: token.ctime,
            exp: token.expire,
            jti: format!("04-{}", token.nonce),
        })
    }
}

/// Verifies a "04" token for `expected` with that app's 32-character secret: decryption,
/// then the same app, user, room, time and login checks as a Huddle JWT (`ctime` plays
/// `nbf`, `expire` plays `exp`).
pub fn verify(text: &str, secret: &[u8], expected: Expected<'_>, now: i64) -> Result<Claims, TokenError> {
    let (token, _) = open(text, secret)?;
    token::check_claims(Claims::try_from(token)?, expected, now)
}

#[cfg(test)]
#[path = "token04_tests.rs"]
mod tests;
