//! `GET /v1/usage` (participant and stream minutes) and `PUT /v1/app/webhook` (where the
//! app's webhooks go and how they are signed). Both signed like `POST /v1/tokens`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{SignatureHeaderParams, Signed, SignedQuery};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::usage::report::{self, GroupBy, UsageQuery, UsageReport};
use crate::webhooks;

/// The query string of `GET /v1/usage`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UsageParams {
    /// Start of the window (inclusive): unix milliseconds, or `YYYY-MM-DD` (00:00 UTC).
    #[param(example = "1795996800000")]
    from: String,
    /// End of the window (exclusive), as `from`; at most 366 days after it.
    #[param(example = "2026-12-01")]
    to: String,
    /// `room` (default), `user` or `day` (UTC).
    #[param(rename = "groupBy", inline)]
    group_by: Option<GroupBy>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidUsageRange, message)
}

/// Parses `from`, `to` and `groupBy` (each at most once; other parameters are refused).
pub fn parse_params(query: &str) -> Result<(i64, i64, GroupBy), ApiError> {
    let (mut from, mut to, mut group_by) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "from" => &mut from,
            "to" => &mut to,
            "groupBy" => &mut group_by,
            other => return Err(ApiError::new(ErrorCode::InvalidQuery, format!("unknown query parameter {other:?}"))),
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::new(ErrorCode::InvalidQuery, format!("`{name}` is given more than once")));
        }
    }
    let time = |name: &str, value: Option<&str>| {
        let value = value.ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, format!("`{name}` is required")))?;
        report::parse_time(value)
            .ok_or_else(|| invalid(format!("`{name}` must be unix milliseconds or YYYY-MM-DD, got {value:?}")))
    };
    let group_by = match group_by {
        None | Some("room") => GroupBy::Room,
        Some("user") => GroupBy::User,
        Some("day") => GroupBy::Day,
        Some(other) => return Err(invalid(format!("`groupBy` must be room, user or day, got {other:?}"))),
    };
    Ok((time("from", from)?, time("to", to)?, group_by))
}

/// Participant and stream minutes of the calling app.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    params(SignatureHeaderParams, UsageParams),
    security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Usage in [from, to): every interval clipped to the window; minutes are \
            ceil(ms / 60000) per group (see the README)", body = UsageReport),
        (status = 400, description = "1008 missing, repeated or unknown query parameter, 2002 malformed signature \
            header, 8050 bad window or groupBy", body = ErrorBody),
        (status = 401, description = "2001 missing header, 2003 unknown app, 2005 bad signature, \
            2006 stale timestamp, 2007 nonce reused", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 503, description = "1007 store unavailable", body = ErrorBody),
    )
)]
pub async fn usage(
    req: HttpRequest,
    signed: SignedQuery,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (from_ms, to_ms, group_by) = parse_params(req.query_string())?;
    let query = UsageQuery { app_id: signed.app.app_id, from_ms, to_ms, group_by };
    let report = report::query(&state.store, &query, crate::rooms::unix_millis()).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Where the app's webhooks go.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookRequest {
    /// `http://` or `https://` URL that receives the events; `null` turns webhooks off (events
    /// already queued are retried until the retry period ends, then given up).
    #[schema(max_length = 2048, example = "https://api.example.com/huddle-events")]
    pub url: Option<String>,
    /// The signing secret (16-128 printable ASCII characters); omitted: a new one is generated.
    #[schema(min_length = 16, max_length = 128)]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResponse {
    pub app_id: u32,
    pub url: Option<String>,
    /// Verify `X-Huddle-Webhook-Signature` with this.
    pub secret: Option<String>,
}

