//! Graceful drain (SIGTERM) of one worker of two on Redis: its clients are told to move, do so
//! without the room seeing them leave, and the worker exits as soon as nobody is left; a
//! client that does not move leaves its room when the drain time is over.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::ws::WsClient;
use common::*;
use serde_json::Value;

fn worker_options(redis: &RedisServer, drain: Duration) -> ServerOptions<'static> {
    ServerOptions {
        extra_env: vec![
            ("HUDDLE_REDIS_URL", redis.url()),
            ("HUDDLE_REDIS_LEASE_MS", "3000".into()),
            ("HUDDLE_RECONNECT_GRACE_MS", "10000".into()),
            ("HUDDLE_DRAIN_TIMEOUT_MS", drain.as_millis().to_string()),
        ],
        ..ServerOptions::default()
    }
}

fn code(body: &str) -> Option<u64> {
    serde_json::from_str::<Value>(body).ok()?["code"].as_u64()
}

/// What a drained client's SDK does on `goaway`: drop the old connection (its session waits
/// on the draining worker), connect again (here: to the other worker, as the load balancer
/// would send it), fail to resume there and log in again.
async fn move_to(base: &str, app: &TestApp, room: &str, user: &str, old: WsClient) -> WsClient {
    old.cut();
    let (client, _) = join(base, app, room, user, true).await;
    client
}

#[tokio::test]
async fn clients_move_off_a_draining_worker_without_the_room_noticing() {
    let redis = RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let drain = Duration::from_secs(20);
    let mut leaving = Server::start_with(&db, worker_options(&redis, drain));
    let staying = Server::start_with(&db, worker_options(&redis, drain));

    let (mut observer, _) = join(&staying.base, &app, "room-1", "observer", true).await;
    let (mut alice, _) = join(&leaving.base, &app, "room-1", "alice", true).await;
    let (mut bob, _) = join(&leaving.base, &app, "room-1", "bob", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "").await;
    for _ in 0..3 {
        observer.next_event().await; // alice and bob ADD, alice-cam ADD
    }

    let started = Instant::now();
    leaving.terminate();
    for client in [&mut alice, &mut bob] {
        let goaway = client.event("goaway").await;
        assert_eq!(goaway["reason"], "draining", "{goaway}");
        assert!(goaway["reconnectWithinMs"].as_u64().is_some_and(|ms| ms > 15_000), "{goaway}");
    }
    // The draining worker takes no newcomers: readiness, websockets and relay sessions.
    let (status, body) = leaving.get("/readyz").await;
    assert_eq!((status, code(&body)), (503, Some(1010)), "{body}");
    match ws::upgrade(&leaving.base, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("a draining worker accepted a websocket: {:?}", other.map(|_| ())),
    }

    // Both move; alice publishes again through the other worker's relay.
    let mut alice = move_to(&staying.base, &app, "room-1", "alice", alice).await;
    let _bob = move_to(&staying.base, &app, "room-1", "bob", bob).await;
    let _alice_cam_again = publish_media(&mut alice, "alice-cam", "").await;

    // The worker exits as soon as nobody is left on it, well before its drain time.
    let status = leaving.exited_within(Duration::from_secs(10)).await.expect("the drained worker exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < drain / 2, "exited after {:?}", started.elapsed());

    // The room saw the stream move (DELETE, ADD) but no user leave or arrive.
    let mut seen = Vec::new();
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        match tokio::time::timeout(Duration::from_millis(200), observer.next_event()).await {
            Ok(event) => seen.push(event),
            Err(_) => continue,
        }
    }
    let users: Vec<&Value> = seen.iter().filter(|e| e["event"] == "roomUserUpdate").collect();
    assert!(users.is_empty(), "user events during the move: {users:?}");
    let streams: Vec<String> = seen
        .iter()
        .filter(|e| e["event"] == "roomStreamUpdate")
        .map(|e| format!("{} {}", e["data"]["updateType"], e["data"]["streamList"][0]["streamID"]))
        .collect();
    assert_eq!(streams, ["\"DELETE\" \"alice-cam\"", "\"ADD\" \"alice-cam\""], "{seen:?}");
    // Everyone is still in the room, and the stream plays from the worker that stayed.
    let (mut late, reply) = join(&staying.base, &app, "room-1", "late", true).await;
    let mut users: Vec<&str> =
        reply["room"]["userList"].as_array().unwrap().iter().filter_map(|u| u["userID"].as_str()).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob", "observer"]);
    let (player, grant) = play_media(&mut late, "alice-cam").await;
    assert!(grant["url"].as_str().unwrap().starts_with(&staying.base), "{grant}");
    wait_for_video(&player, 5).await;
    drop(staying);
    db.cleanup().await;
}

