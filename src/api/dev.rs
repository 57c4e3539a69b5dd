//! Dev mode: `GET /dev/token` hands out tokens to anyone, so the demo page works without a
//! business server. Registered only when dev mode is on (see DESIGN.md "Dev mode").

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::token::{self, TokenSpec};
use crate::auth::{Privileges, unix_now};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::metrics;

/// The app that dev mode creates on first start when it does not exist yet.
pub const DEV_APP_ID: u32 = 1;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DevTokenQuery {
    /// App id; default 1, the dev app.
    pub app_id: Option<u32>,
    /// The user to mint a token for.
    pub user_id: String,
    /// Bind the token to this room.
    pub room_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenResponse {
    pub app_id: u32,
    pub token: String,
    pub expires_at: i64,
}

/// Mint a login-and-publish token without a signature (dev mode only; 404 otherwise).
#[utoipa::path(get, path = "/dev/token", tag = "dev", params(DevTokenQuery),
    responses(
        (status = 200, description = "Token issued", body = DevTokenResponse),
        (status = 400, description = "1008 bad query, 3001 invalid userId, 3002 invalid roomId", body = ErrorBody),
        (status = 401, description = "2003 unknown app", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 404, description = "1001 dev mode is off", body = ErrorBody),
    ))]
pub async fn dev_token(state: web::Data<AppState>, query: web::Query<DevTokenQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let app_id = query.app_id.unwrap_or(DEV_APP_ID);
    let app = state.store.active_app(app_id).await?;
    let spec = TokenSpec {
        user_id: query.user_id,
        room_id: query.room_id,
        privileges: Privileges { login_room: true, publish_stream: true },
        ..TokenSpec::default()
    };
    let issued = token::issue(app_id, app.server_secret.as_bytes(), &spec, unix_now())?;
    metrics::token_issued();
    Ok(HttpResponse::Ok().json(DevTokenResponse { app_id, token: issued.token, expires_at: issued.claims.exp }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let query_errors = web::QueryConfig::default()
        .error_handler(|err, _| ApiError::new(ErrorCode::InvalidQuery, format!("query: {err}")).into());
    cfg.service(
        super::resource("/dev/token", [(actix_web::http::Method::GET, web::to(dev_token))]).app_data(query_errors),
    );
}
