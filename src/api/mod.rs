//! HTTP routes for business servers and operators. Handlers extract, call a service and
//! respond; errors go through [`crate::error::ApiError`].

pub mod admin;
pub mod assets;
pub mod cors;
pub mod dev;
pub mod extract;
pub mod media;
pub mod ops;
pub mod schema;
pub mod tokens;
pub mod usage;

use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, Route, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, ErrorBody, ErrorCode};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Huddle",
        description = "Self-hosted real-time audio/video rooms. Business servers sign every request \
            with their app's server secret (see the README's signing recipe); every error is \
            `{\"code\", \"message\"}` with the codes listed in the README.",
        license(name = "Apache-2.0")
    ),
    paths(
        tokens::create_token,
        admin::list_rooms,
        admin::list_users,
        admin::list_streams,
        admin::user_counts,
        admin::kick,
        admin::close,
        admin::broadcast,
        admin::barrage,
        admin::command,
        admin::extra_info,
        admin::mute,
        media::create_grant,
        media::publish,
        media::play,
        media::end_session,
        media::mute_player,
        media::set_player_layer,
        dev::dev_token,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_yaml,
        usage::usage,
        usage::get_webhook,
        usage::set_webhook
    ),
    components(schemas(
        ErrorBody,
        schema::UserId,
        schema::RoomId,
        schema::StreamId,
        tokens::TokenRequest,
        tokens::TokenResponse,
        admin::ListRoomsRequest,
        admin::ListUsersRequest,
        admin::RoomRequest,
        admin::StreamList,
        admin::UserCountsRequest,
        admin::UserCounts,
        admin::KickRequest,
        admin::CloseRequest,
        admin::MessageRequest,
        admin::CommandRequest,
        admin::MessageSent,
        admin::ExtraInfoRequest,
        admin::MuteRequest,
        crate::admin::RoomPage,
        crate::admin::RoomCounts,
        crate::admin::UserPage,
        crate::admin::RoomUser,
        crate::admin::RoomStream,
        crate::admin::KickOutcome,
        crate::admin::CloseOutcome,
        media::GrantRequest,
        media::GrantResponse,
        media::PlayerMuteRequest,
        media::PlayerMuteState,
        media::PlayerLayerRequest,
        media::PlayerLayerState,
        crate::relay::LayerChoice,
        crate::auth::turn::IceServer,
        crate::auth::grant::MediaAction,
        dev::DevTokenResponse,
        crate::usage::UsageReport,
        crate::usage::UsageGroup,
        crate::usage::GroupBy,
        usage::WebhookRequest,
        usage::WebhookResponse,
        crate::webhooks::WebhookEvent,
        crate::webhooks::EventKind,
        crate::usage::EndReason
    )),
    modifiers(&SignatureScheme),
    tags(
        (name = "tokens", description = "User tokens for the browser SDK"),
        (name = "rooms", description = "Room administration: list, kick, close, messages and mutes from the server"),
        (name = "relay", description = "Media: grants and WHIP/WHEP-style offer/answer"),
        (name = "usage", description = "Usage records (participant and stream minutes) and webhooks"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "dev", description = "Only when dev mode is on"),
    )
)]
pub struct ApiDoc;

struct SignatureScheme;

impl Modify for SignatureScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "huddleSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Huddle-Signature",
                "HMAC-SHA256 request signature; also send X-Huddle-AppId, X-Huddle-Timestamp and X-Huddle-Nonce, \
                 each of the four exactly once.",
            ))),
        );
        components.add_security_scheme(
            "mediaGrant",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A media grant from signaling or POST /v1/grants (valid at most 60 s)."))
                    .build(),
            ),
        );
    }
}

static OPENAPI_YAML: LazyLock<Result<String, String>> =
    LazyLock::new(|| ApiDoc::openapi().to_yaml().map_err(|e| e.to_string()));

/// The OpenAPI document as YAML (what `openapi.yaml` must contain).
pub fn openapi_yaml() -> Result<&'static str, String> {
    OPENAPI_YAML.as_deref().map_err(Clone::clone)
}

/// All routes. `dev` adds `/dev/token`; a relay-only node serves no websocket (nor the demo
/// page, which needs one), but every node serves the SDK.
pub fn configure(cfg: &mut web::ServiceConfig, dev: bool, role: crate::config::Role) {
    tokens::configure(cfg);
    admin::configure(cfg);
    usage::configure(cfg);
    media::configure(cfg);
    ops::configure(cfg);
    assets::configure(cfg, role);
    if role != crate::config::Role::Relay {
        crate::signaling::configure(cfg);
    }
    if dev {
        dev::configure(cfg);
    }
}

/// The resource at `path` with one route per method (`web::to(handler)`; the method guard is
/// added here). Any other method gets `405` with the `{code: 1002}` body and an `Allow` header
/// listing exactly these methods, as RFC 9110 asks. actix-web answers neither `HEAD` for a
/// `GET` route nor a plain `OPTIONS` (only CORS preflights, in [`cors::layer`]): list `HEAD`
/// to serve it.
pub fn resource<const N: usize>(path: &str, routes: [(Method, Route); N]) -> Resource {
    let allow = routes.iter().map(|(method, _)| method.as_str()).collect::<Vec<_>>().join(", ");
    let allow = HeaderValue::from_str(&allow).unwrap_or_else(|_| HeaderValue::from_static(""));
    let resource =
        routes.into_iter().fold(web::resource(path), |resource, (method, route)| resource.route(route.method(method)));
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { method_not_allowed(req.method(), allow) }
    }))
}

fn method_not_allowed(method: &Method, allow: HeaderValue) -> HttpResponse {
    let message = format!("{method} is not allowed on this route; it allows {}", allow.to_str().unwrap_or(""));
    let mut response = ApiError::new(ErrorCode::MethodNotAllowed, message).error_response();
    response.headers_mut().insert(ALLOW, allow);
    response
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such route"))
}

/// Counts and times every request by its route pattern.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let response = next.call(req).await?;
    // Routing happens inside `next`, so the matched pattern is known only on the way out.
    let route = response.request().match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::http_request(route, method.as_str(), status, elapsed);
    tracing::debug!(%method, route, status, micros = elapsed.as_micros() as u64, "request");
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_yaml_in_the_repository_matches_the_code() {
        let generated = super::openapi_yaml().unwrap();
        let committed = include_str!("../../openapi.yaml");
        assert!(
            generated == committed,
            "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml` and commit it"
        );
    }
}
