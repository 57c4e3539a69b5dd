//! Apps are tenants: nothing signed by one app may act for another, and dev mode never mints
//! tokens for a real app.

mod common;

use common::*;
use huddle::auth::grant::{self, GrantClaims, GrantSpec, MediaAction};
use huddle::auth::token::{self, Claims};
use huddle::auth::{jwt, unix_now};
use huddle::loadtest::peer::{PendingPeer, Role};
use serde_json::Value;

fn grant_claims(app: &TestApp, stream: &str, action: MediaAction) -> GrantClaims {
    let spec = GrantSpec {
        room_id: "room-1".into(),
        user_id: "mallory".into(),
        stream_id: stream.into(),
        action,
        session_id: None,
        user_name: None,
        extra_info: None,
        ttl_secs: 60,
    };
    grant::issue(app.app_id, app.secret.as_bytes(), spec, unix_now()).expect("grant").1
}

/// Claims that say `claims_app` under `kid_app`'s id, signed with `signer`'s secret.
fn forged_grant(
    claims_app: &TestApp,
    kid_app: &TestApp,
    signer: &TestApp,
    stream: &str,
    action: MediaAction,
) -> String {
    let claims = grant_claims(claims_app, stream, action);
    jwt::encode(kid_app.app_id, signer.secret.as_bytes(), &claims).expect("sign")
}

