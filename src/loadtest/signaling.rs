//! Signaling load: many websocket clients logging in to rooms, as browsers would.
//!
//! Scenarios:
//! - `sessions`: hold N logged-in sessions spread over M rooms; reports login latency and,
//!   given `--server-pid`, the server's memory per session.
//! - `fanout`: a room of N members (with user updates); a probe user joins and leaves
//!   repeatedly; reports how long each ADD takes to reach every member.
//! - `messages`: a room of N members; S of them broadcast as fast as the rate limit lets
//!   them; reports messages delivered per second across all members.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Percentiles;
use crate::auth::token::{self, TokenSpec};
use crate::auth::{Privileges, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Sessions,
    Fanout,
    Messages,
}

#[derive(Debug, Clone, Args)]
pub struct SignalingLoadArgs {
    #[command(flatten)]
    pub deployment: super::Deployment,
    #[arg(long, value_enum, default_value = "sessions")]
    pub scenario: Scenario,
    /// Sessions to hold (sessions) or members of the room (fanout, messages).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub clients: u32,
    /// Rooms to spread the sessions over (sessions scenario).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rooms: u32,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// How long to hold the sessions (sessions) or to send (messages), in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub seconds: u64,
    /// Join/leave rounds of the probe user (fanout).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: u32,
    /// Uncounted warm-up rounds before the measured ones (fanout).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup_rounds: u32,
    /// Members that send broadcasts (messages).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub senders: u32,
    /// Process id of the server, to report its resident memory per session (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Prefix of room and user ids, so that runs do not collide.
    #[arg(long)]
    pub prefix: Option<String>,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A logged-in client.
struct Client {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
}

struct Target {
    ws_url: String,
    app_id: u32,
    secret: String,
}

impl Target {
    fn token(&self, user_id: &str, room_id: &str) -> Result<String, String> {
        let spec = TokenSpec {
            user_id: user_id.to_owned(),
            room_id: Some(room_id.to_owned()),
            privileges: Privileges { login_room: true, publish_stream: false },
            ..TokenSpec::default()
        };
        token::issue(self.app_id, self.secret.as_bytes(), &spec, unix_now()).map(|t| t.token).map_err(|e| e.to_string())
    }

    /// Connects and logs in; returns the client, how long the login request took, and when
    /// it was sent (connection set-up excluded from both).
    async fn login(
        &self,
        room_id: &str,
        user_id: &str,
        user_update: bool,
    ) -> Result<(Client, Duration, Instant), String> {
        // Small buffers: thousands of idle clients live in this one process.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(self.ws_url.as_str(), Some(config), true)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sink, mut stream) = socket.split();
        let token = self.token(user_id, room_id)?;
        let login = json!({"id": 1, "type": "login", "data": {
            "appID": self.app_id, "roomID": room_id, "token": token,
            "user": {"userID": user_id}, "userUpdate": user_update}});
        let started = Instant::now();
        sink.send(Message::Text(login.to_string().into())).await.map_err(|e| format!("send: {e}"))?;
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    if frame["type"] == "reply" {
                        return if frame["ok"] == true {
                            Ok((Client { sink, stream }, started.elapsed(), started))
                        } else {
                            Err(format!("login refused: {}", frame["error"]))
                        };
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("closed during login".to_owned()),
            }
        }
    }
}

/// Resident memory of a process, from /proc (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Logs in `count` clients with bounded concurrency; `place(i)` gives (room, user).
async fn login_many(
    target: &Arc<Target>,
    count: u32,
    concurrency: u32,
    user_update: bool,
    place: impl Fn(u32) -> (String, String),
) -> Result<(Vec<Client>, Vec<u64>), String> {
    let mut clients = Vec::with_capacity(count as usize);
    let mut latencies = Vec::with_capacity(count as usize);
    let mut pending = futures_util::stream::iter((0..count).map(|i| {
        let target = target.clone();
        let (room, user) = place(i);
        async move { target.login(&room, &user, user_update).await }
    }))
    .buffer_unordered(concurrency as usize);
    while let Some(result) = pending.next().await {
        let (client, took, _) = result?;
        latencies.push(took.as_micros() as u64);
        clients.push(client);
    }
    Ok((clients, latencies))
}

