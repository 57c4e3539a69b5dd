//! User tokens: JWT HS256 signed with the app's server secret (and, at login, ZEGO's "04"
//! tokens: [`super::token04`]).
//!
//! The JWT header's `kid` carries the app id, so a verifier can find the right secret before
//! it trusts anything else in the token. Verification pins HS256 (`none` and every other
//! algorithm are refused) and checks time against a caller-supplied clock with a small leeway.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use super::jwt::{self, AppClaims, JwtError};
use crate::ids::{self, IdError};

pub const DEFAULT_TTL_SECS: u64 = 3600;
pub const MAX_TTL_SECS: u64 = 24 * 3600;
pub const MAX_STREAM_IDS: usize = 64;
/// Clock skew tolerated between the issuer and the verifier.
pub const LEEWAY_SECS: i64 = 5;
const ISSUER: &str = "huddle";

#[derive(Debug, Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued for another app")]
    AppMismatch,
    #[error("token was issued for another user")]
    UserMismatch,
    #[error("token is bound to another room")]
    RoomMismatch,
    #[error("token does not grant loginRoom")]
    NoLoginPrivilege,
    #[error("ttlSeconds must be between 1 and {MAX_TTL_SECS}, got {0}")]
    TtlOutOfRange(u64),
    #[error("streamIds may hold at most {MAX_STREAM_IDS} entries, got {0}")]
    TooManyStreamIds(usize),
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error(
        "this app's server secret is not a 32-character ZEGO ServerSecret, so no ZEGO 04 token can be made with it"
    )]
    SecretNotZego,
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Privileges {
    /// May log in to a room. Default true.
    #[serde(default = "default_true")]
    pub login_room: bool,
    /// May publish streams. Default false.
    #[serde(default)]
    pub publish_stream: bool,
}

impl Default for Privileges {
    fn default() -> Self {
        Privileges { login_room: true, publish_stream: false }
    }
}

fn default_true() -> bool {
    true
}

/// The claims inside a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: String,
    pub app_id: u32,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    pub privileges: Privileges,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_ids: Option<Vec<String>>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl AppClaims for Claims {
    fn app_id(&self) -> u32 {
        self.app_id
    }
}

impl From<JwtError> for TokenError {
    fn from(err: JwtError) -> Self {
        match err {
            JwtError::Malformed(why) => TokenError::Malformed(why),
            JwtError::BadSignature => TokenError::BadSignature,
            JwtError::WrongApp => TokenError::AppMismatch,
        }
    }
}

impl Claims {
    /// Whether this token lets its holder publish `stream_id`.
    pub fn may_publish(&self, stream_id: &str) -> bool {
        self.privileges.publish_stream
            && self.stream_ids.as_ref().is_none_or(|allowed| allowed.iter().any(|s| s == stream_id))
    }
}

/// What a caller asks a token to say, before validation.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub user_id: String,
    pub room_id: Option<String>,
    pub privileges: Privileges,
    pub stream_ids: Option<Vec<String>>,
    pub ttl_secs: Option<u64>,
}

impl TokenSpec {
    pub fn validate(&self) -> Result<(), TokenError> {
        ids::validate_user_id(&self.user_id)?;
        if let Some(room) = &self.room_id {
            ids::validate_room_id(room)?;
        }
        if let Some(streams) = &self.stream_ids {
            if streams.len() > MAX_STREAM_IDS {
                return Err(TokenError::TooManyStreamIds(streams.len()));
            }
            for stream in streams {
                ids::validate_stream_id(stream)?;
            }
        }
        match self.ttl_secs {
            Some(ttl) if !(1..=MAX_TTL_SECS).contains(&ttl) => Err(TokenError::TtlOutOfRange(ttl)),
            _ => Ok(()),
        }
    }
}

/// A freshly minted token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

/// Validates `spec` and signs a token for it with `secret`, valid from `now`.
pub fn issue(app_id: u32, secret: &[u8], spec: &TokenSpec, now: i64) -> Result<IssuedToken, TokenError> {
    spec.validate()?;
    let ttl = spec.ttl_secs.unwrap_or(DEFAULT_TTL_SECS) as i64;
    let claims = Claims {
        iss: ISSUER.to_owned(),
        app_id,
        user_id: spec.user_id.clone(),
        room_id: spec.room_id.clone(),
        privileges: spec.privileges,
        stream_ids: spec.stream_ids.clone(),
        iat: now,
        nbf: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().simple().to_string(),
    };
    let token = jwt::encode(app_id, secret, &claims).map_err(TokenError::Signing)?;
    Ok(IssuedToken { token, claims })
}

/// Reads the app id from the token's header, to find the secret to verify it with.
/// Nothing read here is trusted until [`verify`] succeeds.
pub fn app_id_of(token: &str) -> Result<u32, TokenError> {
    Ok(jwt::kid_app_id(token)?)
}

