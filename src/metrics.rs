//! Prometheus metrics. Collectors are private; the rest of the code calls the functions
//! below, so metric names and labels live in one file.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::error::ErrorCode;

/// Latency buckets from 50 µs to 2.5 s: token issuance and fan-out take tens of
/// microseconds, so the usual millisecond-first buckets would put everything in the first.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

struct Collectors {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    errors: IntCounterVec,
    tokens_issued: IntCounter,
    nonces: IntGauge,
    nonce_cap_refusals: IntCounter,
    signature_failures: IntCounterVec,
    ws_connections: IntGauge,
    draining: IntGauge,
    sessions: IntGauge,
    local_rooms: IntGauge,
    ws_messages: IntCounterVec,
    resync_reads: IntCounterVec,
    login_latency: Histogram,
    events_fanned_out: IntCounterVec,
    events_dropped: IntCounter,
    redis_latency: Histogram,
    pubsub_lag: Histogram,
    pubsub_disconnects: IntCounter,
    redis_repairs: IntCounterVec,
    relay_peers: IntGauge,
    relay_thread_peers: IntGaugeVec,
    relay_streams: IntGauge,
    relay_counters: IntCounterVec,
    relay_nacks: IntCounterVec,
    relay_forward_latency: Histogram,
    relay_receiver_loss: Histogram,
    /// Last relay totals seen, so that counters advance by the difference.
    relay_seen: std::sync::Mutex<crate::relay::RelayStats>,
    admin_calls: IntCounterVec,
    admin_users_removed: IntCounterVec,
    media_mutes: IntCounterVec,
    media_layer_choices: IntCounterVec,
    quality_reports: IntCounterVec,
    quality_batches: IntCounterVec,
}

/// Registers a collector built from a static definition. Only a programming error (an
/// invalid name or a duplicate) can make this fail, which the unit test below would catch;
/// no input from a client or the network reaches it.
fn register<C: Collector + Clone + 'static>(registry: &Registry, built: prometheus::Result<C>) -> C {
    let collector = built.expect("static metric definition is valid");
    registry.register(Box::new(collector.clone())).expect("metric names are unique");
    collector
}

fn histogram(name: &str, help: &str) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
}