/// Validates a webhook setting; `None` URL turns webhooks off.
pub fn webhook_setting(url: Option<String>, secret: Option<String>) -> Result<Option<(String, String)>, ApiError> {
    let Some(url) = url else { return Ok(None) };
    webhooks::validate_url(&url).map_err(|m| ApiError::new(ErrorCode::InvalidWebhookUrl, m))?;
    let secret = match secret {
        Some(secret) => {
            webhooks::validate_secret(&secret).map_err(|m| ApiError::new(ErrorCode::InvalidWebhookSecret, m))?;
            secret
        }
        None => webhooks::generate_secret(),
    };
    Ok(Some((url, secret)))
}

/// Set the app's webhook URL and signing secret.
#[utoipa::path(
    put,
    path = "/v1/app/webhook",
    tag = "usage",
    params(SignatureHeaderParams),
    request_body = WebhookRequest,
    security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Saved; every worker uses it within 5 s", body = WebhookResponse),
        (status = 400, description = "1005 malformed JSON, 1006 invalid body, 2002 malformed signature header, \
            8051 invalid URL, 8052 invalid secret", body = ErrorBody),
        (status = 401, description = "2001 missing header, 2003 unknown app, 2005 bad signature, \
            2006 stale timestamp, 2007 nonce reused", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/json", body = ErrorBody),
        (status = 503, description = "1007 store unavailable", body = ErrorBody),
    )
)]
pub async fn set_webhook(
    request: Signed<WebhookRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let setting = webhook_setting(request.body.url, request.body.secret)?;
    let app = state.store.set_webhook(request.app.app_id, setting).await?;
    Ok(HttpResponse::Ok().json(WebhookResponse {
        app_id: app.app_id,
        url: app.webhook_url,
        secret: app.webhook_secret,
    }))
}

/// The app's webhook URL and signing secret.
#[utoipa::path(
    get,
    path = "/v1/app/webhook",
    tag = "usage",
    params(SignatureHeaderParams),
    security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "The current setting (`null`s: webhooks are off)", body = WebhookResponse),
        (status = 400, description = "2002 malformed signature header", body = ErrorBody),
        (status = 401, description = "2001 missing header, 2003 unknown app, 2005 bad signature, \
            2006 stale timestamp, 2007 nonce reused", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 503, description = "1007 store unavailable", body = ErrorBody),
    )
)]
pub async fn get_webhook(signed: SignedQuery) -> Result<HttpResponse, ApiError> {
    let app = signed.app;
    Ok(HttpResponse::Ok().json(WebhookResponse {
        app_id: app.app_id,
        url: app.webhook_url,
        secret: app.webhook_secret,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/usage", [(Method::GET, web::to(usage))]));
    cfg.service(super::resource(
        "/v1/app/webhook",
        [(Method::GET, web::to(get_webhook)), (Method::PUT, web::to(set_webhook))],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_parameters_parse_strictly() {
        assert_eq!(parse_params("from=1&to=2").unwrap(), (1, 2, GroupBy::Room));
        assert_eq!(parse_params("from=2026-11-30&to=2026-12-01&groupBy=day").unwrap().2, GroupBy::Day);
        assert_eq!(parse_params("to=2").unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(parse_params("from=1&to=2&from=3").unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(parse_params("from=1&to=2&x=1").unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(parse_params("from=yesterday&to=2").unwrap_err().code, ErrorCode::InvalidUsageRange);
        assert_eq!(parse_params("from=1&to=2&groupBy=month").unwrap_err().code, ErrorCode::InvalidUsageRange);
    }

    #[test]
    fn webhook_settings_are_validated() {
        assert_eq!(webhook_setting(None, None).unwrap(), None);
        let (url, secret) = webhook_setting(Some("https://h/x".into()), None).unwrap().unwrap();
        assert_eq!(url, "https://h/x");
        assert!(secret.starts_with("whsec_"));
        let bad_url = webhook_setting(Some("ftp://h".into()), None).unwrap_err();
        assert_eq!(bad_url.code, ErrorCode::InvalidWebhookUrl);
        let bad_secret = webhook_setting(Some("https://h".into()), Some("short".into())).unwrap_err();
        assert_eq!(bad_secret.code, ErrorCode::InvalidWebhookSecret);
    }
}
