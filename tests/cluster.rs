//! Several `huddle serve` workers sharing Redis and PostgreSQL: users on different workers
//! see each other; a killed worker's users are removed within the lease; a Redis that comes
//! back empty is refilled by the workers.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ws::WsClient;
use common::*;
use huddle::loadtest::peer::{MediaPeer, PeerOptions};
use serde_json::json;

fn cluster_options(redis_url: &str) -> ServerOptions<'static> {
    ServerOptions {
        extra_env: vec![
            ("HUDDLE_REDIS_URL", redis_url.to_owned()),
            ("HUDDLE_REDIS_LEASE_MS", "2000".into()),
            ("HUDDLE_RECONNECT_GRACE_MS", "1000".into()),
        ],
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn users_on_different_workers_see_each_other() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let first = Server::start_with(&db, cluster_options(&redis_url()));
    let second = Server::start_with(&db, cluster_options(&redis_url()));

    let (mut alice, _) = join(&first.base, &app, "room-1", "alice", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "").await;
    alice.ok("setRoomExtraInfo", json!({"key": "topic", "value": "cluster"})).await;
    let (mut bob, reply) = join(&second.base, &app, "room-1", "bob", true).await;
    assert_eq!(reply["room"]["userList"][0]["userID"], "alice");
    assert_eq!(reply["room"]["streamList"][0]["streamID"], "alice-cam");
    assert_eq!(reply["room"]["roomExtraInfoList"][0]["value"], "cluster");
    let added = alice.event("roomUserUpdate").await;
    assert_eq!((added["updateType"].as_str(), added["userList"][0]["userID"].as_str()), (Some("ADD"), Some("bob")));

    bob.ok("sendBroadcastMessage", json!({"message": "across workers"})).await;
    assert_eq!(alice.event("IMRecvBroadcastMessage").await["messageList"][0]["message"], "across workers");
    alice.ok("sendCustomCommand", json!({"command": "ping", "toUserIDs": ["bob"]})).await;
    assert_eq!(bob.event("IMRecvCustomCommand").await["command"], "ping");

    // The same user logging in on the other worker kicks the first connection.
    let (mut alice_again, _) = join(&second.base, &app, "room-1", "alice", true).await;
    assert_eq!(alice.event("kickout").await["error"]["code"], 5009);
    assert_eq!(bob.event("roomStreamUpdate").await["updateType"], "DELETE", "the kicked session's stream ends");
    bob.quiet(Duration::from_millis(400)).await;

    alice_again.ok("logout", json!({})).await;
    let left = bob.event("roomUserUpdate").await;
    assert_eq!((left["updateType"].as_str(), left["userList"][0]["userID"].as_str()), (Some("DELETE"), Some("alice")));
    drop((first, second));
    db.cleanup().await;
}

#[tokio::test]
async fn a_killed_worker_s_users_are_removed_within_the_lease() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let mut doomed = Server::start_with(&db, cluster_options(&redis_url()));
    let survivor = Server::start_with(&db, cluster_options(&redis_url()));
    let (mut watcher, _) = join(&survivor.base, &app, "room-1", "watcher", true).await;
    let (mut victim, _) = join(&doomed.base, &app, "room-1", "victim", true).await;
    let _victim_cam = publish_media(&mut victim, "victim-cam", "").await;
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    assert_eq!(watcher.event("roomStreamUpdate").await["updateType"], "ADD");

    doomed.kill(); // SIGKILL: no goodbye, no leave
    let killed_at = Instant::now();
    assert_eq!(watcher.event("roomStreamUpdate").await["updateType"], "DELETE");
    let gone = watcher.event("roomUserUpdate").await;
    assert_eq!((gone["updateType"].as_str(), gone["userList"][0]["userID"].as_str()), (Some("DELETE"), Some("victim")));
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(8), "removed after {took:?} with a 2 s lease");
    drop(victim);
    db.cleanup().await;
}

