//! Media controls a client drives, against the real binary with str0m peers: a publisher's own
//! mute over signaling (a signal to everyone, the server's mute kept apart), a player's mute of
//! what its relay session sends it (that player only), and network quality per user.

mod common;

use std::time::Duration;

use common::*;
use huddle::loadtest::peer::{MediaPeer, PendingPeer, Role};
use serde_json::{Value, json};

/// Plays `stream_id` through signaling; the player and its relay session's URL (for the
/// player-side controls).
async fn play_with_session(client: &mut ws::WsClient, stream_id: &str) -> (MediaPeer, String) {
    let (peer, _, session) = play_media_session(client, stream_id).await;
    (peer, session)
}

/// `POST {session}/mute` with a JSON body; the status and the JSON answer.
async fn mute_player(session: &str, content_type: &str, body: &str) -> (u16, Value) {
    control(session, "mute", content_type, body).await
}

/// Audio and video frames a player received in `window`.
async fn received_in(peer: &MediaPeer, window: Duration) -> (u64, u64) {
    let before = peer.stats();
    tokio::time::sleep(window).await;
    let after = peer.stats();
    (after.audio_frames - before.audio_frames, after.video_frames - before.video_frames)
}

const WINDOW: Duration = Duration::from_millis(1000);

/// Frames already on their way when a mute lands.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_publishers_own_mute_reaches_everyone_and_never_lifts_the_servers() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", true).await;
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", true).await;
    let (player, _) = play_media(&mut bob, "alice-cam").await;
    wait_for_video(&player, 10).await;

    // Alice turns her camera off: everyone hears it at once, she too, with byServer false.
    let reply = alice.ok("muteStream", json!({"streamID": "alice-cam", "video": true})).await;
    assert_eq!(
        reply,
        json!({"streamID": "alice-cam", "publisherAudioMuted": false, "publisherVideoMuted": true,
               "audioMuted": false, "videoMuted": false})
    );
    for client in [&mut bob, &mut alice] {
        let update = client.event("streamMuteUpdate").await;
        assert_eq!(
            update,
            json!({"roomID": "room-1", "streamID": "alice-cam", "user": {"userID": "alice", "userName": "alice name"},
                   "audioMuted": false, "videoMuted": false, "publisherAudioMuted": false,
                   "publisherVideoMuted": true, "byServer": false})
        );
    }
    // A signal only: the relay keeps forwarding (her browser sends black frames itself).
    settle().await;
    let (audio, video) = received_in(&player, WINDOW).await;
    assert!(audio > 20 && video > 15, "the publisher's own mute stopped the relay: {audio} audio, {video} video");

    // A late joiner finds the flag on the stream, in the reply and the pushed ADD.
    let (mut carol, login) = join(&server.base, &app, "room-1", "carol", true).await;
    let stream = &login["room"]["streamList"][0];
    assert_eq!((stream["publisherVideoMuted"].as_bool(), stream.get("publisherAudioMuted")), (Some(true), None));
    let added = carol.event("roomStreamUpdate").await;
    assert_eq!(added["streamList"][0]["publisherVideoMuted"], true);

    // The server mutes her audio; her own unmute of audio does not lift it.
    let body = json!({"roomId": "room-1", "streamId": "alice-cam", "audio": true}).to_string();
    let (status, muted) = server.signed_post(&app, "/v1/rooms/mute", &body).await;
    assert_eq!(status, 200, "{muted}");
    let update = carol.event("streamMuteUpdate").await;
    assert_eq!((update["byServer"].as_bool(), update["audioMuted"].as_bool()), (Some(true), Some(true)));
    assert_eq!(update["publisherVideoMuted"], true, "the server's event carries the publisher's flags too");
    let reply = alice.ok("muteStream", json!({"streamID": "alice-cam", "audio": false, "video": false})).await;
    assert_eq!((reply["audioMuted"].as_bool(), reply["publisherVideoMuted"].as_bool()), (Some(true), Some(false)));
    let update = carol.event("streamMuteUpdate").await;
    assert_eq!(
        (update["byServer"].as_bool(), update["audioMuted"].as_bool(), update["publisherVideoMuted"].as_bool()),
        (Some(false), Some(true), Some(false))
    );
    settle().await;
    let (audio, video) = received_in(&player, WINDOW).await;
    assert!(audio == 0 && video > 15, "the server's audio mute must hold: {audio} audio, {video} video");

    // Only the publisher, only its stream, only with something to change; nothing changes.
    assert_eq!(bob.fails("muteStream", json!({"streamID": "alice-cam", "video": true})).await, 5014);
    assert_eq!(alice.fails("muteStream", json!({"streamID": "nope", "video": true})).await, 5014);
    assert_eq!(alice.fails("muteStream", json!({"streamID": "alice-cam"})).await, 5004);
    assert_eq!(alice.fails("muteStream", json!({"streamID": "alice-cam", "video": "yes"})).await, 5004);
    assert_eq!(alice.fails("muteStream", json!({"video": true})).await, 5004);
    assert_eq!(
        alice.fails("muteStream", json!({"roomID": "room-2", "streamID": "alice-cam", "video": true})).await,
        5020
    );
    carol.quiet(Duration::from_millis(300)).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_media_mutes_total{change="mute",kind="video",who="publisher"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"huddle_ws_messages_total{type="muteStream"}"#));
    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn a_player_stops_what_its_relay_session_sends_it_and_no_one_else() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", true).await;
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", true).await;
    let (mut carol, _) = join(&server.base, &app, "room-1", "carol", true).await;
    let (bob_player, bob_session) = play_with_session(&mut bob, "alice-cam").await;
    let (carol_player, _) = play_with_session(&mut carol, "alice-cam").await;
    wait_for_video(&bob_player, 10).await;
    wait_for_video(&carol_player, 10).await;

    // Bob stops video: his stops, carol's goes on; audio continues for both.
    let (status, state) = mute_player(&bob_session, "application/json", r#"{"video": true}"#).await;
    assert_eq!((status, state), (200, json!({"audioMuted": false, "videoMuted": true})));
    settle().await;
    let ((audio, video), (carol_audio, carol_video)) =
        tokio::join!(received_in(&bob_player, WINDOW), received_in(&carol_player, WINDOW));
    eprintln!("bob video off: {audio}/{video}; carol: {carol_audio}/{carol_video}");
    assert_eq!(video, 0, "muted video still sent to bob");
    assert!(audio > 20, "bob's audio stopped too: {audio}");
    assert!(carol_audio > 20 && carol_video > 15, "carol was affected: {carol_audio} audio, {carol_video} video");

    // Audio off as well, then video back (from a keyframe), then audio back.
    let (status, state) = mute_player(&bob_session, "application/json", r#"{"audio": true}"#).await;
    assert_eq!((status, state), (200, json!({"audioMuted": true, "videoMuted": true})));
    settle().await;
    assert_eq!(received_in(&bob_player, WINDOW).await, (0, 0), "muted media still sent to bob");
    let (status, state) = mute_player(&bob_session, "application/json", r#"{"video": false}"#).await;
    assert_eq!((status, state), (200, json!({"audioMuted": true, "videoMuted": false})));
    settle().await;
    let (audio, video) = received_in(&bob_player, WINDOW).await;
    assert!(audio == 0 && video > 15, "after video back: {audio} audio, {video} video");
    let (status, _) = mute_player(&bob_session, "application/json; charset=utf-8", r#"{"audio": false}"#).await;
    assert_eq!(status, 200);
    settle().await;
    let (audio, video) = received_in(&bob_player, WINDOW).await;
    assert!(audio > 20 && video > 15, "after both back: {audio} audio, {video} video");

    // Refusals change nothing.
    for (content_type, body, status, code) in [
        ("application/json", "{}", 400, 1006),
        ("application/json", r#"{"video": 1}"#, 400, 1006),
        ("application/json", r#"{"video": true, "volume": 0}"#, 400, 1006),
        ("application/json", "{", 400, 1005),
        ("text/plain", r#"{"video": true}"#, 415, 1003),
    ] {
        let (got, reply) = mute_player(&bob_session, content_type, body).await;
        assert_eq!((got, reply["code"].as_u64()), (status, Some(code)), "{content_type} {body}: {reply}");
    }
    let unknown = format!("{}/relay/v1/sessions/00000000000000000000000000000000", server.base);
    let (status, reply) = mute_player(&unknown, "application/json", r#"{"video": true}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (404, Some(6009)));
    let (audio, video) = received_in(&bob_player, WINDOW).await;
    assert!(audio > 20 && video > 15, "a refused mute changed something: {audio} audio, {video} video");

    // A layer choice on a stream sent as one encoding is taken and changes nothing; bad ones
    // are refused.
    let (status, state) = control(&bob_session, "layer", "application/json", r#"{"video": "low"}"#).await;
    assert_eq!((status, state), (200, json!({"video": "low", "layers": 0})));
    for (content_type, body, status, code) in [
        ("application/json", "{}", 400, 1006),
        ("application/json", r#"{"video": "medium"}"#, 400, 1006),
        ("application/json", r#"{"video": 0}"#, 400, 1006),
        ("application/json", "[", 400, 1005),
        ("text/plain", r#"{"video": "high"}"#, 415, 1003),
    ] {
        let (got, reply) = control(&bob_session, "layer", content_type, body).await;
        assert_eq!((got, reply["code"].as_u64()), (status, Some(code)), "{content_type} {body}: {reply}");
    }
    let (status, reply) = control(&unknown, "layer", "application/json", r#"{"video": "high"}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (404, Some(6009)));
    let (audio, video) = received_in(&bob_player, WINDOW).await;
    assert!(audio > 20 && video > 15, "a layer choice changed what bob gets: {audio} audio, {video} video");

    // A publish session cannot be muted this way (the server's mute is the admin API's).
    let grant = alice.ok("publishStream", json!({"streamID": "alice-screen"})).await;
    let (pending, offer) = PendingPeer::offer(Role::Publish, "127.0.0.1".parse().unwrap()).unwrap();
    let url = reqwest::Url::parse(grant["url"].as_str().unwrap()).unwrap();
    let response = reqwest::Client::new()
        .post(url.clone())
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {}", grant["grant"].as_str().unwrap()))
        .body(offer)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let _screen = pending.connect(&response.text().await.unwrap()).unwrap();
    let (status, reply) =
        mute_player(url.join(&location).unwrap().as_str(), "application/json", r#"{"video": true}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (409, Some(6012)));
    let (status, reply) =
        control(url.join(&location).unwrap().as_str(), "layer", "application/json", r#"{"video": "low"}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (409, Some(6012)));

    // Ended sessions are gone.
    let deleted = reqwest::Client::new().delete(&bob_session).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    media_state(&mut bob, "playerStateUpdate", "alice-cam", "NO_PLAY").await;
    let (status, reply) = mute_player(&bob_session, "application/json", r#"{"video": true}"#).await;
    assert_eq!((status, reply["code"].as_u64()), (404, Some(6009)));
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_media_mutes_total{change="mute",kind="video",who="player"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"huddle_media_layer_choices_total{video="low"} 1"#), "{metrics}");
    drop(server);
    db.cleanup().await;
}

/// The production layout: the play session lives on a relay-only node; the player talks to it
/// directly (the session URL names that node), no signaling node is involved.
#[tokio::test]
async fn a_player_mute_works_on_a_relay_only_node() {
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
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&signaling_node.base, &app, "room-1", "bob", true).await;
    let (player, session) = play_with_session(&mut bob, "alice-cam").await;
    assert!(session.starts_with(&relay_node.base), "the session is on the relay node: {session}");
    wait_for_video(&player, 10).await;
    let (status, _) = mute_player(&session, "application/json", r#"{"video": true}"#).await;
    assert_eq!(status, 200);
    settle().await;
    let (audio, video) = received_in(&player, WINDOW).await;
    assert!(audio > 20 && video == 0, "video off on the relay node: {audio} audio, {video} video");
    let (status, _) = mute_player(&session, "application/json", r#"{"video": false}"#).await;
    assert_eq!(status, 200);
    settle().await;
    let (audio, video) = received_in(&player, WINDOW).await;
    assert!(audio > 20 && video > 15, "video back on the relay node: {audio} audio, {video} video");
    // What the relay node measures reaches the signaling node that holds the sessions, through
    // the room: alice's upstream (her publisher's link) without any report from her.
    loop {
        let entry = quality_of(&mut bob, "alice").await;
        if entry["upstream"] != -1 {
            assert!(entry["upstream"].as_i64().unwrap() <= 1, "loopback publishing is not poor: {entry}");
            break;
        }
    }
    drop((signaling_node, relay_node));
    db.cleanup().await;
}

/// The next `networkQuality` entry about `user`, skipping batches about others.
async fn quality_of(client: &mut ws::WsClient, user: &str) -> Value {
    loop {
        let batch = client.event("networkQuality").await;
        let list = batch["qualityList"].as_array().expect("qualityList").clone();
        if let Some(entry) = list.into_iter().find(|entry| entry["userID"] == user) {
            return entry;
        }
    }
}

#[tokio::test]
async fn network_quality_reaches_the_room_in_batches() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", true).await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;

    assert_eq!(alice.ok("reportQuality", json!({"upstream": 1, "downstream": 2})).await, json!({}));
    bob.ok("reportQuality", json!({"roomID": "room-1", "upstream": 0, "downstream": 3})).await;
    // Batches reach everyone in the room, the users themselves too.
    for client in [&mut bob, &mut alice] {
        let mut seen = std::collections::BTreeMap::new();
        while seen.len() < 2 {
            let batch = client.event("networkQuality").await;
            assert_eq!(batch["roomID"], "room-1");
            for entry in batch["qualityList"].as_array().unwrap() {
                seen.insert(entry["userID"].as_str().unwrap().to_owned(), entry.clone());
            }
        }
        assert_eq!(seen["alice"], json!({"userID": "alice", "upstream": 1, "downstream": 2}));
        assert_eq!(seen["bob"], json!({"userID": "bob", "upstream": 0, "downstream": 3}));
    }
    // Only changes travel: alice's repeated report is in no batch.
    alice.ok("reportQuality", json!({"upstream": 1, "downstream": 2})).await;
    bob.ok("reportQuality", json!({"upstream": 4, "downstream": 3})).await;
    for client in [&mut alice, &mut bob] {
        let batch = client.event("networkQuality").await;
        assert_eq!(batch["qualityList"], json!([{"userID": "bob", "upstream": 4, "downstream": 3}]));
    }

    // Levels on ZEGO's scale only; the room and the rate are checked; nothing is recorded.
    for data in [
        json!({"upstream": 5, "downstream": 0}),
        json!({"upstream": -2, "downstream": 0}),
        json!({"upstream": 1.5, "downstream": 0}),
        json!({"upstream": "good", "downstream": 0}),
        json!({"upstream": 1}),
    ] {
        assert_eq!(alice.fails("reportQuality", data.clone()).await, 5004, "{data}");
    }
    assert_eq!(alice.fails("reportQuality", json!({"roomID": "other", "upstream": 3, "downstream": 3})).await, 5020);
    let mut limited = 0;
    for _ in 0..6 {
        let reply = alice.request("reportQuality", json!({"upstream": 1, "downstream": 2})).await;
        if reply["ok"] == false {
            assert_eq!(reply["error"]["code"], 5007, "{reply}");
            limited += 1;
        }
    }
    assert!(limited >= 2, "reports are rate limited (burst 3, 1/s): {limited} refused of 6");
    bob.quiet(Duration::from_millis(3000)).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains(r#"huddle_network_quality_samples_total{source="client"}"#), "{metrics}");
    assert!(metrics.contains(r#"huddle_network_quality_published_total{what="events"}"#), "{metrics}");
    drop(server);
    db.cleanup().await;
}

/// What the relay measures reaches the room as the publisher's upstream and the player's
/// downstream, without any client report (loopback loses nothing, so it is "excellent"); the
/// worse-of-two combination with a client's own report is unit-tested in `rooms::quality`.
#[tokio::test]
async fn the_relays_measurements_count_for_users_who_report_nothing() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", true).await;
    let _camera = publish_media(&mut alice, "alice-cam", "").await;
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", true).await;
    let (player, _) = play_media(&mut bob, "alice-cam").await;
    wait_for_video(&player, 10).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = (None, None);
    while seen.0.is_none() || seen.1.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no relay levels reached the room: {seen:?}");
        let batch = alice.event("networkQuality").await;
        for entry in batch["qualityList"].as_array().unwrap() {
            match entry["userID"].as_str() {
                Some("alice") if entry["upstream"] != -1 => seen.0 = Some(entry.clone()),
                Some("bob") if entry["downstream"] != -1 => seen.1 = Some(entry.clone()),
                _ => {}
            }
        }
    }
    eprintln!("relay-measured levels: {seen:?}");
    let (alice_entry, bob_entry) = (seen.0.unwrap(), seen.1.unwrap());
    assert!(alice_entry["upstream"].as_i64().unwrap() <= 1, "loopback publishing is not poor: {alice_entry}");
    assert!(bob_entry["downstream"].as_i64().unwrap() <= 1, "loopback playing is not poor: {bob_entry}");
    // A client report that is worse than the relay's view wins.
    bob.ok("reportQuality", json!({"upstream": 0, "downstream": 3})).await;
    assert_eq!(quality_of(&mut alice, "bob").await["downstream"], 3);
    drop(server);
    db.cleanup().await;
}
