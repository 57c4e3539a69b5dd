//! The admin API (`/v1/rooms/*`) and `huddle rooms` against the real binary: every call and
//! every error code on SQLite and PostgreSQL (in-memory rooms), a kick, a close and a mute
//! reaching users on another worker over Redis, and the CLI against a running server.

mod common;

use std::time::{Duration, Instant};

use common::ws::WsClient;
use common::*;
use serde_json::{Value, json};

async fn admin(server: &Server, app: &TestApp, route: &str, body: Value) -> (u16, Value) {
    server.signed_post(app, &format!("/v1/rooms/{route}"), &body.to_string()).await
}

/// A call that must succeed; its JSON answer.
async fn admin_ok(server: &Server, app: &TestApp, route: &str, body: Value) -> Value {
    let (status, answer) = admin(server, app, route, body).await;
    assert_eq!(status, 200, "{route}: {answer}");
    answer
}

/// A call that must fail with `code` (and `status`).
async fn admin_fails(server: &Server, app: &TestApp, route: &str, body: Value, status: u16, code: u64) {
    let (got_status, answer) = admin(server, app, route, body.clone()).await;
    assert_eq!((got_status, answer["code"].as_u64()), (status, Some(code)), "{route} {body}: {answer}");
    assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
}

/// A login that must be refused; its error code.
async fn login_refused(base: &str, app: &TestApp, room: &str, user: &str) -> u64 {
    let mut client = WsClient::connect(base).await;
    let token = mint(app, user, Some(room), true);
    client.fails("login", login_data(app, room, user, &token, true)).await
}

/// The user DELETE (and, first, the stream DELETE of its streams) a member sees when `user`
/// is removed.
async fn sees_user_leave(watcher: &mut WsClient, user: &str) {
    loop {
        let update = watcher.event("roomUserUpdate").await;
        if update["updateType"] == "DELETE" && update["userList"][0]["userID"] == user {
            return;
        }
    }
}

async fn sees_user_join(watcher: &mut WsClient, user: &str) {
    loop {
        let update = watcher.event("roomUserUpdate").await;
        if update["updateType"] == "ADD" && update["userList"][0]["userID"] == user {
            return;
        }
    }
}

async fn sees_stream_leave(watcher: &mut WsClient, stream: &str) {
    loop {
        let update = watcher.event("roomStreamUpdate").await;
        if update["updateType"] == "DELETE" && update["streamList"][0]["streamID"] == stream {
            return;
        }
    }
}