/// A Redis of this test's own, so that restarting it disturbs no other test.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start_on(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(5), "private Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { port, child }
    }

    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        PrivateRedis::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis and starts an empty one on the same port.
    fn restart_empty(mut self) -> PrivateRedis {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(300));
        PrivateRedis::start_on(self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn rooms_come_back_after_redis_restarts_empty() {
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let first = Server::start_with(&db, cluster_options(&redis.url()));
    let second = Server::start_with(&db, cluster_options(&redis.url()));
    let (mut alice, _) = join(&first.base, &app, "room-1", "alice", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "").await;
    alice.ok("setRoomExtraInfo", json!({"key": "topic", "value": "survives"})).await;
    let (mut bob, _) = join(&second.base, &app, "room-1", "bob", true).await;
    assert_eq!(alice.event("roomUserUpdate").await["updateType"], "ADD");

    let redis = redis.restart_empty();
    // Both workers notice their lease vanished, put their sessions back and tell members.
    let resync = alice.event("resync").await;
    assert!(resync["streamList"].is_array());
    bob.event("resync").await;

    // A newcomer finds the whole room; the old members hear about the newcomer.
    let started = Instant::now();
    let (mut carol, reply) = loop {
        let (client, reply) = join(&first.base, &app, "room-1", "carol", true).await;
        let users = reply["room"]["userList"].as_array().map(Vec::len).unwrap_or(0);
        if users == 2 || started.elapsed() > Duration::from_secs(10) {
            break (client, reply);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut users: Vec<&str> =
        reply["room"]["userList"].as_array().unwrap().iter().map(|u| u["userID"].as_str().unwrap()).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(reply["room"]["streamList"][0]["streamID"], "alice-cam");
    assert_eq!(reply["room"]["roomExtraInfoList"][0]["value"], "survives");
    let heard = bob.event("roomUserUpdate").await;
    assert_eq!(heard["userList"][0]["userID"], "carol");
    carol.ok("sendBroadcastMessage", json!({"message": "after the restart"})).await;
    assert_eq!(alice.event("IMRecvBroadcastMessage").await["messageList"][0]["message"], "after the restart");
    drop((first, second, redis));
    db.cleanup().await;
}

#[tokio::test]
async fn resume_works_on_the_worker_that_held_the_session() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let worker = Server::start_with(&db, cluster_options(&redis_url()));
    let other = Server::start_with(&db, cluster_options(&redis_url()));
    let (mut watcher, _) = join(&other.base, &app, "room-1", "watcher", true).await;
    let (alice, session) = join(&worker.base, &app, "room-1", "alice", true).await;
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    alice.cut();
    let mut back = WsClient::connect(&worker.base).await;
    back.ok("resume", json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]})).await;
    watcher.quiet(Duration::from_millis(1500)).await; // longer than the 1 s grace: no DELETE
    drop((worker, other));
    db.cleanup().await;
}

#[tokio::test]
async fn signaling_sends_media_to_a_separate_relay_node() {
    // Relays announce themselves deployment-wide: a Redis of its own keeps other tests' relays out.
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let with_role = |role: &str| {
        let mut options = cluster_options(&redis.url());
        options.extra_env.push(("HUDDLE_ROLE", role.to_owned()));
        options
    };
    let relay_node = Server::start_with(&db, with_role("relay"));
    let signaling_node = Server::start_with(&db, with_role("signaling"));
    let (status, _) = relay_node.get("/ws").await;
    assert_eq!(status, 404, "a relay node serves no websocket");

    let (mut alice, _) = join(&signaling_node.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&signaling_node.base, &app, "room-1", "bob", false).await;
    let grant = alice.ok("publishStream", json!({"streamID": "probe"})).await;
    assert!(grant["url"].as_str().unwrap().starts_with(&relay_node.base), "publish goes to the relay node: {grant}");
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let added = bob.event("roomStreamUpdate").await;
    assert_eq!(added["streamList"][0]["streamID"], "alice-cam");
    assert!(added["streamList"][0].get("relayURL").is_none(), "relay routing stays inside the server: {added}");

    let (player, grant) = play_media(&mut bob, "alice-cam").await;
    let url = grant["url"].as_str().unwrap();
    assert!(url.starts_with(&relay_node.base), "play goes to the relay that holds the stream: {url}");
    wait_for_video(&player, 10).await;

    // The relay node dying is a stream stop: its lease lapses and the stream leaves the room.
    let mut relay_node = relay_node;
    relay_node.kill();
    let killed_at = Instant::now();
    let removed = bob.event("roomStreamUpdate").await;
    assert_eq!(
        (removed["updateType"].as_str(), removed["streamList"][0]["streamID"].as_str()),
        (Some("DELETE"), Some("alice-cam"))
    );
    assert!(killed_at.elapsed() < Duration::from_secs(8), "stream removed after {:?}", killed_at.elapsed());
    drop((signaling_node, redis));
    db.cleanup().await;
}

