//! The websocket protocol against the real binary: login, events and their order, kickout,
//! reconnect, IM, extra info, tokens, and every error code of the protocol.

mod common;

use std::time::Duration;

use common::ws::WsClient;
use common::*;
use huddle::auth::unix_now;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn setup(extra: Vec<(&'static str, String)>) -> (TestDb, TestApp, Server) {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start_with(&db, ServerOptions { extra_env: extra, ..ServerOptions::default() });
    (db, app, server)
}

fn user_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        list.as_array().unwrap().iter().map(|u| u["userID"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn login_users_streams_and_logout_in_order() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut alice, first) = join(&server.base, &app, "room-1", "alice", true).await;
    assert_eq!(first["user"], json!({"userID": "alice", "userName": "alice name"}));
    assert_eq!(first["room"]["userList"], json!([]));
    assert_eq!(first["room"]["onlineCount"], 1);
    assert!(first["sessionID"].as_str().unwrap().len() >= 16 && first["resumeToken"].as_str().unwrap().len() >= 32);
    let _alice_cam = publish_media(&mut alice, "alice-cam", "hd").await;

    // Bob does not ask for user updates: no user list, no roomUserUpdate, but the count.
    let (mut bob, second) = join(&server.base, &app, "room-1", "bob", false).await;
    assert!(second["room"].get("userList").is_none());
    assert_eq!(second["room"]["onlineCount"], 2);
    assert_eq!(second["room"]["streamList"][0]["streamID"], "alice-cam");
    let streams = bob.next_event().await;
    assert_eq!(streams["event"], "roomStreamUpdate", "existing streams are pushed after login: {streams}");
    assert_eq!(streams["data"]["updateType"], "ADD");
    assert_eq!(
        streams["data"]["streamList"][0],
        json!({"streamID": "alice-cam", "user": {"userID": "alice", "userName": "alice name"}, "extraInfo": "hd"}),
        "streams carry exactly the fields of PROTOCOL.md (no relay routing data)"
    );
    assert_eq!(streams["data"]["streamList"], second["room"]["streamList"]);

    let added = alice.next_event().await;
    assert_eq!(added["event"], "roomUserUpdate");
    assert_eq!(
        added["data"],
        json!({"roomID": "room-1", "updateType": "ADD", "userList": [{"userID": "bob", "userName": "bob name"}]})
    );

    // Carol asks for user updates and gets everyone already there.
    let (mut carol, third) = join(&server.base, &app, "room-1", "carol", true).await;
    assert_eq!(user_ids(&third["room"]["userList"]), ["alice", "bob"]);
    let users = carol.next_event().await;
    assert_eq!(
        (users["event"].as_str(), user_ids(&users["data"]["userList"])),
        (Some("roomUserUpdate"), vec!["alice".to_owned(), "bob".to_owned()])
    );
    assert_eq!(carol.event("roomOnlineUserCountUpdate").await["count"], 3);

    // Alice leaves: her stream ends before she does.
    alice.ok("logout", json!({"roomID": "room-1"})).await;
    assert_eq!(alice.close_code().await, Some(1000));
    let gone = carol.next_event().await;
    assert_eq!(
        (gone["event"].as_str(), gone["data"]["updateType"].as_str()),
        (Some("roomStreamUpdate"), Some("DELETE"))
    );
    let left = carol.next_event().await;
    assert_eq!(
        left["data"],
        json!({"roomID": "room-1", "updateType": "DELETE", "userList": [{"userID": "alice", "userName": "alice name"}]})
    );
    assert_eq!(bob.event("roomStreamUpdate").await["updateType"], "DELETE");
    assert_eq!(bob.event("roomOnlineUserCountUpdate").await["count"], 2);
}

#[tokio::test]
async fn login_failures_have_their_codes() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let other = create_app(&db);
    let server = Server::start(&db);
    let mut client = WsClient::connect(&server.base).await;
    let good = mint(&app, "alice", Some("room-1"), false);
    let cases: Vec<(Value, u64)> = vec![
        (login_data(&app, "room-1", "alice", "garbage", false), 4001),
        (login_data(&app, "room-1", "alice", &format!("x{good}"), false), 4001),
        (
            login_data(
                &app,
                "room-1",
                "alice",
                &mint(&TestApp { secret: other.secret.clone(), ..app.clone() }, "alice", None, false),
                false,
            ),
            4002,
        ),
        (
            login_data(
                &app,
                "room-1",
                "alice",
                &mint_with(&app, "alice", None, false, None, 10, unix_now() - 100),
                false,
            ),
            4003,
        ),
        (login_data(&app, "room-1", "alice", &mint(&other, "alice", None, false), false), 4005),
        (login_data(&app, "room-1", "bob", &good, false), 4006),
        (login_data(&app, "room-2", "alice", &good, false), 4007),
        (login_data(&app, "bad room", "alice", &good, false), 3002),
        (login_data(&app, "room-1", "bad user", &good, false), 3001),
        (
            json!({"appID": 4_000_000_001u32, "roomID": "r", "token": mint(&TestApp { app_id: 4_000_000_001, secret: app.secret.clone() }, "a", None, false), "user": {"userID": "a"}}),
            2003,
        ),
        (
            json!({"appID": app.app_id, "roomID": "room-1", "token": good, "user": {"userID": "alice", "userName": "n".repeat(257)}}),
            5019,
        ),
    ];
    for (data, code) in cases {
        assert_eq!(client.fails("login", data.clone()).await, code, "{data}");
    }
    let spec = huddle::auth::TokenSpec {
        user_id: "alice".into(),
        privileges: huddle::auth::Privileges { login_room: false, publish_stream: false },
        ..Default::default()
    };
    let no_login = huddle::auth::token::issue(app.app_id, app.secret.as_bytes(), &spec, unix_now()).unwrap().token;
    assert_eq!(client.fails("login", login_data(&app, "room-1", "alice", &no_login, false)).await, 4008);
    // None of that left anything behind: the same connection can still log in.
    client.ok("login", login_data(&app, "room-1", "alice", &good, false)).await;
    assert_eq!(client.fails("login", login_data(&app, "room-1", "alice", &good, false)).await, 5002);
}

