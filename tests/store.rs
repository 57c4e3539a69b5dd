//! The app store on both databases, through the library and through the CLI.

mod common;

use common::*;
use huddle::auth::token::{self, Expected};
use huddle::auth::unix_now;
use huddle::store::{NewApp, Store, StoreError};

async fn app_lifecycle(kind: Db) {
    let db = TestDb::new(kind).await;
    let store = Store::open(&db.url).await.expect("open and migrate");
    // Opening again must find the migrations applied and change nothing.
    let again = Store::open(&db.url).await.expect("reopen");

    let random = store.create_app(NewApp { name: "random".into(), ..NewApp::default() }).await.unwrap();
    assert!(random.app_id >= 100_000_000, "random ids are 9-10 digits");
    assert_eq!(random.server_secret.len(), 64);
    assert_eq!(random.max_users_per_room, 1000);

    let fixed = NewApp {
        app_id: Some(4_294_967_295),
        name: "fixed".into(),
        server_secret: Some("s".repeat(40)),
        max_users_per_room: Some(8),
    };
    let fixed_app = store.create_app(fixed.clone()).await.unwrap();
    assert_eq!((fixed_app.app_id, fixed_app.max_users_per_room), (4_294_967_295, 8));
    assert!(matches!(store.create_app(fixed).await, Err(StoreError::AppExists(4_294_967_295))));

    let listed = again.list_apps().await.unwrap();
    let ids: Vec<u32> = listed.iter().map(|a| a.app_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert_eq!(listed.len(), 2);
    assert_eq!(again.find_app(fixed_app.app_id).await.unwrap(), Some(fixed_app.clone()));
    assert_eq!(again.find_app(12345).await.unwrap(), None);

    let rotated = store.rotate_secret(fixed_app.app_id).await.unwrap();
    assert_ne!(rotated.server_secret, fixed_app.server_secret);
    assert_eq!(store.app(fixed_app.app_id).await.unwrap().unwrap().server_secret, rotated.server_secret);
    assert!(matches!(store.rotate_secret(12345).await, Err(StoreError::AppNotFound(12345))));

    store.set_app_disabled(random.app_id, true).await.unwrap();
    assert!(store.app(random.app_id).await.unwrap().unwrap().disabled);
    store.set_app_disabled(random.app_id, false).await.unwrap();
    assert!(!store.find_app(random.app_id).await.unwrap().unwrap().disabled);
    assert!(matches!(store.set_app_disabled(12345, true).await, Err(StoreError::AppNotFound(12345))));
    store.ping().await.unwrap();
    store.close().await;
    again.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn app_lifecycle_on_sqlite() {
    app_lifecycle(Db::Sqlite).await;
}

#[tokio::test]
async fn app_lifecycle_on_postgres() {
    app_lifecycle(Db::Postgres).await;
}

async fn cli_commands(kind: Db) {
    let db = TestDb::new(kind).await;
    assert_eq!(cli(&db, &["migrate"])["migrated"], true);
    let created = cli(&db, &["app", "create", "--name", "shop", "--app-id", "4242"]);
    assert_eq!(created["appId"], 4242);
    let secret = created["serverSecret"].as_str().unwrap().to_owned();
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()));

    let listed = cli(&db, &["app", "list"]);
    assert_eq!(listed[0]["appId"], 4242);
    assert_eq!(listed[0]["name"], "shop");
    assert!(!listed.to_string().contains(&secret), "list must not print secrets");

    let rotated = cli(&db, &["app", "rotate-secret", "--app-id", "4242"]);
    let new_secret = rotated["serverSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);

    let minted = cli(
        &db,
        &[
            "token",
            "--app-id",
            "4242",
            "--user-id",
            "alice",
            "--room-id",
            "r1",
            "--publish",
            "--stream-id",
            "cam",
            "--ttl",
            "120",
        ],
    );
    let token = minted["token"].as_str().unwrap();
    let expected = Expected { app_id: 4242, user_id: "alice", room_id: Some("r1") };
    let claims = token::verify(token, new_secret.as_bytes(), expected, unix_now()).expect("CLI token verifies");
    assert!(claims.may_publish("cam") && !claims.may_publish("other"));
    assert_eq!(minted["expiresAt"].as_i64(), Some(claims.exp));
    assert!(token::verify(token, secret.as_bytes(), expected, unix_now()).is_err(), "old secret no longer signs");

    assert_eq!(cli(&db, &["app", "disable", "--app-id", "4242"])["disabled"], true);
    assert_eq!(cli(&db, &["app", "list"])[0]["disabled"], true);
    db.cleanup().await;
}

#[tokio::test]
async fn cli_on_sqlite() {
    cli_commands(Db::Sqlite).await;
}

#[tokio::test]
async fn cli_on_postgres() {
    cli_commands(Db::Postgres).await;
}

#[tokio::test]
async fn cli_refuses_bad_input_with_a_message() {
    let db = TestDb::new(Db::Sqlite).await;
    let run = |args: &[&str]| {
        std::process::Command::new(BIN).args(args).env_clear().env("HUDDLE_DATABASE_URL", &db.url).output().unwrap()
    };
    for (args, needle) in [
        (vec!["app", "create", "--name", "x", "--secret", "short"], "server secret"),
        (vec!["app", "rotate-secret", "--app-id", "999"], "no app with id 999"),
        (vec!["token", "--app-id", "999", "--user-id", "a"], "no app with id 999"),
        (vec!["app", "create", "--name", "x", "--app-id", "0"], "0"),
    ] {
        let output = run(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    create_app(&db);
    let first = cli(&db, &["app", "list"])[0]["appId"].to_string();
    let output = run(&["token", "--app-id", &first, "--user-id", "bad id"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("userId may only contain"));
    let output =
        std::process::Command::new(BIN).args(["serve", "--database-url", "mysql://x"]).env_clear().output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid database URL"));
}

/// What a store outage looks like from outside: `/readyz` 503 with 1007, signed requests and
/// logins 503/1007 (never a 500 or 1000), and nothing re-created behind the operator's back.
async fn outage_answers_1007(server: &Server, app: &TestApp) {
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("1007"), "{body}");
    let (status, reply) = server.signed_post(app, "/v1/tokens", r#"{"userId":"alice"}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (503, Some(1007)), "{reply}");
    let mut client = ws::WsClient::connect(&server.base).await;
    let token = mint(app, "alice", Some("r1"), false);
    assert_eq!(client.fails("login", login_data(app, "r1", "alice", &token, false)).await, 1007);
    assert!(!server.metrics().await.contains(r#"code="1000""#), "no internal error");
}

#[tokio::test]
async fn a_deleted_sqlite_file_is_an_outage_and_is_not_recreated() {
    let db = TestDb::new(Db::Sqlite).await;
    let used = create_app(&db);
    let untouched = create_app(&db);
    let server = Server::start(&db);
    assert_eq!(server.signed_post(&used, "/v1/tokens", r#"{"userId":"alice"}"#).await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
    let path = db.dir.path().join("huddle.db");
    std::fs::remove_file(&path).unwrap();
    // The app never looked up has no cached copy: it needs the database.
    outage_answers_1007(&server, &untouched).await;
    assert!(!path.exists(), "the database file was re-created empty");
}

#[tokio::test]
async fn a_postgres_database_dropped_while_running_is_an_outage() {
    let db = TestDb::new(Db::Postgres).await;
    let used = create_app(&db);
    let untouched = create_app(&db);
    let server = Server::start(&db);
    assert_eq!(server.signed_post(&used, "/v1/tokens", r#"{"userId":"alice"}"#).await.0, 200);
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    outage_answers_1007(&server, &untouched).await;
    drop(server);
    db.cleanup().await;
}