#[tokio::test]
async fn a_client_that_does_not_move_leaves_when_the_drain_time_is_over() {
    let redis = RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let drain = Duration::from_secs(3);
    let mut leaving = Server::start_with(&db, worker_options(&redis, drain));
    let staying = Server::start_with(&db, worker_options(&redis, drain));
    let (mut observer, _) = join(&staying.base, &app, "room-1", "observer", true).await;
    let (mut stubborn, _) = join(&leaving.base, &app, "room-1", "stubborn", true).await;
    observer.next_event().await; // stubborn ADD

    let started = Instant::now();
    leaving.terminate();
    stubborn.event("goaway").await;
    // It stays: once the drain time is over its session ends and its connection closes.
    assert_eq!(stubborn.close_code().await, Some(1001));
    let left = observer.event("roomUserUpdate").await;
    assert_eq!(
        (left["updateType"].as_str(), left["userList"][0]["userID"].as_str()),
        (Some("DELETE"), Some("stubborn"))
    );
    assert!(started.elapsed() >= drain, "ended after {:?}, before the drain time", started.elapsed());
    let status = leaving.exited_within(Duration::from_secs(10)).await.expect("the worker exits after its drain time");
    assert!(status.success(), "{status:?}");
    drop(staying);
    db.cleanup().await;
}

/// Publishes through signaling as the SDK does; returns the peer, the grant reply and the
/// relay session's URL (to end it).
async fn publish_via(client: &mut WsClient, stream_id: &str) -> (huddle::loadtest::peer::MediaPeer, Value, String) {
    use huddle::loadtest::peer::{PendingPeer, Role};
    let grant = client.ok("publishStream", serde_json::json!({"streamID": stream_id})).await;
    let (pending, offer) = PendingPeer::offer(Role::Publish, "127.0.0.1".parse().unwrap()).unwrap();
    let url = grant["url"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {}", grant["grant"].as_str().unwrap()))
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let base = url[..url.find("/relay/").unwrap()].to_owned();
    let peer = pending.connect(&response.text().await.unwrap()).unwrap();
    media_state(client, "publisherStateUpdate", stream_id, "PUBLISHING").await;
    (peer, grant, format!("{base}{location}"))
}

#[tokio::test]
async fn a_draining_relay_node_sends_its_publishers_to_another_relay() {
    let redis = RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let with_role = |role: &str| {
        let mut options = worker_options(&redis, Duration::from_secs(20));
        options.extra_env.push(("HUDDLE_ROLE", role.to_owned()));
        options
    };
    let mut first_relay = Server::start_with(&db, with_role("relay"));
    let signaling = Server::start_with(&db, with_role("signaling"));
    let (mut alice, _) = join(&signaling.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&signaling.base, &app, "room-1", "bob", false).await;
    let (_old_camera, grant, old_session) = publish_via(&mut alice, "alice-cam").await;
    assert!(grant["url"].as_str().unwrap().starts_with(&first_relay.base), "{grant}");
    bob.event("roomStreamUpdate").await;
    let (old_player, _) = play_media(&mut bob, "alice-cam").await;
    wait_for_video(&old_player, 5).await;
    let second_relay = Server::start_with(&db, with_role("relay"));
    let started = Instant::now();
    first_relay.terminate();
    // Alice hears that her publish ended for a reason that says "go elsewhere".
    let ended = loop {
        let update = alice.event("publisherStateUpdate").await;
        if update["state"] == "NO_PUBLISH" {
            break update;
        }
    };
    assert_eq!(ended["errorCode"], 1010, "{ended}");
    // What the SDK does: end the old relay session, publish again; signaling picks the
    // relay that is not draining.
    let deleted = reqwest::Client::new().delete(&old_session).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let (_new_camera, grant, _) = publish_via(&mut alice, "alice-cam").await;
    assert!(grant["url"].as_str().unwrap().starts_with(&second_relay.base), "{grant}");
    // Bob sees the stream go and come back, and plays it from the other relay.
    for expected in ["DELETE", "ADD"] {
        let update = bob.event("roomStreamUpdate").await;
        assert_eq!(update["updateType"], expected, "{update}");
    }
    let (player, grant) = play_media(&mut bob, "alice-cam").await;
    assert!(grant["url"].as_str().unwrap().starts_with(&second_relay.base), "{grant}");
    wait_for_video(&player, 5).await;
    drop(old_player);
    // The drained relay exits once its last peer is gone, long before its drain time.
    let status = first_relay.exited_within(Duration::from_secs(15)).await.expect("the drained relay exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(18), "exited after {:?}", started.elapsed());
    drop((signaling, second_relay));
    db.cleanup().await;
}
