//! Prometheus metrics. Collectors are private; the rest of the code calls the functions
//! below, so metric names and labels live in one file.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::error::ErrorCode;

struct Collectors {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    errors: IntCounterVec,
    tokens_issued: IntCounter,
    signature_failures: IntCounterVec,
}

/// Latency buckets from 50 µs to 2.5 s: token issuance is tens of microseconds, so the usual
/// millisecond-first buckets would put everything in the first one.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

static COLLECTORS: LazyLock<Collectors> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("huddle".to_owned()), None).unwrap_or_default();
    let http_requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by route pattern, method and status",
        ),
        &["route", "method", "status"],
    );
    let http_latency = HistogramVec::new(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["route", "method"],
    );
    let errors = IntCounterVec::new(
        Opts::new("errors_total", "Error responses by error code"),
        &["code", "name"],
    );
    let tokens_issued = IntCounter::new("tokens_issued_total", "User tokens issued");
    let signature_failures = IntCounterVec::new(
        Opts::new(
            "signature_failures_total",
            "Refused signed requests by reason",
        ),
        &["reason"],
    );
    let build_info = IntGaugeVec::new(
        Opts::new("build_info", "Version of the running binary"),
        &["version"],
    );

    // Metric definitions are static, so these cannot fail; a failure would only lose metrics.
    let (http_requests, http_latency, errors, tokens_issued, signature_failures, build_info) =
        match (
            http_requests,
            http_latency,
            errors,
            tokens_issued,
            signature_failures,
            build_info,
        ) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
            _ => unreachable!("static metric definitions are valid"),
        };
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    for collector in [
        Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(http_latency.clone()),
        Box::new(errors.clone()),
        Box::new(tokens_issued.clone()),
        Box::new(signature_failures.clone()),
        Box::new(build_info),
    ] {
        let _ = registry.register(collector);
    }
    Collectors {
        registry,
        http_requests,
        http_latency,
        errors,
        tokens_issued,
        signature_failures,
    }
});

/// One finished HTTP request. `route` is the matched pattern (never the raw path, which
/// would make a label per id).
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let c = &*COLLECTORS;
    c.http_requests
        .with_label_values(&[route, method, status_label(status)])
        .inc();
    c.http_latency
        .with_label_values(&[route, method])
        .observe(elapsed.as_secs_f64());
}

pub fn error_returned(code: ErrorCode) {
    COLLECTORS
        .errors
        .with_label_values(&[&code.code().to_string(), code.name()])
        .inc();
}

pub fn token_issued() {
    COLLECTORS.tokens_issued.inc();
}

pub fn signature_failure(reason: &'static str) {
    COLLECTORS
        .signature_failures
        .with_label_values(&[reason])
        .inc();
}

/// The text exposition format served at `/metrics`.
pub fn render() -> String {
    let mut buffer = Vec::new();
    let families = COLLECTORS.registry.gather();
    if let Err(err) = TextEncoder::new().encode(&families, &mut buffer) {
        tracing::error!(error = %err, "metrics encoding failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Status codes as static strings, so that the hot path formats nothing.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_exposition() {
        token_issued();
        signature_failure("bad_signature");
        http_request("/v1/tokens", "POST", 200, Duration::from_micros(80));
        let text = render();
        assert!(text.contains("huddle_tokens_issued_total"));
        assert!(text.contains(r#"huddle_signature_failures_total{reason="bad_signature"}"#));
        assert!(text.contains(
            r#"huddle_http_requests_total{method="POST",route="/v1/tokens",status="200"}"#
        ));
        assert!(text.contains("huddle_build_info{version="));
    }
}
