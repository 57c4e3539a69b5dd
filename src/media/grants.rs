//! Media grants: issued to whoever may publish or play a stream (a signaling session, or a
//! business server for an encoder), checked when the SDP offer arrives at a relay.

use crate::auth::grant::{self, GrantClaims, GrantSpec, MediaAction};
use crate::auth::turn::{self, IceServer, TurnConfig};
use crate::auth::unix_now;
use crate::error::{ApiError, ErrorCode};
use crate::store::{App, Store, StoreError};

/// A grant as handed out: the text to send as `Authorization: Bearer`, what it says, and the
/// TURN servers (with credentials for its user) to reach the relay through.
pub struct IssuedGrant {
    pub grant: String,
    pub claims: GrantClaims,
    pub ice_servers: Vec<IceServer>,
}

/// Signs a grant with the app's secret, with TURN credentials when TURN is configured.
pub fn issue(app: &App, spec: GrantSpec, turn: Option<&TurnConfig>) -> Result<IssuedGrant, ApiError> {
    let now = unix_now();
    let (grant, claims) = grant::issue(app.app_id, app.server_secret.as_bytes(), spec, now)?;
    let ice_servers = turn::ice_servers(turn, app.app_id, &claims.user_id, now);
    Ok(IssuedGrant { grant, claims, ice_servers })
}

/// Finds the grant's app and verifies the grant with its secret, for `action` on `stream_id`.
pub async fn check(store: &Store, text: &str, action: MediaAction, stream_id: &str) -> Result<GrantClaims, ApiError> {
    let app_id = grant::app_id_of(text)?;
    let app = store.active_app(app_id).await.map_err(|err| match err {
        StoreError::AppNotFound(_) | StoreError::AppDisabled(_) => {
            ApiError::new(ErrorCode::InvalidGrant, format!("media grant: {err}"))
        }
        other => other.into(),
    })?;
    Ok(grant::verify(text, app.app_id, app.server_secret.as_bytes(), action, stream_id, unix_now())?)
}
