//! Operator endpoints: liveness, readiness, metrics and the OpenAPI document.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Readiness of each dependency: `ok`, `down` or `absent` (not configured).
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub store: &'static str,
    #[schema(example = "absent")]
    pub redis: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Process is up", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the store and (when configured) Redis answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "1007 store or Redis unreachable (or a room channel not subscribed), 1010 draining", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.refuse_if_draining()?;
    let store_ok = state.store.ping().await.is_ok();
    let redis = match &state.redis {
        None => "absent",
        Some(connection) => {
            let mut connection = connection.clone();
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut connection).await;
            let rooms_ok = state.signaling.rooms.backend().ping().await.is_ok();
            if pong.is_ok() && rooms_ok { "ok" } else { "down" }
        }
    };
    let store = if store_ok { "ok" } else { "down" };
    if store == "down" || redis == "down" {
        return Err(ApiError::new(ErrorCode::ServiceUnavailable, format!("not ready: store {store}, redis {redis}")));
    }
    Ok(HttpResponse::Ok().json(Readiness { status: "ready", store, redis }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(node) = &state.relay {
        crate::metrics::relay_observed(node.stats(), node.load(), &node.thread_loads());
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::metrics::render())
}

/// This API's OpenAPI 3 document (identical to `openapi.yaml` in the repository).
#[utoipa::path(get, path = "/openapi.yaml", tag = "operations",
    responses((status = 200, description = "OpenAPI document", content_type = "application/yaml", body = String)))]
pub async fn openapi_yaml() -> HttpResponse {
    match super::openapi_yaml() {
        Ok(yaml) => HttpResponse::Ok().content_type("application/yaml").body(yaml),
        Err(err) => actix_web::ResponseError::error_response(&ApiError::internal(err)),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz", [(Method::GET, web::to(healthz))]))
        .service(super::resource("/readyz", [(Method::GET, web::to(readyz))]))
        .service(super::resource("/metrics", [(Method::GET, web::to(metrics))]))
        .service(super::resource("/openapi.yaml", [(Method::GET, web::to(openapi_yaml))]));
}