async fn offer_with(server: &Server, action: &str, stream: &str, grant: &str, role: Role) -> (u16, Value) {
    let (_pending, offer) = PendingPeer::offer(role, "127.0.0.1".parse().unwrap()).unwrap();
    let response = server
        .http
        .post(server.url(&format!("/relay/v1/{action}/{stream}")))
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {grant}"))
        .body(offer)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_grant_signed_by_another_app_neither_plays_nor_publishes_in_this_one() {
    let db = TestDb::new(Db::Sqlite).await;
    let victim = create_app(&db);
    let attacker = create_app(&db);
    let server = Server::start(&db);

    // The victim publishes "cam" (a REST grant, as an encoder would).
    let (grant, _) = grant::issue(
        victim.app_id,
        victim.secret.as_bytes(),
        GrantSpec {
            room_id: "room-1".into(),
            user_id: "alice".into(),
            stream_id: "cam".into(),
            action: MediaAction::Publish,
            session_id: None,
            user_name: None,
            extra_info: None,
            ttl_secs: 60,
        },
        unix_now(),
    )
    .unwrap();
    let (pending, offer) = PendingPeer::offer(Role::Publish, "127.0.0.1".parse().unwrap()).unwrap();
    let answer = exchange_offer(&server.url("/relay/v1/publish/cam"), &grant, offer).await;
    let _publisher = pending.connect(&answer).unwrap();

    // The reported attack: the attacker's own kid and secret, claims naming the victim.
    let forged = forged_grant(&victim, &attacker, &attacker, "cam", MediaAction::Play);
    let (status, reply) = offer_with(&server, "play", "cam", &forged, Role::Play).await;
    assert_eq!((status, reply["code"].as_u64()), (401, Some(6002)), "cross-app play: {reply}");
    let forged = forged_grant(&victim, &attacker, &attacker, "stage", MediaAction::Publish);
    let (status, reply) = offer_with(&server, "publish", "stage", &forged, Role::Publish).await;
    assert_eq!((status, reply["code"].as_u64()), (401, Some(6002)), "cross-app publish: {reply}");
    // The other way round: the victim's kid on claims naming the attacker, or on the
    // victim's own claims, signed with the attacker's secret.
    for forged in [
        forged_grant(&attacker, &victim, &attacker, "cam", MediaAction::Play),
        forged_grant(&victim, &victim, &attacker, "cam", MediaAction::Play),
    ] {
        let (status, reply) = offer_with(&server, "play", "cam", &forged, Role::Play).await;
        assert_eq!((status, reply["code"].as_u64()), (401, Some(6002)), "{reply}");
    }
    // A grant the attacker signs for itself only reaches its own namespace: its "cam" is
    // not the victim's (nobody publishes it there).
    let own = forged_grant(&attacker, &attacker, &attacker, "cam", MediaAction::Play);
    let (status, reply) = offer_with(&server, "play", "cam", &own, Role::Play).await;
    assert_eq!((status, reply["code"].as_u64()), (404, Some(6008)), "{reply}");

    // The victim's namespace is untouched: "stage" is still free for the victim to publish.
    let genuine =
        jwt::encode(victim.app_id, victim.secret.as_bytes(), &grant_claims(&victim, "stage", MediaAction::Publish))
            .unwrap();
    let (status, reply) = offer_with(&server, "publish", "stage", &genuine, Role::Publish).await;
    assert_eq!(status, 201, "{reply}");
}

#[tokio::test]
async fn a_user_token_signed_by_another_app_does_not_log_in() {
    let db = TestDb::new(Db::Sqlite).await;
    let victim = create_app(&db);
    let attacker = create_app(&db);
    let server = Server::start(&db);
    let genuine = token::verify(
        &mint(&victim, "mallory", Some("room-1"), true),
        victim.secret.as_bytes(),
        token::Expected { app_id: victim.app_id, user_id: "mallory", room_id: Some("room-1") },
        unix_now(),
    )
    .unwrap();
    let claims_for = |app: &TestApp| Claims { app_id: app.app_id, ..genuine.clone() };
    // (the app the login names, the forged token, the expected code)
    let cases = [
        // Claims and login name the victim, kid and secret are the attacker's.
        (&victim, jwt::encode(attacker.app_id, attacker.secret.as_bytes(), &claims_for(&victim)).unwrap(), 4005),
        // Login names the attacker (whose secret signed it) but the claims say the victim.
        (&attacker, jwt::encode(attacker.app_id, attacker.secret.as_bytes(), &claims_for(&victim)).unwrap(), 4005),
        // The victim's kid, signed with the attacker's secret.
        (&victim, jwt::encode(victim.app_id, attacker.secret.as_bytes(), &claims_for(&victim)).unwrap(), 4002),
        // The victim's kid and secret over claims naming the attacker, logging in to either.
        (&victim, jwt::encode(victim.app_id, victim.secret.as_bytes(), &claims_for(&attacker)).unwrap(), 4005),
        (&attacker, jwt::encode(victim.app_id, victim.secret.as_bytes(), &claims_for(&attacker)).unwrap(), 4005),
    ];
    for (login_app, forged, code) in cases {
        let mut client = ws::WsClient::connect(&server.base).await;
        let data = login_data(login_app, "room-1", "mallory", &forged, false);
        assert_eq!(client.fails("login", data).await, code, "login as app {}", login_app.app_id);
    }
}

#[tokio::test]
async fn embedded_defaults_turn_dev_mode_off_once_the_store_holds_a_real_app() {
    let db = TestDb::new(Db::Sqlite).await;
    // A fresh data directory: dev mode is on and serves the dev app.
    let server = Server::start_with(&db, ServerOptions { embedded: true, ..ServerOptions::default() });
    let (status, body) = server.get("/dev/token?userId=alice").await;
    assert_eq!(status, 200, "{body}");
    drop(server);

    // An operator creates a real app in the same store and serves again on the defaults.
    let real = create_app(&db);
    let server = Server::start_with(&db, ServerOptions { embedded: true, ..ServerOptions::default() });
    for path in [format!("/dev/token?userId=alice&appId={}", real.app_id), "/dev/token?userId=alice".to_owned()] {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    drop(server);

    // Asked for explicitly, dev mode serves the dev app and never the real one.
    let server = Server::start_with(&db, ServerOptions { embedded: true, dev: Some(true), ..ServerOptions::default() });
    let (status, body) = server.get(&format!("/dev/token?userId=alice&appId={}", real.app_id)).await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, reply["code"].as_u64()), (403, Some(1009)), "{body}");
    let (status, body) = server.get("/dev/token?userId=alice&appId=1").await;
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwt_header(reply["token"].as_str().unwrap())["kid"], "1");
}

#[tokio::test]
async fn dev_mode_refuses_to_start_when_app_1_is_a_real_app() {
    let db = TestDb::new(Db::Sqlite).await;
    cli(&db, &["app", "create", "--name", "shop", "--app-id", "1"]);
    let output = std::process::Command::new(BIN)
        .args(["serve", "--http-addr", "127.0.0.1:0", "--dev"])
        .env_clear()
        .env("HUDDLE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!output.status.success(), "dev mode started over a real app 1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("app 1 is a real app"), "{stderr}");
}
