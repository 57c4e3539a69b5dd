//! TURN credentials against the real binary: `publishStream`/`playStream` replies and
//! `POST /v1/grants` carry `iceServers` whose credential coturn would accept for the user who
//! asked (checked here with an HMAC-SHA1 computed apart from Huddle's code), and carry none when
//! TURN is not configured. Media through a real coturn is tested in tests/browser/turn.test.mjs.

mod common;

use base64::Engine;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use huddle::auth::unix_now;
use serde_json::{Value, json};

const SECRET: &str = "integration-turn-secret-0123";
const URLS: [&str; 3] = [
    "turn:127.0.0.1:3478?transport=udp",
    "turn:127.0.0.1:3478?transport=tcp",
    "turns:turn.example.com:5349?transport=tcp",
];
const TTL_SECS: i64 = 600;

async fn setup(turn: bool) -> (TestDb, TestApp, Server) {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let extra_env = if turn {
        vec![
            ("HUDDLE_TURN_URLS", URLS.join(",")),
            ("HUDDLE_TURN_SECRET", SECRET.to_owned()),
            ("HUDDLE_TURN_CREDENTIAL_TTL_SECS", TTL_SECS.to_string()),
        ]
    } else {
        Vec::new()
    };
    let server = Server::start_with(&db, ServerOptions { extra_env, ..ServerOptions::default() });
    (db, app, server)
}

/// coturn's check (use-auth-secret): the expiry before the first `:` is in the future and the
/// credential is base64(HMAC-SHA1(secret, username)).
fn assert_turn_credentials(ice_servers: &Value, app: &TestApp, user_id: &str) {
    let servers = ice_servers.as_array().unwrap_or_else(|| panic!("iceServers is an array: {ice_servers}"));
    assert_eq!(servers.len(), 1, "{ice_servers}");
    let server = &servers[0];
    assert_eq!(server["urls"], json!(URLS), "{server}");
    let username = server["username"].as_str().expect("username");
    let (expiry, who) = username.split_once(':').expect("<expiry>:<who>");
    assert_eq!(who, format!("{}:{user_id}", app.app_id), "{username}");
    let expiry: i64 = expiry.parse().expect("a unix time before the first colon");
    let now = unix_now();
    assert!((now + TTL_SECS - 5..=now + TTL_SECS).contains(&expiry), "expiry {expiry}, now {now}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(server["credential"].as_str(), Some(expected.as_str()), "{server}");
}

#[tokio::test]
async fn publish_play_and_rest_grants_carry_turn_credentials_for_their_user() {
    let (_db, app, server) = setup(true).await;
    let body = json!({"roomId": "room-1", "userId": "encoder:7", "streamId": "stage", "action": "publish"});
    let (status, reply) = server.signed_post(&app, "/v1/grants", &body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    assert_turn_credentials(&reply["iceServers"], &app, "encoder:7");

    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    let grant = alice.ok("publishStream", json!({"streamID": "alice-cam"})).await;
    assert_turn_credentials(&grant["iceServers"], &app, "alice");
    // playStream needs the stream live: publish media the way the SDK does (no TURN needed here).
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (_player, grant) = play_media(&mut bob, "alice-cam").await;
    assert_turn_credentials(&grant["iceServers"], &app, "bob");
}

#[tokio::test]
async fn without_turn_the_replies_carry_no_ice_servers() {
    let (_db, app, server) = setup(false).await;
    let body = json!({"roomId": "room-1", "userId": "encoder", "streamId": "stage", "action": "play"});
    let (status, reply) = server.signed_post(&app, "/v1/grants", &body.to_string()).await;
    assert_eq!((status, &reply["iceServers"]), (200, &json!([])), "{reply}");

    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    let grant = alice.ok("publishStream", json!({"streamID": "alice-cam"})).await;
    assert_eq!(grant["iceServers"], json!([]), "{grant}");
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (_player, grant) = play_media(&mut bob, "alice-cam").await;
    assert_eq!(grant["iceServers"], json!([]), "{grant}");
}

#[tokio::test]
async fn bad_turn_settings_stop_start_up_without_printing_the_secret() {
    let db = TestDb::new(Db::Sqlite).await;
    let output = std::process::Command::new(BIN)
        .args(["serve", "--http-addr", "127.0.0.1:0", "--database-url", &db.url])
        .env_clear()
        .env("HUDDLE_TURN_URLS", "turn:127.0.0.1:3478,turns:127.0.0.1:5349?transport=udp")
        .env("HUDDLE_TURN_SECRET", SECRET)
        .output()
        .expect("run huddle");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid TURN URL \"turns:127.0.0.1:5349?transport=udp\""), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let help = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .env_clear()
        .env("HUDDLE_TURN_SECRET", SECRET)
        .output()
        .expect("run huddle");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("HUDDLE_TURN_SECRET") && !help.contains(SECRET), "--help hides the secret's value: {help}");
}