static COLLECTORS: LazyLock<Collectors> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("huddle".to_owned()), None).unwrap_or_default();
    let r = &registry;
    let build_info: IntGaugeVec =
        register(r, IntGaugeVec::new(Opts::new("build_info", "Version of the running binary"), &["version"]));
    build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Collectors {
        http_requests: register(
            r,
            IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by route pattern, method and status"),
                &["route", "method", "status"],
            ),
        ),
        http_latency: register(
            r,
            HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route pattern")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "method"],
            ),
        ),
        errors: register(
            r,
            IntCounterVec::new(
                Opts::new("errors_total", "Errors returned (REST and websocket) by code"),
                &["code", "name"],
            ),
        ),
        tokens_issued: register(r, IntCounter::new("tokens_issued_total", "User tokens issued")),
        nonces: register(
            r,
            IntGauge::new("nonces", "Unexpired request nonces remembered in this process (in-memory nonce store)"),
        ),
        nonce_cap_refusals: register(
            r,
            IntCounter::new(
                "nonce_cap_refusals_total",
                "Signed requests refused because their app holds its cap of unexpired nonces (code 2008)",
            ),
        ),
        signature_failures: register(
            r,
            IntCounterVec::new(Opts::new("signature_failures_total", "Refused signed requests by reason"), &["reason"]),
        ),
        ws_connections: register(r, IntGauge::new("ws_connections", "Open websocket connections")),
        draining: register(r, IntGauge::new("draining", "1 while this worker drains before exiting (SIGTERM)")),
        sessions: register(
            r,
            IntGauge::new("sessions", "Logged-in sessions, including those inside the reconnect grace"),
        ),
        local_rooms: register(r, IntGauge::new("rooms", "Rooms with at least one member on this worker")),
        ws_messages: register(
            r,
            IntCounterVec::new(Opts::new("ws_messages_total", "Websocket requests received by type"), &["type"]),
        ),
        resync_reads: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "resync_snapshots_total",
                    "Room snapshots sessions asked for to resync: `read` from the backend, or `shared` (a read of the same room under way)",
                ),
                &["source"],
            ),
        ),
        login_latency: register(r, histogram("login_duration_seconds", "Time from login request to reply")),
        events_fanned_out: register(
            r,
            IntCounterVec::new(
                Opts::new("events_fanned_out_total", "Room events queued to local sessions, by event type"),
                &["type"],
            ),
        ),
        events_dropped: register(
            r,
            IntCounter::new(
                "events_dropped_total",
                "Events not queued because a session's queue was full (it resyncs)",
            ),
        ),
        redis_latency: register(r, histogram("redis_round_trip_seconds", "Round trip of room operations to Redis")),
        pubsub_lag: register(r, histogram("pubsub_lag_seconds", "Time from a message being sent to its arrival here")),
        pubsub_disconnects: register(
            r,
            IntCounter::new("pubsub_disconnects_total", "Times the Redis subscription connection dropped"),
        ),
        redis_repairs: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "redis_repairs_total",
                    "Room state this worker corrected in Redis: reaped_session (a dead worker's member removed), \
                     ghost_removed (an entry this worker does not hold), session_restored (a live session Redis lost)",
                ),
                &["what"],
            ),
        ),
        relay_peers: register(r, IntGauge::new("relay_peers", "Relay sessions (publishers and players)")),
        relay_thread_peers: register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "relay_thread_peers",
                    "Relay sessions per engine thread: how evenly new sessions and large audiences spread",
                ),
                &["thread"],
            ),
        ),
        relay_streams: register(r, IntGauge::new("relay_streams", "Streams with a publisher on this relay")),
        relay_counters: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "relay_total",
                    "Relay traffic: UDP packets and bytes in and out, RTP packets forwarded to players, keyframe requests sent to publishers, packets sent in segmented messages and messages handed to the kernel",
                ),
                &["what"],
            ),
        ),
        relay_nacks: register(
            r,
            IntCounterVec::new(
                Opts::new("relay_nacks_total", "NACKs: received from players, and sent to publishers for lost packets"),
                &["direction"],
            ),
        ),
        relay_forward_latency: register(
            r,
            histogram(
                "relay_forward_duration_seconds",
                "From a publisher's packet arriving to its copies leaving for every player",
            ),
        ),
        relay_receiver_loss: register(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "relay_receiver_loss_ratio",
                    "Fraction of packets lost as reported by players (RTCP receiver reports), per track per second",
                )
                .buckets(vec![0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]),
            ),
        ),
        relay_seen: Default::default(),
        admin_calls: register(
            r,
            IntCounterVec::new(
                Opts::new("admin_calls_total", "Room administration calls that succeeded (admin API and CLI), by call"),
                &["call"],
            ),
        ),
        admin_users_removed: register(
            r,
            IntCounterVec::new(
                Opts::new("admin_users_removed_total", "Users the business server removed from rooms: kick, close"),
                &["how"],
            ),
        ),
        media_mutes: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "media_mutes_total",
                    "Mute changes asked for by clients: a publisher of its own stream (muteStream, a signal), \
                     a player of what the relay sends it (the relay stops forwarding), by media kind and direction",
                ),
                &["who", "kind", "change"],
            ),
        ),
        media_layer_choices: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "media_layer_choices_total",
                    "Simulcast layer choices players made (setPlayStreamVideoType): low, high, auto",
                ),
                &["video"],
            ),
        ),
        quality_reports: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "network_quality_samples_total",
                    "Network quality inputs: reports from clients (reportQuality) and per-user levels the relay \
                     measured and published",
                ),
                &["source"],
            ),
        ),
        quality_batches: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "network_quality_published_total",
                    "networkQuality batches published to rooms by this worker (events) and the users they carried",
                ),
                &["what"],
            ),
        ),
        registry,
    }
});