#[tokio::test]
async fn protocol_errors_have_their_codes() {
    let (db, app, server) = setup(vec![]).await;
    let mut client = WsClient::connect(&server.base).await;
    assert_eq!(client.hello["v"], 1);
    assert_eq!(client.fails("sendBroadcastMessage", json!({"message": "hi"})).await, 5001);
    assert_eq!(client.fails("dance", json!({})).await, 5003);
    assert_eq!(client.fails("login", json!({"roomID": 5})).await, 5004);
    client.send_text("not json").await;
    assert_eq!(client.next_frame().await["error"]["code"], 5004);
    client.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(client.next_frame().await["error"]["code"], 5004);
    client.send_raw(Message::Binary(vec![1u8, 2, 3].into())).await;
    assert_eq!(client.next_frame().await["error"]["code"], 5004);
    assert!(client.ok("ping", json!({})).await.is_object(), "ping works before login");

    let token = mint(&app, "alice", Some("room-1"), false);
    client.ok("login", login_data(&app, "room-1", "alice", &token, false)).await;
    assert_eq!(client.fails("publishStream", json!({"streamID": "cam"})).await, 5012);
    assert_eq!(client.fails("sendBroadcastMessage", json!({"roomID": "room-2", "message": "hi"})).await, 5020);
    assert_eq!(client.fails("sendBroadcastMessage", json!({"message": "x".repeat(1025)})).await, 5008);
    assert_eq!(client.fails("sendCustomCommand", json!({"command": "c", "toUserIDs": vec!["u"; 101]})).await, 5021);
    assert_eq!(client.fails("sendCustomCommand", json!({"command": "c", "toUserIDs": ["bad user"]})).await, 3001);
    assert_eq!(client.fails("setRoomExtraInfo", json!({"key": "", "value": "v"})).await, 5018);
    assert_eq!(client.fails("setRoomExtraInfo", json!({"key": "k", "value": "v".repeat(4097)})).await, 5018);
    for i in 0..32 {
        client.ok("setRoomExtraInfo", json!({"key": format!("k{i}"), "value": "v"})).await;
    }
    assert_eq!(client.fails("setRoomExtraInfo", json!({"key": "k32", "value": "v"})).await, 5018);
    assert_eq!(client.fails("stopPublishingStream", json!({"streamID": "nope"})).await, 5014);
    assert_eq!(client.fails("setStreamExtraInfo", json!({"streamID": "nope", "extraInfo": "x"})).await, 5014);

    // A frame over 64 KiB closes the connection with 1009 after an error frame.
    client.send_text(&format!(r#"{{"id":1,"type":"ping","data":{{"pad":"{}"}}}}"#, "x".repeat(70_000))).await;
    assert_eq!(client.close_code().await, Some(1009));
    assert_eq!(client.next_error().await, 5005);

    let (status, body) = server.get("/ws?v=2").await;
    assert_eq!(status, 400);
    assert!(body.contains("5016"), "{body}");
    drop(db);
}

#[tokio::test]
async fn publish_rights_and_stream_ids() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-2", "bob", false).await;
    let _shared = publish_media(&mut alice, "shared-id", "").await;
    assert_eq!(
        bob.fails("publishStream", json!({"streamID": "shared-id"})).await,
        5011,
        "stream ids are unique per app"
    );
    assert_eq!(bob.fails("publishStream", json!({"streamID": "bad id"})).await, 3003);

    let mut limited = WsClient::connect(&server.base).await;
    let token = mint_with(&app, "carol", None, true, Some(vec!["carol-cam".into()]), 3600, unix_now());
    limited.ok("login", login_data(&app, "room-1", "carol", &token, false)).await;
    assert_eq!(limited.fails("publishStream", json!({"streamID": "other"})).await, 5013);
    let carol_cam = publish_media(&mut limited, "carol-cam", "").await;
    limited.ok("setStreamExtraInfo", json!({"streamID": "carol-cam", "extraInfo": "muted"})).await;
    let added = alice.event("roomStreamUpdate").await;
    assert_eq!(added["streamList"][0]["streamID"], "carol-cam");
    let update = alice.event("streamExtraInfoUpdate").await;
    assert_eq!(update["streamList"][0]["extraInfo"], "muted");
    for stream in [&added["streamList"][0], &update["streamList"][0]] {
        let mut fields: Vec<&str> = stream.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["extraInfo", "streamID", "user"], "{stream}");
    }
    limited.ok("stopPublishingStream", json!({"streamID": "carol-cam"})).await;
    drop(carol_cam);
    let ended = alice.event("roomStreamUpdate").await;
    assert_eq!(
        (ended["updateType"].as_str(), ended["streamList"][0]["streamID"].as_str()),
        (Some("DELETE"), Some("carol-cam"))
    );
}

