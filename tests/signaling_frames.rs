//! Websocket framing against the real binary, with frames written byte by byte: fragmented
//! messages are reassembled up to the 64 KiB cap; a message over it, invalid UTF-8 and other
//! websocket protocol violations close the connection with their own code and end the session
//! (the user leaves at once), while a client's close frame or a dropped connection parks it.

mod common;

use std::time::Duration;

use common::ws::{Ending, RawWs, WsClient, opcode};
use common::*;
use serde_json::{Value, json};

/// A ping request padded to exactly `size` bytes.
fn ping_of_size(size: usize) -> Vec<u8> {
    let empty = json!({"id": 9, "type": "ping", "data": {"pad": ""}}).to_string();
    assert!(size >= empty.len());
    json!({"id": 9, "type": "ping", "data": {"pad": "x".repeat(size - empty.len())}}).to_string().into_bytes()
}

/// Logs `user` in over a raw connection; the watcher sees it arrive.
async fn raw_join(server: &Server, app: &TestApp, watcher: &mut WsClient, user: &str) -> (RawWs, Value) {
    let mut raw = RawWs::connect(&server.base).await;
    let token = mint(app, user, Some("room-1"), false);
    let reply = raw.request(1, "login", login_data(app, "room-1", user, &token, false)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let added = watcher.event("roomUserUpdate").await;
    assert_eq!((added["updateType"].as_str(), added["userList"][0]["userID"].as_str()), (Some("ADD"), Some(user)));
    (raw, reply["data"].clone())
}

/// The next user update the watcher sees is `user` leaving.
async fn left_at_once(watcher: &mut WsClient, user: &str, case: &str) {
    let gone = watcher.event("roomUserUpdate").await;
    assert_eq!(
        (gone["updateType"].as_str(), gone["userList"][0]["userID"].as_str()),
        (Some("DELETE"), Some(user)),
        "{case}: the session ends at once"
    );
}

type Send = fn(&mut RawWs) -> futures_util::future::BoxFuture<'_, ()>;

#[tokio::test]
async fn protocol_violations_close_with_their_code_and_end_the_session() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    // The default 30 s grace: a parked session would not leave during this test.
    let server = Server::start(&db);
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;

    let cases: Vec<(&str, Send, Vec<u64>, Ending)> = vec![
        (
            "90 KB in three 30 KB fragments",
            |c| {
                Box::pin(async move {
                    let message = ping_of_size(90_000);
                    c.send_frame(false, opcode::TEXT, &message[..30_000]).await;
                    c.send_frame(false, opcode::CONTINUATION, &message[30_000..60_000]).await;
                    c.send_frame(true, opcode::CONTINUATION, &message[60_000..]).await;
                })
            },
            vec![5005],
            Ending::Code(1009),
        ),
        (
            "65 537 bytes in two fragments",
            |c| {
                Box::pin(async move {
                    let message = ping_of_size(65_537);
                    c.send_frame(false, opcode::TEXT, &message[..40_000]).await;
                    c.send_frame(true, opcode::CONTINUATION, &message[40_000..]).await;
                })
            },
            vec![5005],
            Ending::Code(1009),
        ),
        (
            "one 70 KB frame",
            |c| Box::pin(async move { c.send_frame(true, opcode::TEXT, &ping_of_size(70_000)).await }),
            vec![5005],
            Ending::Code(1009),
        ),
        (
            "a header announcing 1 GiB, and no payload yet",
            |c| {
                Box::pin(async move {
                    let mut header = vec![0x80 | opcode::TEXT, 0x80 | 127];
                    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
                    header.extend_from_slice(&[1, 2, 3, 4]);
                    c.send_bytes(&header).await;
                })
            },
            vec![5005],
            Ending::Code(1009),
        ),
        (
            "invalid UTF-8 in one frame",
            |c| {
                Box::pin(async move {
                    c.send_frame(true, opcode::TEXT, b"{\"id\":2,\"type\":\"ping\",\"x\":\"\xff\"}").await
                })
            },
            vec![],
            Ending::Code(1007),
        ),
        (
            "invalid UTF-8 across fragments",
            |c| {
                Box::pin(async move {
                    c.send_frame(false, opcode::TEXT, b"{\"id\":2,\"type\":\"ping\",\"x\":\"\xc3").await;
                    c.send_frame(true, opcode::CONTINUATION, b"\x28\"}").await;
                })
            },
            vec![],
            Ending::Code(1007),
        ),
        (
            "an unmasked frame",
            |c| {
                Box::pin(
                    async move { c.send_header_byte(0x80 | opcode::TEXT, false, br#"{"id":2,"type":"ping"}"#).await },
                )
            },
            vec![],
            Ending::Code(1002),
        ),
        (
            "a reserved opcode",
            |c| Box::pin(async move { c.send_frame(true, 0x3, b"?").await }),
            vec![],
            Ending::Code(1002),
        ),
        (
            "reserved bits set",
            |c| {
                Box::pin(async move {
                    c.send_header_byte(0x80 | 0x40 | opcode::TEXT, true, br#"{"id":2,"type":"ping"}"#).await
                })
            },
            vec![],
            Ending::Code(1002),
        ),
        (
            "a continuation without a start",
            |c| Box::pin(async move { c.send_frame(true, opcode::CONTINUATION, b"{}").await }),
            vec![],
            Ending::Code(1002),
        ),
        (
            "a new message inside a fragmented one",
            |c| {
                Box::pin(async move {
                    c.send_frame(false, opcode::TEXT, b"{\"id\":2,").await;
                    c.send_frame(true, opcode::TEXT, br#"{"id":3,"type":"ping"}"#).await;
                })
            },
            vec![],
            Ending::Code(1002),
        ),
        (
            "a control frame over 125 bytes",
            |c| Box::pin(async move { c.send_frame(true, opcode::PING, &[b'p'; 126]).await }),
            vec![],
            Ending::Code(1002),
        ),
        (
            "a fragmented control frame",
            |c| Box::pin(async move { c.send_frame(false, opcode::PING, b"p").await }),
            vec![],
            Ending::Code(1002),
        ),
        (
            "a close frame with an invalid status code",
            |c| Box::pin(async move { c.send_frame(true, opcode::CLOSE, &999u16.to_be_bytes()).await }),
            vec![],
            Ending::Code(1002),
        ),
    ];
    for (i, (case, send, errors, ending)) in cases.into_iter().enumerate() {
        let user = format!("offender-{i}");
        let (mut offender, _) = raw_join(&server, &app, &mut watcher, &user).await;
        send(&mut offender).await;
        assert_eq!(offender.ending().await, (errors, ending), "{case}");
        left_at_once(&mut watcher, &user, case).await;
    }
    let metrics = server.metrics().await;
    assert!(metrics.contains("huddle_ws_connections 1\n"), "only the watcher is left: {metrics}");
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_up_to_64_kib() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (mut client, _) = raw_join(&server, &app, &mut watcher, "alice").await;

    // A broadcast in three fragments, a ping between them, "👋" cut across the last boundary.
    let message = json!({"id": 2, "type": "sendBroadcastMessage", "data": {"message": "hello 👋"}}).to_string();
    let bytes = message.as_bytes();
    let wave = message.find('👋').unwrap();
    client.send_frame(false, opcode::TEXT, &bytes[..10]).await;
    client.send_frame(true, opcode::PING, b"between").await;
    client.send_frame(false, opcode::CONTINUATION, &bytes[10..wave + 2]).await;
    client.send_frame(true, opcode::CONTINUATION, &bytes[wave + 2..]).await;
    let pong = loop {
        match client.read_frame().await {
            Some((opcode::TEXT, _)) => continue, // events of the login
            other => break other,
        }
    };
    assert_eq!(pong, Some((opcode::PONG, b"between".to_vec())), "control frames inside a message are answered");
    let reply = client.next_json().await.unwrap();
    assert_eq!((reply["id"].as_u64(), reply["ok"].as_bool()), (Some(2), Some(true)), "{reply}");
    let got = watcher.event("IMRecvBroadcastMessage").await;
    assert_eq!(got["messageList"][0]["message"], "hello 👋");

    // Exactly 64 KiB, in fragments, is accepted.
    let message = ping_of_size(65_536);
    client.send_frame(false, opcode::TEXT, &message[..1]).await;
    client.send_frame(false, opcode::CONTINUATION, &message[1..32_768]).await;
    client.send_frame(true, opcode::CONTINUATION, &message[32_768..]).await;
    let reply = client.next_json().await.unwrap();
    assert_eq!((reply["id"].as_u64(), reply["ok"].as_bool()), (Some(9), Some(true)), "{reply}");

    // A fragmented binary message is refused like a single binary frame; the connection stays.
    client.send_frame(false, opcode::BINARY, &[1, 2]).await;
    client.send_frame(true, opcode::CONTINUATION, &[3]).await;
    let refused = client.next_json().await.unwrap();
    assert_eq!((refused["type"].as_str(), refused["error"]["code"].as_u64()), (Some("error"), Some(5004)));
    let reply = client.request(3, "ping", json!({})).await;
    assert_eq!(reply["ok"], true);
}

#[tokio::test]
async fn a_client_close_frame_parks_the_session() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start(&db);
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    let (mut client, session) = raw_join(&server, &app, &mut watcher, "alice").await;
    client.send_frame(true, opcode::CLOSE, &1000u16.to_be_bytes()).await;
    let (_, ending) = client.ending().await;
    assert_ne!(ending, Ending::Code(1002));
    watcher.quiet(Duration::from_millis(500)).await;
    let mut back = WsClient::connect(&server.base).await;
    back.ok("resume", json!({"sessionID": session["sessionID"], "resumeToken": session["resumeToken"]})).await;
}