/// One finished HTTP request. `route` is the matched pattern (never the raw path, which
/// would make a label per id).
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let c = &*COLLECTORS;
    c.http_requests.with_label_values(&[route, method, status_label(status)]).inc();
    c.http_latency.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
}

pub fn error_returned(code: ErrorCode) {
    COLLECTORS.errors.with_label_values(&[&code.code().to_string(), code.name()]).inc();
}

/// A room administration call succeeded (`call`: list_rooms, kick, close, mute, ...).
pub fn admin_call(call: &'static str) {
    COLLECTORS.admin_calls.with_label_values(&[call]).inc();
}

/// Users removed from rooms by the business server (`how`: kick or close).
pub fn admin_users_removed(how: &'static str, users: usize) {
    COLLECTORS.admin_users_removed.with_label_values(&[how]).inc_by(users as u64);
}

/// A client muted or unmuted media: `who` is `publisher` (its own stream, a signal) or
/// `player` (what the relay sends it).
pub fn media_mute(who: &'static str, audio: Option<bool>, video: Option<bool>) {
    for (kind, value) in [("audio", audio), ("video", video)] {
        if let Some(muted) = value {
            let change = if muted { "mute" } else { "unmute" };
            COLLECTORS.media_mutes.with_label_values(&[who, kind, change]).inc();
        }
    }
}

/// A player chose which simulcast layer it is sent.
pub fn media_layer_choice(choice: crate::relay::LayerChoice) {
    let label = match choice {
        crate::relay::LayerChoice::Low => "low",
        crate::relay::LayerChoice::High => "high",
        crate::relay::LayerChoice::Auto => "auto",
    };
    COLLECTORS.media_layer_choices.with_label_values(&[label]).inc();
}

/// A network quality input: `client` (a reportQuality) or `relay` (a user's measured levels).
pub fn quality_sample(source: &'static str, count: u64) {
    COLLECTORS.quality_reports.with_label_values(&[source]).inc_by(count);
}

/// One networkQuality batch published to a room, carrying `users` changed users.
pub fn quality_published(users: usize) {
    let c = &*COLLECTORS;
    c.quality_batches.with_label_values(&["events"]).inc();
    c.quality_batches.with_label_values(&["users"]).inc_by(users as u64);
}

pub fn token_issued() {
    COLLECTORS.tokens_issued.inc();
}

pub fn nonces_remembered(delta: i64) {
    COLLECTORS.nonces.add(delta);
}

pub fn nonce_cap_refused() {
    COLLECTORS.nonce_cap_refusals.inc();
}

pub fn signature_failure(reason: &'static str) {
    COLLECTORS.signature_failures.with_label_values(&[reason]).inc();
}

pub fn draining(on: bool) {
    COLLECTORS.draining.set(i64::from(on));
}

pub fn ws_connection_opened() {
    COLLECTORS.ws_connections.inc();
}

pub fn ws_connection_closed() {
    COLLECTORS.ws_connections.dec();
}

pub fn session_started() {
    COLLECTORS.sessions.inc();
}

pub fn session_ended() {
    COLLECTORS.sessions.dec();
}

pub fn local_room_opened() {
    COLLECTORS.local_rooms.inc();
}

pub fn local_room_closed() {
    COLLECTORS.local_rooms.dec();
}

pub fn ws_message(kind: &'static str) {
    COLLECTORS.ws_messages.with_label_values(&[kind]).inc();
}

/// A session's resync snapshot: read from the backend, or shared with a read already under way.
pub fn resync_snapshot(shared: bool) {
    COLLECTORS.resync_reads.with_label_values(&[if shared { "shared" } else { "read" }]).inc();
}

pub fn login_completed(elapsed: Duration) {
    COLLECTORS.login_latency.observe(elapsed.as_secs_f64());
}

pub fn events_fanned_out(kind: &'static str, recipients: u64) {
    COLLECTORS.events_fanned_out.with_label_values(&[kind]).inc_by(recipients);
}

pub fn event_dropped() {
    COLLECTORS.events_dropped.inc();
}

