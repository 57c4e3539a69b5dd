//! Connections that must not hang: a client that stops reading its socket is ended by the
//! heartbeat timeout whatever it does meanwhile, and a request waiting on a frozen Redis does
//! not stop the connection from reading (pings, pongs, close), so a live client is not closed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::ws::WsClient;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How many requests may wait behind the one in flight (`huddle::signaling::limits`).
const QUEUED: usize = huddle::signaling::limits::MAX_QUEUED_REQUESTS;

/// Logs in over a socket to be left unread afterwards. Its receive buffer and segment size are
/// small: on loopback the server's kernel would otherwise buffer megabytes for it (its send
/// buffer grows with the segment size, 64 KiB there), and the flood would take long to fill it.
async fn stalled_client(server: &Server, app: &TestApp, user: &str) -> WebSocketStream<TcpStream> {
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().expect("address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    socket.set_tcp_mss(536).expect("small segments");
    socket.set_nonblocking(true).expect("non-blocking");
    let socket = TcpSocket::from_std_stream(socket.into());
    let stream = socket.connect(addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws?v=1"), stream).await.expect("upgrade");
    let token = mint(app, user, Some("room-1"), false);
    let login = json!({"id": 1, "type": "login", "data": login_data(app, "room-1", user, &token, false)});
    ws.send(Message::Text(login.to_string().into())).await.expect("send login");
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("reply in time");
        if let Some(Ok(Message::Text(text))) = frame {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame["type"] == "reply" {
                assert_eq!(frame["ok"], true, "{frame}");
                return ws;
            }
        }
    }
}

fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_ended_by_the_heartbeat_timeout() {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let (timeout, grace) = (Duration::from_millis(1000), Duration::from_millis(500));
    let extra_env = vec![
        ("HUDDLE_WS_HEARTBEAT_INTERVAL_MS", "200".into()),
        ("HUDDLE_WS_HEARTBEAT_TIMEOUT_MS", timeout.as_millis().to_string()),
        ("HUDDLE_RECONNECT_GRACE_MS", grace.as_millis().to_string()),
    ];
    let server = Server::start_with(&db, ServerOptions { extra_env, ..Default::default() });
    let (mut watcher, _) = join(&server.base, &app, "room-1", "watcher", true).await;
    const SENDERS: usize = 10;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(join(&server.base, &app, "room-1", &format!("sender-{i}"), false).await.0);
    }
    // Two clients stop reading: one goes silent, the other keeps sending pings (activity),
    // which must not keep it alive either.
    let quiet = stalled_client(&server, &app, "quiet").await;
    let mut chatty = stalled_client(&server, &app, "chatty").await;
    let mut added = 0;
    while added < 2 {
        let update = watcher.event("roomUserUpdate").await;
        let user = update["userList"][0]["userID"].as_str().unwrap_or_default();
        added += usize::from(update["updateType"] == "ADD" && ["quiet", "chatty"].contains(&user));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ping = chatty.send(Message::Ping(b"still here".to_vec().into()));
                let _ = tokio::time::timeout(Duration::from_millis(100), ping).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            chatty
        })
    };

    // Flood the two with commands (1000 bytes, addressed to them only) within the rate limits.
    let mut flooders = Vec::new();
    for mut sender in senders {
        let stop = stop.clone();
        flooders.push(tokio::spawn(async move {
            let data = json!({"command": "x".repeat(1000), "toUserIDs": ["quiet", "chatty"]});
            while !stop.load(Ordering::Relaxed) {
                let reply = sender.request("sendCustomCommand", data.clone()).await;
                if reply["ok"] == false {
                    assert_eq!(reply["error"]["code"], 5007, "{reply}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            sender
        }));
    }

    // Filling the buffers takes a moment, then the timeout and the grace period.
    let limit = timeout + grace + Duration::from_secs(3);
    let deletes = async {
        let mut gone = Vec::new();
        while gone.len() < 2 {
            let update = watcher.event("roomUserUpdate").await;
            assert_eq!(update["updateType"], "DELETE", "{update}");
            gone.push(update["userList"][0]["userID"].as_str().unwrap().to_owned());
        }
        gone.sort();
        gone
    };
    let gone = tokio::time::timeout(limit, deletes).await.expect("the stalled users leave within the limit");
    assert_eq!(gone, ["chatty", "quiet"]);
    stop.store(true, Ordering::Relaxed);
    let _senders: Vec<WsClient> =
        futures_util::future::join_all(flooders).await.into_iter().map(Result::unwrap).collect();
    let _chatty = pinger.await.unwrap();

    let metrics = server.metrics().await;
    assert_eq!(gauge(&metrics, "huddle_ws_connections"), Some(SENDERS as u64 + 1), "the two slots are free");
    assert!(metrics.contains(r#"huddle_errors_total{code="5017",name="HeartbeatTimeout"} 2"#), "{metrics}");

    // The server also lets go of the sockets themselves (not only of the slots): a peer that
    // acknowledges nothing but zero-window probes would otherwise hold them for ever.
    let ports = [quiet.get_ref().local_addr().unwrap().port(), _chatty.get_ref().local_addr().unwrap().port()];
    let server_port = server.base.rsplit(':').next().unwrap().to_owned();
    let held = || {
        let output = std::process::Command::new("ss").args(["-tnH", "state", "established"]).output().unwrap();
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        ports
            .iter()
            .filter(|port| {
                table.lines().any(|line| {
                    // The server's side of the connection: local = server port, peer = client port.
                    let columns: Vec<&str> = line.split_whitespace().collect();
                    columns.len() >= 4
                        && columns[2].ends_with(&format!(":{server_port}"))
                        && columns[3].ends_with(&format!(":{port}"))
                })
            })
            .count()
    };
    let deadline = Instant::now() + timeout * 3 + Duration::from_secs(5);
    while held() > 0 {
        assert!(Instant::now() < deadline, "the server still holds {} stalled socket(s)", held());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(quiet);
}

#[tokio::test]
async fn a_request_waiting_on_a_frozen_redis_does_not_stop_the_connection() {
    let mut redis = RedisServer::start(); // thawed and killed when dropped
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let extra_env = vec![
        ("HUDDLE_REDIS_URL", redis.url()),
        ("HUDDLE_REDIS_TIMEOUT_MS", "1000".into()),
        ("HUDDLE_WS_HEARTBEAT_INTERVAL_MS", "300".into()),
        ("HUDDLE_WS_HEARTBEAT_TIMEOUT_MS", "1500".into()),
    ];
    let server = Server::start_with(&db, ServerOptions { extra_env, ..Default::default() });
    let (mut alice, _) = join(&server.base, &app, "room-1", "alice", false).await;

    redis.freeze();
    let frozen_at = Instant::now();
    let broadcast = |id: &str| json!({"id": id, "type": "sendBroadcastMessage", "data": {"message": "stalled"}});
    alice.send_text(&broadcast("b1").to_string()).await;
    alice.send_text(&json!({"id": "p1", "type": "ping"}).to_string()).await;
    alice.send_text(&broadcast("b2").to_string()).await;
    // While b1 waits on Redis, the connection still reads: a websocket ping is answered now.
    let rtt = alice.ping_pong().await;
    assert!(rtt < Duration::from_millis(500), "pong after {rtt:?}");
    // Requests queue behind it, up to a bound; beyond it they are refused at once.
    let extra = QUEUED + 5 - 2;
    for i in 0..extra {
        alice.send_text(&json!({"id": format!("q{i}"), "type": "ping"}).to_string()).await;
    }
    let queued: Vec<String> =
        ["p1", "b2"].into_iter().map(String::from).chain((0..extra).map(|i| format!("q{i}"))).collect();
    let mut expected: Vec<(String, Value)> = queued[QUEUED..].iter().map(|id| (id.clone(), json!(5007))).collect();
    expected.push(("b1".into(), json!(1007)));
    expected.extend(queued[..QUEUED].iter().map(|id| (id.clone(), if id == "b2" { json!(1007) } else { json!(true) })));
    let mut replies = Vec::new();
    while replies.len() < expected.len() {
        let frame = alice.next_frame().await;
        if frame["type"] == "reply" {
            let outcome = if frame["ok"] == true { json!(true) } else { frame["error"]["code"].clone() };
            replies.push((frame["id"].as_str().unwrap().to_owned(), outcome));
        }
    }
    assert_eq!(replies, expected, "each request gets one reply, in order, except those refused at once");

    // Stay frozen past the heartbeat timeout: the client answers pings and is not closed.
    let still_frozen = Duration::from_millis(2500).saturating_sub(frozen_at.elapsed());
    alice.quiet(still_frozen).await;
    redis.thaw();

    // The same connection and session work again once Redis answers.
    let started = Instant::now();
    loop {
        let reply = alice.request("sendBroadcastMessage", json!({"message": "is anyone there?"})).await;
        if reply["ok"] == true {
            break;
        }
        assert_eq!(reply["error"]["code"], 1007, "{reply}");
        assert!(started.elapsed() < Duration::from_secs(5), "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut bob, _) = join(&server.base, &app, "room-1", "bob", false).await;
    alice.ok("sendBroadcastMessage", json!({"message": "after the stall"})).await;
    assert_eq!(bob.event("IMRecvBroadcastMessage").await["messageList"][0]["message"], "after the stall");
    assert!(!server.metrics().await.contains(r#"code="5017""#), "nobody timed out");
}
