//! ZEGO "04" tokens against the real binary, on SQLite and PostgreSQL: an app imported with
//! `huddle app create --app-id N --server-secret S`, logins over the websocket with tokens
//! laid out like ZEGO's generators make them (AES-GCM and the older AES-CBC), and publishing
//! allowed or refused by their privileges.

mod common;

use std::process::Command;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::ws::WsClient;
use common::*;
use huddle::auth::unix_now;
use rand::Rng;
use serde_json::{Value, json};

const ZEGO_APP: u32 = 1_234_567_890;
const ZEGO_SECRET: &str = "fa94dd0f974cf2e293728a526b028271";

#[derive(Clone, Copy)]
enum Mode {
    Gcm,
    Cbc,
}

/// A "04" token as ZEGO's generators lay it out: `"04" + base64(expire | len | nonce | len |
/// data [| mode])`, the plaintext JSON encrypted with the 32-byte ServerSecret.
fn mint04(app_id: u32, secret: &str, user_id: &str, payload: &str, ctime: i64, ttl: i64, mode: Mode) -> String {
    let expire = ctime + ttl;
    let info = json!({
        "app_id": app_id, "user_id": user_id, "nonce": rand::rng().random::<i32>(),
        "ctime": ctime, "expire": expire, "payload": payload,
    });
    let mut data = serde_json::to_vec(&info).expect("json");
    let nonce: Vec<u8> = match mode {
        Mode::Gcm => {
            let nonce: [u8; 12] = rand::rng().random();
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, secret.as_bytes()).expect("key"));
            key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data).expect("seal");
            nonce.to_vec()
        }
        Mode::Cbc => {
            const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
            let iv: [u8; 16] = std::array::from_fn(|_| ALPHABET[rand::rng().random_range(0..ALPHABET.len())]);
            let key =
                PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, secret.as_bytes()).expect("key"))
                    .expect("cbc key");
            key.less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv))).expect("encrypt");
            iv.to_vec()
        }
    };
    let mut frame = expire.to_be_bytes().to_vec();
    frame.extend((nonce.len() as u16).to_be_bytes());
    frame.extend(&nonce);
    frame.extend((data.len() as u16).to_be_bytes());
    frame.extend(&data);
    if let Mode::Gcm = mode {
        frame.push(1);
    }
    format!("04{}", STANDARD.encode(frame))
}

/// ZEGO's privilege payload.
fn strict(room: &str, login: bool, publish: bool, streams: Option<&[&str]>) -> String {
    json!({"room_id": room, "privilege": {"1": u8::from(login), "2": u8::from(publish)}, "stream_id_list": streams})
        .to_string()
}

fn token(user: &str, payload: &str, mode: Mode) -> String {
    mint04(ZEGO_APP, ZEGO_SECRET, user, payload, unix_now(), 3600, mode)
}