#[tokio::test]
async fn messages_commands_and_extra_info_reach_the_right_users() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    let (mut carol, _) = join(&server.base, &app, "room-1", "carol", false).await;
    let sent = alice.ok("sendBroadcastMessage", json!({"roomID": "room-1", "message": "hello 👋"})).await;
    let message_id = sent["messageID"].as_u64().unwrap();
    assert!(message_id < (1 << 53));
    for client in [&mut bob, &mut carol] {
        let got = client.event("IMRecvBroadcastMessage").await;
        let message = &got["messageList"][0];
        assert_eq!((message["message"].as_str(), message["messageID"].as_u64()), (Some("hello 👋"), Some(message_id)));
        assert_eq!(message["fromUser"]["userID"], "alice");
        assert!((message["sendTime"].as_i64().unwrap() - unix_now() * 1000).abs() < 10_000);
    }
    bob.ok("sendBarrageMessage", json!({"message": "wow"})).await;
    assert_eq!(carol.event("IMRecvBarrageMessage").await["messageList"][0]["message"], "wow");
    carol.ok("sendCustomCommand", json!({"command": "raise-hand", "toUserIDs": ["alice"]})).await;
    let command = alice.event("IMRecvCustomCommand").await;
    assert_eq!(
        (command["command"].as_str(), command["fromUser"]["userID"].as_str()),
        (Some("raise-hand"), Some("carol"))
    );
    alice.ok("setRoomExtraInfo", json!({"key": "topic", "value": "standup"})).await;
    let extra = carol.event("roomExtraInfoUpdate").await;
    assert_eq!(extra["roomExtraInfoList"][0]["value"], "standup");
    assert_eq!(extra["roomExtraInfoList"][0]["updateUser"]["userID"], "alice");
    // Bob saw no command (it was for Alice) but did see the barrage's echo? No: senders get nothing.
    let bob_extra = bob.event("roomExtraInfoUpdate").await;
    assert_eq!(bob_extra["roomExtraInfoList"][0]["key"], "topic");
    bob.quiet(Duration::from_millis(300)).await;
    alice.quiet(Duration::from_millis(300)).await;

    // Rate limit: the message bucket holds 20.
    let mut limited = 0;
    for i in 0..40 {
        let reply = carol.request("sendBroadcastMessage", json!({"message": format!("spam {i}")})).await;
        if reply["ok"] == false {
            assert_eq!(reply["error"]["code"], 5007);
            limited += 1;
        }
    }
    assert!(limited >= 15, "only {limited} of 40 were limited");
}

