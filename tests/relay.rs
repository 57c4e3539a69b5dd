//! The relay's HTTP face (WHIP/WHEP style) against the real binary: grants from the REST API,
//! and every refusal with its code. Media itself is tested with str0m peers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use huddle::auth::grant::{self, GrantSpec, MediaAction};
use huddle::auth::unix_now;
use huddle::loadtest::peer::{MediaPeer, PendingPeer, Role};
use serde_json::{Value, json};
use str0m::media::{Direction, MediaKind};

/// An SDP session with no media section at all (not even a valid offer).
const NO_MEDIA_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/// A valid offer that carries only a data channel: no audio or video to publish or play.
fn data_channel_offer() -> String {
    str0m::crypto::from_feature_flags().install_process_default();
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut change = rtc.sdp_api();
    change.add_channel("chat".into());
    change.apply().expect("an offer").0.to_sdp_string()
}

async fn grant_for(server: &Server, app: &TestApp, stream: &str, action: &str) -> (String, String) {
    let body = json!({"roomId": "room-1", "userId": "encoder", "streamId": stream, "action": action}).to_string();
    let (status, reply) = server.signed_post(app, "/v1/grants", &body).await;
    assert_eq!(status, 200, "{reply}");
    (reply["grant"].as_str().unwrap().to_owned(), reply["url"].as_str().unwrap().to_owned())
}

