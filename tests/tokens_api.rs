//! `POST /v1/tokens` against the real binary: the happy path on SQLite and PostgreSQL, and
//! every refusal with its documented code.

mod common;

use common::*;
use huddle::auth::token::{self, Expected};
use huddle::auth::unix_now;
use serde_json::{Value, json};

const TOKENS: &str = "/v1/tokens";

fn code(body: &Value) -> u64 {
    body["code"].as_u64().unwrap_or_else(|| panic!("no error code in {body}"))
}

async fn issue_and_check_claims(kind: Db) {
    let db = TestDb::new(kind).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let body = json!({
        "userId": "alice@corp",
        "roomId": "room-1",
        "privileges": {"loginRoom": true, "publishStream": true},
        "streamIds": ["cam-1", "screen-1"],
        "ttlSeconds": 600
    })
    .to_string();
    let before = unix_now();
    let (status, reply) = server.signed_post(&app, TOKENS, &body).await;
    assert_eq!(status, 200, "{reply}");
    let token = reply["token"].as_str().expect("token");
    let header = jwt_header(token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], app.app_id.to_string());
    let claims = jwt_claims(token);
    assert_eq!(claims["appId"], app.app_id);
    assert_eq!(claims["userId"], "alice@corp");
    assert_eq!(claims["roomId"], "room-1");
    assert_eq!(claims["privileges"], json!({"loginRoom": true, "publishStream": true}));
    assert_eq!(claims["streamIds"], json!(["cam-1", "screen-1"]));
    let (iat, nbf, exp) =
        (claims["iat"].as_i64().unwrap(), claims["nbf"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(iat >= before && nbf == iat && exp == iat + 600);
    assert_eq!(reply["expiresAt"].as_i64(), Some(exp));
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));

    let expected = Expected { app_id: app.app_id, user_id: "alice@corp", room_id: Some("room-1") };
    let verified = token::verify(token, app.secret.as_bytes(), expected, unix_now()).expect("verifies with the secret");
    assert!(verified.may_publish("cam-1") && !verified.may_publish("cam-2"));

    // Defaults: one hour, login only.
    let (status, reply) = server.signed_post(&app, TOKENS, r#"{"userId":"bob"}"#).await;
    assert_eq!(status, 200, "{reply}");
    let claims = jwt_claims(reply["token"].as_str().unwrap());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["privileges"], json!({"loginRoom": true, "publishStream": false}));
    assert!(claims.get("roomId").is_none());
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn issues_tokens_on_sqlite() {
    issue_and_check_claims(Db::Sqlite).await;
}

#[tokio::test]
async fn issues_tokens_on_postgres() {
    issue_and_check_claims(Db::Postgres).await;
}

