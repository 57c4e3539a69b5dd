//! Media grants: short-lived permissions to publish or play one stream on a relay.
//!
//! Signaling issues one when a logged-in client asks to publish or play (a business server
//! can mint a publish grant for a WHIP encoder through `POST /v1/grants`); the relay checks it
//! on the WHIP/WHEP request. A grant is a JWT (HS256, the app's server secret, `kid` = app id)
//! with audience `huddle-media`, so it can never pass for a user token or the other way round.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use super::jwt::{self, AppClaims, JwtError};
use super::token::LEEWAY_SECS;
use crate::ids::{self, IdError};

/// Longest lifetime of a grant: it only has to last until the offer/answer exchange.
pub const MAX_GRANT_TTL_SECS: u64 = 60;
const AUDIENCE: &str = "huddle-media";
const ISSUER: &str = "huddle";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaAction {
    Publish,
    Play,
}

#[derive(Debug, Error)]
pub enum GrantError {
    #[error("media grant is malformed: {0}")]
    Malformed(String),
    #[error("media grant signature is invalid")]
    BadSignature,
    #[error("media grant names another app than the one that signed it")]
    WrongApp,
    #[error("media grant has expired")]
    Expired,
    #[error("media grant is for {0:?}, not this action")]
    WrongAction(MediaAction),
    #[error("media grant is for another stream")]
    WrongStream,
    #[error("grant lifetime must be 1 to {MAX_GRANT_TTL_SECS} seconds")]
    TtlOutOfRange,
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error("grant signing failed: {0}")]
    Signing(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantClaims {
    pub iss: String,
    pub aud: String,
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    pub stream_id: String,
    pub action: MediaAction,
    /// The signaling session that asked, when there is one (its stream becomes visible in the
    /// room through that session). Absent for grants minted over REST for encoders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// How the stream is announced to the room (publish grants from signaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_info: Option<String>,
    /// A play grant a relay minted for itself to pull the stream as a cascade edge: its session
    /// is relay-to-relay transport, not a viewer the room hears of.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edge: bool,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl AppClaims for GrantClaims {
    fn app_id(&self) -> u32 {
        self.app_id
    }
}

impl From<JwtError> for GrantError {
    fn from(err: JwtError) -> Self {
        match err {
            JwtError::Malformed(why) => GrantError::Malformed(why),
            JwtError::BadSignature => GrantError::BadSignature,
            JwtError::WrongApp => GrantError::WrongApp,
        }
    }
}

/// What a grant should allow.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub room_id: String,
    pub user_id: String,
    pub stream_id: String,
    pub action: MediaAction,
    pub session_id: Option<String>,
    pub user_name: Option<String>,
    pub extra_info: Option<String>,
    pub ttl_secs: u64,
}

pub fn issue(app_id: u32, secret: &[u8], spec: GrantSpec, now: i64) -> Result<(String, GrantClaims), GrantError> {
    ids::validate_room_id(&spec.room_id)?;
    ids::validate_user_id(&spec.user_id)?;
    ids::validate_stream_id(&spec.stream_id)?;
    if !(1..=MAX_GRANT_TTL_SECS).contains(&spec.ttl_secs) {
        return Err(GrantError::TtlOutOfRange);
    }
    let claims = GrantClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        app_id,
        room_id: spec.room_id,
        user_id: spec.user_id,
        stream_id: spec.stream_id,
        action: spec.action,
        session_id: spec.session_id,
        user_name: spec.user_name,
        extra_info: spec.extra_info,
        edge: false,
        iat: now,
        exp: now + spec.ttl_secs as i64,
        jti: uuid::Uuid::new_v4().simple().to_string(),
    };
    let grant = jwt::encode(app_id, secret, &claims).map_err(GrantError::Signing)?;
    Ok((grant, claims))
}

/// A play grant for a relay pulling `stream_id` of room `room_id` as a cascade edge (see
/// [`GrantClaims::edge`]).
pub fn issue_edge(
    app_id: u32,
    secret: &[u8],
    room_id: &str,
    stream_id: &str,
    now: i64,
) -> Result<(String, GrantClaims), GrantError> {
    let spec = GrantSpec {
        room_id: room_id.to_owned(),
        user_id: EDGE_USER.to_owned(),
        stream_id: stream_id.to_owned(),
        action: MediaAction::Play,
        session_id: None,
        user_name: None,
        extra_info: None,
        ttl_secs: 30,
    };
    let (_, mut claims) = issue(app_id, secret, spec, now)?;
    claims.edge = true;
    let grant = jwt::encode(app_id, secret, &claims).map_err(GrantError::Signing)?;
    Ok((grant, claims))
}

/// The user id of edge grants (what usage records and logs show for a relay-to-relay leg).
pub const EDGE_USER: &str = "huddle:relay-edge";

/// The app id a grant names (to find its secret); nothing in it is trusted yet.
pub fn app_id_of(grant: &str) -> Result<u32, GrantError> {
    Ok(jwt::kid_app_id(grant)?)
}

