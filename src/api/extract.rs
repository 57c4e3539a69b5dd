//! `Signed<T>`: the extractor for every route a business server calls.
//!
//! Order of checks, cheapest and least revealing first: headers present, each sent once, and
//! well formed → JSON content type → body within 64 KiB → timestamp in window → app known and
//! enabled → signature → nonce unused → JSON body parses. The nonce is claimed only after the
//! signature verified, so nobody without the secret can burn nonces.

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::{DeserializeOwned, Error as _, Unexpected};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use crate::app::AppState;
use crate::auth::{SignatureError, SignedHeaders, unix_now};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;
use crate::store::{App, StoreError};

/// Largest request body accepted on signed routes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request whose signature verified: the calling app and the parsed JSON body.
pub struct Signed<T> {
    pub app: App,
    pub body: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Signed<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let (app, body) = authenticate(&req, payload, true).await.inspect_err(count_failure)?;
            let body = parse_json(&body)?;
            Ok(Signed { app, body })
        })
    }
}

/// A signed request without a body (`GET` routes): the calling app. The signature covers the
/// empty body (`hex(sha256(""))`) and the path with its query string; no Content-Type is
/// needed.
pub struct SignedQuery {
    pub app: App,
}

impl FromRequest for SignedQuery {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let (app, _) = authenticate(&req, payload, false).await.inspect_err(count_failure)?;
            Ok(SignedQuery { app })
        })
    }
}

fn count_failure(failure: &AuthFailure) {
    if let Some(reason) = failure.signature_reason {
        metrics::signature_failure(reason);
    }
}

/// An [`ApiError`] that remembers which signature check failed, for the metric.
struct AuthFailure {
    error: ApiError,
    signature_reason: Option<&'static str>,
}

impl From<SignatureError> for AuthFailure {
    fn from(err: SignatureError) -> Self {
        let signature_reason = Some(err.reason());
        AuthFailure { error: err.into(), signature_reason }
    }
}

impl From<ApiError> for AuthFailure {
    fn from(error: ApiError) -> Self {
        AuthFailure { error, signature_reason: None }
    }
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        failure.error
    }
}

async fn authenticate(req: &HttpRequest, payload: Payload, json: bool) -> Result<(App, web::Bytes), AuthFailure> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("AppState missing from app data"))?;
    // A value that is not visible ASCII reads as "", which each header's check refuses (2002).
    let headers = SignedHeaders::parse(|name| req.headers().get_all(name).map(|v| v.to_str().unwrap_or("")))?;
    if json {
        require_content_type(req, "application/json")?;
    }
    let body = read_body(req, payload).await?;
    let now = unix_now();
    headers.check_timestamp(now)?;
    let app = state.store.active_app(headers.app_id).await.map_err(|err| match err {
        StoreError::AppNotFound(id) => AuthFailure::from(SignatureError::UnknownApp(id)),
        StoreError::AppDisabled(id) => AuthFailure::from(SignatureError::AppDisabled(id)),
        other => AuthFailure::from(ApiError::from(other)),
    })?;
    let path = req.uri().path_and_query().map_or_else(|| req.path(), |pq| pq.as_str());
    headers.verify(app.server_secret.as_bytes(), req.method().as_str(), path, &body)?;
    state.nonces.claim(app.app_id, headers.timestamp, &headers.nonce, now).await?;
    Ok((app, body))
}

/// Refuses a body whose media type (parameters such as `charset` aside) is not `expected`.
pub(crate) fn require_content_type(req: &HttpRequest, expected: &str) -> Result<(), ApiError> {
    let essence = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some(found) if found == expected => Ok(()),
        Some(other) => Err(ApiError::new(
            ErrorCode::UnsupportedContentType,
            format!("content type {other:?} is not accepted; send {expected}"),
        )),
        None => Err(ApiError::new(ErrorCode::UnsupportedContentType, format!("missing Content-Type: {expected}"))),
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(req: &HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    let too_large = || ApiError::new(ErrorCode::BodyTooLarge, format!("body exceeds {MAX_BODY_BYTES} bytes"));
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES as u64) as usize);
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("body could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        let code = match err.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidBody,
            // serde_json reports some type errors as syntax ("expected value" for a number where
            // an enum's string goes): a body that is valid JSON is well-formed, only not what
            // the route takes.
            serde_json::error::Category::Syntax if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
                ErrorCode::InvalidBody
            }
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, format!("body: {err}"))
    })
}