async fn post_sdp(server: &Server, path: &str, grant: Option<&str>, content_type: &str, sdp: &str) -> (u16, Value) {
    let mut request = server.http.post(server.url(path)).header("content-type", content_type).body(sdp.to_owned());
    if let Some(grant) = grant {
        request = request.header("authorization", format!("Bearer {grant}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn grants_are_minted_for_whip_and_whep() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (grant, url) = grant_for(&server, &app, "stage-cam", "publish").await;
    assert_eq!(url, server.url("/relay/v1/publish/stage-cam"));
    let claims = jwt_claims(&grant);
    assert_eq!((claims["aud"].as_str(), claims["action"].as_str()), (Some("huddle-media"), Some("publish")));
    assert!(claims["exp"].as_i64().unwrap() <= unix_now() + 60);
    let (_, play_url) = grant_for(&server, &app, "stage-cam", "play").await;
    assert_eq!(play_url, server.url("/relay/v1/play/stage-cam"));
    for (body, code) in [
        (json!({"roomId": "room-1", "userId": "e", "streamId": "s", "action": "watch"}), 1006),
        (json!({"roomId": "room-1", "userId": "e", "streamId": "s", "action": "publish", "ttlSeconds": 61}), 3004),
        (json!({"roomId": "room 1", "userId": "e", "streamId": "s", "action": "publish"}), 3002),
        (json!({"roomId": "room-1", "userId": "e", "streamId": "s/1", "action": "publish"}), 3003),
    ] {
        let (status, reply) = server.signed_post(&app, "/v1/grants", &body.to_string()).await;
        assert_eq!((status, reply["code"].as_u64()), (400, Some(code)), "{body}");
    }
}

#[tokio::test]
async fn offers_are_refused_with_their_codes() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let other = create_app(&db);
    let server = Server::start(&db);
    let (publish_grant, _) = grant_for(&server, &app, "cam", "publish").await;
    let (play_grant, _) = grant_for(&server, &app, "cam", "play").await;
    let path = "/relay/v1/publish/cam";
    let sdp = "application/sdp";
    let data_only = data_channel_offer();

    // (path, grant, content type, body, expected status, expected code)
    type Case<'a> = (&'a str, Option<String>, &'a str, &'a str, u16, u64);
    let cases: Vec<Case<'_>> = vec![
        (path, None, sdp, NO_MEDIA_SDP, 401, 6001),
        (path, Some("garbage".into()), sdp, NO_MEDIA_SDP, 401, 6002),
        (path, Some(format!("{}x", &publish_grant[..publish_grant.len() - 1])), sdp, NO_MEDIA_SDP, 401, 6002),
        (path, Some(publish_grant.clone()), "application/json", "{}", 415, 1003),
        (path, Some(play_grant.clone()), sdp, NO_MEDIA_SDP, 403, 6004),
        ("/relay/v1/publish/other-cam", Some(publish_grant.clone()), sdp, NO_MEDIA_SDP, 403, 6004),
        ("/relay/v1/publish/bad%20id", Some(publish_grant.clone()), sdp, NO_MEDIA_SDP, 400, 3003),
        (path, Some(publish_grant.clone()), sdp, "this is not sdp", 400, 6005),
        (path, Some(publish_grant.clone()), sdp, NO_MEDIA_SDP, 400, 6005),
        (path, Some(publish_grant.clone()), sdp, &data_only, 400, 6006),
        ("/relay/v1/play/cam", Some(play_grant.clone()), sdp, &data_only, 404, 6008),
    ];
    for (path, grant, content_type, body, status, code) in cases {
        let (got_status, reply) = post_sdp(&server, path, grant.as_deref(), content_type, body).await;
        assert_eq!((got_status, reply["code"].as_u64()), (status, Some(code)), "{path} {body:.20}: {reply}");
    }

    // A grant that expired, and one signed by another app's secret for this app id.
    let spec = GrantSpec {
        room_id: "room-1".into(),
        user_id: "u".into(),
        stream_id: "cam".into(),
        action: MediaAction::Publish,
        session_id: None,
        user_name: None,
        extra_info: None,
        ttl_secs: 10,
    };
    let (expired, _) = grant::issue(app.app_id, app.secret.as_bytes(), spec.clone(), unix_now() - 100).unwrap();
    let (status, reply) = post_sdp(&server, path, Some(&expired), sdp, NO_MEDIA_SDP).await;
    assert_eq!((status, reply["code"].as_u64()), (401, Some(6003)));
    let (forged, _) = grant::issue(app.app_id, other.secret.as_bytes(), spec, unix_now()).unwrap();
    let (status, reply) = post_sdp(&server, path, Some(&forged), sdp, NO_MEDIA_SDP).await;
    assert_eq!((status, reply["code"].as_u64()), (401, Some(6002)));

    let huge = "a".repeat(70 * 1024);
    let (status, reply) = post_sdp(&server, path, Some(&publish_grant), sdp, &huge).await;
    assert_eq!((status, reply["code"].as_u64()), (413, Some(1004)));

    let response = server.http.delete(server.url("/relay/v1/sessions/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["code"], 6009);
    let metrics = server.metrics().await;
    assert!(!metrics.contains(r#"status="500""#), "no refusal may be a 500");
}

/// A str0m offer with only `config`'s codecs: one section per entry of `kinds`, in `dir`.
fn offer_with(config: str0m::RtcConfig, kinds: &[MediaKind], dir: Direction) -> String {
    str0m::crypto::from_feature_flags().install_process_default();
    let mut rtc = config.build(std::time::Instant::now());
    let candidate = str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap();
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    for &kind in kinds {
        change.add_media(kind, dir, None, None, None);
    }
    change.apply().expect("an offer").0.to_sdp_string()
}

/// Malformed SDP is refused with a message a developer can act on (which line, what was
/// expected) and no memory address; an offer whose audio/video names no codec the relay (or,
/// to play, the stream) uses is told so, with the codecs that would do, instead of "no media".
#[tokio::test]
async fn refused_offers_say_what_is_wrong() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (publish_grant, _) = grant_for(&server, &app, "cam", "publish").await;
    let (play_grant, _) = grant_for(&server, &app, "cam", "play").await;
    let publish = "/relay/v1/publish/cam";
    let sdp = "application/sdp";

    let no_direction =
        format!("{NO_MEDIA_SDP}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n");
    for (body, line) in
        [("hello", "line 1"), ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns\r\n", "line 3"), (&no_direction, "")]
    {
        let (status, reply) = post_sdp(&server, publish, Some(&publish_grant), sdp, body).await;
        assert_eq!((status, reply["code"].as_u64()), (400, Some(6005)), "{body:?}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(!message.contains("0x") && !message.contains("Pointer"), "{body:?}: an address leaks: {message}");
        assert!(message.starts_with("the SDP offer could not be parsed"), "{message}");
        assert!(message.contains(line), "{body:?}: the message names {line}: {message}");
    }
    let (_, reply) = post_sdp(&server, publish, Some(&publish_grant), sdp, &no_direction).await;
    assert!(reply["message"].as_str().unwrap().contains("a=sendrecv"), "says what was expected: {reply}");
    // Parses, but cannot be negotiated (no fingerprint, no ICE credentials).
    let (status, reply) = post_sdp(&server, publish, Some(&publish_grant), sdp, NO_MEDIA_SDP).await;
    assert_eq!((status, reply["code"].as_u64()), (400, Some(6005)), "{reply}");
    assert!(reply["message"].as_str().unwrap().starts_with("the SDP offer could not be negotiated: "), "{reply}");

    // Telephone codecs only: nothing the relay can forward.
    let pcmu = str0m::RtcConfig::new().clear_codecs().enable_pcmu(true, false);
    let pcmu_only = offer_with(pcmu, &[MediaKind::Audio], Direction::SendOnly);
    let (status, reply) = post_sdp(&server, publish, Some(&publish_grant), sdp, &pcmu_only).await;
    assert_eq!((status, reply["code"].as_u64()), (400, Some(6011)), "{reply}");
    let message = reply["message"].as_str().unwrap();
    for name in ["PCMU", "Opus", "VP8", "H.264", "VP9"] {
        assert!(message.contains(name), "the message names {name}: {message}");
    }
    let av1 = str0m::RtcConfig::new().clear_codecs().enable_pcma(true, false).enable_av1(true);
    let av1_offer = offer_with(av1, &[MediaKind::Video, MediaKind::Audio], Direction::SendOnly);
    let (status, reply) = post_sdp(&server, publish, Some(&publish_grant), sdp, &av1_offer).await;
    assert_eq!((status, reply["code"].as_u64()), (400, Some(6011)), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("AV1"), "{reply}");

    // To play, the offer needs one of the stream's codecs (here Opus and VP8 only).
    let opus_vp8 = str0m::RtcConfig::new().clear_codecs().enable_opus(true, false).enable_vp8(true);
    let stream_offer = offer_with(opus_vp8, &[MediaKind::Audio, MediaKind::Video], Direction::SendOnly);
    let (status, answer) = post_sdp(&server, publish, Some(&publish_grant), sdp, &stream_offer).await;
    assert_eq!(status, 201, "{answer}");
    let h264 = str0m::RtcConfig::new().clear_codecs().enable_pcmu(true, false).enable_h264(true);
    let h264_offer = offer_with(h264, &[MediaKind::Audio, MediaKind::Video], Direction::RecvOnly);
    let (status, reply) = post_sdp(&server, "/relay/v1/play/cam", Some(&play_grant), sdp, &h264_offer).await;
    assert_eq!((status, reply["code"].as_u64()), (400, Some(6011)), "{reply}");
    let message = reply["message"].as_str().unwrap();
    for name in ["H.264", "PCMU", "Opus", "VP8"] {
        assert!(message.contains(name), "the message names {name}: {message}");
    }
    assert!(!message.contains("VP9"), "only the stream's codecs are offered as a way out: {message}");
    // No media at all is still "no media".
    let (status, reply) = post_sdp(&server, "/relay/v1/play/cam", Some(&play_grant), sdp, &data_channel_offer()).await;
    assert_eq!((status, reply["code"].as_u64()), (400, Some(6006)), "{reply}");
}

/// Posts an offer; returns the status, the body (answer or error JSON) and the Location.
async fn post_offer(server: &Server, url: &str, grant: &str, sdp: &str) -> (u16, String, Option<String>) {
    let response = server
        .http
        .post(url)
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {grant}"))
        .body(sdp.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, response.text().await.unwrap(), location)
}

/// Starts a peer through WHIP/WHEP with a fresh grant from the REST API.
async fn start_peer(server: &Server, app: &TestApp, role: Role, stream: &str) -> (MediaPeer, String) {
    let action = if role == Role::Publish { "publish" } else { "play" };
    let (grant, url) = grant_for(server, app, stream, action).await;
    let (pending, offer) = PendingPeer::offer(role, "127.0.0.1".parse().unwrap()).unwrap();
    let (status, answer, location) = post_offer(server, &url, &grant, &offer).await;
    assert_eq!(status, 201, "{answer}");
    (pending.connect(&answer).unwrap(), location.expect("Location header"))
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn in_order(sequence: &[u32]) -> bool {
    sequence.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn published_media_reaches_every_player_in_order() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (publisher, publisher_location) = start_peer(&server, &app, Role::Publish, "cam").await;
    wait_for("the publisher to connect", Duration::from_secs(5), || publisher.stats().connected).await;

    let (first, _) = start_peer(&server, &app, Role::Play, "cam").await;
    let (second, _) = start_peer(&server, &app, Role::Play, "cam").await;
    for player in [&first, &second] {
        wait_for("video and audio at a player", Duration::from_secs(8), || {
            let stats = player.stats();
            stats.video_frames >= 30 && stats.audio_frames >= 25
        })
        .await;
        let stats = player.stats();
        assert!(in_order(&stats.video_sequence), "frames out of order: {:?}", &stats.video_sequence[..20]);
        let sent = publisher.stats().video_sequence;
        assert!(stats.video_sequence.iter().all(|s| sent.contains(s)), "a player got a frame nobody sent");
        assert!(stats.keyframes >= 1, "a player must start from a keyframe");
    }

    // A player joining later gets a keyframe fast: its request reaches the publisher (whose own
    // keyframes come only every 10 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (late, _) = start_peer(&server, &app, Role::Play, "cam").await;
    wait_for("a keyframe at the late player", Duration::from_secs(5), || late.stats().keyframes >= 1).await;
    let waited = late.stats().first_keyframe_after_connect.expect("keyframe time");
    assert!(waited < Duration::from_secs(3), "late player waited {waited:?} for a keyframe");

    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_relay_peers 4"), "{metrics}");
    assert!(metrics.contains("huddle_relay_streams 1"));
    assert!(metrics.contains(r#"huddle_relay_total{what="forwarded"}"#));
    assert!(metrics.contains(r#"huddle_relay_total{what="keyframe_requests"}"#));
    let forwarded_timings = metrics
        .lines()
        .find_map(|l| l.strip_prefix("huddle_relay_forward_duration_seconds_count "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(forwarded_timings > 100, "forwarding latency is recorded per packet: {forwarded_timings}");

    // Ending the publisher ends its players.
    let response = server.http.delete(server.url(&publisher_location)).send().await.unwrap();
    assert_eq!(response.status(), 204);
    for player in [&first, &second, &late] {
        wait_for("players to be closed", Duration::from_secs(5), || player.stats().closed).await;
    }
    let response = server.http.delete(server.url(&publisher_location)).send().await.unwrap();
    assert_eq!(response.status(), 404, "a session ends once");
}

/// `huddle loadtest media --light`: light players (many per thread, frames counted from RTP
/// headers) and the full players kept among them measure the same stream alike, and close
/// cleanly when the run ends.
#[tokio::test]
async fn the_media_load_generator_measures_light_and_full_players() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (base, app_id) = (server.base.clone(), app.app_id.to_string());
    let args = [
        "loadtest",
        "media",
        "--url",
        &base,
        "--app-id",
        &app_id,
        "--secret",
        &app.secret,
        "--players",
        "6",
        "--light",
        "--light-threads",
        "2",
        "--full-every",
        "3",
        "--bitrate-kbps",
        "300",
        "--seconds",
        "2",
        "--warmup",
        "1",
    ]
    .map(str::to_owned);
    let run = move || std::process::Command::new(BIN).args(args).env_clear().output();
    let output = tokio::task::spawn_blocking(run).await.unwrap().expect("run huddle loadtest");
    assert!(output.status.success(), "loadtest failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!((report["playersReceiving"].as_u64(), report["lightPlayers"].as_u64()), (Some(6), Some(4)), "{report}");
    let expected = report["videoFramesExpected"].as_u64().unwrap();
    assert!(expected >= 6 * 30, "two seconds of 30 fps to six players: {report}");
    assert_eq!(report["videoFramesReceived"].as_u64(), Some(expected), "no frame lost on loopback: {report}");
    assert!(report["frameLatency"]["p50_us"].as_u64().unwrap() > 0, "light players time their frames: {report}");
    let per_thread: Vec<u64> =
        report["relayThreadPeers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(per_thread.iter().sum::<u64>(), 7, "the publisher and six players, by relay thread: {report}");
    // Light players say goodbye as full ones do: the relay ends their sessions at once rather
    // than after ICE's timeout.
    let started = Instant::now();
    while !server.metrics().await.contains("huddle_relay_peers 0") {
        assert!(started.elapsed() < Duration::from_secs(5), "sessions left at the relay after the run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_publisher_per_stream_and_no_play_without_one() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (grant, url) = grant_for(&server, &app, "cam", "play").await;
    let (_pending, offer) = PendingPeer::offer(Role::Play, "127.0.0.1".parse().unwrap()).unwrap();
    let (status, body, _) = post_offer(&server, &url, &grant, &offer).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("6008"));

    let (publisher, _) = start_peer(&server, &app, Role::Publish, "cam").await;
    let (grant, url) = grant_for(&server, &app, "cam", "publish").await;
    let (_pending, offer) = PendingPeer::offer(Role::Publish, "127.0.0.1".parse().unwrap()).unwrap();
    let (status, body, _) = post_offer(&server, &url, &grant, &offer).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("6007"));
    drop(publisher);
}

#[tokio::test]
async fn a_publisher_that_vanishes_ends_its_players() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (publisher, _) = start_peer(&server, &app, Role::Publish, "cam").await;
    wait_for("the publisher to connect", Duration::from_secs(5), || publisher.stats().connected).await;
    let (player, _) = start_peer(&server, &app, Role::Play, "cam").await;
    wait_for("media at the player", Duration::from_secs(8), || player.stats().video_frames >= 10).await;
    publisher.vanish(); // no DTLS close: the relay notices through ICE
    wait_for("the player to be ended", Duration::from_secs(20), || player.stats().closed).await;
}

#[tokio::test]
async fn encoder_streams_are_announced_to_the_room() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (encoder, location) = start_peer(&server, &app, Role::Publish, "stage").await;
    let joined = watcher.event("roomUserUpdate").await;
    assert_eq!(
        (joined["updateType"].as_str(), joined["userList"][0]["userID"].as_str()),
        (Some("ADD"), Some("encoder"))
    );
    let added = watcher.event("roomStreamUpdate").await;
    assert_eq!(
        (added["updateType"].as_str(), added["streamList"][0]["streamID"].as_str()),
        (Some("ADD"), Some("stage"))
    );

    let response = server.http.delete(server.url(&location)).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(watcher.event("roomStreamUpdate").await["updateType"], "DELETE");
    let left = watcher.event("roomUserUpdate").await;
    assert_eq!(
        (left["updateType"].as_str(), left["userList"][0]["userID"].as_str()),
        (Some("DELETE"), Some("encoder"))
    );
    drop(encoder);
}