#[tokio::test]
async fn same_user_again_kicks_the_first_connection_without_churn() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (mut first, _) = join(&server.base, &app, "room-1", "alice", true).await;
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    let (mut second, reply) = join(&server.base, &app, "room-1", "alice", true).await;
    assert_eq!(user_ids(&reply["room"]["userList"]), ["watcher"]);
    let kicked = first.event("kickout").await;
    assert_eq!(kicked["error"]["code"], 5009);
    assert_eq!(first.close_code().await, Some(4009));
    watcher.quiet(Duration::from_millis(400)).await;
    second.ok("sendBroadcastMessage", json!({"message": "still here"})).await;
    assert_eq!(watcher.event("IMRecvBroadcastMessage").await["messageList"][0]["fromUser"]["userID"], "alice");
}

#[tokio::test]
async fn a_dropped_connection_resumes_inside_the_grace_period() {
    let (_db, app, server) = setup(vec![("HUDDLE_RECONNECT_GRACE_MS", "3000".into())]).await;
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (alice, session) = join(&server.base, &app, "room-1", "alice", true).await;
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    alice.cut();
    watcher.ok("sendBroadcastMessage", json!({"message": "while you were away"})).await;
    watcher.ok("setRoomExtraInfo", json!({"key": "k", "value": "v"})).await;

    let mut back = WsClient::connect(&server.base).await;
    assert_eq!(back.fails("resume", json!({"sessionID": session["sessionID"], "resumeToken": "wrong"})).await, 5010);
    let resumed =
        back.ok("resume", json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]})).await;
    assert_eq!(resumed["sessionID"], session["sessionID"]);
    assert_eq!(resumed["missedMessages"], false);
    assert_eq!(user_ids(&resumed["room"]["userList"]), ["watcher"]);
    assert_eq!(resumed["room"]["roomExtraInfoList"][0]["value"], "v");
    assert_eq!(back.event("IMRecvBroadcastMessage").await["messageList"][0]["message"], "while you were away");
    watcher.quiet(Duration::from_millis(500)).await;
    back.ok("sendBroadcastMessage", json!({"message": "I am back"})).await;
    assert_eq!(watcher.event("IMRecvBroadcastMessage").await["messageList"][0]["message"], "I am back");
}

#[tokio::test]
async fn after_the_grace_period_the_user_is_gone() {
    let (_db, app, server) = setup(vec![("HUDDLE_RECONNECT_GRACE_MS", "500".into())]).await;
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (alice, session) = join(&server.base, &app, "room-1", "alice", true).await;
    alice.cut();
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    let gone = watcher.event("roomUserUpdate").await;
    assert_eq!((gone["updateType"].as_str(), gone["userList"][0]["userID"].as_str()), (Some("DELETE"), Some("alice")));
    let mut late = WsClient::connect(&server.base).await;
    let resume = json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]});
    assert_eq!(late.fails("resume", resume).await, 5010);
}

#[tokio::test]
async fn a_silent_client_times_out_and_its_session_waits_for_resume() {
    let extra =
        vec![("HUDDLE_WS_HEARTBEAT_INTERVAL_MS", "200".into()), ("HUDDLE_WS_HEARTBEAT_TIMEOUT_MS", "600".into())];
    let (_db, app, server) = setup(extra).await;
    let (sleeper, session) = join(&server.base, &app, "room-1", "sleeper", false).await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(sleeper);
    // The client library may fail to read the closing frames (it answers the queued pings
    // into a closed socket first), so the server's own count is the witness.
    assert!(server.metrics().await.contains(r#"huddle_errors_total{code="5017",name="HeartbeatTimeout"} 1"#));
    let mut back = WsClient::connect(&server.base).await;
    back.ok("resume", json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]})).await;
}