/// Waits until the relay at `url` has announced at least `peers` peers (relays announce every
/// few seconds; signaling places players by these announcements).
async fn announced(redis: &PrivateRedis, url: &str, peers: u64) {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let started = Instant::now();
    loop {
        let raw: Vec<String> = redis::AsyncCommands::hvals(&mut conn, "huddle:relays").await.expect("relays");
        let relays: Vec<serde_json::Value> = raw.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
        if relays.iter().any(|r| r["url"] == url && r["peers"].as_u64().is_some_and(|p| p >= peers)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{url} never announced {peers} peers: {relays:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `huddle_relay_peers` gauge of a relay node.
async fn relay_peers(node: &Server) -> u64 {
    let metrics = node.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("huddle_relay_peers "))
        .and_then(|v| v.trim().parse().ok())
        .expect("huddle_relay_peers")
}

/// Which of `relays` a grant's relay URL names.
fn relay_of(grant: &serde_json::Value, relays: &[&Server]) -> usize {
    let url = grant["url"].as_str().expect("a relay url");
    relays.iter().position(|r| url.starts_with(&r.base)).unwrap_or_else(|| panic!("{url} is none of the relays"))
}

#[tokio::test]
async fn clients_use_the_relays_of_their_signaling_nodes_region() {
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let node = |role: &str, region: &str| {
        let mut options = cluster_options(&redis.url());
        options.extra_env.push(("HUDDLE_ROLE", role.to_owned()));
        options.extra_env.push(("HUDDLE_REGION", region.to_owned()));
        options.extra_env.push(("HUDDLE_RELAY_THREADS", "1".to_owned()));
        Server::start_with(&db, options)
    };
    let (eu_relay, us_relay) = (node("relay", "eu"), node("relay", "us"));
    let (eu, us) = (node("signaling", "eu"), node("signaling", "us"));
    for relay in [&eu_relay, &us_relay] {
        announced(&redis, &relay.base, 0).await;
    }
    let relays = [&eu_relay, &us_relay];

    // Publishers go to their region's relay, whichever is less busy.
    let (mut alice, _) = join(&eu.base, &app, "room-1", "alice", false).await;
    let (mut dave, _) = join(&us.base, &app, "room-1", "dave", false).await;
    assert_eq!(relay_of(&alice.ok("publishStream", json!({"streamID": "probe"})).await, &relays), 0);
    assert_eq!(relay_of(&dave.ok("publishStream", json!({"streamID": "probe"})).await, &relays), 1);
    let alice_cam = publish_media(&mut alice, "alice-cam", "").await;

    // A player in the other region gets the stream from its own region's relay, which pulls it
    // across; a player in the stream's region plays it where it is.
    let (mut bob, _) = join(&us.base, &app, "room-1", "bob", false).await;
    let (bob_player, grant) = play_media(&mut bob, "alice-cam").await;
    assert_eq!(relay_of(&grant, &relays), 1, "bob (us) plays from the us relay");
    let (mut carol, _) = join(&eu.base, &app, "room-1", "carol", false).await;
    let (carol_player, grant) = play_media(&mut carol, "alice-cam").await;
    assert_eq!(relay_of(&grant, &relays), 0, "carol (eu) plays from the eu relay");
    wait_for_video(&bob_player, 20).await;
    wait_for_video(&carol_player, 20).await;
    // eu: alice's publisher, carol, and the us relay's pull; us: the pull and bob.
    assert_eq!((relay_peers(&eu_relay).await, relay_peers(&us_relay).await), (3, 2));

    drop((alice_cam, bob_player, carol_player));
    for relay in relays {
        emptied(relay, Duration::from_secs(5)).await;
    }
    drop((alice, bob, carol, dave, eu, us, eu_relay, us_relay, redis));
    db.cleanup().await;
}

/// Three relay nodes and a signaling node; alice publishes on one relay (the origin), p1 and
/// p2 play there, and once it is busy p3 and p4 are sent to the two others (the edges), each
/// of which pulls the stream from the origin.
struct Cascade {
    relays: [Server; 3],
    signaling: Server,
    alice: ws::WsClient,
    camera: huddle::loadtest::peer::MediaPeer,
    published_at: Instant,
    /// p1..p4's websockets, players and relay sessions' URLs, in that order.
    viewers: Vec<ws::WsClient>,
    players: Vec<huddle::loadtest::peer::MediaPeer>,
    sessions: Vec<String>,
    origin: usize,
    edges: [usize; 2],
}

/// `camera` says how alice publishes (one encoding or simulcast).
async fn cascade(redis: &PrivateRedis, db: &TestDb, app: &TestApp, camera: PeerOptions) -> Cascade {
    let node = |role: &str| {
        let mut options = cluster_options(&redis.url());
        options.extra_env.push(("HUDDLE_ROLE", role.to_owned()));
        options.extra_env.push(("HUDDLE_RELAY_THREADS", "1".to_owned()));
        // A relay with 3 peers is busy: the next players go to a less busy one.
        options.extra_env.push(("HUDDLE_RELAY_CASCADE_ABOVE", "3".to_owned()));
        Server::start_with(db, options)
    };
    let relays = [node("relay"), node("relay"), node("relay")];
    let signaling = node("signaling");
    for relay in &relays {
        announced(redis, &relay.base, 0).await;
    }

    let (mut alice, _) = join(&signaling.base, app, "room-1", "alice", false).await;
    let camera = publish_media_with(&mut alice, "alice-cam", "", camera).await;
    let published_at = Instant::now();
    let mut viewers = Vec::new();
    let mut players = Vec::new();
    let mut urls = Vec::new();
    let mut sessions = Vec::new();
    let play = async |viewers: &mut Vec<ws::WsClient>, sessions: &mut Vec<String>, name: &str| {
        let (mut client, _) = join(&signaling.base, app, "room-1", name, false).await;
        let (player, grant, session) = play_media_session(&mut client, "alice-cam").await;
        wait_for_video(&player, 10).await;
        viewers.push(client);
        sessions.push(session);
        (player, grant["url"].as_str().expect("url").to_owned())
    };
    // The first two players go to the stream's relay.
    for name in ["p1", "p2"] {
        let (player, url) = play(&mut viewers, &mut sessions, name).await;
        players.push(player);
        urls.push(url);
    }
    let origin = relays.iter().position(|r| urls[0].starts_with(&r.base)).expect("the origin is a relay node");
    assert!(urls[1].starts_with(&relays[origin].base), "{urls:?}");
    // Once the origin announces 3 peers, the next player goes to the idlest relay, which
    // pulls the stream from the origin; once that one has announced its player, the next goes
    // to the third.
    announced(redis, &relays[origin].base, 3).await;
    let (player, url) = play(&mut viewers, &mut sessions, "p3").await;
    players.push(player);
    let edge1 = relays.iter().position(|r| url.starts_with(&r.base)).expect("a relay node");
    assert_ne!(edge1, origin, "p3 went to another relay: {url}");
    announced(redis, &relays[edge1].base, 2).await;
    let (player, url) = play(&mut viewers, &mut sessions, "p4").await;
    players.push(player);
    let edge2 = relays.iter().position(|r| url.starts_with(&r.base)).expect("a relay node");
    assert!(edge2 != origin && edge2 != edge1, "p4 went to the third relay: {url}");
    Cascade {
        relays,
        signaling,
        alice,
        camera,
        published_at,
        viewers,
        players,
        sessions,
        origin,
        edges: [edge1, edge2],
    }
}

/// Waits until a relay node holds no session (its players and pulls have ended).
async fn emptied(relay: &Server, within: Duration) {
    let started = Instant::now();
    while relay_peers(relay).await > 0 {
        assert!(started.elapsed() < within, "{} still has peers after {within:?}", relay.base);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_busy_relay_s_players_are_sent_to_relays_that_pull_the_stream() {
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let Cascade { relays, signaling, alice: _alice, camera, published_at, mut viewers, players, origin, edges, .. } =
        cascade(&redis, &db, &app, PeerOptions::default()).await;

    // The origin serves its publisher, two players and one pull per edge, not the edges' players.
    assert_eq!(relay_peers(&relays[origin]).await, 5);
    for edge in edges {
        assert_eq!(relay_peers(&relays[edge]).await, 2, "its pull and its player");
    }
    for player in &players {
        let before = player.stats().video_frames;
        wait_for_video(player, before + 20).await;
    }

    // The stream outlives the workers' periodic repair (every four 2 s leases), though the
    // relay node that holds it has no session of its publisher.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(published_at.elapsed())).await;
    let (_late, reply) = join(&signaling.base, &app, "room-1", "late", false).await;
    assert_eq!(reply["room"]["streamList"][0]["streamID"], "alice-cam", "{reply}");

    // The publisher hangs up: its players end on every relay, and each viewer hears of it.
    drop(camera);
    for viewer in &mut viewers {
        media_state(viewer, "playerStateUpdate", "alice-cam", "NO_PLAY").await;
    }
    let removed = viewers[0].event("roomStreamUpdate").await;
    assert_eq!(removed["updateType"], "DELETE");
    for relay in &relays {
        emptied(relay, Duration::from_secs(5)).await;
    }
    drop((players, viewers, relays, signaling, redis));
    db.cleanup().await;
}

/// `POST {session}/layer` with `{"video": choice}`; how many layers the stream has.
async fn choose_layer(session: &str, choice: &str) -> u64 {
    let (status, body) = control(session, "layer", "application/json", &json!({"video": choice}).to_string()).await;
    assert_eq!(status, 200, "{session}: {body}");
    assert_eq!(body["video"], choice, "{body}");
    body["layers"].as_u64().expect("layers")
}

/// Waits until `player`'s video comes from `layer` and 10 more frames of it have arrived.
async fn plays_layer(player: &MediaPeer, layer: u8, who: &str) {
    let started = Instant::now();
    let mut since: Option<u64> = None;
    loop {
        let stats = player.stats();
        let frames = stats.layer_frames[usize::from(layer)];
        match since {
            Some(first) if stats.last_layer == layer && frames >= first + 10 => return,
            None if stats.last_layer == layer => since = Some(frames),
            _ => {}
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(10), "{who}: not on layer {layer} after {waited:?}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn players_on_edges_choose_their_own_simulcast_layer() {
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    // Three layers of about 20, 75 and 300 kbit/s.
    let simulcast = PeerOptions { simulcast_layers: 3, ..PeerOptions::for_video_kbps(300) };
    let Cascade { relays, signaling, alice: _alice, camera, viewers, players, sessions, origin, edges, .. } =
        cascade(&redis, &db, &app, simulcast).await;
    let [p1, _p2, p3, p4] = &players[..] else { panic!("four players") };

    // Each edge pulled every layer: its players choose among the stream's three.
    assert_eq!(choose_layer(&sessions[2], "low").await, 3, "p3, on edge 1");
    assert_eq!(choose_layer(&sessions[3], "high").await, 3, "p4, on edge 2");
    assert_eq!(choose_layer(&sessions[0], "high").await, 3, "p1, at the origin");
    plays_layer(p3, 0, "p3 (low, edge 1)").await;
    plays_layer(p4, 2, "p4 (high, edge 2)").await;
    plays_layer(p1, 2, "p1 (high, origin)").await;
    // Up again on the edge: a keyframe of the top layer is asked of the publisher through the
    // origin; p4, on the other edge, stays where it is.
    choose_layer(&sessions[2], "high").await;
    plays_layer(p3, 2, "p3 (high, edge 1)").await;
    choose_layer(&sessions[3], "low").await;
    plays_layer(p4, 0, "p4 (low, edge 2)").await;
    assert_eq!(p3.stats().last_layer, 2, "p3 is not moved by p4's choice");
    // The origin still serves one session per edge, whatever the edges' players receive.
    assert_eq!(relay_peers(&relays[origin]).await, 5);
    for edge in edges {
        assert_eq!(relay_peers(&relays[edge]).await, 2, "its pull and its player");
    }
    drop((camera, players, viewers, relays, signaling, redis));
    db.cleanup().await;
}

#[tokio::test]
async fn an_origin_relay_killed_mid_stream_ends_the_stream_on_its_edges_and_in_the_room() {
    let redis = PrivateRedis::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let Cascade { mut relays, signaling, alice: _alice, camera, mut viewers, players, origin, edges, .. } =
        cascade(&redis, &db, &app, PeerOptions::default()).await;

    // kill -9 of the origin: no goodbye to the publisher, the pulls or the room.
    relays[origin].kill();
    let killed_at = Instant::now();
    // The edges' pulls lose the origin (ICE consent): their players end, and p3 and p4 hear so.
    for viewer in &mut viewers[2..] {
        media_state(viewer, "playerStateUpdate", "alice-cam", "NO_PLAY").await;
    }
    let players_ended = killed_at.elapsed();
    for edge in edges {
        emptied(&relays[edge], Duration::from_secs(5)).await;
    }
    // The origin's lease lapses: the stream leaves the room for everyone still in it.
    let removed = viewers[0].event("roomStreamUpdate").await;
    assert_eq!(
        (removed["updateType"].as_str(), removed["streamList"][0]["streamID"].as_str()),
        (Some("DELETE"), Some("alice-cam"))
    );
    let stream_removed = killed_at.elapsed();
    println!("origin killed: edge players ended after {players_ended:?}, stream removed after {stream_removed:?}");
    // A stream that is gone is not playable anywhere.
    let (mut late, reply) = join(&signaling.base, &app, "room-1", "late", false).await;
    let listed = reply["room"]["streamList"].as_array().is_some_and(|l| l.iter().any(|s| s["streamID"] == "alice-cam"));
    assert!(!listed, "{reply}");
    let code = late.fails("playStream", json!({"streamID": "alice-cam"})).await;
    println!("playing the gone stream: {code}");
    drop((camera, players, viewers, relays, signaling, redis));
    db.cleanup().await;
}
