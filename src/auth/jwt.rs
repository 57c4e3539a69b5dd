//! The JWT layer shared by user tokens and media grants.
//!
//! Both are HS256 JWTs signed with one app's server secret, whose header `kid` names that app
//! so that a verifier can find the secret before it trusts anything else. That makes the app
//! a tenant boundary only if the verifier also holds the token to it: the app named by `kid`,
//! the app whose secret verified the signature and the app the claims speak for must be one
//! and the same. [`decode`] checks all three, so no caller can forget one of them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Claims that belong to one app.
pub trait AppClaims {
    fn app_id(&self) -> u32;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed(String),
    BadSignature,
    /// `kid` or the claims name another app than the one whose secret verified the token.
    WrongApp,
}

/// Reads the app id from the header's `kid`, to find the secret to verify with. Nothing read
/// here is trusted until [`decode`] succeeds.
pub fn kid_app_id(text: &str) -> Result<u32, JwtError> {
    let header = jsonwebtoken::decode_header(text).map_err(|e| JwtError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::HS256 {
        return Err(JwtError::Malformed(format!("algorithm {:?} is not accepted", header.alg)));
    }
    header
        .kid
        .as_deref()
        .and_then(|kid| kid.parse::<u32>().ok())
        .ok_or_else(|| JwtError::Malformed("header has no app id (kid)".to_owned()))
}

/// Signs `claims` for `app_id` with its secret (`kid` = app id).
pub fn encode<C: Serialize>(app_id: u32, secret: &[u8], claims: &C) -> Result<String, String> {
    let header = Header { kid: Some(app_id.to_string()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).map_err(|e| e.to_string())
}

/// Verifies a JWT of `app_id` with that app's `secret`: HS256 only, issuer `huddle`, the given
/// audience when there is one, and `kid` and the claims both naming `app_id`. Time claims are
/// the caller's to check (against its own clock).
pub fn decode<C: DeserializeOwned + AppClaims>(
    text: &str,
    app_id: u32,
    secret: &[u8],
    issuer: &str,
    audience: Option<&str>,
) -> Result<C, JwtError> {
    if kid_app_id(text)? != app_id {
        return Err(JwtError::WrongApp);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[issuer]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    let claims = jsonwebtoken::decode::<C>(text, &DecodingKey::from_secret(secret), &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            _ => JwtError::Malformed(e.to_string()),
        })?
        .claims;
    if claims.app_id() != app_id {
        return Err(JwtError::WrongApp);
    }
    Ok(claims)
}