async fn every_admin_call_and_error(kind: Db) {
    let db = TestDb::new(kind).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "hd").await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", true).await;
    let (mut carol, _) = join(&server.base, &app, "room-1", "carol", true).await;
    let (_dave, _) = join(&server.base, &app, "room-2", "dave", true).await;

    // Rooms, paged by room id.
    let page = admin_ok(&server, &app, "list", json!({"limit": 1})).await;
    assert_eq!(page["rooms"], json!([{"roomId": "room-1", "userCount": 3, "streamCount": 1}]));
    assert_eq!(page["nextCursor"], "room-1");
    let page = admin_ok(&server, &app, "list", json!({"cursor": "room-1", "limit": 1})).await;
    assert_eq!(page["rooms"], json!([{"roomId": "room-2", "userCount": 1, "streamCount": 0}]));
    let last = admin_ok(&server, &app, "list", json!({"cursor": "room-2"})).await;
    assert_eq!((last["rooms"].as_array().map(Vec::len), last.get("nextCursor")), (Some(0), None));
    admin_fails(&server, &app, "list", json!({"limit": 0}), 400, 8004).await;
    admin_fails(&server, &app, "list", json!({"limit": 501}), 400, 8004).await;
    admin_fails(&server, &app, "list", json!({"cursor": "bad room"}), 400, 3002).await;
    // Another app sees none of them.
    let other = create_app(&db);
    assert_eq!(admin_ok(&server, &other, "list", json!({})).await["rooms"], json!([]));

    // Users, paged by user id; an unknown room is empty.
    let users = admin_ok(&server, &app, "users", json!({"roomId": "room-1", "limit": 2})).await;
    let ids: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["userId"].as_str().unwrap()).collect();
    assert_eq!(
        (ids, users["userCount"].as_u64(), users["nextCursor"].as_str()),
        (vec!["alice", "bob"], Some(3), Some("bob"))
    );
    assert_eq!(users["users"][0]["userName"], "alice name");
    assert!(users["users"][0]["joinedAt"].as_i64().is_some_and(|t| t > 1_700_000_000));
    let rest = admin_ok(&server, &app, "users", json!({"roomId": "room-1", "cursor": "bob", "limit": 2})).await;
    assert_eq!((rest["users"][0]["userId"].as_str(), rest.get("nextCursor")), (Some("carol"), None));
    let nobody = admin_ok(&server, &app, "users", json!({"roomId": "empty"})).await;
    assert_eq!((nobody["users"].clone(), nobody["userCount"].as_u64()), (json!([]), Some(0)));
    admin_fails(&server, &app, "users", json!({"roomId": "room-1", "limit": 1000}), 400, 8004).await;
    admin_fails(&server, &app, "users", json!({}), 400, 1006).await;

    // Streams: publisher, extra info, relay.
    let streams = admin_ok(&server, &app, "streams", json!({"roomId": "room-1"})).await;
    let stream = &streams["streams"][0];
    assert_eq!((stream["streamId"].as_str(), stream["userId"].as_str()), (Some("alice-cam"), Some("alice")));
    assert_eq!((stream["extraInfo"].as_str(), stream["audioMuted"].as_bool()), (Some("hd"), Some(false)));
    assert!(stream["relayUrl"].as_str().is_some_and(|u| u.starts_with("http://")), "{stream}");
    assert_eq!(admin_ok(&server, &app, "streams", json!({"roomId": "empty"})).await["streams"], json!([]));

    // Counts of up to 100 rooms at once.
    let counts = admin_ok(&server, &app, "user-counts", json!({"roomIds": ["room-1", "room-2", "empty"]})).await;
    let users_of: Vec<u64> =
        counts["rooms"].as_array().unwrap().iter().map(|r| r["userCount"].as_u64().unwrap()).collect();
    assert_eq!(users_of, vec![3, 1, 0]);
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    admin_fails(&server, &app, "user-counts", json!({"roomIds": too_many}), 400, 8002).await;
    admin_fails(&server, &app, "user-counts", json!({"roomIds": []}), 400, 8002).await;

    // Messages from the server, shown as sent by @server (or whom the request names).
    admin_ok(&server, &app, "broadcast", json!({"roomId": "room-1", "message": "hello all"})).await;
    let message = bob.event("IMRecvBroadcastMessage").await["messageList"][0].clone();
    assert_eq!(
        (message["message"].as_str(), message["fromUser"]["userID"].as_str()),
        (Some("hello all"), Some("@server"))
    );
    let sent = admin_ok(
        &server,
        &app,
        "barrage",
        json!({"roomId": "room-1", "message": "wow", "fromUserId": "host", "fromUserName": "The host"}),
    )
    .await;
    let barrage = carol.event("IMRecvBarrageMessage").await["messageList"][0].clone();
    assert_eq!(
        (barrage["fromUser"]["userName"].as_str(), barrage["messageID"].as_u64()),
        (Some("The host"), sent["messageID"].as_u64())
    );
    admin_ok(&server, &app, "command", json!({"roomId": "room-1", "toUserIds": ["bob"], "command": "mute-yourself"}))
        .await;
    assert_eq!(bob.event("IMRecvCustomCommand").await["command"], "mute-yourself");
    admin_ok(&server, &app, "extra-info", json!({"roomId": "room-1", "key": "topic", "value": "moderated"})).await;
    let extra = carol.event("roomExtraInfoUpdate").await["roomExtraInfoList"][0].clone();
    assert_eq!((extra["value"].as_str(), extra["updateUser"]["userID"].as_str()), (Some("moderated"), Some("@server")));
    admin_fails(&server, &app, "broadcast", json!({"roomId": "empty", "message": "anyone?"}), 404, 8006).await;
    admin_fails(&server, &app, "extra-info", json!({"roomId": "empty", "key": "k", "value": "v"}), 404, 8006).await;
    admin_fails(&server, &app, "broadcast", json!({"roomId": "room-1", "message": "x".repeat(1025)}), 413, 5008).await;
    admin_fails(&server, &app, "command", json!({"roomId": "room-1", "toUserIds": [], "command": "c"}), 400, 8001)
        .await;
    admin_fails(&server, &app, "extra-info", json!({"roomId": "room-1", "key": "", "value": "v"}), 400, 5018).await;
    admin_fails(
        &server,
        &app,
        "broadcast",
        json!({"roomId": "room-1", "message": "m", "fromUserId": "bad user"}),
        400,
        3001,
    )
    .await;
    admin_fails(
        &server,
        &app,
        "broadcast",
        json!({"roomId": "room-1", "message": "m", "fromUserName": "n".repeat(257)}),
        400,
        5019,
    )
    .await;

    // Mute: the room hears it, the listing shows it; unmute.
    let muted =
        admin_ok(&server, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "audio": true})).await;
    assert_eq!((muted["audioMuted"].as_bool(), muted["videoMuted"].as_bool()), (Some(true), Some(false)));
    let update = bob.event("streamMuteUpdate").await;
    assert_eq!((update["streamID"].as_str(), update["audioMuted"].as_bool()), (Some("alice-cam"), Some(true)));
    let listed = admin_ok(&server, &app, "streams", json!({"roomId": "room-1"})).await;
    assert_eq!(listed["streams"][0]["audioMuted"], true);
    admin_ok(&server, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "audio": false})).await;
    assert_eq!(bob.event("streamMuteUpdate").await["audioMuted"], false);
    admin_fails(&server, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam"}), 400, 8008).await;
    admin_fails(&server, &app, "mute", json!({"roomId": "room-1", "streamId": "nope", "video": true}), 404, 8007).await;
    admin_fails(&server, &app, "mute", json!({"roomId": "room-1", "streamId": "bad id", "video": true}), 400, 3003)
        .await;

    // Kick: limits first.
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    admin_fails(&server, &app, "kick", json!({"roomId": "room-1", "userIds": hundred_and_one}), 400, 8001).await;
    admin_fails(&server, &app, "kick", json!({"roomId": "room-1", "userIds": []}), 400, 8001).await;
    admin_fails(
        &server,
        &app,
        "kick",
        json!({"roomId": "room-1", "userIds": ["carol"], "banSeconds": 2_592_001}),
        400,
        8003,
    )
    .await;
    admin_fails(
        &server,
        &app,
        "kick",
        json!({"roomId": "room-1", "userIds": ["carol"], "reason": "r".repeat(257)}),
        400,
        8005,
    )
    .await;
    admin_fails(&server, &app, "kick", json!({"roomId": "room-1", "userIds": ["carol"], "banSeconds": -1}), 400, 1006)
        .await;
    admin_fails(&server, &app, "kick", json!({"roomId": "room-1", "userIds": ["carol"], "surprise": 1}), 400, 1006)
        .await;
    admin_fails(&server, &app, "kick", json!({"roomId": "bad room", "userIds": ["carol"]}), 400, 3002).await;
    admin_fails(&server, &app, "kick", json!({"roomId": "room-1", "userIds": ["bad user"]}), 400, 3001).await;
    let (status, malformed) = server.signed_post(&app, "/v1/rooms/kick", "{not json").await;
    assert_eq!((status, malformed["code"].as_u64()), (400, Some(1005)));
    let (status, _) = server
        .http
        .post(server.url("/v1/rooms/kick"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401, "unsigned");
    let (status, wrong_method) = server.get("/v1/rooms/kick").await;
    assert_eq!(status, 405, "{wrong_method}");

    // Kick carol with a 2 s ban: kickout 5023 with the reason, close 4023, the room sees her
    // leave, her logins are refused until the ban runs out.
    let kicked = admin_ok(
        &server,
        &app,
        "kick",
        json!({"roomId": "room-1", "userIds": ["carol", "zed"], "reason": "spam", "banSeconds": 2}),
    )
    .await;
    let banned_at = Instant::now();
    assert_eq!((kicked["kicked"].clone(), kicked["notInRoom"].clone()), (json!(["carol"]), json!(["zed"])));
    let kickout = carol.event("kickout").await;
    assert_eq!((kickout["error"]["code"].as_u64(), kickout["reason"].as_str()), (Some(5023), Some("spam")));
    assert_eq!(carol.close_code().await, Some(4023));
    sees_user_leave(&mut bob, "carol").await;
    assert_eq!(login_refused(&server.base, &app, "room-1", "carol").await, 5025);
    assert_eq!(
        login_refused(&server.base, &app, "room-1", "zed").await,
        5025,
        "a ban holds for users not in the room too"
    );
    let (mut carol_elsewhere, _) = join(&server.base, &app, "room-2", "carol", true).await;
    carol_elsewhere.ok("logout", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(banned_at.elapsed())).await;
    let (mut carol, _) = join(&server.base, &app, "room-1", "carol", true).await;
    // Without a ban the user may come back at once.
    admin_ok(&server, &app, "kick", json!({"roomId": "room-1", "userIds": ["carol"]})).await;
    assert_eq!(carol.event("kickout").await["reason"], "");
    let (_carol, _) = join(&server.base, &app, "room-1", "carol", true).await;

    // A session kicked while its connection is down (parked for the reconnect grace, 30 s)
    // ends at once: its media stops (bob's player of it is closed) and resume answers 5023.
    let (mut finn, session) = join(&server.base, &app, "room-1", "finn", true).await;
    sees_user_join(&mut bob, "finn").await;
    let _finn_cam = publish_media(&mut finn, "finn-cam", "").await;
    let (bob_player, _) = play_media(&mut bob, "finn-cam").await;
    wait_for_video(&bob_player, 5).await;
    finn.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!bob_player.stats().closed, "the media outlives the websocket during the grace");
    admin_ok(&server, &app, "kick", json!({"roomId": "room-1", "userIds": ["finn"]})).await;
    let kicked_at = Instant::now();
    sees_user_leave(&mut bob, "finn").await;
    while !bob_player.stats().closed {
        assert!(kicked_at.elapsed() < Duration::from_secs(5), "the kicked parked session's media still flows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut back = WsClient::connect(&server.base).await;
    let resume = json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]});
    assert_eq!(back.fails("resume", resume.clone()).await, 5023);
    let wrong = json!({"sessionID": session["sessionID"], "resumeToken": "0".repeat(64)});
    assert_eq!(back.fails("resume", wrong).await, 5010, "only the session's own client hears why");

    // Close with a 2 s closure: everyone gets kickout 5024, streams and users leave, logins
    // are refused (5026) until it runs out.
    admin_fails(&server, &app, "close", json!({"roomId": "room-1", "banSeconds": 2_592_001}), 400, 8003).await;
    let closed =
        admin_ok(&server, &app, "close", json!({"roomId": "room-1", "reason": "meeting over", "banSeconds": 2})).await;
    let closed_at = Instant::now();
    assert_eq!(closed, json!({"usersRemoved": 3, "streamsRemoved": 1}));
    for client in [&mut alice, &mut bob] {
        let kickout = client.event("kickout").await;
        assert_eq!((kickout["error"]["code"].as_u64(), kickout["reason"].as_str()), (Some(5024), Some("meeting over")));
        assert_eq!(client.close_code().await, Some(4024));
    }
    assert_eq!(login_refused(&server.base, &app, "room-1", "erin").await, 5026);
    let counts = admin_ok(&server, &app, "user-counts", json!({"roomIds": ["room-1"]})).await;
    assert_eq!(counts["rooms"][0], json!({"roomId": "room-1", "userCount": 0, "streamCount": 0}));
    assert_eq!(admin_ok(&server, &app, "list", json!({})).await["rooms"][0]["roomId"], "room-2");
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(closed_at.elapsed())).await;
    let (_erin, _) = join(&server.base, &app, "room-1", "erin", true).await;
    // Closing a room nobody is in is fine (and may still close it to logins).
    assert_eq!(
        admin_ok(&server, &app, "close", json!({"roomId": "empty"})).await,
        json!({"usersRemoved": 0, "streamsRemoved": 0})
    );

    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_admin_calls_total{call=\"kick\"} 3"), "{metrics}");
    assert!(metrics.contains("huddle_admin_users_removed_total{how=\"close\"} 3"), "{metrics}");
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn every_admin_call_and_error_on_sqlite() {
    every_admin_call_and_error(Db::Sqlite).await;
}