#[tokio::test]
async fn replay_tamper_and_clock_refusals() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let body = r#"{"userId":"alice"}"#;

    let request = SignedRequest::new(&app, "POST", TOKENS, body);
    assert_eq!(server.send(&request).await.0, 200);
    let (status, reply) = server.send(&request).await;
    assert_eq!((status, code(&reply)), (401, 2007), "same request twice: nonce reused");

    let mut tampered = SignedRequest::new(&app, "POST", TOKENS, body);
    tampered.body = r#"{"userId":"mallory"}"#.into();
    let (status, reply) = server.send(&tampered).await;
    assert_eq!((status, code(&reply)), (401, 2005), "tampered body: bad signature");

    let other_path = SignedRequest::new(&app, "POST", "/v1/tokens?x=1", body);
    let mut moved = other_path.clone();
    moved.path = TOKENS.into();
    assert_eq!(code(&server.send(&moved).await.1), 2005, "signature covers the query string");
    assert_eq!(server.send(&other_path).await.0, 200, "a query string is part of the signed path");

    for skew in [-301, 301, -100_000] {
        let stale = SignedRequest::at(&app, "POST", TOKENS, body, unix_now() + skew, &fresh_nonce());
        let (status, reply) = server.send(&stale).await;
        assert_eq!((status, code(&reply)), (401, 2006), "timestamp off by {skew} s");
    }
    let near = SignedRequest::at(&app, "POST", TOKENS, body, unix_now() - 250, &fresh_nonce());
    assert_eq!(server.send(&near).await.0, 200, "inside the window");

    let wrong_secret = TestApp { app_id: app.app_id, secret: "f".repeat(64) };
    let (status, reply) = server.signed_post(&wrong_secret, TOKENS, body).await;
    assert_eq!((status, code(&reply)), (401, 2005));

    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_signature_failures_total{reason="nonce_reused"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"huddle_signature_failures_total{reason="bad_signature"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"huddle_signature_failures_total{reason="stale_timestamp"} 3"#), "{metrics}");
    assert!(metrics.contains("huddle_tokens_issued_total 3"), "{metrics}");
    assert!(metrics.contains(r#"huddle_http_requests_total{method="POST",route="/v1/tokens",status="200"} 3"#));
    assert!(metrics.contains(r#"huddle_errors_total{code="2007",name="NonceReused"} 1"#));
}

#[tokio::test]
async fn header_app_and_transport_refusals() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let disabled = create_app(&db);
    cli(&db, &["app", "disable", "--app-id", &disabled.app_id.to_string()]);
    let server = Server::start(&db);
    let body = r#"{"userId":"alice"}"#;
    let signed = || SignedRequest::new(&app, "POST", TOKENS, body);

    for header in ["x-huddle-appid", "x-huddle-timestamp", "x-huddle-nonce", "x-huddle-signature"] {
        let (status, reply) = server.send(&signed().without_header(header)).await;
        assert_eq!((status, code(&reply)), (401, 2001), "without {header}");
        assert!(reply["message"].as_str().unwrap().to_lowercase().contains(header), "{reply}");
    }
    for (header, value) in [
        ("x-huddle-appid", "abc"),
        ("x-huddle-appid", "0"),
        ("x-huddle-timestamp", "yesterday"),
        ("x-huddle-nonce", "short"),
        ("x-huddle-nonce", &"n".repeat(65)),
        ("x-huddle-signature", "not-hex"),
    ] {
        let (status, reply) = server.send(&signed().set_header(header, value)).await;
        assert_eq!((status, code(&reply)), (400, 2002), "{header}: {value}");
    }

    let unknown = TestApp { app_id: 4_000_000_001, secret: app.secret.clone() };
    let (status, reply) = server.signed_post(&unknown, TOKENS, body).await;
    assert_eq!((status, code(&reply)), (401, 2003));
    let (status, reply) = server.signed_post(&disabled, TOKENS, body).await;
    assert_eq!((status, code(&reply)), (403, 2004));

    let (status, reply) = server.send(&signed().set_header("content-type", "text/plain")).await;
    assert_eq!((status, code(&reply)), (415, 1003));
    let (status, reply) = server.send(&signed().without_header("content-type")).await;
    assert_eq!((status, code(&reply)), (415, 1003));
    assert_eq!(server.send(&signed().set_header("content-type", "application/json; charset=utf-8")).await.0, 200);

    let huge = format!(r#"{{"userId":"alice","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, reply) = server.signed_post(&app, TOKENS, &huge).await;
    assert_eq!((status, code(&reply)), (413, 1004));

    let (status, reply) = server.get("/v1/nope").await;
    assert_eq!(status, 404);
    assert_eq!(code(&serde_json::from_str(&reply).unwrap()), 1001);
    let (status, reply) = server.get(TOKENS).await;
    assert_eq!(status, 405);
    assert_eq!(code(&serde_json::from_str(&reply).unwrap()), 1002);
}

#[tokio::test]
async fn repeated_signature_headers_are_refused_by_name() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let body = r#"{"userId":"alice"}"#;
    for (header, name) in [
        ("x-huddle-appid", "X-Huddle-AppId"),
        ("x-huddle-timestamp", "X-Huddle-Timestamp"),
        ("x-huddle-nonce", "X-Huddle-Nonce"),
        ("x-huddle-signature", "X-Huddle-Signature"),
    ] {
        // The same value twice, and a second value that a proxy might read instead of ours.
        for second in [None, Some("another-value-12345")] {
            let mut request = SignedRequest::new(&app, "POST", TOKENS, body);
            let first = request.headers.iter().find(|(n, _)| n == header).unwrap().1.clone();
            request.headers.push((header.to_owned(), second.map_or(first, str::to_owned)));
            let (status, reply) = server.send(&request).await;
            assert_eq!((status, code(&reply)), (400, 2002), "{header} twice ({second:?}): {reply}");
            assert!(reply["message"].as_str().unwrap().contains(name), "{reply}");
        }
    }
    // A value with bytes outside visible ASCII is there, just malformed (it was read as missing).
    let request = SignedRequest::new(&app, "POST", TOKENS, body).without_header("x-huddle-nonce");
    let mut builder = server.http.post(server.url(TOKENS)).body(body);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let nonce = reqwest::header::HeaderValue::from_bytes(b"n\xf6nce-1234").unwrap();
    let response = builder.header("x-huddle-nonce", nonce).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(code(&reply), 2002, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("X-Huddle-Nonce"), "{reply}");

    // Each header once still passes.
    assert_eq!(server.signed_post(&app, TOKENS, body).await.0, 200);
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_signature_failures_total{reason="invalid_header"} 9"#), "{metrics}");
}

#[tokio::test]
async fn body_refusals_each_have_their_code() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let long_stream_list: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let cases: Vec<(String, u16, u64)> = vec![
        ("{not json".into(), 400, 1005),
        ("".into(), 400, 1005),
        (r#"{"userId":"alice""#.into(), 400, 1005),
        ("{}".into(), 400, 1006),
        (r#"{"userId":42}"#.into(), 400, 1006),
        (r#"{"userId":"alice","roomID":"typo"}"#.into(), 400, 1006),
        (r#"["alice"]"#.into(), 400, 1006),
        (r#"{"userId":""}"#.into(), 400, 3001),
        (r#"{"userId":"has space"}"#.into(), 400, 3001),
        (json!({"userId": "u".repeat(65)}).to_string(), 400, 3001),
        (r#"{"userId":"alice","roomId":"room/1"}"#.into(), 400, 3002),
        (json!({"userId": "alice", "roomId": "r".repeat(129)}).to_string(), 400, 3002),
        (r#"{"userId":"alice","streamIds":["ok","not ok"]}"#.into(), 400, 3003),
        (json!({"userId": "alice", "streamIds": ["s".repeat(257)]}).to_string(), 400, 3003),
        (r#"{"userId":"alice","ttlSeconds":0}"#.into(), 400, 3004),
        (r#"{"userId":"alice","ttlSeconds":-5}"#.into(), 400, 3004),
        (r#"{"userId":"alice","ttlSeconds":86401}"#.into(), 400, 3004),
        (json!({"userId": "alice", "streamIds": long_stream_list}).to_string(), 400, 3005),
    ];
    for (body, want_status, want_code) in cases {
        let (status, reply) = server.signed_post(&app, TOKENS, &body).await;
        assert_eq!((status, code(&reply)), (want_status, want_code), "body {body:.80}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, _) = server.signed_post(&app, TOKENS, r#"{"userId":"alice","ttlSeconds":86400}"#).await;
    assert_eq!(status, 200, "24 h is the maximum, inclusive");
    assert!(!server.metrics().await.contains(r#"status="500""#), "no case may end in a 500");
}

/// `ttlSeconds` on both signed routes that take one: any whole number outside the route's range
/// (zero, negative, too large, beyond 64 bits) is 3004; what is not a whole number is 1006.
#[tokio::test]
async fn ttl_seconds_is_checked_alike_on_tokens_and_grants() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let routes = [
        (TOKENS, r#"{"userId":"alice","ttlSeconds":TTL}"#, 86400),
        ("/v1/grants", r#"{"roomId":"r1","userId":"obs","streamId":"cam","action":"publish","ttlSeconds":TTL}"#, 60),
    ];
    for (path, template, max) in routes {
        let body = |ttl: &str| template.replace("TTL", ttl);
        let above = (max + 1).to_string();
        for ttl in ["0", "-1", "-86400", above.as_str(), "100000000000000000000", "-100000000000000000000", "1e300"] {
            let (status, reply) = server.signed_post(&app, path, &body(ttl)).await;
            assert_eq!((status, code(&reply)), (400, 3004), "{path} ttlSeconds {ttl}: {reply}");
            let message = reply["message"].as_str().unwrap();
            assert!(message.contains("ttlSeconds") && message.contains(&format!("1 and {max}")), "{message}");
        }
        for ttl in ["1.5", "-0.5", r#""60""#, "true", "[60]"] {
            let (status, reply) = server.signed_post(&app, path, &body(ttl)).await;
            assert_eq!((status, code(&reply)), (400, 1006), "{path} ttlSeconds {ttl}: {reply}");
        }
        let maximum = max.to_string();
        for (ttl, lifetime) in [("1", 1), (maximum.as_str(), max), ("30.0", 30), ("null", max.min(3600))] {
            let (status, reply) = server.signed_post(&app, path, &body(ttl)).await;
            assert_eq!(status, 200, "{path} ttlSeconds {ttl}: {reply}");
            let claims = jwt_claims(reply["token"].as_str().or(reply["grant"].as_str()).unwrap());
            let issued = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
            assert_eq!(issued, lifetime as i64, "{path} ttlSeconds {ttl}");
        }
    }
}

#[tokio::test]
async fn nonces_are_shared_between_workers_through_redis() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let options = || ServerOptions { redis: true, ..ServerOptions::default() };
    let first = Server::start_with(&db, options());
    let second = Server::start_with(&db, options());
    let (_, ready) = first.get("/readyz").await;
    assert!(ready.contains(r#""redis":"ok""#) && ready.contains(r#""store":"ok""#), "{ready}");

    let request = SignedRequest::new(&app, "POST", TOKENS, r#"{"userId":"alice"}"#);
    assert_eq!(first.send(&request).await.0, 200);
    let (status, reply) = second.send(&request).await;
    assert_eq!((status, code(&reply)), (401, 2007), "the second worker must know the nonce");
    assert_eq!(code(&first.send(&request).await.1), 2007);
    drop((first, second));
    db.cleanup().await;
}

#[tokio::test]
async fn operations_endpoints_and_dev_mode() {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start(&db);
    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""store":"ok""#) && body.contains(r#""redis":"absent""#), "{body}");
    let (status, served) = server.get("/openapi.yaml").await;
    assert_eq!(status, 200);
    assert_eq!(served, include_str!("../openapi.yaml"), "served OpenAPI differs from the file");
    let (status, body) = server.get("/dev/token?userId=alice").await;
    assert_eq!(status, 404, "a configured database turns dev mode off: {body}");
    drop(server);

    let dev = Server::start_with(&db, ServerOptions { dev: Some(true), ..ServerOptions::default() });
    let (status, body) = dev.get("/dev/token?userId=alice&roomId=room-1").await;
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["appId"], 1);
    let claims = jwt_claims(reply["token"].as_str().unwrap());
    assert_eq!(claims["privileges"]["publishStream"], true);
    let (status, body) = dev.get("/dev/token?userId=bad%20id").await;
    assert_eq!((status, code(&serde_json::from_str(&body).unwrap())), (400, 3001));
    let (status, body) = dev.get("/dev/token").await;
    assert_eq!((status, code(&serde_json::from_str(&body).unwrap())), (400, 1008));
    let (status, body) = dev.get("/dev/token?userId=a&appId=77").await;
    assert_eq!((status, code(&serde_json::from_str(&body).unwrap())), (403, 1009), "only the dev app");
}

#[tokio::test]
async fn embedded_defaults_create_the_data_dir_and_turn_dev_mode_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("HUDDLE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let base = line.trim().strip_prefix("huddle listening on ").expect("listening line").to_owned();
    let body = reqwest::get(format!("{base}/dev/token?userId=alice")).await.unwrap();
    assert_eq!(body.status(), 200);
    assert!(dir.path().join("huddle-data/huddle.db").is_file());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Sends `count` fresh signed token requests concurrently (a few at a time); returns the codes
/// of the refusals (200s are not listed).
async fn flood(server: &Server, app: &TestApp, count: usize) -> Vec<u64> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..count)
        .map(|_| async {
            let (status, reply) = server.signed_post(app, TOKENS, r#"{"userId":"alice"}"#).await;
            (status != 200).then(|| code(&reply))
        })
        .buffer_unordered(16)
        .filter_map(|refused| async move { refused })
        .collect()
        .await
}

async fn nonce_cap_holds(redis: bool) {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let other = create_app(&db);
    let cap = 1000;
    let extra_env = vec![("HUDDLE_NONCE_CAP_PER_APP", cap.to_string())];
    let server = Server::start_with(&db, ServerOptions { redis, extra_env, ..ServerOptions::default() });
    assert_eq!(flood(&server, &app, cap).await, Vec::<u64>::new(), "the cap itself is allowed");
    let (status, reply) = server.signed_post(&app, TOKENS, r#"{"userId":"alice"}"#).await;
    assert_eq!((status, code(&reply)), (429, 2008), "{reply}");
    // A replay of a remembered nonce is still a replay, not a capacity problem.
    let replay = SignedRequest::new(&app, "POST", TOKENS, r#"{"userId":"alice"}"#);
    let _ = server.send(&replay).await;
    assert!([2007, 2008].contains(&code(&server.send(&replay).await.1)));
    // Other apps are not affected.
    assert_eq!(server.signed_post(&other, TOKENS, r#"{"userId":"bob"}"#).await.0, 200);
    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_nonce_cap_refusals_total "), "{metrics}");
    assert!(metrics.contains(r#"huddle_signature_failures_total{reason="nonce_capacity"}"#));
    if !redis {
        assert!(metrics.contains(&format!("huddle_nonces {}", cap + 1)), "gauge counts what is kept");
    }
}

#[tokio::test]
async fn each_app_is_held_to_its_nonce_cap_in_memory() {
    nonce_cap_holds(false).await;
}

#[tokio::test]
async fn each_app_is_held_to_its_nonce_cap_in_redis() {
    nonce_cap_holds(true).await;
}
