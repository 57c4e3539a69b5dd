//! Webhooks against the real binary and a local receiver: delivery and signatures, order per
//! room, retries after `500`s and timeouts, a backlog that survives a restart and is
//! delivered once, and two workers on PostgreSQL never delivering the same event twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::receiver::{Answer, Received, Receiver};
use common::*;
use serde_json::{Value, json};
use sqlx::AnyPool;

const SECRET: &str = "whsec_0123456789abcdef0123456789";

/// Quick retries and a short request timeout, so that the tests see several attempts.
fn fast(redis: bool) -> ServerOptions<'static> {
    ServerOptions {
        redis,
        extra_env: vec![
            ("HUDDLE_WEBHOOK_TIMEOUT_MS", "500".into()),
            ("HUDDLE_WEBHOOK_RETRY_BASE_MS", "100".into()),
            ("HUDDLE_WEBHOOK_RETRY_MAX_MS", "400".into()),
            ("HUDDLE_REDIS_LEASE_MS", "2000".into()),
        ],
        ..Default::default()
    }
}

async fn pool(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&db.url).await.expect("open the test database")
}

async fn set_webhook(server: &Server, app: &TestApp, url: &str) {
    let body = json!({"url": url, "secret": SECRET}).to_string();
    let (status, reply) = server.send(&SignedRequest::new(app, "PUT", "/v1/app/webhook", &body)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({"appId": app.app_id, "url": url, "secret": SECRET}));
    let (status, current) = server.send(&SignedRequest::new(app, "GET", "/v1/app/webhook", "")).await;
    assert_eq!((status, current), (200, reply));
}

/// Events of each room in the order they were delivered: (type, user).
fn by_room(delivered: &[Received]) -> HashMap<String, Vec<(String, String)>> {
    let mut rooms: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in delivered {
        let user = r.event["userId"].as_str().unwrap_or("").to_owned();
        let kind = r.event["type"].as_str().unwrap_or("?").to_owned();
        rooms.entry(r.event["roomId"].as_str().unwrap_or("?").to_owned()).or_default().push((kind, user));
    }
    rooms
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, u)| (k.to_string(), u.to_string())).collect()
}

/// Every event id delivered exactly once; returns them.
fn each_once(delivered: &[Received]) -> HashSet<String> {
    let mut seen = HashSet::new();
    for r in delivered {
        assert_eq!(r.id_header, r.event["id"], "the id header names the event");
        assert!(seen.insert(r.id_header.clone()), "{} was delivered twice", r.id_header);
    }
    seen
}

/// The outbox's events per room in sequence order.
async fn outbox_order(pool: &AnyPool) -> HashMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT room_id, event_id FROM webhook_outbox ORDER BY seq")
        .fetch_all(pool)
        .await
        .expect("outbox");
    let mut rooms: HashMap<String, Vec<String>> = HashMap::new();
    for (room, id) in rows {
        rooms.entry(room).or_default().push(id);
    }
    rooms
}