pub fn redis_round_trip(elapsed: Duration) {
    COLLECTORS.redis_latency.observe(elapsed.as_secs_f64());
}

pub fn pubsub_lag(millis: i64) {
    COLLECTORS.pubsub_lag.observe(millis.max(0) as f64 / 1000.0);
}

pub fn redis_repair(what: &'static str, count: u64) {
    COLLECTORS.redis_repairs.with_label_values(&[what]).inc_by(count);
}

pub fn pubsub_disconnected() {
    COLLECTORS.pubsub_disconnects.inc();
}

pub fn relay_nacks(direction: &'static str, count: u64) {
    if count > 0 {
        COLLECTORS.relay_nacks.with_label_values(&[direction]).inc_by(count);
    }
}

pub fn relay_forward_latency(elapsed: Duration) {
    COLLECTORS.relay_forward_latency.observe(elapsed.as_secs_f64());
}

pub fn relay_receiver_loss(fraction: f32) {
    COLLECTORS.relay_receiver_loss.observe(f64::from(fraction));
}

/// Brings the relay's figures up to date (called when metrics are scraped); `threads` is the
/// load of each engine thread.
pub fn relay_observed(
    stats: crate::relay::RelayStats,
    load: crate::relay::RelayLoad,
    threads: &[crate::relay::RelayLoad],
) {
    let c = &*COLLECTORS;
    c.relay_peers.set(load.peers as i64);
    for (index, thread) in threads.iter().enumerate() {
        c.relay_thread_peers.with_label_values(&[&index.to_string()]).set(thread.peers as i64);
    }
    c.relay_streams.set(load.streams as i64);
    let mut seen = c.relay_seen.lock().unwrap_or_else(|p| p.into_inner());
    for (what, now, before) in [
        ("packets_in", stats.packets_in, seen.packets_in),
        ("packets_out", stats.packets_out, seen.packets_out),
        ("bytes_in", stats.bytes_in, seen.bytes_in),
        ("bytes_out", stats.bytes_out, seen.bytes_out),
        ("forwarded", stats.forwarded, seen.forwarded),
        ("keyframe_requests", stats.keyframe_requests, seen.keyframe_requests),
        ("handed_off", stats.handed_off, seen.handed_off),
        ("layer_switches", stats.layer_switches, seen.layer_switches),
        ("packets_segmented", stats.packets_segmented, seen.packets_segmented),
        ("send_messages", stats.send_messages, seen.send_messages),
    ] {
        c.relay_counters.with_label_values(&[what]).inc_by(now.saturating_sub(before));
    }
    *seen = stats;
}

