//! Webhooks: room and stream events POSTed to each app's URL, signed with its webhook secret.
//!
//! Events are written to the `webhook_outbox` table in the transaction of the usage record
//! they describe ([`crate::usage`]), and delivered by a [`dispatcher`] task in every worker:
//! at least once, in order per room (an event waits while an earlier one of its room is
//! undelivered), retried with exponential backoff and jitter for `--webhook-retry-for-secs`
//! (24 h by default and at least), surviving restarts (the outbox is the queue). Exactly one
//! worker delivers a given event: PostgreSQL workers lock the rows they send
//! (`FOR UPDATE SKIP LOCKED`), SQLite's single process holds a lease row.
//!
//! Each request carries `X-Huddle-Webhook-Id` (the event id, to deduplicate) and
//! `X-Huddle-Webhook-Signature: t=<unix seconds>,v1=<hex>`, where `v1` is the lowercase hex
//! HMAC-SHA256 of `t + "." + body` keyed with the app's webhook secret (see [`sign`] and the
//! README's verifying snippet).

mod breaker;
pub mod dispatcher;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::AnyConnection;
use thiserror::Error;

use crate::usage::EndReason;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Huddle-Webhook-Signature";
/// The event id header's name.
pub const ID_HEADER: &str = "X-Huddle-Webhook-Id";
/// Longest webhook URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RoomStarted,
    RoomFinished,
    UserJoined,
    UserLeft,
    StreamPublished,
    StreamUnpublished,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoomStarted => "room_started",
            EventKind::RoomFinished => "room_finished",
            EventKind::UserJoined => "user_joined",
            EventKind::UserLeft => "user_left",
            EventKind::StreamPublished => "stream_published",
            EventKind::StreamUnpublished => "stream_unpublished",
        }
    }
}

/// The JSON body of a webhook request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Unique per event (`evt_` + 32 hex digits); the same on every retry.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub app_id: u32,
    #[schema(value_type = crate::api::schema::RoomId)]
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::api::schema::UserId>)]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::api::schema::StreamId>)]
    pub stream_id: Option<String>,
    /// `user_left` (and `stream_unpublished` of a dead worker): how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// When it happened, unix milliseconds.
    pub timestamp_ms: i64,
}

impl WebhookEvent {
    pub fn new(kind: EventKind, app_id: u32, room_id: String, timestamp_ms: i64) -> WebhookEvent {
        WebhookEvent {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            kind,
            app_id,
            room_id,
            user_id: None,
            session_id: None,
            stream_id: None,
            reason: None,
            timestamp_ms,
        }
    }