async fn delivered_and_signed(kind: Db) {
    let db = TestDb::new(kind).await;
    let app = create_app(&db);
    let receiver = Receiver::start().await;
    let server = Server::start_with(&db, fast(false));
    set_webhook(&server, &app, &receiver.url).await;

    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    let (mut carol, _) = join(&server.base, &app, "room-2", "carol", false).await;
    bob.ok("logout", json!({})).await;
    alice.ok("logout", json!({})).await;
    carol.ok("logout", json!({})).await;

    let delivered = receiver.wait_for(Duration::from_secs(10), "10 events", |d| d.len() >= 10).await;
    assert_eq!(delivered.len(), 10);
    each_once(&delivered);
    let now = huddle::auth::unix_now();
    for r in &delivered {
        assert_eq!(huddle::webhooks::verify(SECRET.as_bytes(), &r.signature, r.body.as_bytes(), now, 300), Ok(()));
        assert!(r.signature.starts_with("t=") && r.signature.contains(",v1="), "{}", r.signature);
        assert_eq!(r.event["appId"], app.app_id);
        assert!(r.event["timestampMs"].as_i64().unwrap() > 1_700_000_000_000);
    }
    let rooms = by_room(&delivered);
    assert_eq!(
        rooms["room-1"],
        pairs(&[
            ("room_started", ""),
            ("user_joined", "alice"),
            ("user_joined", "bob"),
            ("user_left", "bob"),
            ("user_left", "alice"),
            ("room_finished", "")
        ])
    );
    assert_eq!(
        rooms["room-2"],
        pairs(&[("room_started", ""), ("user_joined", "carol"), ("user_left", "carol"), ("room_finished", "")])
    );
    let left = delivered.iter().find(|r| r.event["type"] == "user_left").unwrap();
    assert_eq!(left.event["reason"], "logout");
    assert!(left.event["sessionId"].as_str().is_some_and(|s| s.len() == 32));
    // A tampered body does not verify.
    let tampered = delivered[0].body.replace("room-", "room+");
    assert!(
        huddle::webhooks::verify(SECRET.as_bytes(), &delivered[0].signature, tampered.as_bytes(), now, 300).is_err()
    );

    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_webhook_attempts_total{outcome="delivered"} 10"#), "{metrics}");
    assert!(metrics.contains("huddle_webhook_delivery_latency_seconds_count 10"));
    assert!(metrics.contains("huddle_webhook_events_enqueued_total 10"));

    // Bad settings are refused with their codes; null turns webhooks off.
    let bad = json!({"url": "ftp://example.com"}).to_string();
    let (status, error) = server.send(&SignedRequest::new(&app, "PUT", "/v1/app/webhook", &bad)).await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(8051)));
    let bad = json!({"url": "https://example.com", "secret": "short"}).to_string();
    let (status, error) = server.send(&SignedRequest::new(&app, "PUT", "/v1/app/webhook", &bad)).await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(8052)));
    let off = json!({"url": null}).to_string();
    let (status, reply) = server.send(&SignedRequest::new(&app, "PUT", "/v1/app/webhook", &off)).await;
    assert_eq!((status, reply), (200, json!({"appId": app.app_id, "url": null, "secret": null})));
    let (mut dave, _) = join(&server.base, &app, "room-3", "dave", false).await;
    dave.ok("logout", json!({})).await;
    let outbox: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox").fetch_one(&pool(&db).await).await.unwrap();
    assert_eq!(outbox, 10, "no events are queued for an app without a webhook");
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn events_are_signed_and_delivered_in_room_order_on_sqlite() {
    delivered_and_signed(Db::Sqlite).await;
}

#[tokio::test]
async fn events_are_signed_and_delivered_in_room_order_on_postgres() {
    delivered_and_signed(Db::Postgres).await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_after_500s_and_timeouts_without_reordering() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    // Two 500s, then a request held past the 500 ms timeout, then success.
    let receiver = Receiver::scripted(|n, _| match n {
        0 | 1 => Answer::Status(500),
        2 => Answer::Stall(Duration::from_secs(3)),
        _ => Answer::Status(200),
    })
    .await;
    let server = Server::start_with(&db, fast(false));
    set_webhook(&server, &app, &receiver.url).await;
    let (mut alice, _) = join(&server.base, &app, "room-r", "alice", false).await;
    alice.ok("logout", json!({})).await;

    let delivered = receiver.wait_for(Duration::from_secs(15), "4 events", |d| d.len() >= 4).await;
    let received = receiver.received();
    let first = &received[0].id_header;
    assert_eq!(received[0].event["type"], "room_started");
    assert!(received[..4].iter().all(|r| &r.id_header == first), "the room's first event is retried before any other");
    assert_eq!(received.iter().map(|r| r.status).take(4).collect::<Vec<_>>(), vec![500, 500, 0, 200]);
    assert_eq!(
        by_room(&delivered)["room-r"],
        pairs(&[("room_started", ""), ("user_joined", "alice"), ("user_left", "alice"), ("room_finished", "")])
    );
    let pool = pool(&db).await;
    let (attempts, outcome, error): (i64, String, Option<String>) =
        sqlx::query_as("SELECT attempts, outcome, last_error FROM webhook_outbox WHERE event_id = $1")
            .bind(first)
            .fetch_one(&pool)
            .await
            .expect("outbox row");
    assert_eq!((attempts, outcome.as_str(), error), (4, "delivered", None));
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_webhook_attempts_total{outcome="failed"} 3"#), "{metrics}");
}

