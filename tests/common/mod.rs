//! Helpers shared by the integration tests: a fresh database per test (SQLite file or a new
//! PostgreSQL database), the real `huddle` binary on a free port, and signed requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use huddle::auth::{signature, unix_now};
use serde_json::Value;
use sqlx::Connection;

pub const BIN: &str = env!("CARGO_BIN_EXE_huddle");

pub fn postgres_admin_url() -> String {
    std::env::var("HUDDLE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("HUDDLE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database of this test's own, removed when dropped (SQLite) or at the next test run's
/// start (PostgreSQL databases left by a crashed run are named `huddle_test_*`).
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            Db::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("huddle.db").display());
                TestDb { url, dir, postgres_name: None }
            }
            Db::Postgres => {
                let name = format!("huddle_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL reachable at HUDDLE_TEST_POSTGRES_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin.rsplit_once('/').map(|(base, _)| base).expect("database in URL");
                TestDb { url: format!("{base}/{name}"), dir, postgres_name: Some(name) }
            }
        }
    }

    /// Drops the PostgreSQL database (call at the end of a test).
    pub async fn cleanup(self) {
        if let Some(name) = &self.postgres_name
            && let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Runs a `huddle` CLI command against `db` and parses its JSON output.
pub fn cli(db: &TestDb, args: &[&str]) -> Value {
    let output =
        Command::new(BIN).args(args).env_clear().env("HUDDLE_DATABASE_URL", &db.url).output().expect("run huddle");
    assert!(output.status.success(), "huddle {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// An app created through the CLI.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub app_id: u32,
    pub secret: String,
}

pub fn create_app(db: &TestDb) -> TestApp {
    let created = cli(db, &["app", "create", "--name", "test"]);
    TestApp {
        app_id: created["appId"].as_u64().expect("appId") as u32,
        secret: created["serverSecret"].as_str().expect("serverSecret").to_owned(),
    }
}

/// The real binary, serving on a free port until dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

#[derive(Default)]
pub struct ServerOptions<'a> {
    pub redis: bool,
    /// Embedded defaults: no database URL, only the data directory (whose default SQLite file
    /// is the test database's file).
    pub embedded: bool,
    pub dev: Option<bool>,
    pub extra_env: Vec<(&'a str, String)>,
    /// Append the server's stderr (its log) to this file instead of the test's stderr.
    pub log_file: Option<PathBuf>,
}

impl Server {
    pub fn start(db: &TestDb) -> Server {
        Server::start_with(db, ServerOptions::default())
    }

    pub fn start_with(db: &TestDb, options: ServerOptions<'_>) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--http-addr", "127.0.0.1:0", "--http-workers", "1"])
            .env_clear()
            .env("HUDDLE_DATA_DIR", db.dir.path())
            .env("HUDDLE_LOG", "warn")
            // Explicitly any origin (the default), which spares every test the start-up warning.
            .env("HUDDLE_ALLOWED_ORIGINS", "*")
            .stdout(Stdio::piped())
            .stderr(match &options.log_file {
                Some(path) => {
                    Stdio::from(std::fs::File::options().create(true).append(true).open(path).expect("server log file"))
                }
                None => Stdio::inherit(),
            });
        if !options.embedded {
            command.env("HUDDLE_DATABASE_URL", &db.url);
        }
        if options.redis {
            command.env("HUDDLE_REDIS_URL", redis_url());
        }
        if let Some(dev) = options.dev {
            command.env("HUDDLE_DEV", dev.to_string());
        }
        for (key, value) in options.extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn huddle");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("huddle listening on ") {
                        break addr.to_owned();
                    }
                }
                _ => {
                    let status = child.wait();
                    panic!("huddle exited before listening: {status:?}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Server { child, base, http }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends SIGTERM (a graceful stop: the worker drains).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success(), "could not signal huddle");
    }

    /// Waits up to `limit` for the process to exit; its exit status, or `None` if it still runs.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process the hard way (for crash tests) or as part of drop.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Sends a request signed for `app` with a fresh nonce and the current time.
    pub async fn signed_post(&self, app: &TestApp, path: &str, body: &str) -> (u16, Value) {
        let request = SignedRequest::new(app, "POST", path, body);
        self.send(&request).await
    }

    pub async fn send(&self, request: &SignedRequest) -> (u16, Value) {
        let mut builder = self
            .http
            .request(request.method.parse().expect("method"), self.url(&request.path))
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fully signed request whose parts tests may then tamper with.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub method: String,
    pub path: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    pub fn new(app: &TestApp, method: &str, path: &str, body: &str) -> SignedRequest {
        SignedRequest::at(app, method, path, body, unix_now(), &fresh_nonce())
    }

    pub fn at(app: &TestApp, method: &str, path: &str, body: &str, timestamp: i64, nonce: &str) -> SignedRequest {
        let sig = signature::sign(app.secret.as_bytes(), app.app_id, timestamp, nonce, method, path, body.as_bytes());
        SignedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            body: body.to_owned(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-huddle-appid".into(), app.app_id.to_string()),
                ("x-huddle-timestamp".into(), timestamp.to_string()),
                ("x-huddle-nonce".into(), nonce.to_owned()),
                ("x-huddle-signature".into(), sig),
            ],
        }
    }

    pub fn set_header(mut self, name: &str, value: &str) -> SignedRequest {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without_header(mut self, name: &str) -> SignedRequest {
        self.headers.retain(|(n, _)| n != name);
        self
    }
}

pub fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Decodes a JWT's claims without verifying (tests verify separately).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON header")
}

pub fn data_dir_of(db: &TestDb) -> PathBuf {
    db.dir.path().to_path_buf()
}

pub mod crowd;
pub mod receiver;
pub mod redis_server;
pub mod ws;

/// Mints a token directly with the app's secret (as a business server's own code would).
pub fn mint(app: &TestApp, user_id: &str, room_id: Option<&str>, publish: bool) -> String {
    mint_with(app, user_id, room_id, publish, None, 3600, unix_now())
}

pub fn mint_with(
    app: &TestApp,
    user_id: &str,
    room_id: Option<&str>,
    publish: bool,
    stream_ids: Option<Vec<String>>,
    ttl: u64,
    now: i64,
) -> String {
    let spec = huddle::auth::TokenSpec {
        user_id: user_id.into(),
        room_id: room_id.map(Into::into),
        privileges: huddle::auth::Privileges { login_room: true, publish_stream: publish },
        stream_ids,
        ttl_secs: Some(ttl),
    };
    huddle::auth::token::issue(app.app_id, app.secret.as_bytes(), &spec, now).expect("mint").token
}

/// The `data` of a login request.
pub fn login_data(app: &TestApp, room: &str, user: &str, token: &str, user_update: bool) -> Value {
    serde_json::json!({
        "appID": app.app_id,
        "roomID": room,
        "token": token,
        "user": {"userID": user, "userName": format!("{user} name")},
        "userUpdate": user_update,
    })
}

/// Connects and logs in with a publish token; returns the client and the login reply data.
pub async fn join(
    server_base: &str,
    app: &TestApp,
    room: &str,
    user: &str,
    user_update: bool,
) -> (ws::WsClient, Value) {
    let mut client = ws::WsClient::connect(server_base).await;
    let token = mint(app, user, Some(room), true);
    let data = client.ok("login", login_data(app, room, user, &token, user_update)).await;
    (client, data)
}

/// Posts an SDP offer to a relay URL with a media grant, as WHIP/WHEP clients do; returns the
/// SDP answer of the `201`.
pub async fn exchange_offer(url: &str, grant: &str, offer: String) -> String {
    offer_to_relay(url, grant, offer).await.0
}

/// [`exchange_offer`], also returning the relay session's URL (the 201's `Location`, resolved
/// against `url`), where a player's controls (`/mute`, `/layer`) are.
pub async fn offer_to_relay(url: &str, grant: &str, offer: String) -> (String, String) {
    let parsed = reqwest::Url::parse(url).expect("relay url");
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {grant}"))
        .body(offer)
        .send()
        .await
        .expect("relay reachable");
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let session = parsed.join(&location).expect("session url").to_string();
    (response.text().await.expect("answer"), session)
}

/// Asks signaling for a grant (`kind` is `publishStream` or `playStream`), then offers to the
/// relay it names; returns the running peer, the grant reply and the relay session's URL.
async fn start_media(
    client: &mut ws::WsClient,
    kind: &str,
    request: Value,
    role: huddle::loadtest::peer::Role,
    options: huddle::loadtest::peer::PeerOptions,
) -> (huddle::loadtest::peer::MediaPeer, Value, String) {
    use huddle::loadtest::peer::PendingPeer;
    let grant = client.ok(kind, request).await;
    let (pending, offer) = PendingPeer::offer_with(role, "127.0.0.1".parse().expect("ip"), options).expect("offer");
    let url = grant["url"].as_str().expect("relay url");
    let (answer, session) = offer_to_relay(url, grant["grant"].as_str().expect("grant"), offer).await;
    (pending.connect(&answer).expect("connect"), grant, session)
}

/// Waits for this client's `publisherStateUpdate`/`playerStateUpdate` of a stream.
pub async fn media_state(client: &mut ws::WsClient, event: &str, stream_id: &str, state: &str) {
    loop {
        let update = client.event(event).await;
        if update["streamID"] == stream_id && update["state"] == state {
            return;
        }
    }
}

/// Publishes `stream_id` the way the SDK does: `publishStream` over the websocket for a grant,
/// the SDP offer to the relay URL it names, media until the peer is dropped. Returns once the
/// relay has reported the stream live (the client's `publisherStateUpdate` PUBLISHING).
pub async fn publish_media(
    client: &mut ws::WsClient,
    stream_id: &str,
    extra_info: &str,
) -> huddle::loadtest::peer::MediaPeer {
    publish_media_with(client, stream_id, extra_info, Default::default()).await
}

/// [`publish_media`] with publishing options (frame size, simulcast layers).
pub async fn publish_media_with(
    client: &mut ws::WsClient,
    stream_id: &str,
    extra_info: &str,
    options: huddle::loadtest::peer::PeerOptions,
) -> huddle::loadtest::peer::MediaPeer {
    let request = serde_json::json!({"streamID": stream_id, "extraInfo": extra_info});
    let role = huddle::loadtest::peer::Role::Publish;
    let (peer, _, _) = start_media(client, "publishStream", request, role, options).await;
    media_state(client, "publisherStateUpdate", stream_id, "PUBLISHING").await;
    peer
}

/// Plays `stream_id` through signaling; returns once the client's `playerStateUpdate` is
/// PLAYING, with the grant reply (to check where it was sent).
pub async fn play_media(client: &mut ws::WsClient, stream_id: &str) -> (huddle::loadtest::peer::MediaPeer, Value) {
    let (peer, grant, _) = play_media_session(client, stream_id).await;
    (peer, grant)
}

/// `POST {session}/{what}` (`mute`, `layer`: a player's controls on its relay session) with a
/// body of `content_type`; the status and the JSON answer.
pub async fn control(session: &str, what: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{session}/{what}"))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("relay reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// [`play_media`], also returning the relay session's URL (for `/mute`, `/layer`).
pub async fn play_media_session(
    client: &mut ws::WsClient,
    stream_id: &str,
) -> (huddle::loadtest::peer::MediaPeer, Value, String) {
    let request = serde_json::json!({"streamID": stream_id});
    let role = huddle::loadtest::peer::Role::Play;
    let played = start_media(client, "playStream", request, role, Default::default()).await;
    media_state(client, "playerStateUpdate", stream_id, "PLAYING").await;
    played
}

/// Waits until a player has received `frames` video frames.
pub async fn wait_for_video(peer: &huddle::loadtest::peer::MediaPeer, frames: u64) {
    let started = std::time::Instant::now();
    while peer.stats().video_frames < frames {
        assert!(started.elapsed() < Duration::from_secs(8), "no video reached the player");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