    pub fn user(mut self, user_id: &str, session_id: &str) -> Self {
        self.user_id = Some(user_id.to_owned());
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn user_only(mut self, user_id: &str) -> Self {
        self.user_id = Some(user_id.to_owned());
        self
    }

    pub fn stream(mut self, stream_id: &str) -> Self {
        self.stream_id = Some(stream_id.to_owned());
        self
    }

    pub fn reason(mut self, reason: EndReason) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// Adds an event to the outbox, inside the caller's transaction.
pub(crate) async fn enqueue(conn: &mut AnyConnection, event: &WebhookEvent) -> Result<(), sqlx::Error> {
    let body = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO webhook_outbox (event_id, app_id, room_id, kind, body, created_ms, next_attempt_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&event.id)
    .bind(i64::from(event.app_id))
    .bind(&event.room_id)
    .bind(event.kind.as_str())
    .bind(body)
    .bind(crate::rooms::unix_millis())
    .execute(&mut *conn)
    .await?;
    crate::metrics::webhook_enqueued();
    Ok(())
}

/// Adds events to the outbox in one statement, in their order, inside the caller's
/// transaction.
pub(crate) async fn enqueue_all(conn: &mut AnyConnection, events: &[WebhookEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let now = crate::rooms::unix_millis();
    let rows: Vec<String> = (0..events.len())
        .map(|i| {
            let b = i * 6;
            format!("(${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 6)
        })
        .collect();
    // Only placeholders are formatted into the SQL; every value is bound.
    let sql = format!(
        "INSERT INTO webhook_outbox (event_id, app_id, room_id, kind, body, created_ms, next_attempt_ms) VALUES {}",
        rows.join(", ")
    );
    // Not prepared for reuse: its shape changes with the batch size.
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for event in events {
        let body = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        insert = insert
            .bind(event.id.clone())
            .bind(i64::from(event.app_id))
            .bind(event.room_id.clone())
            .bind(event.kind.as_str())
            .bind(body)
            .bind(now);
    }
    insert.execute(&mut *conn).await?;
    for _ in events {
        crate::metrics::webhook_enqueued();
    }
    Ok(())
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body)))
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed signature header")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a receiver does (Rust version of the README's snippet): parse `t` and every `v1`,
/// refuse a timestamp more than `tolerance_secs` from `now`, compare in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(hex::decode(value).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| VerifyError::Malformed)?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.iter().any(|candidate| {
        candidate.len() == expected.len()
            && candidate.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches { Ok(()) } else { Err(VerifyError::Mismatch) }
}

/// A webhook URL an app may register: `http://` or `https://`, with a host, at most
/// [`MAX_URL_BYTES`].
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("the webhook URL is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the webhook URL does not parse: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("the webhook URL must be http:// or https:// with a host".into());
    }
    Ok(())
}

/// A webhook secret: 16–128 printable ASCII characters without spaces.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    let printable = secret.bytes().all(|b| b.is_ascii_graphic());
    if !(16..=128).contains(&secret.len()) || !printable {
        return Err("the webhook secret must be 16-128 printable ASCII characters without spaces".into());
    }
    Ok(())
}

/// A fresh secret: `whsec_` and 32 random bytes in hex.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's known-answer vector.
    const SECRET: &str = "whsec_test_secret";
    const TIMESTAMP: i64 = 1796083200;
    const BODY: &str = r#"{"id":"evt_1","type":"user_joined","appId":1,"roomId":"r1","userId":"u1","sessionId":"s1","timestampMs":1796083200000}"#;
    const EXPECTED: &str = "t=1796083200,v1=2e2bbce5ba1aef942be04109fc27271dd21325748d82a881f37ba504808d85d2";

    #[test]
    fn the_known_answer_vector_holds() {
        assert_eq!(sign(SECRET.as_bytes(), TIMESTAMP, BODY.as_bytes()), EXPECTED);
        assert_eq!(verify(SECRET.as_bytes(), EXPECTED, BODY.as_bytes(), TIMESTAMP + 10, 300), Ok(()));
        let event: WebhookEvent = serde_json::from_str(BODY).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), BODY, "the vector's body is what the server sends");
    }

    #[test]
    fn verification_refuses_what_it_should() {
        let secret = SECRET.as_bytes();
        let body = BODY.as_bytes();
        assert_eq!(verify(secret, EXPECTED, body, TIMESTAMP + 301, 300), Err(VerifyError::Stale));
        assert_eq!(verify(b"other-secret-xxxxxx", EXPECTED, body, TIMESTAMP, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(secret, EXPECTED, b"{}", TIMESTAMP, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(secret, "v1=00", body, TIMESTAMP, 300), Err(VerifyError::Malformed));
        // A rotated secret: either signature may match.
        let two = format!("{EXPECTED},v1={}", "00".repeat(32));
        assert_eq!(verify(secret, &two, body, TIMESTAMP, 300), Ok(()));
    }

    #[test]
    fn urls_and_secrets_are_checked() {
        assert!(validate_url("https://example.com/hooks").is_ok());
        assert!(validate_url("http://127.0.0.1:9/x").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_secret(&generate_secret()).is_ok());
        assert!(validate_secret("short").is_err());
        assert!(validate_secret("has a space in it, sadly").is_err());
    }
}
