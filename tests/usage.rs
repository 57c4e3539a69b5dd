//! Usage records against the real binary: the rows a scripted set of logins leaves, the
//! minutes `GET /v1/usage` and `huddle usage` compute from them (checked against the recorded
//! timestamps, clipped by hand), stream rows with their bytes, and the records of workers that
//! die (kill -9): closed as `worker_lost` at the Redis lease deadline (the reaper's), or at the
//! last heartbeat of a crashed run (without Redis, at the next start); live workers on Redis
//! never close each other's sessions, whatever SQL heartbeats say; and a login whose row cannot
//! be written (PostgreSQL refusing connections) is refused with 1007 and leaves nobody behind.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::*;
use serde_json::{Value, json};
use sqlx::AnyPool;

async fn pool(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&db.url).await.expect("open the test database")
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct SessionRow {
    session_id: String,
    room_id: String,
    user_id: String,
    worker_id: String,
    login_ms: i64,
    logout_ms: Option<i64>,
    end_reason: Option<String>,
}

async fn sessions(pool: &AnyPool, app: &TestApp) -> Vec<SessionRow> {
    sqlx::query_as(
        "SELECT session_id, room_id, user_id, worker_id, login_ms, logout_ms, end_reason FROM usage_sessions \
         WHERE app_id = $1 ORDER BY login_ms, session_id",
    )
    .bind(i64::from(app.app_id))
    .fetch_all(pool)
    .await
    .expect("read usage_sessions")
}