/// The text exposition format served at `/metrics`.
pub fn render() -> String {
    let mut buffer = Vec::new();
    LazyLock::force(&USAGE);
    let families = COLLECTORS.registry.gather();
    if let Err(err) = TextEncoder::new().encode(&families, &mut buffer) {
        tracing::error!(error = %err, "metrics encoding failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Usage records and webhooks, registered with the others on first use (and forced by
/// [`render`], so that they show from the start).
struct UsageCollectors {
    usage_writes: HistogramVec,
    usage_write_failures: IntCounterVec,
    usage_batch_size: Histogram,
    usage_batch_latency: Histogram,
    usage_worker_lost: IntCounter,
    usage_queue: IntGauge,
    usage_retries: IntCounter,
    webhooks_enqueued: IntCounter,
    webhook_backlog: IntGauge,
    webhook_attempts: IntCounterVec,
    webhook_latency: Histogram,
    webhook_unreachable: IntGauge,
}

/// Delivery latency reaches hours when a receiver is down.
const DELIVERY_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0];

static USAGE: LazyLock<UsageCollectors> = LazyLock::new(|| {
    let r = &COLLECTORS.registry;
    UsageCollectors {
        usage_writes: register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "usage_write_duration_seconds",
                    "Usage record transactions (with their outbox rows) by kind",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["kind"],
            ),
        ),
        usage_write_failures: register(
            r,
            IntCounterVec::new(
                Opts::new("usage_write_failures_total", "Usage records that could not be written"),
                &["kind"],
            ),
        ),
        usage_batch_size: register(
            r,
            Histogram::with_opts(
                HistogramOpts::new("usage_write_batch_size", "Records per group commit")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            ),
        ),
        usage_batch_latency: register(
            r,
            histogram("usage_write_batch_duration_seconds", "One group commit: its transaction from begin to commit"),
        ),
        usage_worker_lost: register(
            r,
            IntCounter::new(
                "usage_worker_lost_records_total",
                "Sessions and streams of dead workers closed as worker_lost",
            ),
        ),
        usage_queue: register(
            r,
            IntGauge::new(
                "usage_write_queue",
                "Usage records handed to the group-commit writers and not yet committed (or given up)",
            ),
        ),
        usage_retries: register(
            r,
            IntCounter::new("usage_write_retries_total", "Usage batches written again after a failure (with backoff)"),
        ),
        webhooks_enqueued: register(
            r,
            IntCounter::new("webhook_events_enqueued_total", "Webhook events written to the outbox"),
        ),
        webhook_backlog: register(
            r,
            IntGauge::new(
                "webhook_backlog",
                "Webhook events in the outbox not yet delivered or given up (all workers)",
            ),
        ),
        webhook_attempts: register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "webhook_attempts_total",
                    "Webhook delivery attempts by outcome (delivered, failed, abandoned)",
                ),
                &["outcome"],
            ),
        ),
        webhook_latency: register(
            r,
            Histogram::with_opts(
                HistogramOpts::new("webhook_delivery_latency_seconds", "From an event's outbox write to its delivery")
                    .buckets(DELIVERY_BUCKETS.to_vec()),
            ),
        ),
        webhook_unreachable: register(
            r,
            IntGauge::new(
                "webhook_endpoints_unreachable",
                "Apps whose webhook endpoint this worker could not reach at its last attempt (timeout or refused connection): held back, or waiting for a probe",
            ),
        ),
    }
});

pub fn usage_written(kind: &'static str, elapsed: Duration) {
    USAGE.usage_writes.with_label_values(&[kind]).observe(elapsed.as_secs_f64());
}

pub fn usage_batch(records: usize, elapsed: Duration) {
    USAGE.usage_batch_size.observe(records as f64);
    USAGE.usage_batch_latency.observe(elapsed.as_secs_f64());
}

pub fn usage_write_failed(kind: &'static str) {
    USAGE.usage_write_failures.with_label_values(&[kind]).inc();
}

pub fn usage_worker_lost_records(count: u64) {
    USAGE.usage_worker_lost.inc_by(count);
}

pub fn usage_queue(queued: usize) {
    USAGE.usage_queue.set(queued as i64);
}

pub fn usage_retry() {
    USAGE.usage_retries.inc();
}

pub fn webhook_enqueued() {
    USAGE.webhooks_enqueued.inc();
}

pub fn webhook_endpoints_unreachable(apps: usize) {
    USAGE.webhook_unreachable.set(apps as i64);
}

pub fn webhook_backlog(count: i64) {
    USAGE.webhook_backlog.set(count);
}

pub fn webhook_attempt(outcome: &'static str) {
    USAGE.webhook_attempts.with_label_values(&[outcome]).inc();
}

pub fn webhook_delivered(latency: Duration) {
    USAGE.webhook_latency.observe(latency.as_secs_f64());
}

/// Status codes as static strings, so that the hot path formats nothing.
fn status_label(status: u16) -> &'static str {
    match status {
        101 => "101",
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
        // A kind no room event has: other unit tests in this process fan out real events.
        events_fanned_out("metrics_test", 3);
        let text = render();
        assert!(text.contains("huddle_tokens_issued_total"));
        assert!(text.contains(r#"huddle_signature_failures_total{reason="bad_signature"}"#));
        assert!(text.contains(r#"huddle_http_requests_total{method="POST",route="/v1/tokens",status="200"}"#));
        assert!(text.contains(r#"huddle_events_fanned_out_total{type="metrics_test"} 3"#));
        assert!(text.contains("huddle_build_info{version="));
    }
}
