//! `POST /v1/tokens`: a business server mints a token for one of its users.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{SignatureHeaderParams, Signed, TtlSeconds};
use super::schema::{RoomId, StreamId, UserId};
use crate::auth::token::{self, TokenSpec};
use crate::auth::{Privileges, unix_now};
use crate::error::{ApiError, ErrorBody};
use crate::metrics;

/// What the token should allow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The user the token is for.
    #[schema(value_type = UserId)]
    pub user_id: String,
    /// Bind the token to this room; omitted: any room.
    #[schema(value_type = Option<RoomId>)]
    pub room_id: Option<String>,
    /// Default: `{"loginRoom": true, "publishStream": false}`.
    pub privileges: Option<Privileges>,
    /// With publishStream: the only stream ids the user may publish (at most 64).
    #[schema(value_type = Option<Vec<StreamId>>, max_items = 64)]
    pub stream_ids: Option<Vec<String>>,
    /// Lifetime, 1–86400 seconds. Default 3600.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400, example = 3600)]
    pub ttl_seconds: Option<TtlSeconds>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// A JWT (HS256, signed with the app's server secret) to hand to the browser SDK.
    pub token: String,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

impl TokenRequest {
    fn into_spec(self) -> Result<TokenSpec, ApiError> {
        let ttl_secs = self.ttl_seconds.map(|ttl| ttl.within(token::MAX_TTL_SECS)).transpose()?;
        Ok(TokenSpec {
            user_id: self.user_id,
            room_id: self.room_id,
            privileges: self.privileges.unwrap_or_default(),
            stream_ids: self.stream_ids,
            ttl_secs,
        })
    }
}

/// Issue a user token.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    params(SignatureHeaderParams),
    request_body = TokenRequest,
    security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "1005 malformed JSON, 1006 invalid body, 2002 malformed signature header, \
            3001 invalid userId, 3002 invalid roomId, 3003 invalid streamId, 3004 ttl out of range, \
            3005 too many streamIds", body = ErrorBody),
        (status = 401, description = "2001 missing header, 2003 unknown app, 2005 bad signature, \
            2006 stale timestamp, 2007 nonce reused", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/json", body = ErrorBody),
        (status = 429, description = "2008 the app holds its cap of unexpired nonces", body = ErrorBody),
        (status = 503, description = "1007 store or Redis unavailable", body = ErrorBody),
    )
)]
pub async fn create_token(request: Signed<TokenRequest>) -> Result<HttpResponse, ApiError> {
    let spec = request.body.into_spec()?;
    let issued = token::issue(request.app.app_id, request.app.server_secret.as_bytes(), &spec, unix_now())?;
    metrics::token_issued();
    Ok(HttpResponse::Ok().json(TokenResponse { token: issued.token, expires_at: issued.claims.exp }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/tokens", [(Method::POST, web::to(create_token))]));
}