/// Polls until `check` holds for the app's session rows.
async fn sessions_until(
    pool: &AnyPool,
    app: &TestApp,
    limit: Duration,
    check: impl Fn(&[SessionRow]) -> bool,
) -> Vec<SessionRow> {
    let started = Instant::now();
    loop {
        let rows = sessions(pool, app).await;
        if check(&rows) {
            return rows;
        }
        assert!(started.elapsed() < limit, "session rows not as expected within {limit:?}: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_ms() -> i64 {
    huddle::rooms::unix_millis()
}

/// The length of `[start, end)` inside `[from, to)`.
fn clipped(start: i64, end: i64, from: i64, to: i64) -> i64 {
    (end.min(to) - start.max(from)).max(0)
}

fn minutes(ms: i64) -> i64 {
    (ms + 59_999) / 60_000
}

async fn usage(server: &Server, app: &TestApp, query: &str) -> (u16, Value) {
    let request = SignedRequest::new(app, "GET", &format!("/v1/usage?{query}"), "");
    server.send(&request).await
}

fn group<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["groups"].as_array().and_then(|g| g.iter().find(|g| g["key"] == key)).unwrap_or(&Value::Null)
}

async fn scripted_logins_give_exact_minutes(kind: Db) {
    let db = TestDb::new(kind).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let pool = pool(&db).await;

    let (mut alice, _) = join(&server.base, &app, "room-a", "alice", false).await;
    let (_bob_first, _) = join(&server.base, &app, "room-a", "bob", false).await;
    let (mut carol, _) = join(&server.base, &app, "room-b", "carol", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.ok("logout", json!({})).await;
    // Bob logs in again: the first session ends as `kickout`, at the new login's time.
    let (mut bob, _) = join(&server.base, &app, "room-a", "bob", false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.ok("logout", json!({})).await;
    carol.ok("logout", json!({})).await;

    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| {
        rows.len() == 4 && rows.iter().all(|r| r.logout_ms.is_some())
    })
    .await;
    let find = |user: &str, nth: usize| rows.iter().filter(|r| r.user_id == user).nth(nth).expect("row").clone();
    let (a, b1, b2, c) = (find("alice", 0), find("bob", 0), find("bob", 1), find("carol", 0));
    assert_eq!(a.end_reason.as_deref(), Some("logout"));
    assert_eq!(b1.end_reason.as_deref(), Some("kickout"));
    assert_eq!(b2.end_reason.as_deref(), Some("logout"));
    assert_eq!(c.end_reason.as_deref(), Some("logout"));
    assert_eq!(b1.logout_ms, Some(b2.login_ms), "a replaced session ends when its successor logs in");
    assert!(rows.iter().all(|r| r.worker_id == a.worker_id && r.room_id.starts_with("room-")));
    assert_ne!(b1.session_id, b2.session_id);

    // The whole period: exact sums of the recorded intervals.
    let span = |r: &SessionRow| r.logout_ms.unwrap() - r.login_ms;
    let (from, to) = (a.login_ms - 60_000, now_ms() + 3_600_000);
    let (status, report) = usage(&server, &app, &format!("from={from}&to={to}&groupBy=room")).await;
    assert_eq!(status, 200, "{report}");
    let room_a = span(&a) + span(&b1) + span(&b2);
    assert_eq!(group(&report, "room-a")["participantMs"], room_a);
    assert_eq!(group(&report, "room-a")["participantMinutes"], minutes(room_a));
    assert_eq!(group(&report, "room-a")["sessions"], 3);
    assert_eq!(group(&report, "room-b")["participantMs"], span(&c));
    assert_eq!(report["total"]["participantMs"], room_a + span(&c));
    assert_eq!(report["total"]["participantMinutes"], 1, "under a minute in all: rounded up to 1");
    assert_eq!(report["total"]["streamMs"], 0);

    // A window that cuts through the sessions: each interval clipped to [from, to).
    let (from, to) = (a.login_ms + 100, c.logout_ms.unwrap() - 50);
    let (status, by_user) = usage(&server, &app, &format!("from={from}&to={to}&groupBy=user")).await;
    assert_eq!(status, 200, "{by_user}");
    let within = |r: &SessionRow| clipped(r.login_ms, r.logout_ms.unwrap(), from, to);
    assert_eq!(group(&by_user, "alice")["participantMs"], within(&a));
    assert_eq!(group(&by_user, "bob")["participantMs"], within(&b1) + within(&b2));
    assert_eq!(group(&by_user, "carol")["participantMs"], within(&c));
    assert_eq!(by_user["total"]["participantMs"], within(&a) + within(&b1) + within(&b2) + within(&c));

    // After everything: nothing.
    let after = c.logout_ms.unwrap().max(b2.logout_ms.unwrap()) + 1;
    let (_, empty) = usage(&server, &app, &format!("from={after}&to={}", after + 1000)).await;
    assert_eq!(empty["groups"], json!([]));
    assert_eq!(empty["total"]["participantMs"], 0);

    // By day: the same total, keyed by UTC day.
    let (from, to) = (a.login_ms - 60_000, now_ms() + 3_600_000);
    let (_, by_day) = usage(&server, &app, &format!("from={from}&to={to}&groupBy=day")).await;
    assert_eq!(by_day["total"]["participantMs"], report["total"]["participantMs"]);
    assert!(by_day["groups"][0]["key"].as_str().unwrap().len() == 10, "{by_day}");

    // The CLI prints the same report.
    let args = ["--app-id", &app.app_id.to_string(), "--from", &from.to_string(), "--to", &to.to_string()];
    let cli_report = cli(&db, &[&["usage"][..], &args, &["--group-by", "room", "--json"]].concat());
    let (_, api_report) = usage(&server, &app, &format!("from={from}&to={to}&groupBy=room")).await;
    assert_eq!(cli_report, api_report);
    assert_eq!(cli_report["total"]["participantMs"], report["total"]["participantMs"]);
    let output = std::process::Command::new(BIN)
        .args([&["usage"][..], &args].concat())
        .env_clear()
        .env("HUDDLE_DATABASE_URL", &db.url)
        .output()
        .expect("huddle usage");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("room-a") && table.contains("TOTAL") && table.contains(&room_a.to_string()), "{table}");

    // Refusals.
    let (status, error) = usage(&server, &app, &format!("from={to}&to={from}")).await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(8050)));
    let (status, error) = usage(&server, &app, "from=0").await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(1008)));
    let (status, error) = usage(&server, &app, "from=0&to=1&groupBy=week").await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(8050)));
    let (status, error) = usage(&server, &app, &format!("from=0&to={}", 367 * 86_400_000_i64)).await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(8050)));
    let unsigned = server.http.get(server.url("/v1/usage?from=0&to=1")).send().await.expect("GET");
    assert_eq!(unsigned.status().as_u16(), 401);
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn scripted_logins_give_exact_minutes_on_sqlite() {
    scripted_logins_give_exact_minutes(Db::Sqlite).await;
}