/// Runs a CLI command that must fail; returns its stderr.
fn cli_fails(db: &TestDb, args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).env_clear().env("HUDDLE_DATABASE_URL", &db.url).output().expect("run");
    assert!(!output.status.success(), "huddle {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
    assert!(output.stdout.is_empty(), "nothing printed on failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn login(app_id: u32, room: &str, user: &str, token: &str) -> Value {
    json!({"appID": app_id, "roomID": room, "token": token, "user": {"userID": user}})
}

async fn login_code(server: &Server, app_id: u32, room: &str, user: &str, token: &str) -> u64 {
    let mut client = WsClient::connect(&server.base).await;
    client.fails("login", login(app_id, room, user, token)).await
}

async fn logged_in(server: &Server, room: &str, user: &str, token: &str) -> WsClient {
    let mut client = WsClient::connect(&server.base).await;
    let data = client.ok("login", login(ZEGO_APP, room, user, token)).await;
    assert_eq!(data["user"]["userID"], user);
    client
}

async fn zego_app_logs_in_with_04_tokens(kind: Db) {
    let db = TestDb::new(kind).await;
    let app_id = ZEGO_APP.to_string();
    let created =
        cli(&db, &["app", "create", "--name", "from-zego", "--app-id", &app_id, "--server-secret", ZEGO_SECRET]);
    assert_eq!(created, json!({"appId": ZEGO_APP, "serverSecret": ZEGO_SECRET}));

    // Refused, each with a clear error, and nothing created.
    let taken =
        cli_fails(&db, &["app", "create", "--name", "again", "--app-id", &app_id, "--server-secret", ZEGO_SECRET]);
    assert!(taken.contains(&format!("an app with id {ZEGO_APP} already exists")), "{taken}");
    let short =
        cli_fails(&db, &["app", "create", "--name", "x", "--app-id", "77", "--server-secret", &ZEGO_SECRET[1..]]);
    assert!(short.contains("exactly 32") && short.contains("got 31"), "{short}");
    let long = format!("{ZEGO_SECRET}0");
    let long = cli_fails(&db, &["app", "create", "--name", "x", "--app-id", "77", "--server-secret", &long]);
    assert!(long.contains("exactly 32"), "{long}");
    for bad_id in ["0", "-1", "4294967296", "12ab", ""] {
        let arg = format!("--app-id={bad_id}");
        let err = cli_fails(&db, &["app", "create", "--name", "x", &arg, "--server-secret", ZEGO_SECRET]);
        assert!(err.contains("invalid value") && err.contains("--app-id"), "{bad_id}: {err}");
    }
    let no_id = cli_fails(&db, &["app", "create", "--name", "x", "--server-secret", ZEGO_SECRET]);
    assert!(no_id.contains("--app-id"), "{no_id}");
    let both = cli_fails(
        &db,
        &["app", "create", "--name", "x", "--app-id", "77", "--secret", ZEGO_SECRET, "--server-secret", ZEGO_SECRET],
    );
    assert!(both.contains("cannot be used with"), "{both}");
    let apps = cli(&db, &["app", "list"]);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");

    // A second app that shares the secret (as two ZEGO projects never should, but may).
    cli(&db, &["app", "create", "--name", "twin", "--app-id", "77", "--server-secret", ZEGO_SECRET]);
    // An app with a secret Huddle generated (64 hex characters).
    let native = create_app(&db);

    let server = Server::start(&db);
    for mode in [Mode::Gcm, Mode::Cbc] {
        let tag = match mode {
            Mode::Gcm => "gcm",
            Mode::Cbc => "cbc",
        };
        let room = format!("room-{tag}");
        // ZEGO's basic token: any room, any stream.
        let mut basic =
            logged_in(&server, &room, &format!("basic-{tag}"), &token(&format!("basic-{tag}"), "", mode)).await;
        let grant = basic.ok("publishStream", json!({"streamID": format!("any-{tag}")})).await;
        assert!(grant["grant"].is_string(), "{grant}");

        // Privilege token, login only: publishing is refused with 5012.
        let user = format!("viewer-{tag}");
        let mut viewer = logged_in(&server, &room, &user, &token(&user, &strict(&room, true, false, None), mode)).await;
        assert_eq!(viewer.fails("publishStream", json!({"streamID": format!("v-{tag}")})).await, 5012);

        // Privilege token with a stream list: only those streams (5013 otherwise), and real
        // media on the allowed one.
        let user = format!("host-{tag}");
        let cam = format!("cam-{tag}");
        let payload = strict(&room, true, true, Some(&[cam.as_str()]));
        let mut host = logged_in(&server, &room, &user, &token(&user, &payload, mode)).await;
        assert_eq!(host.fails("publishStream", json!({"streamID": format!("other-{tag}")})).await, 5013);
        let _media = publish_media(&mut host, &cam, "").await;
        let seen = viewer.event("roomStreamUpdate").await;
        assert_eq!(seen["streamList"][0]["streamID"], cam.as_str());

        // Refusals at login, each with the code a Huddle token gets for the same thing.
        let bound = token("dan", &strict(&room, true, true, None), mode);
        assert_eq!(login_code(&server, ZEGO_APP, "elsewhere", "dan", &bound).await, 4007, "room");
        assert_eq!(login_code(&server, ZEGO_APP, &room, "erin", &bound).await, 4006, "user");
        assert_eq!(login_code(&server, 77, &room, "dan", &bound).await, 4005, "another app, same secret");
        assert_eq!(login_code(&server, native.app_id, &room, "dan", &bound).await, 4002, "a Huddle secret");
        let no_login = token("dan", &strict(&room, false, true, None), mode);
        assert_eq!(login_code(&server, ZEGO_APP, &room, "dan", &no_login).await, 4008, "no login bit");
        let expired = mint04(ZEGO_APP, ZEGO_SECRET, "dan", "", unix_now() - 7200, 3600, mode);
        assert_eq!(login_code(&server, ZEGO_APP, &room, "dan", &expired).await, 4003, "expired");
        let future = mint04(ZEGO_APP, ZEGO_SECRET, "dan", "", unix_now() + 600, 3600, mode);
        assert_eq!(login_code(&server, ZEGO_APP, &room, "dan", &future).await, 4004, "ctime ahead");
        let forged = mint04(ZEGO_APP, "0123456789abcdef0123456789abcdef", "dan", "", unix_now(), 3600, mode);
        assert_eq!(login_code(&server, ZEGO_APP, &room, "dan", &forged).await, 4002, "another secret");
        assert_eq!(login_code(&server, ZEGO_APP, &room, "dan", "04not-base64!").await, 4001, "garbage");
        drop((basic, viewer, host));
    }

    // renewToken takes a 04 token too, and Huddle's own JWTs keep working for the app.
    let mut client = logged_in(&server, "room-renew", "fay", &token("fay", "", Mode::Gcm)).await;
    let renewed = client.ok("renewToken", json!({"token": token("fay", "", Mode::Cbc)})).await;
    assert!(renewed["tokenExpiresAt"].as_i64().is_some_and(|at| at > unix_now()), "{renewed}");
    let zego_app = TestApp { app_id: ZEGO_APP, secret: ZEGO_SECRET.into() };
    let jwt = mint(&zego_app, "gus", Some("room-renew"), false);
    logged_in(&server, "room-renew", "gus", &jwt).await;
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn zego_app_logs_in_with_04_tokens_on_sqlite() {
    zego_app_logs_in_with_04_tokens(Db::Sqlite).await;
}

#[tokio::test]
async fn zego_app_logs_in_with_04_tokens_on_postgres() {
    zego_app_logs_in_with_04_tokens(Db::Postgres).await;
}