/// What the verifier expects the token to say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub app_id: u32,
    pub user_id: &'a str,
    /// The room being entered; a token bound to a room only opens that room.
    pub room_id: Option<&'a str>,
}

/// Verifies signature, algorithm, time and binding; returns the claims. `secret` must be the
/// secret of `expected.app_id`: a token whose `kid` or claims name another app is refused
/// (`AppMismatch`), whoever signed it.
pub fn verify(token: &str, secret: &[u8], expected: Expected<'_>, now: i64) -> Result<Claims, TokenError> {
    let claims: Claims = jwt::decode(token, expected.app_id, secret, ISSUER, None)?;
    check_claims(claims, expected, now)
}

/// Verifies a login token of either accepted format: a Huddle JWT, or a ZEGO "04" token
/// (see [`super::token04`]); both end in the same claims and the same checks.
pub fn verify_login(token: &str, secret: &[u8], expected: Expected<'_>, now: i64) -> Result<Claims, TokenError> {
    if super::token04::is_token04(token) {
        super::token04::verify(token, secret, expected, now)
    } else {
        verify(token, secret, expected, now)
    }
}

/// The checks every login token's claims pass, whatever format carried them: app, time
/// (with [`LEEWAY_SECS`]), user, room and the login privilege.
pub(crate) fn check_claims(claims: Claims, expected: Expected<'_>, now: i64) -> Result<Claims, TokenError> {
    if claims.app_id != expected.app_id {
        return Err(TokenError::AppMismatch);
    }
    if now > claims.exp + LEEWAY_SECS {
        return Err(TokenError::Expired);
    }
    if now + LEEWAY_SECS < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    if claims.user_id != expected.user_id {
        return Err(TokenError::UserMismatch);
    }
    if let (Some(bound), Some(entering)) = (claims.room_id.as_deref(), expected.room_id)
        && bound != entering
    {
        return Err(TokenError::RoomMismatch);
    }
    if !claims.privileges.login_room {
        return Err(TokenError::NoLoginPrivilege);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn spec(user: &str) -> TokenSpec {
        TokenSpec { user_id: user.to_owned(), ..TokenSpec::default() }
    }

    fn expect(user: &str) -> Expected<'_> {
        Expected { app_id: 7, user_id: user, room_id: Some("room-1") }
    }

    #[test]
    fn issue_then_verify_round_trips_all_claims() {
        let spec = TokenSpec {
            user_id: "alice".into(),
            room_id: Some("room-1".into()),
            privileges: Privileges { login_room: true, publish_stream: true },
            stream_ids: Some(vec!["cam-1".into()]),
            ttl_secs: Some(60),
        };
        let issued = issue(7, SECRET, &spec, NOW).unwrap();
        assert_eq!(app_id_of(&issued.token).unwrap(), 7);
        let claims = verify(&issued.token, SECRET, expect("alice"), NOW + 30).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 60));
        assert_eq!(claims.jti.len(), 32);
        assert!(claims.may_publish("cam-1"));
        assert!(!claims.may_publish("cam-2"));
    }

    #[test]
    fn every_token_gets_a_unique_jti() {
        let a = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        let b = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        assert_ne!(a.claims.jti, b.claims.jti);
    }

    #[test]
    fn defaults_are_one_hour_login_only() {
        let issued = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        assert_eq!(issued.claims.exp - issued.claims.iat, 3600);
        assert_eq!(issued.claims.privileges, Privileges { login_room: true, publish_stream: false });
        assert!(!issued.claims.may_publish("any"));
    }

    #[test]
    fn expiry_and_not_before_use_a_small_leeway() {
        let issued = issue(7, SECRET, &TokenSpec { ttl_secs: Some(10), ..spec("alice") }, NOW).unwrap();
        assert!(verify(&issued.token, SECRET, expect("alice"), NOW + 10 + LEEWAY_SECS).is_ok());
        assert!(matches!(
            verify(&issued.token, SECRET, expect("alice"), NOW + 11 + LEEWAY_SECS),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            verify(&issued.token, SECRET, expect("alice"), NOW - 1 - LEEWAY_SECS),
            Err(TokenError::NotYetValid)
        ));
    }

    #[test]
    fn binding_to_app_user_and_room_is_enforced() {
        let bound = issue(7, SECRET, &TokenSpec { room_id: Some("room-1".into()), ..spec("alice") }, NOW).unwrap();
        let wrong_app = Expected { app_id: 8, ..expect("alice") };
        assert!(matches!(verify(&bound.token, SECRET, wrong_app, NOW), Err(TokenError::AppMismatch)));
        assert!(matches!(verify(&bound.token, SECRET, expect("bob"), NOW), Err(TokenError::UserMismatch)));
        let other_room = Expected { room_id: Some("room-2"), ..expect("alice") };
        assert!(matches!(verify(&bound.token, SECRET, other_room, NOW), Err(TokenError::RoomMismatch)));
        let unbound = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        assert!(verify(&unbound.token, SECRET, other_room, NOW).is_ok(), "a token without a room opens any room");
    }

    #[test]
    fn a_token_signed_by_one_app_never_speaks_for_another() {
        const OTHER_SECRET: &[u8] = b"another-secret-another-secret-xx";
        let genuine = issue(7, SECRET, &spec("alice"), NOW).unwrap().claims;
        // App 8 signs claims that say app 7, under its own kid: verified with app 8's secret
        // it names another app; presented as app 7's, app 7's secret does not verify it.
        let forged = jwt::encode(8, OTHER_SECRET, &genuine).unwrap();
        assert_eq!(app_id_of(&forged).unwrap(), 8);
        let as_app_8 = Expected { app_id: 8, ..expect("alice") };
        assert!(matches!(verify(&forged, OTHER_SECRET, as_app_8, NOW), Err(TokenError::AppMismatch)));
        assert!(matches!(verify(&forged, SECRET, expect("alice"), NOW), Err(TokenError::AppMismatch)));
        // The other way round: kid says app 7, claims say app 8, signed with app 8's secret.
        let claims_for_8 = Claims { app_id: 8, ..genuine.clone() };
        let forged = jwt::encode(7, OTHER_SECRET, &claims_for_8).unwrap();
        assert!(matches!(verify(&forged, SECRET, expect("alice"), NOW), Err(TokenError::BadSignature)));
        assert!(matches!(verify(&forged, OTHER_SECRET, as_app_8, NOW), Err(TokenError::AppMismatch)));
        // Even app 7's own secret over claims naming app 8 is refused.
        let forged = jwt::encode(7, SECRET, &claims_for_8).unwrap();
        assert!(matches!(verify(&forged, SECRET, expect("alice"), NOW), Err(TokenError::AppMismatch)));
    }

    #[test]
    fn login_privilege_is_required() {
        let spec = TokenSpec { privileges: Privileges { login_room: false, publish_stream: true }, ..spec("alice") };
        let issued = issue(7, SECRET, &spec, NOW).unwrap();
        assert!(matches!(verify(&issued.token, SECRET, expect("alice"), NOW), Err(TokenError::NoLoginPrivilege)));
    }

    #[test]
    fn wrong_secret_and_tampered_claims_fail_the_signature() {
        let issued = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        assert!(matches!(
            verify(&issued.token, b"another-secret-another-secret-xx", expect("alice"), NOW),
            Err(TokenError::BadSignature)
        ));
        let mut parts: Vec<String> = issued.token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["privileges"]["publishStream"] = true.into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(matches!(verify(&parts.join("."), SECRET, expect("alice"), NOW), Err(TokenError::BadSignature)));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let issued = issue(7, SECRET, &spec("alice"), NOW).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        for alg in ["none", "HS512", "RS256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"7"}}"#));
            for signature in ["", "c2ln"] {
                let forged = format!("{header}.{payload}.{signature}");
                assert!(app_id_of(&forged).is_err(), "{alg} header accepted");
                assert!(verify(&forged, SECRET, expect("alice"), NOW).is_err(), "{alg} token accepted");
            }
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for garbage in ["", "a", "a.b", "a.b.c", "....", "eyJ.eyJ.eyJ", "\u{0}\u{ff}"] {
            assert!(
                matches!(verify(garbage, SECRET, expect("alice"), NOW), Err(TokenError::Malformed(_))),
                "{garbage:?}"
            );
            assert!(app_id_of(garbage).is_err());
        }
    }

    #[test]
    fn spec_validation_rejects_bad_input() {
        assert!(matches!(issue(7, SECRET, &spec("bad user"), NOW), Err(TokenError::InvalidId(_))));
        let bad_room = TokenSpec { room_id: Some(String::new()), ..spec("alice") };
        assert!(matches!(issue(7, SECRET, &bad_room, NOW), Err(TokenError::InvalidId(_))));
        for ttl in [0, MAX_TTL_SECS + 1] {
            let s = TokenSpec { ttl_secs: Some(ttl), ..spec("alice") };
            assert!(matches!(issue(7, SECRET, &s, NOW), Err(TokenError::TtlOutOfRange(_))));
        }
        let many = TokenSpec { stream_ids: Some(vec!["s".into(); MAX_STREAM_IDS + 1]), ..spec("alice") };
        assert!(matches!(issue(7, SECRET, &many, NOW), Err(TokenError::TooManyStreamIds(65))));
        let bad_stream = TokenSpec { stream_ids: Some(vec!["a/b".into()]), ..spec("alice") };
        assert!(matches!(issue(7, SECRET, &bad_stream, NOW), Err(TokenError::InvalidId(_))));
    }
}