/// `ttlSeconds` as the client sent it: any JSON number without a fractional part, whatever its
/// sign or size, so that a lifetime out of range is refused by [`TtlSeconds::within`] (3004,
/// naming the range) and not by the JSON parser (1006), alike on every route. `1.5`, `"60"` and
/// other non-integers are type errors (1006). `30.0` is 30, as JSON Schema's `integer` has it.
#[derive(Debug, Clone)]
pub struct TtlSeconds(serde_json::Number);

impl<'de> Deserialize<'de> for TtlSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        match number.as_f64() {
            Some(fraction) if number.is_f64() && fraction.fract() != 0.0 => {
                Err(D::Error::invalid_type(Unexpected::Float(fraction), &"a whole number of seconds"))
            }
            _ => Ok(TtlSeconds(number)),
        }
    }
}

impl TtlSeconds {
    /// The lifetime, if it is 1 to `max` seconds.
    pub fn within(&self, max: u64) -> Result<u64, ApiError> {
        // Floats are whole here; `as` saturates, so negatives become 0 and huge ones u64::MAX.
        let seconds = self.0.as_u64().unwrap_or_else(|| self.0.as_f64().map_or(0, |f| f as u64));
        if (1..=max).contains(&seconds) {
            return Ok(seconds);
        }
        Err(ApiError::new(ErrorCode::TtlOutOfRange, format!("ttlSeconds must be between 1 and {max}, got {}", self.0)))
    }
}

/// The signature headers, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct SignatureHeaderParams {
    /// The calling app's id, in decimal without leading zeros.
    #[param(rename = "X-Huddle-AppId", value_type = i64, minimum = 1, maximum = 4294967295_i64, example = "1234567890")]
    app_id: u32,
    /// Unix time in seconds, in decimal without leading zeros; must be within 300 s of the
    /// server clock.
    #[param(rename = "X-Huddle-Timestamp", minimum = 0, example = "1764096000")]
    timestamp: i64,
    /// 8–64 printable ASCII characters (no spaces), never reused by this app within 10 minutes.
    #[param(
        rename = "X-Huddle-Nonce",
        min_length = 8,
        max_length = 64,
        pattern = "^[!-~]+$",
        example = "4f1c2a9e7b3d"
    )]
    nonce: String,
    /// Lowercase hex HMAC-SHA256 of `appId\ntimestamp\nnonce\nMETHOD\npathAndQuery\nhex(sha256(body))`
    /// keyed with the server secret (upper case hex is accepted too).
    #[param(rename = "X-Huddle-Signature", min_length = 64, max_length = 64, pattern = "^[0-9a-fA-F]+$")]
    signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Layer {
        Low,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        video: Layer,
    }

    fn code_of(body: &str) -> Option<ErrorCode> {
        parse_json::<Body>(body.as_bytes()).err().map(|e| e.code)
    }

    #[test]
    fn well_formed_json_of_the_wrong_shape_is_an_invalid_body_not_malformed_json() {
        assert_eq!(code_of(r#"{"video": "low"}"#), None);
        for malformed in ["{", "[", r#"{"video": }"#, "", "low"] {
            assert_eq!(code_of(malformed), Some(ErrorCode::MalformedJson), "{malformed}");
        }
        // A number where an enum's string goes is one serde_json calls a syntax error.
        for invalid in [r#"{"video": 0}"#, r#"{"video": "mid"}"#, "{}", r#"{"video": "low", "x": 1}"#, "[]", "7"] {
            assert_eq!(code_of(invalid), Some(ErrorCode::InvalidBody), "{invalid}");
        }
    }
}