/// Keeps a client's socket read (which also answers the server's pings) and hands every
/// text frame to `on_text`. The caller keeps the sink, and with it the connection.
fn drain(mut stream: SplitStream<Socket>, on_text: impl Fn(&str) + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                on_text(&text);
            }
        }
    })
}

/// Splits clients into their sinks (kept) and drained streams.
fn drain_all(
    clients: Vec<Client>,
    on_text: impl Fn(&str) + Clone + Send + 'static,
) -> (Vec<SplitSink<Socket, Message>>, Vec<tokio::task::JoinHandle<()>>) {
    clients.into_iter().map(|c| (c.sink, drain(c.stream, on_text.clone()))).unzip()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionsReport {
    scenario: Scenario,
    sessions: u32,
    rooms: u32,
    login_seconds: f64,
    logins_per_second: f64,
    login_latency: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_rss_bytes_per_session: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FanoutReport {
    scenario: Scenario,
    members: u32,
    rounds: u32,
    deliveries: usize,
    /// From sending the probe's login request to each member's roomUserUpdate ADD.
    delivery_latency: Percentiles,
    /// From the probe's login request to the last member's ADD, per round.
    last_member_latency: Percentiles,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagesReport {
    scenario: Scenario,
    members: u32,
    senders: u32,
    seconds: f64,
    sent: u64,
    delivered: u64,
    delivered_per_second: f64,
}

pub async fn run(args: SignalingLoadArgs) -> Result<(), String> {
    let deployment = &args.deployment;
    let ws_url = format!("{}/ws?v=1", deployment.url.trim_end_matches('/').replacen("http", "ws", 1));
    let target = Arc::new(Target { ws_url, app_id: deployment.app_id, secret: deployment.secret.clone() });
    let prefix = args.prefix.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let report = match args.scenario {
        Scenario::Sessions => serde_json::to_value(sessions(&args, &target, &prefix).await?),
        Scenario::Fanout => serde_json::to_value(fanout(&args, &target, &prefix).await?),
        Scenario::Messages => serde_json::to_value(messages(&args, &target, &prefix).await?),
    };
    println!("{}", report.map_err(|e| e.to_string())?);
    Ok(())
}

async fn sessions(args: &SignalingLoadArgs, target: &Arc<Target>, prefix: &str) -> Result<SessionsReport, String> {
    let rss_before = args.server_pid.and_then(rss_bytes);
    let started = Instant::now();
    let rooms = args.rooms;
    let (clients, mut latencies) = login_many(target, args.clients, args.concurrency, false, |i| {
        (format!("{prefix}-room-{}", i % rooms), format!("{prefix}-user-{i}"))
    })
    .await?;
    let login_seconds = started.elapsed().as_secs_f64();
    let (_sinks, handles) = drain_all(clients, |_| {});
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let rss_after = args.server_pid.and_then(rss_bytes);
    for handle in handles {
        handle.abort();
    }
    Ok(SessionsReport {
        scenario: Scenario::Sessions,
        sessions: args.clients,
        rooms,
        login_seconds,
        logins_per_second: f64::from(args.clients) / login_seconds,
        login_latency: Percentiles::of(&mut latencies),
        server_rss_bytes_per_session: rss_before
            .zip(rss_after)
            .map(|(before, after)| after.saturating_sub(before) / u64::from(args.clients)),
        server_rss_bytes: rss_after,
    })
}

async fn fanout(args: &SignalingLoadArgs, target: &Arc<Target>, prefix: &str) -> Result<FanoutReport, String> {
    let room = format!("{prefix}-fanout");
    let (members, _) =
        login_many(target, args.clients, args.concurrency, true, |i| (room.clone(), format!("{prefix}-member-{i}")))
            .await?;
    // Every member reports when it sees a probe's ADD: (round, instant).
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u32, Instant)>();
    let probe_prefix = format!("{prefix}-probe-");
    let probe_users = probe_prefix.clone();
    let (_sinks, handles) = drain_all(members, move |text: &str| {
        if !text.contains("\"roomUserUpdate\"") || !text.contains("\"ADD\"") {
            return;
        }
        let now = Instant::now();
        let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
        let user = frame["data"]["userList"][0]["userID"].as_str().unwrap_or_default();
        if let Some(round) = user.strip_prefix(probe_prefix.as_str()).and_then(|r| r.parse().ok()) {
            let _ = arrivals.send((round, now));
        }
    });
    let mut deliveries = Vec::new();
    let mut last_member = Vec::new();
    // The first rounds warm caches and connection pools; they are run but not counted.
    let warmup = args.warmup_rounds;
    for round in 0..args.rounds + warmup {
        let (probe, _, started) = target.login(&room, &format!("{probe_users}{round}"), false).await?;
        let mut latest = Duration::ZERO;
        let mut received = 0;
        while received < args.clients {
            match tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await {
                Ok(Some((r, at))) if r == round => {
                    let took = at.saturating_duration_since(started);
                    latest = latest.max(took);
                    if round >= warmup {
                        deliveries.push(took.as_micros() as u64);
                    }
                    received += 1;
                }
                Ok(Some(_)) => {}
                _ => return Err(format!("round {round}: only {received} of {} members saw the ADD", args.clients)),
            }
        }
        if round >= warmup {
            last_member.push(latest.as_micros() as u64);
        }
        let mut probe = probe;
        let logout = json!({"id": 2, "type": "logout", "data": {}}).to_string();
        let _ = probe.sink.send(Message::Text(logout.into())).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for handle in handles {
        handle.abort();
    }
    Ok(FanoutReport {
        scenario: Scenario::Fanout,
        members: args.clients,
        rounds: args.rounds,
        deliveries: deliveries.len(),
        delivery_latency: Percentiles::of(&mut deliveries),
        last_member_latency: Percentiles::of(&mut last_member),
    })
}

async fn messages(args: &SignalingLoadArgs, target: &Arc<Target>, prefix: &str) -> Result<MessagesReport, String> {
    let room = format!("{prefix}-messages");
    let (members, _) =
        login_many(target, args.clients, args.concurrency, false, |i| (room.clone(), format!("{prefix}-member-{i}")))
            .await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let (sinks, handles) = drain_all(members, move |text: &str| {
        if text.contains("\"IMRecvBroadcastMessage\"") {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds.max(1));
    let mut senders = Vec::new();
    let mut idle = Vec::new();
    for (index, mut sink) in sinks.into_iter().enumerate() {
        if index >= args.senders as usize {
            idle.push(sink);
            continue;
        }
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            // The per-session message limit is 10/s sustained.
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            let mut id = 0u64;
            while Instant::now() < deadline {
                ticker.tick().await;
                id += 1;
                let frame = json!({"id": id, "type": "sendBroadcastMessage", "data": {"message": format!("m{id}")}});
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            sink
        }));
    }
    let mut kept = idle;
    for sender in senders {
        if let Ok(sink) = sender.await {
            kept.push(sink);
        }
    }
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seconds = started.elapsed().as_secs_f64();
    for handle in handles {
        handle.abort();
    }
    drop(kept);
    let delivered = delivered.load(Ordering::Relaxed);
    Ok(MessagesReport {
        scenario: Scenario::Messages,
        members: args.clients,
        senders: args.senders.min(args.clients),
        seconds,
        sent: sent.load(Ordering::Relaxed),
        delivered,
        delivered_per_second: delivered as f64 / seconds,
    })
}