#[tokio::test]
async fn scripted_logins_give_exact_minutes_on_postgres() {
    scripted_logins_give_exact_minutes(Db::Postgres).await;
}

#[tokio::test]
async fn a_published_stream_is_recorded_with_its_relay_and_bytes() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let pool = pool(&db).await;
    let (mut alice, _) = join(&server.base, &app, "room-s", "alice", false).await;
    let _peer = publish_media(&mut alice, "cam-1", "").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    alice.ok("stopPublishingStream", json!({"streamID": "cam-1"})).await;
    let started = Instant::now();
    let row: (String, String, i64, i64, i64, i64) = loop {
        let row: Option<(String, String, i64, Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT user_id, relay_id, start_ms, stop_ms, bytes_in, bytes_out FROM usage_streams \
             WHERE app_id = $1 AND stream_id = 'cam-1'",
        )
        .bind(i64::from(app.app_id))
        .fetch_optional(&pool)
        .await
        .expect("read usage_streams");
        if let Some((user, relay, start, Some(stop), bytes_in, bytes_out)) = row {
            break (user, relay, start, stop, bytes_in, bytes_out);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the stream row was not closed: {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (user, relay, start, stop, bytes_in, _bytes_out) = row;
    assert_eq!(user, "alice");
    let session_worker = sessions(&pool, &app).await[0].worker_id.clone();
    assert_eq!(relay, session_worker, "the relay node is this process");
    assert!(stop - start >= 600, "{start}..{stop}");
    assert!(bytes_in > 10_000, "the publisher's media was counted: {bytes_in}");
    let (status, report) = usage(&server, &app, &format!("from={}&to={}", start - 1000, stop + 1000)).await;
    assert_eq!(status, 200);
    assert_eq!(report["total"]["streamMs"], stop - start);
    assert_eq!(report["total"]["streams"], 1);
    assert_eq!(report["total"]["bytesIn"], bytes_in);
    alice.ok("logout", json!({})).await;
    drop(server);
}

#[tokio::test]
async fn sessions_of_a_crashed_run_close_at_its_last_heartbeat_on_the_next_start() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let lease = || ServerOptions { extra_env: vec![("HUDDLE_REDIS_LEASE_MS", "2000".into())], ..Default::default() };
    let mut server = Server::start_with(&db, lease());
    let pool = pool(&db).await;
    let (_alice, _) = join(&server.base, &app, "room-c", "alice", false).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let killed_at = now_ms();
    server.kill();
    let open = sessions(&pool, &app).await;
    assert_eq!(open[0].logout_ms, None, "a kill -9 writes nothing");

    let _server = Server::start_with(&db, lease());
    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| rows[0].logout_ms.is_some()).await;
    assert_eq!(rows[0].end_reason.as_deref(), Some("worker_lost"));
    let closed_at = rows[0].logout_ms.unwrap();
    // Heartbeats every lease/5 = 400 ms: the last one is at most that (plus a write) before the kill.
    assert!(closed_at <= killed_at && closed_at >= killed_at - 1000, "closed at {closed_at}, killed at {killed_at}");
    let (_, room): (i64, i64) = sqlx::query_as("SELECT app_id, sessions FROM live_rooms WHERE room_id = 'room-c'")
        .fetch_one(&pool)
        .await
        .expect("live room");
    assert_eq!(room, 0, "the room is over");
}

/// Workers on a Redis of the test's own: a dead worker is claimed by whichever worker on the
/// same Redis reaps first, and that one must write to this test's database.
fn redis_worker(redis: &RedisServer) -> ServerOptions<'static> {
    ServerOptions {
        extra_env: vec![
            ("HUDDLE_REDIS_URL", redis.url()),
            ("HUDDLE_REDIS_LEASE_MS", "2000".into()),
            // Records queued, not waited for: what a dead worker left unwritten is the reaper's.
            ("HUDDLE_USAGE_QUEUE", "on".into()),
        ],
        ..Default::default()
    }
}