#[tokio::test]
async fn every_admin_call_and_error_on_postgres() {
    every_admin_call_and_error(Db::Postgres).await;
}

fn cluster_options() -> ServerOptions<'static> {
    ServerOptions {
        extra_env: vec![
            ("HUDDLE_REDIS_URL", redis_url()),
            ("HUDDLE_REDIS_LEASE_MS", "2000".into()),
            ("HUDDLE_RECONNECT_GRACE_MS", "1000".into()),
        ],
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn a_kick_and_a_close_reach_users_on_the_other_worker() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let first = Server::start_with(&db, cluster_options());
    let second = Server::start_with(&db, cluster_options());
    let (mut watcher, _) = join(&first.base, &app, "room-1", "watcher", true).await;
    let (mut bob, _) = join(&second.base, &app, "room-1", "bob", true).await;
    let _bob_cam = publish_media(&mut bob, "bob-cam", "").await;
    assert_eq!(watcher.event("roomStreamUpdate").await["updateType"], "ADD");

    // Rooms and streams are listed from any worker.
    let page = admin_ok(&first, &app, "list", json!({})).await;
    assert_eq!(page["rooms"], json!([{"roomId": "room-1", "userCount": 2, "streamCount": 1}]));
    let streams = admin_ok(&second, &app, "streams", json!({"roomId": "room-1"})).await;
    assert_eq!(streams["streams"][0]["relayUrl"].as_str(), Some(second.base.as_str()));

    // A kick sent to the first worker reaches bob on the second.
    let kicked = admin_ok(
        &first,
        &app,
        "kick",
        json!({"roomId": "room-1", "userIds": ["bob"], "reason": "rude", "banSeconds": 30}),
    )
    .await;
    assert_eq!(kicked["kicked"], json!(["bob"]));
    let kickout = bob.event("kickout").await;
    assert_eq!((kickout["error"]["code"].as_u64(), kickout["reason"].as_str()), (Some(5023), Some("rude")));
    assert_eq!(bob.close_code().await, Some(4023));
    sees_stream_leave(&mut watcher, "bob-cam").await;
    sees_user_leave(&mut watcher, "bob").await;
    // The ban holds on every worker.
    assert_eq!(login_refused(&first.base, &app, "room-1", "bob").await, 5025);
    assert_eq!(login_refused(&second.base, &app, "room-1", "bob").await, 5025);
    // The kicked session is over on its worker: no stream left, nothing to resume, no repair
    // puts it back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let users = admin_ok(&second, &app, "users", json!({"roomId": "room-1"})).await;
    assert_eq!(users["userCount"], 1, "{users}");
    assert_eq!(admin_ok(&first, &app, "streams", json!({"roomId": "room-1"})).await["streams"], json!([]));
    watcher.quiet(Duration::from_millis(300)).await;

    // A close sent to the second worker reaches everyone, on both workers.
    let (mut carol, _) = join(&second.base, &app, "room-1", "carol", true).await;
    let _carol_cam = publish_media(&mut carol, "carol-cam", "").await;
    let closed = admin_ok(&second, &app, "close", json!({"roomId": "room-1", "reason": "bye", "banSeconds": 30})).await;
    assert_eq!(closed, json!({"usersRemoved": 2, "streamsRemoved": 1}));
    for client in [&mut watcher, &mut carol] {
        let kickout = client.event("kickout").await;
        assert_eq!((kickout["error"]["code"].as_u64(), kickout["reason"].as_str()), (Some(5024), Some("bye")));
        assert_eq!(client.close_code().await, Some(4024));
    }
    assert_eq!(login_refused(&first.base, &app, "room-1", "dan").await, 5026);
    assert_eq!(login_refused(&second.base, &app, "room-1", "dan").await, 5026);
    assert_eq!(admin_ok(&first, &app, "list", json!({})).await["rooms"], json!([]));
    drop((first, second));
    db.cleanup().await;
}