/// One app's endpoint hangs: its rooms' events are held back by the app's breaker (one probe
/// at a time) instead of each room's head taking a request timeout in every round, and another
/// app's events go on being delivered.
#[tokio::test]
async fn a_hanging_endpoint_of_one_app_is_probed_not_flooded_and_others_go_on() {
    let db = TestDb::new(Db::Sqlite).await;
    let (stuck_app, healthy_app) = (create_app(&db), create_app(&db));
    let stuck = Receiver::scripted(|_, _| Answer::Stall(Duration::from_secs(30))).await;
    let healthy = Receiver::start().await;
    let server = Server::start_with(&db, fast(false));
    set_webhook(&server, &stuck_app, &stuck.url).await;
    set_webhook(&server, &healthy_app, &healthy.url).await;
    const STUCK_ROOMS: usize = 8;
    for room in 0..STUCK_ROOMS {
        let (mut client, _) = join(&server.base, &stuck_app, &format!("s{room}"), "u", false).await;
        client.ok("logout", json!({})).await;
    }
    for room in 0..4 {
        let (mut client, _) = join(&server.base, &healthy_app, &format!("h{room}"), "u", false).await;
        client.ok("logout", json!({})).await;
    }
    healthy.wait_for(Duration::from_secs(20), "the healthy app's 16 events", |d| d.len() >= 16).await;

    // Watch the stuck endpoint for 4 s from its first request. Without the breaker every
    // room's head is retried on its own schedule (100-400 ms apart here, after each 500 ms
    // timeout): some 40 requests; with it, the first round's heads, then one probe at a time.
    let first = stuck.received().first().map(|r| r.at).expect("the stuck endpoint was tried");
    tokio::time::sleep_until(tokio::time::Instant::from_std(first + Duration::from_secs(4))).await;
    let in_window = stuck.received().iter().filter(|r| r.at <= first + Duration::from_secs(4)).count();
    eprintln!("the hanging endpoint got {in_window} requests in 4 s");
    assert!(in_window <= STUCK_ROOMS + 10, "the hanging endpoint was flooded: {in_window} requests in 4 s");
    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_webhook_endpoints_unreachable 1"), "{metrics}");
    db.cleanup().await;
}

async fn backlog_survives_a_restart(kind: Db) {
    let db = TestDb::new(kind).await;
    let app = create_app(&db);
    // Nothing listens on the port yet: every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let mut server = Server::start_with(&db, fast(false));
    set_webhook(&server, &app, &url).await;
    for (room, user) in [("r1", "a"), ("r1", "b"), ("r2", "c"), ("r3", "d"), ("r3", "e")] {
        let (mut client, _) = join(&server.base, &app, room, user, false).await;
        client.ok("logout", json!({})).await;
    }
    let pool = pool(&db).await;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(total, 5 * 4, "each login/logout pair is a room of its own or joins one: 20 events");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let tried: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE attempts > 0 AND done_ms IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The first failures open the app's breaker: its other rooms' heads wait for a probe.
    assert!(tried >= 1, "the room heads were tried and failed: {tried}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_webhook_endpoints_unreachable 1"), "{metrics}");
    server.kill();

    let receiver = Receiver::on_port(port, |_, _| Answer::Status(200)).await;
    let server = Server::start_with(&db, fast(false));
    let delivered = receiver.wait_for(Duration::from_secs(20), "the backlog", |d| d.len() >= total as usize).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let delivered_later = receiver.delivered();
    assert_eq!(delivered_later.len(), delivered.len(), "nothing is delivered twice");
    each_once(&delivered_later);
    let order = outbox_order(&pool).await;
    for (room, ids) in &order {
        let got: Vec<String> = delivered_later
            .iter()
            .filter(|r| r.event["roomId"] == room.as_str())
            .map(|r| r.id_header.clone())
            .collect();
        assert_eq!(&got, ids, "room {room} in outbox order");
    }
    let undone: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE done_ms IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(undone, 0);
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn a_backlog_survives_a_kill_and_restart_and_is_delivered_once_on_sqlite() {
    backlog_survives_a_restart(Db::Sqlite).await;
}

#[tokio::test]
async fn a_backlog_survives_a_kill_and_restart_and_is_delivered_once_on_postgres() {
    backlog_survives_a_restart(Db::Postgres).await;
}