/// The worker's lease deadline in Redis (ms on Redis's clock), if it holds a lease.
async fn lease_deadline(redis: &RedisServer, worker: &str) -> Option<i64> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("private redis");
    let score: Option<f64> =
        redis::cmd("ZSCORE").arg("huddle:leases").arg(worker).query_async(&mut conn).await.unwrap();
    score.map(|s| s as i64)
}

#[tokio::test]
async fn a_killed_workers_sessions_close_at_its_lease_expiry_as_worker_lost() {
    let redis = RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let mut doomed = Server::start_with(&db, redis_worker(&redis));
    let survivor = Server::start_with(&db, redis_worker(&redis));
    let pool = pool(&db).await;
    let room = format!("room-{}", fresh_nonce());
    let (_alice, _) = join(&doomed.base, &app, &room, "alice", false).await;
    let (_bob, _) = join(&survivor.base, &app, &room, "bob", false).await;
    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| rows.len() == 2).await;
    let alice_start = rows.iter().find(|r| r.user_id == "alice").unwrap().clone();
    let doomed_worker = alice_start.worker_id.clone();
    tokio::time::sleep(Duration::from_millis(800)).await;
    doomed.kill();
    // A dead worker renews nothing more: its score now is the deadline that will pass.
    let deadline = lease_deadline(&redis, &doomed_worker).await.expect("the killed worker's lease is still there");
    // As if alice's queued start row had died with the worker (logins do not wait for it on
    // Redis): the reaper writes it from the member Redis held, then closes it.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM usage_sessions WHERE session_id = $1")
        .bind(&alice_start.session_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE live_rooms SET sessions = sessions - 1 WHERE app_id = $1 AND room_id = $2")
        .bind(i64::from(app.app_id))
        .bind(&room)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let rows = sessions_until(&pool, &app, Duration::from_secs(10), |rows| {
        rows.iter().any(|r| r.user_id == "alice" && r.logout_ms.is_some())
    })
    .await;
    let alice = rows.iter().find(|r| r.user_id == "alice").unwrap();
    let bob = rows.iter().find(|r| r.user_id == "bob").unwrap();
    assert_eq!(alice.end_reason.as_deref(), Some("worker_lost"));
    assert_ne!(alice.worker_id, bob.worker_id);
    assert_eq!(bob.logout_ms, None, "the other worker's session goes on");
    assert_eq!(alice.logout_ms, Some(deadline), "closed at the Redis lease deadline");
    assert_eq!(
        (&alice.session_id, alice.login_ms),
        (&alice_start.session_id, alice_start.login_ms),
        "restored as it was"
    );
    assert!(lease_deadline(&redis, &doomed_worker).await.is_none(), "the reaper claimed the dead worker");
    let workers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_workers").fetch_one(&pool).await.unwrap();
    assert_eq!(workers, 0, "with Redis, no SQL heartbeat is kept");
    // Exactly once: one user_left-worthy close, and the room's live count went down once.
    let (live,): (i64,) = sqlx::query_as("SELECT sessions FROM live_rooms WHERE app_id = $1 AND room_id = $2")
        .bind(i64::from(app.app_id))
        .bind(&room)
        .fetch_one(&pool)
        .await
        .expect("live room");
    assert_eq!(live, 1, "bob is still there");
    drop(survivor);
    db.cleanup().await;
}

#[tokio::test]
async fn live_workers_on_redis_never_close_each_others_sessions_whatever_their_sql_heartbeats_say() {
    let redis = RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let first = Server::start_with(&db, redis_worker(&redis));
    let second = Server::start_with(&db, redis_worker(&redis));
    let pool = pool(&db).await;
    let room = format!("room-{}", fresh_nonce());
    let (_alice, _) = join(&first.base, &app, &room, "alice", false).await;
    let (_bob, _) = join(&second.base, &app, &room, "bob", false).await;
    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| rows.len() == 2).await;
    // What a frozen database or skewed clocks would show: both workers' heartbeats long
    // stale, their leases long expired by SQL's account, for three leases (every worker
    // checks for dead ones many times over meanwhile).
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for row in &rows {
            sqlx::query(
                "INSERT INTO usage_workers (worker_id, started_ms, last_seen_ms, lease_ms) VALUES ($1, 0, 0, 2000) \
                 ON CONFLICT (worker_id) DO UPDATE SET last_seen_ms = 0",
            )
            .bind(&row.worker_id)
            .execute(&pool)
            .await
            .expect("stale heartbeat");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = sessions(&pool, &app).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!((row.logout_ms, row.end_reason.as_deref()), (None, None), "{} was closed", row.user_id);
    }
    drop((first, second));
    db.cleanup().await;
}