#[tokio::test]
async fn tokens_warn_before_expiry_renew_and_end_the_session() {
    let (_db, app, server) = setup(vec![]).await;
    let mut client = WsClient::connect(&server.base).await;
    let short = mint_with(&app, "alice", Some("room-1"), false, None, 31, unix_now());
    let login = client.ok("login", login_data(&app, "room-1", "alice", &short, false)).await;
    let warning = client.event("tokenWillExpire").await;
    assert_eq!(warning["expiresAt"], login["tokenExpiresAt"]);
    assert_eq!(client.fails("renewToken", json!({"token": mint(&app, "bob", None, false)})).await, 4006);
    let renewed = client.ok("renewToken", json!({"token": mint(&app, "alice", Some("room-1"), false)})).await;
    assert!(renewed["tokenExpiresAt"].as_i64().unwrap() > unix_now() + 3000);

    let mut expiring = WsClient::connect(&server.base).await;
    let (mut watcher, _) = join(&server.base, &app, "room-2", "watcher", true).await;
    let tiny = mint_with(&app, "bob", Some("room-2"), false, None, 1, unix_now());
    expiring.ok("login", login_data(&app, "room-2", "bob", &tiny, false)).await;
    assert_eq!(expiring.close_code().await, Some(4003));
    let gone = watcher.event("roomUserUpdate").await;
    assert_eq!(gone["updateType"], "ADD");
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "DELETE", "an expired session leaves at once");
}

#[tokio::test]
async fn limits_room_size_and_connections() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let small = cli(&db, &["app", "create", "--name", "small", "--max-users-per-room", "2"]);
    let small = TestApp {
        app_id: small["appId"].as_u64().unwrap() as u32,
        secret: small["serverSecret"].as_str().unwrap().into(),
    };
    let server = Server::start_with(
        &db,
        ServerOptions { extra_env: vec![("HUDDLE_MAX_CONNECTIONS", "4".into())], ..Default::default() },
    );
    let _a = join(&server.base, &small, "r", "a", false).await;
    let _b = join(&server.base, &small, "r", "b", false).await;
    let mut c = WsClient::connect(&server.base).await;
    assert_eq!(c.fails("login", login_data(&small, "r", "c", &mint(&small, "c", None, false), false)).await, 5006);
    let _d = WsClient::connect(&server.base).await;
    let refused = tokio_tungstenite::connect_async(format!("{}/ws", server.base.replacen("http", "ws", 1))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("5015"), "{body}");
        }
        other => panic!("expected a 503, got {:?}", other.map(|_| ())),
    }
    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_ws_connections 4"), "{metrics}");
    assert!(metrics.contains("huddle_sessions 2"), "{metrics}");
    assert!(metrics.contains(r#"huddle_errors_total{code="5006",name="RoomFull"} 1"#));
    assert!(metrics.contains("huddle_login_duration_seconds_count 2"));
    drop(app);
}

#[tokio::test]
async fn protocol_violations_end_the_session_and_anonymous_requests_are_limited() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (mut offender, _) = join(&server.base, &app, "room-1", "offender", true).await;
    assert_eq!(watcher.event("roomUserUpdate").await["updateType"], "ADD");
    offender.send_text(&format!(r#"{{"id":1,"type":"ping","data":{{"pad":"{}"}}}}"#, "x".repeat(70_000))).await;
    assert_eq!(offender.close_code().await, Some(1009));
    let gone = watcher.event("roomUserUpdate").await;
    assert_eq!(
        (gone["updateType"].as_str(), gone["userList"][0]["userID"].as_str()),
        (Some("DELETE"), Some("offender"))
    );

    let mut anonymous = WsClient::connect(&server.base).await;
    let mut limited = 0;
    for _ in 0..40 {
        let reply = anonymous.request("ping", json!({})).await;
        if reply["ok"] == false {
            assert_eq!(reply["error"]["code"], 5007);
            limited += 1;
        }
    }
    assert!(limited >= 15, "only {limited} of 40 anonymous requests were limited");
}

#[tokio::test]
async fn a_session_whose_token_expired_while_parked_cannot_resume() {
    let (_db, app, server) = setup(vec![("HUDDLE_RECONNECT_GRACE_MS", "20000".into())]).await;
    let mut client = WsClient::connect(&server.base).await;
    let tiny = mint_with(&app, "alice", Some("room-1"), false, None, 1, unix_now());
    let session = client.ok("login", login_data(&app, "room-1", "alice", &tiny, false)).await;
    client.cut();
    tokio::time::sleep(Duration::from_secs(7)).await; // past exp + 5 s leeway
    let mut back = WsClient::connect(&server.base).await;
    let resume = json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]});
    assert_eq!(back.fails("resume", resume.clone()).await, 4003);
    assert_eq!(back.fails("resume", resume).await, 5010, "the expired session is gone");
}