#[tokio::test]
async fn two_workers_on_postgres_never_deliver_the_same_event_twice() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    // A little latency per request, so that both workers' rounds overlap.
    let receiver = Receiver::scripted(|_, _| Answer::Status(200)).await;
    let set = cli(&db, &["app", "update", "--app-id", &app.app_id.to_string(), "--webhook-url", &receiver.url]);
    assert!(set["webhookSecret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{set}");
    let workers = [Server::start_with(&db, fast(true)), Server::start_with(&db, fast(true))];
    let prefix = fresh_nonce();
    let mut clients = Vec::new();
    for room in 0..8 {
        for user in 0..3 {
            let worker = &workers[(room + user) % 2];
            let (client, _) = join(&worker.base, &app, &format!("{prefix}-{room}"), &format!("u{user}"), false).await;
            clients.push(client);
        }
    }
    for mut client in clients {
        client.ok("logout", json!({})).await;
    }
    let pool = pool(&db).await;
    // On Redis records are queued, not waited for: they commit shortly after.
    let total = 8 * (1 + 3 + 3 + 1);
    let queued_for = std::time::Instant::now();
    loop {
        let written: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox").fetch_one(&pool).await.unwrap();
        if written >= total {
            assert_eq!(written, total);
            break;
        }
        assert!(queued_for.elapsed() < Duration::from_secs(5), "{written} of {total} events written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = receiver.wait_for(Duration::from_secs(20), "every event", |d| d.len() >= total as usize).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let delivered_later = receiver.delivered();
    assert_eq!(delivered_later.len(), delivered.len(), "nothing more arrived: no event twice");
    assert_eq!(each_once(&delivered_later).len(), total as usize);
    let order = outbox_order(&pool).await;
    for (room, ids) in &order {
        let got: Vec<String> = delivered_later
            .iter()
            .filter(|r| r.event["roomId"] == room.as_str())
            .map(|r| r.id_header.clone())
            .collect();
        assert_eq!(&got, ids, "room {room} in outbox order");
        let kinds: Vec<Value> = delivered_later
            .iter()
            .filter(|r| r.event["roomId"] == room.as_str())
            .map(|r| r.event["type"].clone())
            .collect();
        assert_eq!(kinds.first(), Some(&json!("room_started")));
        assert_eq!(kinds.last(), Some(&json!("room_finished")));
        assert_eq!(kinds.iter().filter(|k| **k == "room_started").count(), 1, "one start per room across workers");
    }
    drop(workers);
    db.cleanup().await;
}

#[tokio::test]
async fn published_streams_are_announced_in_their_rooms_order() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let receiver = Receiver::start().await;
    let server = Server::start_with(&db, fast(false));
    set_webhook(&server, &app, &receiver.url).await;
    let (mut alice, _) = join(&server.base, &app, "room-s", "alice", false).await;
    let _peer = publish_media(&mut alice, "cam-a", "").await;
    alice.ok("stopPublishingStream", json!({"streamID": "cam-a"})).await;
    media_state(&mut alice, "publisherStateUpdate", "cam-a", "NO_PUBLISH").await;
    alice.ok("logout", json!({})).await;
    let delivered = receiver.wait_for(Duration::from_secs(10), "6 events", |d| d.len() >= 6).await;
    assert_eq!(
        by_room(&delivered)["room-s"],
        pairs(&[
            ("room_started", ""),
            ("user_joined", "alice"),
            ("stream_published", "alice"),
            ("stream_unpublished", "alice"),
            ("user_left", "alice"),
            ("room_finished", "")
        ])
    );
    let published = delivered.iter().find(|r| r.event["type"] == "stream_published").unwrap();
    assert_eq!(published.event["streamId"], "cam-a");
}

/// A server kick and a room close end the sessions' records with their reasons, and the
/// room's receiver hears `user_left` with those reasons, then `room_finished`. On Redis with
/// `--usage-queue on`, so records are queued (not waited for) and their order per room is the
/// writer's.
#[tokio::test]
async fn a_server_kick_and_a_room_close_end_records_as_kicked_by_server_and_room_closed() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let receiver = Receiver::start().await;
    let mut options = fast(true);
    options.extra_env.push(("HUDDLE_USAGE_QUEUE", "on".into()));
    let server = Server::start_with(&db, options);
    set_webhook(&server, &app, &receiver.url).await;
    let room = format!("room-{}", fresh_nonce());
    let (mut alice, _) = join(&server.base, &app, &room, "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, &room, "bob", false).await;
    let kick = json!({"roomId": room, "userIds": ["bob"], "reason": "rude"}).to_string();
    let (status, reply) = server.signed_post(&app, "/v1/rooms/kick", &kick).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(bob.event("kickout").await["error"]["code"], 5023);
    let close = json!({"roomId": room, "reason": "over"}).to_string();
    let (status, reply) = server.signed_post(&app, "/v1/rooms/close", &close).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alice.event("kickout").await["error"]["code"], 5024);

    let delivered = receiver.wait_for(Duration::from_secs(10), "6 events", |d| d.len() >= 6).await;
    each_once(&delivered);
    assert_eq!(
        by_room(&delivered)[&room],
        pairs(&[
            ("room_started", ""),
            ("user_joined", "alice"),
            ("user_joined", "bob"),
            ("user_left", "bob"),
            ("user_left", "alice"),
            ("room_finished", "")
        ])
    );
    let reason = |user: &str| {
        delivered
            .iter()
            .find(|r| r.event["type"] == "user_left" && r.event["userId"] == user)
            .map(|r| r.event["reason"].clone())
    };
    assert_eq!(reason("bob"), Some(json!("kicked_by_server")));
    assert_eq!(reason("alice"), Some(json!("room_closed")));
    let rows: Vec<(String, Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT user_id, end_reason, logout_ms FROM usage_sessions WHERE room_id = $1 ORDER BY user_id")
            .bind(&room)
            .fetch_all(&pool(&db).await)
            .await
            .expect("usage rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_deref()), ("alice", Some("room_closed")));
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_deref()), ("bob", Some("kicked_by_server")));
    assert!(rows.iter().all(|r| r.2.is_some()));
    drop(server);
    db.cleanup().await;
}