/// How many frames of each kind a player received in `window`.
async fn received_in(peer: &huddle::loadtest::peer::MediaPeer, window: Duration) -> (u64, u64) {
    let before = peer.stats();
    tokio::time::sleep(window).await;
    let after = peer.stats();
    (after.audio_frames - before.audio_frames, after.video_frames - before.video_frames)
}

#[tokio::test]
async fn a_mute_from_another_worker_stops_forwarding_until_unmuted() {
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let first = Server::start_with(&db, cluster_options());
    let second = Server::start_with(&db, cluster_options());
    let (mut alice, _) = join(&second.base, &app, "room-1", "alice", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&first.base, &app, "room-1", "bob", true).await;
    let (player, _) = play_media(&mut bob, "alice-cam").await;
    wait_for_video(&player, 10).await;
    let window = Duration::from_millis(1000);
    let (audio, video) = received_in(&player, window).await;
    assert!(audio > 20 && video > 15, "before: {audio} audio, {video} video frames/s");

    // Video muted through the first worker: the relay on the second stops forwarding it.
    admin_ok(&first, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "video": true})).await;
    let update = bob.event("streamMuteUpdate").await;
    assert_eq!((update["videoMuted"].as_bool(), update["audioMuted"].as_bool()), (Some(true), Some(false)));
    assert_eq!(alice.event("streamMuteUpdate").await["videoMuted"], true, "the publisher is told too");
    tokio::time::sleep(Duration::from_millis(300)).await; // frames already on the way
    let (audio, video) = received_in(&player, window).await;
    eprintln!("video muted: {audio} audio, {video} video frames in {window:?}");
    assert_eq!(video, 0, "video still forwarded");
    assert!(audio > 20, "audio stopped too: {audio}");

    // Audio muted as well, then both back.
    admin_ok(&first, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "audio": true})).await;
    assert_eq!(bob.event("streamMuteUpdate").await["audioMuted"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (audio, video) = received_in(&player, window).await;
    assert_eq!((audio, video), (0, 0), "muted media still forwarded");
    admin_ok(
        &first,
        &app,
        "mute",
        json!({"roomId": "room-1", "streamId": "alice-cam", "audio": false, "video": false}),
    )
    .await;
    let update = bob.event("streamMuteUpdate").await;
    assert_eq!((update["videoMuted"].as_bool(), update["audioMuted"].as_bool()), (Some(false), Some(false)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (audio, video) = received_in(&player, window).await;
    eprintln!("unmuted: {audio} audio, {video} video frames in {window:?}");
    assert!(audio > 20 && video > 15, "after unmute: {audio} audio, {video} video frames/s");
    drop((first, second));
    db.cleanup().await;
}

/// The production layout: signaling nodes without a relay, relay-only nodes holding the
/// media. The relay node hears the mute from the room (it has no user there) and applies it.
#[tokio::test]
async fn a_mute_reaches_a_relay_only_node() {
    let redis = common::redis_server::RedisServer::start();
    let db = TestDb::new(Db::Postgres).await;
    let app = create_app(&db);
    let with_role = |role: &str| ServerOptions {
        extra_env: vec![
            ("HUDDLE_REDIS_URL", redis.url()),
            ("HUDDLE_REDIS_LEASE_MS", "2000".into()),
            ("HUDDLE_ROLE", role.to_owned()),
        ],
        ..ServerOptions::default()
    };
    let relay_node = Server::start_with(&db, with_role("relay"));
    let signaling_node = Server::start_with(&db, with_role("signaling"));
    let (mut alice, _) = join(&signaling_node.base, &app, "room-1", "alice", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&signaling_node.base, &app, "room-1", "bob", true).await;
    let (player, grant) = play_media(&mut bob, "alice-cam").await;
    assert!(grant["url"].as_str().unwrap().starts_with(&relay_node.base), "media on the relay node: {grant}");
    wait_for_video(&player, 10).await;
    let window = Duration::from_millis(1000);

    admin_ok(&signaling_node, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "video": true})).await;
    assert_eq!(bob.event("streamMuteUpdate").await["videoMuted"], true);
    tokio::time::sleep(Duration::from_millis(300)).await; // frames already on the way
    let (audio, video) = received_in(&player, window).await;
    eprintln!("video muted on the relay node: {audio} audio, {video} video frames in {window:?}");
    assert_eq!(video, 0, "the relay node still forwards the muted video");
    assert!(audio > 20, "audio stopped too: {audio}");

    admin_ok(&signaling_node, &app, "mute", json!({"roomId": "room-1", "streamId": "alice-cam", "video": false})).await;
    assert_eq!(bob.event("streamMuteUpdate").await["videoMuted"], false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (audio, video) = received_in(&player, window).await;
    assert!(audio > 20 && video > 15, "after unmute: {audio} audio, {video} video frames/s");
    drop((signaling_node, relay_node));
    db.cleanup().await;
}

/// Redis frozen (SIGSTOP): a kick, a close and a mute answer 1007 within the Redis timeout
/// and change nothing, also once Redis thaws and runs whatever reached it (here the request's
/// nonce check is what times out first; a room script that reaches a frozen Redis carries a
/// deadline on Redis's clock: see `late_admin_scripts_change_nothing` in rooms/redis); then
/// the same calls work.
#[tokio::test]
async fn admin_calls_during_a_redis_freeze_answer_1007_and_change_nothing() {
    let mut redis = common::redis_server::RedisServer::start();
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let options = ServerOptions {
        extra_env: vec![("HUDDLE_REDIS_URL", redis.url()), ("HUDDLE_REDIS_LEASE_MS", "2000".into())],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&db, options);
    let (mut alice, _) = join(&server.base, &app, "room-z", "alice", true).await;
    let (mut bob, _) = join(&server.base, &app, "room-z", "bob", true).await;
    let _bob_cam = publish_media(&mut bob, "bob-cam", "").await;
    assert_eq!(alice.event("roomStreamUpdate").await["updateType"], "ADD");

    // Each script once before the freeze, so that Redis knows it (a script Redis has never
    // seen would fail with NOSCRIPT after the thaw whatever its deadline).
    admin_ok(&server, &app, "kick", json!({"roomId": "room-z", "userIds": ["nobody"]})).await;
    admin_ok(&server, &app, "close", json!({"roomId": "room-empty"})).await;
    admin_ok(&server, &app, "mute", json!({"roomId": "room-z", "streamId": "bob-cam", "audio": false})).await;
    redis.freeze();
    admin_fails(&server, &app, "kick", json!({"roomId": "room-z", "userIds": ["bob"]}), 503, 1007).await;
    admin_fails(&server, &app, "close", json!({"roomId": "room-z", "banSeconds": 60}), 503, 1007).await;
    let mute = json!({"roomId": "room-z", "streamId": "bob-cam", "video": true});
    admin_fails(&server, &app, "mute", mute.clone(), 503, 1007).await;
    redis.thaw();
    // Redis runs the late scripts now: they must find their deadline passed.
    let started = Instant::now();
    loop {
        let (status, answer) = admin(&server, &app, "users", json!({"roomId": "room-z"})).await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "Redis did not come back: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let users = admin_ok(&server, &app, "users", json!({"roomId": "room-z"})).await;
    assert_eq!(users["userCount"], 2, "a kick or close answered 1007 removed someone: {users}");
    let streams = admin_ok(&server, &app, "streams", json!({"roomId": "room-z"})).await;
    assert_eq!(streams["streams"][0]["videoMuted"], false, "a mute answered 1007 took effect: {streams}");
    assert_eq!(login_refused_or_ok(&server.base, &app, "room-z", "carol").await, None, "no closure was left");

    let kicked = admin_ok(&server, &app, "kick", json!({"roomId": "room-z", "userIds": ["bob"]})).await;
    assert_eq!(kicked["kicked"], json!(["bob"]));
    sees_user_leave(&mut alice, "bob").await;
    drop(server);
    db.cleanup().await;
}

/// `None` when `user` can log in to `room` (then logs out), else the refusal's code.
async fn login_refused_or_ok(base: &str, app: &TestApp, room: &str, user: &str) -> Option<u64> {
    let mut client = WsClient::connect(base).await;
    let token = mint(app, user, Some(room), true);
    let reply = client.request("login", login_data(app, room, user, &token, true)).await;
    if let Some(code) = reply["error"]["code"].as_u64() {
        return Some(code);
    }
    client.ok("logout", json!({})).await;
    None
}

/// Runs `huddle rooms …` against `server`; stdout on success.
fn rooms_cli(db: &TestDb, server: &Server, args: &[&str]) -> String {
    let output = std::process::Command::new(BIN)
        .arg("rooms")
        .args(args)
        .env_clear()
        .env("HUDDLE_DATABASE_URL", &db.url)
        .env("HUDDLE_SERVER", &server.base)
        .output()
        .expect("run huddle");
    assert!(output.status.success(), "huddle rooms {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test]
async fn the_cli_lists_mutes_kicks_and_closes_through_a_running_server() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let id = app.app_id.to_string();
    let (mut alice, _) = join(&server.base, &app, "standup", "alice", true).await;
    let (mut bob, _) = join(&server.base, &app, "standup", "bob", true).await;
    let _alice_cam = publish_media(&mut alice, "alice-cam", "hd").await;

    let listed = rooms_cli(&db, &server, &["list", "--app-id", &id]);
    assert_eq!(listed, "ROOM     USERS  STREAMS\nstandup  2      1\n");
    let json: Value = serde_json::from_str(&rooms_cli(&db, &server, &["list", "--app-id", &id, "--json"])).unwrap();
    assert_eq!(json["rooms"][0]["userCount"], 2);
    let users = rooms_cli(&db, &server, &["users", "--app-id", &id, "--room-id", "standup", "--limit", "1"]);
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!((lines[0], lines[2]), ("USER   NAME        JOINED_AT", "next cursor: alice"), "{users}");
    assert!(lines[1].starts_with("alice  alice name  17"), "{users}");

    let streams = rooms_cli(&db, &server, &["streams", "--app-id", &id, "--room-id", "standup"]);
    let relay = &server.base;
    assert_eq!(
        streams,
        format!(
            "STREAM     USER   AUDIO_MUTED  VIDEO_MUTED  RELAY{pad}  EXTRA_INFO\nalice-cam  alice  false        false        {relay}  hd\n",
            pad = " ".repeat(relay.len() - "RELAY".len())
        )
    );
    let muted = rooms_cli(
        &db,
        &server,
        &["mute", "--app-id", &id, "--room-id", "standup", "--stream-id", "alice-cam", "--audio", "on"],
    );
    assert_eq!(muted, "STREAM     USER   AUDIO_MUTED  VIDEO_MUTED\nalice-cam  alice  true         false\n");
    assert_eq!(bob.event("streamMuteUpdate").await["audioMuted"], true);

    let kicked = rooms_cli(
        &db,
        &server,
        &[
            "kick",
            "--app-id",
            &id,
            "--room-id",
            "standup",
            "--user-id",
            "bob",
            "--reason",
            "late",
            "--ban-seconds",
            "60",
        ],
    );
    assert_eq!(kicked, "USER  RESULT\nbob   kicked\n");
    let kickout = bob.event("kickout").await;
    assert_eq!((kickout["error"]["code"].as_u64(), kickout["reason"].as_str()), (Some(5023), Some("late")));
    assert_eq!(login_refused(&server.base, &app, "standup", "bob").await, 5025);

    let closed = rooms_cli(&db, &server, &["close", "--app-id", &id, "--room-id", "standup", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&closed).unwrap(), json!({"usersRemoved": 1, "streamsRemoved": 1}));
    assert_eq!(alice.event("kickout").await["error"]["code"], 5024);

    // Errors are the API's, on stderr, with a failing exit status.
    let output = std::process::Command::new(BIN)
        .args(["rooms", "kick", "--app-id", &id, "--room-id", "bad room", "--user-id", "x"])
        .env_clear()
        .env("HUDDLE_DATABASE_URL", &db.url)
        .env("HUDDLE_SERVER", &server.base)
        .output()
        .expect("run huddle");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("3002"), "{}", String::from_utf8_lossy(&output.stderr));
    drop(server);
    db.cleanup().await;
}