#[tokio::test]
async fn lost_connections_and_stopped_workers_end_sessions_with_their_reasons() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let options = ServerOptions {
        extra_env: vec![("HUDDLE_RECONNECT_GRACE_MS", "500".into()), ("HUDDLE_DRAIN_TIMEOUT_MS", "0".into())],
        ..Default::default()
    };
    let mut server = Server::start_with(&db, options);
    let pool = pool(&db).await;
    // Dropped without a logout and not resumed: ends at the grace expiry.
    let (dropped, _) = join(&server.base, &app, "room-r", "dropped", false).await;
    let cut_at = now_ms();
    dropped.cut();
    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| rows[0].logout_ms.is_some()).await;
    assert_eq!(rows[0].end_reason.as_deref(), Some("heartbeat_timeout"));
    let ended = rows[0].logout_ms.unwrap();
    assert!(ended >= cut_at + 450 && ended <= cut_at + 2000, "ended {} ms after the cut", ended - cut_at);

    // Still connected when the worker stops (SIGTERM, no drain time): `shutdown`.
    let (_staying, _) = join(&server.base, &app, "room-r", "staying", false).await;
    server.terminate();
    assert!(server.exited_within(Duration::from_secs(10)).await.is_some(), "the worker stops");
    let rows = sessions(&pool, &app).await;
    let staying = rows.iter().find(|r| r.user_id == "staying").expect("row");
    assert_eq!(staying.end_reason.as_deref(), Some("shutdown"));
    let workers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_workers").fetch_one(&pool).await.unwrap();
    assert_eq!(workers, 0, "a worker that stopped removes its row");
}

/// The database goes away (PostgreSQL refuses connections and drops the open ones) while the
/// app is still in the worker's cache: a login cannot have its usage row written, so it is
/// refused (1007) and leaves nobody in the room; once the database is back, the same login
/// works and is recorded.
#[tokio::test]
async fn a_login_whose_usage_row_cannot_be_written_is_refused_and_leaves_no_member() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-f", "alice", true).await;
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect("postgres://postgres@127.0.0.1:5432/test").await.expect("admin connection");
    let cut = |allow: bool| format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allow}");
    sqlx::query(sqlx::AssertSqlSafe(cut(false))).execute(&admin).await.expect("refuse connections");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .expect("drop the worker's connections");

    let mut bob = common::ws::WsClient::connect(&server.base).await;
    let token = mint(&app, "bob", Some("room-f"), true);
    let code = bob.fails("login", login_data(&app, "room-f", "bob", &token, true)).await;
    assert_eq!(code, 1007, "a login whose record cannot be written is refused");

    sqlx::query(sqlx::AssertSqlSafe(cut(true))).execute(&admin).await.expect("accept connections again");
    // Whatever alice heard of bob meanwhile, bob is not in the room: his retry is a new user.
    let (_bob, data) = join(&server.base, &app, "room-f", "bob", true).await;
    let users: Vec<&str> =
        data["room"]["userList"].as_array().expect("userList").iter().filter_map(|u| u["userID"].as_str()).collect();
    assert_eq!(users, vec!["alice"], "the room as bob finds it: {data}");
    let added = loop {
        let event = alice.event("roomUserUpdate").await;
        if event["updateType"] == "ADD" {
            break event;
        }
    };
    assert_eq!(added["userList"][0]["userID"], "bob");
    let pool = pool(&db).await;
    let rows = sessions_until(&pool, &app, Duration::from_secs(5), |rows| rows.len() == 2).await;
    let bobs: Vec<_> = rows.iter().filter(|r| r.user_id == "bob").collect();
    assert_eq!(bobs.len(), 1, "only the login that was acknowledged is recorded: {rows:#?}");
    assert!(bobs[0].logout_ms.is_none());
    db.cleanup().await;
}
