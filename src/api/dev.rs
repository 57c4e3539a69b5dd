//! Dev mode: `GET /dev/token` hands out tokens of the dev app to anyone, so the demo page works
//! without a business server. Registered only when dev mode is on; it never mints a token for
//! any other app (see `app::decide_dev_mode` for when dev mode is on).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::token::{self, TokenSpec};
use crate::auth::{Privileges, unix_now};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::metrics;
use crate::store::App;

/// The app that dev mode creates on first start when it does not exist yet.
pub const DEV_APP_ID: u32 = 1;
/// Its name: an app 1 with another name was created by an operator and is not the dev app.
pub const DEV_APP_NAME: &str = "dev";

/// Whether `app` is the app dev mode created (and may mint tokens for).
pub fn is_dev_app(app: &App) -> bool {
    app.app_id == DEV_APP_ID && app.name == DEV_APP_NAME
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DevTokenQuery {
    /// App id: only 1, the dev app, is served (the parameter may be left out).
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

/// Mint a login-and-publish token of the dev app (app 1) without a signature (dev mode only;
/// 404 otherwise). Tokens of any other app are never served here.
#[utoipa::path(get, path = "/dev/token", tag = "dev", params(DevTokenQuery),
    responses(
        (status = 200, description = "Token issued", body = DevTokenResponse),
        (status = 400, description = "1008 bad query, 3001 invalid userId, 3002 invalid roomId", body = ErrorBody),
        (status = 403, description = "1009 not the dev app, 2004 dev app disabled", body = ErrorBody),
        (status = 404, description = "1001 dev mode is off", body = ErrorBody),
    ))]
pub async fn dev_token(state: web::Data<AppState>, query: web::Query<DevTokenQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let app_id = query.app_id.unwrap_or(DEV_APP_ID);
    if app_id != DEV_APP_ID {
        return Err(ApiError::new(
            ErrorCode::DevAppOnly,
            format!("dev mode mints tokens of the dev app ({DEV_APP_ID}) only"),
        ));
    }
    let app = state.store.active_app(app_id).await?;
    if !is_dev_app(&app) {
        return Err(ApiError::new(ErrorCode::DevAppOnly, format!("app {DEV_APP_ID} is not the dev app")));
    }
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