/// Verifies a grant of app `app_id` with that app's `secret`: signature, audience, app (the
/// `kid` and the claims must both name `app_id`), expiry, action and stream.
pub fn verify(
    grant: &str,
    app_id: u32,
    secret: &[u8],
    action: MediaAction,
    stream_id: &str,
    now: i64,
) -> Result<GrantClaims, GrantError> {
    let claims: GrantClaims = jwt::decode(grant, app_id, secret, ISSUER, Some(AUDIENCE))?;
    if now > claims.exp + LEEWAY_SECS {
        return Err(GrantError::Expired);
    }
    if claims.action != action {
        return Err(GrantError::WrongAction(claims.action));
    }
    if claims.stream_id != stream_id {
        return Err(GrantError::WrongStream);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{self, TokenSpec};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn spec(action: MediaAction) -> GrantSpec {
        GrantSpec {
            room_id: "room-1".into(),
            user_id: "alice".into(),
            stream_id: "cam".into(),
            action,
            session_id: Some("s1".into()),
            user_name: None,
            extra_info: None,
            ttl_secs: 30,
        }
    }

    #[test]
    fn a_grant_verifies_for_its_action_and_stream_only() {
        let (grant, claims) = issue(7, SECRET, spec(MediaAction::Publish), NOW).unwrap();
        assert_eq!(app_id_of(&grant).unwrap(), 7);
        assert_eq!(verify(&grant, 7, SECRET, MediaAction::Publish, "cam", NOW + 10).unwrap(), claims);
        assert!(matches!(verify(&grant, 7, SECRET, MediaAction::Play, "cam", NOW), Err(GrantError::WrongAction(_))));
        assert!(matches!(verify(&grant, 7, SECRET, MediaAction::Publish, "other", NOW), Err(GrantError::WrongStream)));
        assert!(matches!(
            verify(&grant, 7, b"another-secret-another-secret-xx", MediaAction::Publish, "cam", NOW),
            Err(GrantError::BadSignature)
        ));
        assert!(matches!(
            verify(&grant, 7, SECRET, MediaAction::Publish, "cam", NOW + 30 + LEEWAY_SECS + 1),
            Err(GrantError::Expired)
        ));
    }

    #[test]
    fn grants_and_user_tokens_are_not_interchangeable() {
        let user =
            token::issue(7, SECRET, &TokenSpec { user_id: "alice".into(), ..TokenSpec::default() }, NOW).unwrap();
        assert!(verify(&user.token, 7, SECRET, MediaAction::Publish, "cam", NOW).is_err());
        let (grant, _) = issue(7, SECRET, spec(MediaAction::Play), NOW).unwrap();
        let expected = token::Expected { app_id: 7, user_id: "alice", room_id: None };
        assert!(token::verify(&grant, SECRET, expected, NOW).is_err());
    }

    #[test]
    fn a_grant_signed_by_one_app_never_opens_another_apps_streams() {
        const OTHER_SECRET: &[u8] = b"another-secret-another-secret-xx";
        let (_, genuine) = issue(7, SECRET, spec(MediaAction::Play), NOW).unwrap();
        // App 8 signs claims naming app 7 under its own kid (the reported attack): the app
        // whose secret verifies it is 8, so it cannot speak for 7.
        let forged = jwt::encode(8, OTHER_SECRET, &genuine).unwrap();
        assert_eq!(app_id_of(&forged).unwrap(), 8);
        assert!(matches!(verify(&forged, 8, OTHER_SECRET, MediaAction::Play, "cam", NOW), Err(GrantError::WrongApp)));
        assert!(matches!(verify(&forged, 7, SECRET, MediaAction::Play, "cam", NOW), Err(GrantError::WrongApp)));
        // The other way round: kid 7, claims app 8, signed by 8 or by 7.
        let for_8 = GrantClaims { app_id: 8, ..genuine };
        let signed_by_8 = jwt::encode(7, OTHER_SECRET, &for_8).unwrap();
        assert!(matches!(
            verify(&signed_by_8, 7, SECRET, MediaAction::Play, "cam", NOW),
            Err(GrantError::BadSignature)
        ));
        assert!(matches!(
            verify(&signed_by_8, 8, OTHER_SECRET, MediaAction::Play, "cam", NOW),
            Err(GrantError::WrongApp)
        ));
        let signed_by_7 = jwt::encode(7, SECRET, &for_8).unwrap();
        assert!(matches!(verify(&signed_by_7, 7, SECRET, MediaAction::Play, "cam", NOW), Err(GrantError::WrongApp)));
    }

    #[test]
    fn lifetimes_are_capped_at_a_minute() {
        for ttl in [0, 61] {
            let bad = GrantSpec { ttl_secs: ttl, ..spec(MediaAction::Play) };
            assert!(matches!(issue(7, SECRET, bad, NOW), Err(GrantError::TtlOutOfRange)));
        }
        let bad_stream = GrantSpec { stream_id: "a b".into(), ..spec(MediaAction::Play) };
        assert!(matches!(issue(7, SECRET, bad_stream, NOW), Err(GrantError::InvalidId(_))));
    }
}