#[tokio::test]
async fn streams_go_live_and_play_through_the_relay() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    assert_eq!(bob.fails("playStream", json!({"streamID": "alice-cam"})).await, 5014);

    // The grant alone announces nothing: the stream appears when its media is live.
    let grant = alice.ok("publishStream", json!({"streamID": "early"})).await;
    assert!(grant["url"].as_str().unwrap().ends_with("/relay/v1/publish/early"));
    bob.quiet(Duration::from_millis(300)).await;

    let camera = publish_media(&mut alice, "alice-cam", "").await;
    let added = bob.event("roomStreamUpdate").await;
    assert_eq!(
        (added["updateType"].as_str(), added["streamList"][0]["streamID"].as_str()),
        (Some("ADD"), Some("alice-cam"))
    );

    let (player, _) = play_media(&mut bob, "alice-cam").await;
    wait_for_video(&player, 10).await;
    bob.ok("stopPlayingStream", json!({"streamID": "alice-cam"})).await;
    assert_eq!(bob.event("playerStateUpdate").await["state"], "NO_PLAY");

    // The publisher's media ending removes the stream from the room.
    drop(camera);
    let removed = bob.event("roomStreamUpdate").await;
    assert_eq!(removed["updateType"], "DELETE");
    assert_eq!(alice.event("publisherStateUpdate").await["state"], "NO_PUBLISH");
}

#[tokio::test]
async fn every_request_with_an_id_gets_a_reply_whatever_else_is_wrong() {
    let (_db, _app, server) = setup(vec![]).await;
    let mut client = WsClient::connect(&server.base).await;
    let frames = [
        json!({"id": 1, "type": 5}),
        json!({"id": 2, "type": ["ping"]}),
        json!({"id": 3, "type": {"name": "ping"}}),
        json!({"id": 4, "type": null}),
        json!({"id": 5, "type": true}),
        json!({"id": 6}),
        json!({"id": 7, "type": "ping", "data": []}),
        json!({"id": "eight", "type": "login", "data": "login"}),
        json!({"id": 9, "type": "ping", "data": 1}),
        json!({"id": 10, "type": "dance", "data": []}),
    ];
    for frame in frames {
        client.send_text(&frame.to_string()).await;
        let reply = client.next_frame().await;
        assert_eq!(
            (&reply["type"], &reply["id"], &reply["ok"], &reply["error"]["code"]),
            (&json!("reply"), &frame["id"], &json!(false), &json!(5004)),
            "{frame} got {reply}"
        );
    }
    // Without an object there is no id to answer to.
    client.send_text(r#"[1, "ping", {}]"#).await;
    let error = client.next_frame().await;
    assert_eq!((error["type"].as_str(), error["error"]["code"].as_u64()), (Some("error"), Some(5004)), "{error}");
    // `data` may be null or absent.
    client.send_text(r#"{"id": 11, "type": "ping", "data": null}"#).await;
    assert_eq!(client.next_frame().await["ok"], true);
}

#[tokio::test]
async fn an_empty_user_name_defaults_to_the_user_id() {
    let (_db, app, server) = setup(vec![]).await;
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let mut client = WsClient::connect(&server.base).await;
    let token = mint(&app, "alice", Some("room-1"), false);
    let mut data = login_data(&app, "room-1", "alice", &token, false);
    data["user"]["userName"] = json!("");
    let reply = client.ok("login", data).await;
    assert_eq!(reply["user"], json!({"userID": "alice", "userName": "alice"}));
    let added = watcher.event("roomUserUpdate").await;
    assert_eq!(added["userList"], json!([{"userID": "alice", "userName": "alice"}]));
}

#[tokio::test]
async fn a_malformed_query_string_is_refused_before_anything_else() {
    let (_db, _app, server) = setup(vec![("HUDDLE_ALLOWED_ORIGINS", "https://app.example.com".into())]).await;
    for query in ["v=%ZZ", "v=1&%zz=1", "v=1&x=%", "v=1&x=%4", "v=%FF", "v=1&v=1"] {
        let response = server
            .http
            .get(server.url(&format!("/ws?{query}")))
            .header("origin", "https://evil.example.com")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, &body["code"]), (400, &json!(1008)), "?{query}: {body}");
    }
    let (status, body) = server.get("/ws?v=2").await;
    assert_eq!(status, 400);
    assert!(body.contains("5016"), "{body}");
    // Unknown parameters are ignored; `v` may be percent-encoded.
    let (status, body) = server.get("/ws?v=1&sdk=web%2F1.0&flag").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("5004"), "past the query check, refused as no upgrade: {body}");
    let client = WsClient::connect_path(&server.base, "/ws?v=%31&sdk=web%2F1.0&flag").await;
    assert_eq!(client.hello["v"], 1);
}
