//! Media load: P publishers, each played by N players, all of them str0m peers on real UDP
//! sockets (one thread each, or with `--light` most players many to a thread: see
//! [`super::light`]) talking to the relay through its WHIP/WHEP-style endpoints, with
//! grants minted by signed `POST /v1/grants` as a business server would.
//!
//! Publishers send synthetic VP8 at 30 fps (frames sized for `--bitrate-kbps`) plus Opus at
//! 50/s. After every player receives media and a warm-up, a window of `--seconds` is measured:
//! - loss: per player, the publisher's video frames sent in the window whose sequence number
//!   never arrived (checked after a short grace for frames in flight); a light player matches
//!   the RTP timestamps of the frames it received intact instead. Frames, not packets: a
//!   frame is lost when any of its RTP packets is, so packet loss is lower than this figure.
//! - relay rates: `huddle_relay_total{what=…}` scraped from `/metrics` at both ends.
//! - with `--server-pid`: the server process's CPU time (utime + stime from `/proc`) and its
//!   relay engine thread's alone, each divided by the forwarded packets.
//! - UDP datagrams the kernel dropped at the players' sockets (the generator not keeping up)
//!   and at the relay's socket, from `/proc/net/udp` (same machine only).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;

use super::Percentiles;
use super::light::LightHub;
use super::peer::{MediaPeer, PeerOptions, PeerStats, PendingPeer, Role, SEQUENCE_CAP};
use crate::auth::{signature, unix_now};

#[derive(Debug, Clone, Args)]
pub struct MediaLoadArgs {
    #[command(flatten)]
    pub deployment: super::Deployment,
    /// Streams published at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub publishers: u32,
    /// Players of each stream (every full player is a thread of this process; see `--light`).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=5000))]
    pub players: u32,
    /// Light players: str0m peers driven many to a thread over epoll that count frames from the
    /// clear RTP headers (sequence numbers, timestamps, markers) instead of decrypting them, so
    /// that the generator costs a fraction of the relay it measures. `--full-every` keeps some
    /// full players among them.
    #[arg(long)]
    pub light: bool,
    /// Threads driving the light players.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub light_threads: u32,
    /// With `--light`, every Nth player of a stream (the first, the N+1th, ...) is a full player
    /// that decrypts and checks each frame's payload; 0: none.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=5000))]
    pub full_every: u32,
    /// Video bitrate of each publisher, kbit/s (30 fps; audio adds ~35 kbit/s).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(8..=20_000))]
    pub bitrate_kbps: u32,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    pub seconds: u64,
    /// Unmeasured time between every player receiving media and the window, in seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// Longest wait for the publishers, then for the players, to receive media, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub connect_timeout: u64,
    /// Offers in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Local IP the peers bind their UDP sockets to.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Process id of the server, to report its CPU time per forwarded packet (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`; 100 on Linux).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub clock_ticks: u64,
    /// Prefix of stream and user ids, so that runs do not collide. Default: random.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Send players to these relay base URLs (comma-separated, round-robin) instead of the
    /// relay their grant names, as signaling places players on cascade edges: each pulls the
    /// stream from the origin. Default: the URL in the grant.
    #[arg(long, value_delimiter = ',')]
    pub play_at: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    publishers: u32,
    publishers_live: u32,
    /// Players asked for (publishers × players per publisher).
    players: u32,
    /// ICE+DTLS connected.
    players_connected: u32,
    /// Received video before the window (the players measured).
    players_receiving: u32,
    /// Of the players asked for, light ones (`--light`).
    light_players: u32,
    /// Offers or grants that failed, and the first reason.
    failures: u32,
    first_failure: Option<String>,
    bitrate_kbps: u32,
    video_frame_bytes: usize,
    /// Measured window, seconds.
    seconds: f64,
    /// Video frames the publishers sent in the window.
    video_frames_sent: u64,
    /// Sum over measured players of their publisher's frames sent in the window.
    video_frames_expected: u64,
    /// Distinct frames of the window that reached the players.
    video_frames_received: u64,
    /// 1 - received / expected (video frames, not packets).
    loss: f64,
    players_with_loss: u32,
    worst_player_loss: f64,
    /// From a player's ICE+DTLS connected to its first keyframe.
    first_keyframe: Percentiles,
    /// Light players, frames of the window: from the publisher's write of a frame to its last
    /// packet read by the player (which looks at its sockets every millisecond: up to 1 ms of
    /// this is the generator's).
    frame_latency: Percentiles,
    relay_forwarded_per_second: f64,
    relay_packets_in_per_second: f64,
    relay_packets_out_per_second: f64,
    relay_mbit_out_per_second: f64,
    /// Messages the relay handed to the kernel per second: packets out less what UDP
    /// segmentation joined (a run of equal packets to one player leaves as one message).
    relay_send_messages_per_second: f64,
    /// Share of the relay's packets out that left in a segmented message with others.
    relay_segmented_share: f64,
    relay_keyframe_requests: f64,
    /// Mean time from a datagram's arrival at the relay to its copies leaving for every player
    /// (`huddle_relay_forward_duration_seconds` over the window), microseconds.
    relay_forward_mean_us: Option<f64>,
    /// Server process CPU (all threads) in the window; with --server-pid.
    server_cpu_seconds: Option<f64>,
    server_cpu_us_per_forwarded: Option<f64>,
    /// The relay engine thread(s) alone.
    relay_thread_cpu_seconds: Option<f64>,
    /// Each relay engine thread's share of that, in thread-name order (how evenly a sharded
    /// relay spreads the load).
    relay_threads_cpu_seconds: Vec<f64>,
    /// Sessions on each relay thread at the window's end (`huddle_relay_thread_peers`).
    relay_thread_peers: Vec<u64>,
    relay_thread_cpu_us_per_forwarded: Option<f64>,
    /// Split of the above: user space (str0m, SRTP, forwarding) and kernel (sendto/recvfrom;
    /// on loopback a send also runs the receiving socket's side of the stack). Where the
    /// kernel accounts CPU time by ticks (CONFIG_TICK_CPU_ACCOUNTING) the split is sampled at
    /// the tick and can be far off at partial load; the total above is not.
    relay_thread_user_us_per_forwarded: Option<f64>,
    relay_thread_system_us_per_forwarded: Option<f64>,
    /// This process's CPU in the window, in cores (1.0 = one core busy).
    generator_cpu_cores: Option<f64>,
    /// The server's resident memory at the window's end (`VmRSS`), with every session open.
    server_rss_mib: Option<f64>,
    /// Datagrams the kernel dropped (receive buffer full) at the players' sockets and at the
    /// relay's socket during the window.
    udp_drops_players: Option<u64>,
    udp_drops_relay: Option<u64>,
}

/// What the generator needs to reach the deployment.
struct Target {
    client: reqwest::Client,
    base: String,
    app_id: u32,
    secret: String,
    prefix: String,
    run_id: String,
    nonces: AtomicU64,
    ip: IpAddr,
    options: PeerOptions,
    /// Relay base URLs players are sent to (see `--play-at`).
    play_at: Vec<String>,
    /// Threads of light players (empty without `--light`).
    hubs: Vec<LightHub>,
    full_every: u32,
}

/// A running peer and what is known of its sockets.
struct Opened {
    peer: MediaPeer,
    local: SocketAddr,
    relay: Option<SocketAddr>,
}

impl Target {
    /// Mints a grant with a signed `POST /v1/grants`; returns the grant and the URL to post to.
    async fn grant(&self, stream_id: &str, user_id: &str, action: &str) -> Result<(String, String), String> {
        let path = "/v1/grants";
        let body = serde_json::json!({
            "roomId": format!("{}-room", self.prefix), "userId": user_id, "streamId": stream_id, "action": action,
        })
        .to_string();
        let nonce = format!("{}m{}", self.run_id, self.nonces.fetch_add(1, Ordering::Relaxed));
        let timestamp = unix_now();
        let sig =
            signature::sign(self.secret.as_bytes(), self.app_id, timestamp, &nonce, "POST", path, body.as_bytes());
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-huddle-appid", self.app_id.to_string())
            .header("x-huddle-timestamp", timestamp.to_string())
            .header("x-huddle-nonce", nonce)
            .header("x-huddle-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("grant: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("grant: {e}"))?;
        if !status.is_success() {
            return Err(format!("grant: {status} {}", text.chars().take(200).collect::<String>()));
        }
        let reply: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("grant reply: {e}"))?;
        let field = |name: &str| reply.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        match (field("grant"), field("url")) {
            (Some(grant), Some(url)) => Ok((grant, url)),
            _ => Err("grant reply without grant or url".to_owned()),
        }
    }

    /// The thread that drives player `player` if it is a light one.
    fn hub_for(&self, role: Role, player: usize) -> Option<&LightHub> {
        let full = self.full_every > 0 && player.is_multiple_of(self.full_every as usize);
        (role == Role::Play && !self.hubs.is_empty() && !full).then(|| &self.hubs[player % self.hubs.len()])
    }

    /// Grant, offer, answer, connect: one running peer (`player` numbers players for
    /// `--play-at`).
    /// `publisher_epoch`: the publisher's RTP time origin, for light players to time frames.
    async fn open(
        &self,
        role: Role,
        stream_id: String,
        user_id: String,
        player: usize,
        publisher_epoch: Option<Instant>,
    ) -> Result<Opened, String> {
        let action = if role == Role::Publish { "publish" } else { "play" };
        let (grant, mut url) = self.grant(&stream_id, &user_id, action).await?;
        if role == Role::Play && !self.play_at.is_empty() {
            let base = &self.play_at[player % self.play_at.len()];
            url = crate::media::relay_endpoint(base, crate::auth::grant::MediaAction::Play, &stream_id);
        }
        let (ip, options) = (self.ip, self.options);
        let (pending, offer) = tokio::task::spawn_blocking(move || PendingPeer::offer_with(role, ip, options))
            .await
            .map_err(|e| e.to_string())??;
        let local = pending.local_addr()?;
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/sdp")
            .header("authorization", format!("Bearer {grant}"))
            .body(offer)
            .send()
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        let status = response.status();
        let answer = response.text().await.map_err(|e| format!("{action}: {e}"))?;
        if status.as_u16() != 201 {
            return Err(format!("{action}: {status} {}", answer.chars().take(200).collect::<String>()));
        }
        let relay = relay_candidate(&answer);
        let peer = match self.hub_for(role, player) {
            Some(hub) => pending.connect_light(&answer, hub, publisher_epoch)?,
            None => pending.connect(&answer)?,
        };
        Ok(Opened { peer, local, relay })
    }
}

/// The first host candidate of an SDP answer (the relay's one UDP socket).
fn relay_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().filter_map(|l| l.trim().strip_prefix("a=candidate:")).find_map(|c| {
        // foundation component transport priority address port typ host
        let fields: Vec<&str> = c.split_whitespace().collect();
        let ip: IpAddr = fields.get(4)?.parse().ok()?;
        let port: u16 = fields.get(5)?.parse().ok()?;
        Some(SocketAddr::new(ip, port))
    })
}

pub async fn run(args: MediaLoadArgs) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let options = PeerOptions::for_video_kbps(args.bitrate_kbps);
    let target = Target {
        client,
        base: args.deployment.url.trim_end_matches('/').to_owned(),
        app_id: args.deployment.app_id,
        secret: args.deployment.secret.clone(),
        prefix: args.prefix.clone().unwrap_or_else(|| format!("ml{}", &run_id[..6])),
        run_id,
        nonces: AtomicU64::new(0),
        ip: args.ip,
        options,
        play_at: args.play_at.clone(),
        hubs: if args.light {
            (0..args.light_threads).map(|i| LightHub::start(&format!("huddle-light{i}"))).collect::<Result<_, _>>()?
        } else {
            Vec::new()
        },
        full_every: args.full_every,
    };
    let connect_timeout = Duration::from_secs(args.connect_timeout);
    let mut failures = Failures::default();

    // Publishers, then wait until each sends video (ICE+DTLS connected).
    let opened =
        open_many(&target, args.concurrency, &HashMap::new(), (0..args.publishers).map(|i| (Role::Publish, i, 0)))
            .await;
    let mut publishers: Vec<(u32, Opened)> = Vec::new();
    for ((_, i, _), result) in opened {
        match result {
            Ok(peer) => publishers.push((i, peer)),
            Err(err) => failures.add(err),
        }
    }
    let deadline = Instant::now() + connect_timeout;
    while Instant::now() < deadline && !publishers.iter().all(|(_, p)| p.peer.stats().video_frames > 0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publishers.retain(|(_, p)| p.peer.stats().video_frames > 0);
    if publishers.is_empty() {
        return Err(format!("no publisher went live ({})", failures.first.unwrap_or_default()));
    }

    // Players of every live publisher, then wait until each receives video.
    let wanted = publishers.iter().flat_map(|(i, _)| (0..args.players).map(move |j| (Role::Play, *i, j)));
    let epochs: HashMap<u32, Instant> = publishers.iter().filter_map(|(i, p)| Some((*i, p.peer.epoch()?))).collect();
    let opened = open_many(&target, args.concurrency, &epochs, wanted).await;
    let mut players: Vec<(u32, Opened)> = Vec::new();
    for ((_, i, _), result) in opened {
        match result {
            Ok(peer) => players.push((i, peer)),
            Err(err) => failures.add(err),
        }
    }
    let deadline = Instant::now() + connect_timeout;
    while Instant::now() < deadline && !players.iter().all(|(_, p)| p.peer.stats().video_frames > 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    // The window.
    // The relay's sockets (one per engine thread of a sharded relay).
    let mut relay_ports: Vec<u16> =
        publishers.iter().chain(players.iter()).filter_map(|(_, p)| p.relay.map(|a| a.port())).collect();
    relay_ports.sort_unstable();
    relay_ports.dedup();
    let our_ports: Vec<u16> = players.iter().map(|(_, p)| p.local.port()).collect();
    let measured: Vec<bool> = players.iter().map(|(_, p)| p.peer.stats().video_frames > 0).collect();
    let snapshot = |publishers: &[(u32, Opened)]| -> HashMap<u32, u64> {
        publishers.iter().map(|(i, p)| (*i, p.peer.stats().video_frames)).collect()
    };
    let sent_start = snapshot(&publishers);
    let metrics_start = scrape(&target).await;
    let cpu_start = Cpu::read(args.server_pid);
    let drops_start = udp_drops();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let sent_end = snapshot(&publishers);
    let metrics_end = scrape(&target).await;
    let cpu_end = Cpu::read(args.server_pid);
    let server_rss_mib = args.server_pid.and_then(resident_kib).map(|kib| kib as f64 / 1024.0);
    let drops_end = udp_drops();
    let elapsed = started.elapsed().as_secs_f64();
    // Frames sent just before the end are still on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let player_stats: Vec<PeerStats> = players.iter().map(|(_, p)| p.peer.stats()).collect();
    // The RTP timestamps of each publisher's frames of the window, for the light players.
    let window_timestamps: HashMap<u32, HashSet<u32>> = publishers
        .iter()
        .map(|(i, p)| {
            let (from, to) = (sent_start.get(i).copied().unwrap_or(0), sent_end.get(i).copied().unwrap_or(0));
            let sent = p.peer.stats().video_timestamps;
            (*i, sent.get(from as usize..(to as usize).min(sent.len())).unwrap_or_default().iter().copied().collect())
        })
        .collect();

    // Loss per measured player: by the frame sequence numbers in the payload (full players) or
    // by the RTP timestamps of intact frames (light players).
    let (mut expected, mut received, mut with_loss, mut worst) = (0u64, 0u64, 0u32, 0f64);
    for (((publisher, _), stats), _) in players.iter().zip(&player_stats).zip(&measured).filter(|(_, m)| **m) {
        let (from, to) =
            (sent_start.get(publisher).copied().unwrap_or(0), sent_end.get(publisher).copied().unwrap_or(0));
        let want = to.saturating_sub(from);
        let got = if stats.light {
            window_timestamps.get(publisher).map_or(0, |window| intact_frames_in(stats, window))
        } else {
            frames_in(stats, from, to)
        };
        expected += want;
        received += got;
        if got < want {
            with_loss += 1;
            worst = worst.max(1.0 - got as f64 / want as f64);
        }
    }
    let mut frame_latency: Vec<u64> = players
        .iter()
        .zip(&player_stats)
        .zip(&measured)
        .filter(|((_, stats), m)| **m && stats.light)
        .flat_map(|(((publisher, _), stats), _)| {
            let window = window_timestamps.get(publisher);
            stats
                .video_timestamps
                .iter()
                .zip(&stats.frame_latency_us)
                .filter(move |(t, _)| window.is_some_and(|w| w.contains(t)))
                .map(|(_, us)| u64::from(*us))
        })
        .collect();
    let mut first_keyframe: Vec<u64> =
        player_stats.iter().filter_map(|s| s.first_keyframe_after_connect).map(|d| d.as_micros() as u64).collect();
    let rate = |what: &str| -> f64 {
        match (metrics_start.get(what), metrics_end.get(what)) {
            (Some(a), Some(b)) => (b - a) / elapsed,
            _ => 0.0,
        }
    };
    let forwarded = rate("forwarded") * elapsed;
    let per_forwarded = |cpu: Option<f64>| cpu.filter(|_| forwarded > 0.0).map(|s| s * 1e6 / forwarded);
    let ticks = args.clock_ticks as f64;
    let server_cpu = cpu_start.process.zip(cpu_end.process).map(|(a, b)| b.saturating_sub(a) as f64 / ticks);
    let relay_split = cpu_start
        .relay
        .zip(cpu_end.relay)
        .map(|((u0, s0), (u1, s1))| (u1.saturating_sub(u0) as f64 / ticks, s1.saturating_sub(s0) as f64 / ticks));
    let relay_cpu = relay_split.map(|(user, system)| user + system);
    let own_cpu = cpu_start.own.zip(cpu_end.own).map(|(a, b)| b.saturating_sub(a) as f64 / ticks / elapsed);
    let drops_of = |ports: &[u16]| -> Option<u64> {
        let (a, b) = (drops_start.as_ref()?, drops_end.as_ref()?);
        Some(ports.iter().map(|p| b.get(p).unwrap_or(&0).saturating_sub(*a.get(p).unwrap_or(&0))).sum())
    };

    let report = Report {
        publishers: args.publishers,
        publishers_live: publishers.len() as u32,
        players: args.publishers * args.players,
        players_connected: player_stats.iter().filter(|s| s.connected).count() as u32,
        players_receiving: measured.iter().filter(|m| **m).count() as u32,
        light_players: player_stats.iter().filter(|s| s.light).count() as u32,
        failures: failures.count,
        first_failure: failures.first,
        bitrate_kbps: args.bitrate_kbps,
        video_frame_bytes: options.video_frame_bytes,
        seconds: elapsed,
        video_frames_sent: sent_end
            .iter()
            .map(|(i, n)| n.saturating_sub(sent_start.get(i).copied().unwrap_or(0)))
            .sum(),
        video_frames_expected: expected,
        video_frames_received: received,
        loss: if expected > 0 { 1.0 - received as f64 / expected as f64 } else { 0.0 },
        players_with_loss: with_loss,
        worst_player_loss: worst,
        first_keyframe: Percentiles::of(&mut first_keyframe),
        frame_latency: Percentiles::of(&mut frame_latency),
        relay_forwarded_per_second: rate("forwarded"),
        relay_packets_in_per_second: rate("packets_in"),
        relay_packets_out_per_second: rate("packets_out"),
        relay_mbit_out_per_second: rate("bytes_out") * 8.0 / 1e6,
        relay_send_messages_per_second: rate("send_messages"),
        relay_segmented_share: if rate("packets_out") > 0.0 {
            rate("packets_segmented") / rate("packets_out")
        } else {
            0.0
        },
        relay_keyframe_requests: rate("keyframe_requests") * elapsed,
        relay_forward_mean_us: (rate(FORWARD_COUNT) > 0.0).then(|| rate(FORWARD_SUM) / rate(FORWARD_COUNT) * 1e6),
        server_cpu_seconds: server_cpu,
        server_cpu_us_per_forwarded: per_forwarded(server_cpu),
        relay_thread_cpu_seconds: relay_cpu,
        relay_threads_cpu_seconds: cpu_end
            .relay_threads
            .iter()
            .map(|(name, end)| {
                let start = cpu_start.relay_threads.get(name).copied().unwrap_or(0);
                end.saturating_sub(start) as f64 / ticks
            })
            .collect(),
        relay_thread_peers: thread_peers(&metrics_end),
        relay_thread_cpu_us_per_forwarded: per_forwarded(relay_cpu),
        relay_thread_user_us_per_forwarded: per_forwarded(relay_split.map(|(user, _)| user)),
        relay_thread_system_us_per_forwarded: per_forwarded(relay_split.map(|(_, system)| system)),
        generator_cpu_cores: own_cpu,
        server_rss_mib,
        udp_drops_players: drops_of(&our_ports),
        udp_drops_relay: drops_of(&relay_ports),
    };

    // Close every peer at once, then wait for their threads.
    for (_, p) in publishers.iter().chain(players.iter()) {
        p.peer.request_stop();
    }
    let _ = tokio::task::spawn_blocking(move || drop((publishers, players))).await;

    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    if report.players > 0 && report.players_receiving == 0 {
        return Err(format!("no player received media ({})", report.first_failure.unwrap_or_default()));
    }
    Ok(())
}

#[derive(Default)]
struct Failures {
    count: u32,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, err: String) {
        self.count += 1;
        self.first.get_or_insert(err);
    }
}

/// Opens peers `(role, publisher index, player index)` with at most `concurrency` in flight.
async fn open_many(
    target: &Target,
    concurrency: u32,
    epochs: &HashMap<u32, Instant>,
    wanted: impl Iterator<Item = (Role, u32, u32)>,
) -> Vec<((Role, u32, u32), Result<Opened, String>)> {
    futures_util::stream::iter(wanted)
        .map(|(role, i, j)| async move {
            let stream_id = format!("{}-s{i}", target.prefix);
            let user_id = match role {
                Role::Publish => format!("{}-pub{i}", target.prefix),
                Role::Play => format!("{}-p{i}x{j}", target.prefix),
            };
            ((role, i, j), target.open(role, stream_id, user_id, j as usize, epochs.get(&i).copied()).await)
        })
        .buffer_unordered(concurrency as usize)
        .collect()
        .await
}

/// Distinct frames of `window` (RTP timestamps) a light player received intact.
fn intact_frames_in(stats: &PeerStats, window: &HashSet<u32>) -> u64 {
    let mut seen: Vec<u32> = stats.video_timestamps.iter().copied().filter(|t| window.contains(t)).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len() as u64
}

/// Distinct video frames with sequence numbers in `from..to` a player received. A player whose
/// record is full (long runs) is counted by its frame counter instead.
fn frames_in(stats: &PeerStats, from: u64, to: u64) -> u64 {
    if stats.video_sequence.len() >= SEQUENCE_CAP {
        return (to - from).min(stats.video_frames);
    }
    let mut seen: Vec<u32> =
        stats.video_sequence.iter().copied().filter(|s| (from..to).contains(&u64::from(*s))).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len() as u64
}

/// `huddle_relay_total{what=…}` values from `/metrics` (empty when unreachable).
async fn scrape(target: &Target) -> HashMap<String, f64> {
    let text = match target.client.get(format!("{}/metrics", target.base)).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    parse_relay_totals(&text)
}

/// The forwarding-latency histogram's sum and count, kept with the relay totals.
const FORWARD_SUM: &str = "huddle_relay_forward_duration_seconds_sum";
const FORWARD_COUNT: &str = "huddle_relay_forward_duration_seconds_count";
/// Prefix of the per-thread session counts (`huddle_relay_thread_peers`), kept the same way.
const THREAD_PEERS: &str = "thread_peers:";

/// Sessions on each relay thread, in thread order, from a scrape.
fn thread_peers(totals: &HashMap<String, f64>) -> Vec<u64> {
    let mut threads: Vec<(u32, u64)> = totals
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(THREAD_PEERS)?.parse().ok()?, *value as u64)))
        .collect();
    threads.sort_unstable();
    threads.into_iter().map(|(_, peers)| peers).collect()
}

fn parse_relay_totals(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            if let Some((name, value)) = line.split_once(' ')
                && (name == FORWARD_SUM || name == FORWARD_COUNT)
            {
                return Some((name.to_owned(), value.trim().parse().ok()?));
            }
            if let Some(rest) = line.strip_prefix("huddle_relay_thread_peers{thread=\"") {
                let (thread, value) = rest.split_once("\"}")?;
                return Some((format!("{THREAD_PEERS}{thread}"), value.trim().parse().ok()?));
            }
            let rest = line.strip_prefix("huddle_relay_total{what=\"")?;
            let (what, rest) = rest.split_once("\"}")?;
            Some((what.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// CPU ticks (utime + stime) of the server, its relay threads (user, system) and this process.
struct Cpu {
    process: Option<u64>,
    relay: Option<(u64, u64)>,
    /// utime + stime of each relay thread, by thread name.
    relay_threads: std::collections::BTreeMap<String, u64>,
    own: Option<u64>,
}

impl Cpu {
    fn read(server_pid: Option<u32>) -> Cpu {
        // Every relay engine thread (`huddle-relay…`; a sharded relay runs several).
        let threads: Vec<(String, (u64, u64))> = server_pid
            .and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|task| {
                let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                if !comm.starts_with("huddle-relay") {
                    return None;
                }
                let ticks = stat_user_system(&std::fs::read_to_string(task.path().join("stat")).ok()?)?;
                Some((comm.trim().to_owned(), ticks))
            })
            .collect();
        let relay =
            (!threads.is_empty()).then(|| threads.iter().fold((0, 0), |(u, s), (_, (du, ds))| (u + du, s + ds)));
        let relay_threads = threads.into_iter().map(|(name, (user, system))| (name, user + system)).collect();
        let process = server_pid
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .and_then(|s| stat_ticks(&s));
        let own = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| stat_ticks(&s));
        Cpu { process, relay, relay_threads, own }
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/…/stat` line; the command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    stat_user_system(stat).map(|(user, system)| user + system)
}

/// utime and stime (fields 14 and 15) of a `/proc/…/stat` line.
pub(super) fn stat_user_system(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime (14) is index 11, stime (15) index 12.
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Receive-buffer drops per local UDP port, from `/proc/net/udp` and `/proc/net/udp6`.
fn udp_drops() -> Option<HashMap<u16, u64>> {
    let mut drops = HashMap::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        drops.extend(parse_udp_drops(&text));
    }
    (!drops.is_empty()).then_some(drops)
}

fn parse_udp_drops(text: &str) -> Vec<(u16, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = u16::from_str_radix(fields.get(1)?.rsplit_once(':')?.1, 16).ok()?;
            Some((port, fields.last()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_metrics_text() {
        let stat = "4242 (huddle (x) y) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_ticks(stat), Some(281));
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            12: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17\n";
        assert_eq!(parse_udp_drops(udp), vec![(8080, 17)]);
        // This test process has some resident memory, and an absent process none.
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
        assert_eq!(resident_kib(u32::MAX), None);
        let metrics = "# HELP x\nhuddle_relay_total{what=\"forwarded\"} 1234\nhuddle_relay_total{what=\"packets_in\"} 5\n\
            huddle_relay_forward_duration_seconds_sum 0.5\nhuddle_relay_forward_duration_seconds_count 7\n\
            huddle_relay_thread_peers{thread=\"1\"} 9\nhuddle_relay_thread_peers{thread=\"0\"} 12\n";
        let totals = parse_relay_totals(metrics);
        assert_eq!((totals.get("forwarded"), totals.get("packets_in")), (Some(&1234.0), Some(&5.0)));
        assert_eq!((totals.get(FORWARD_SUM), totals.get(FORWARD_COUNT)), (Some(&0.5), Some(&7.0)));
        assert_eq!(thread_peers(&totals), vec![12, 9]);
        let answer = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n";
        assert_eq!(relay_candidate(answer), Some("127.0.0.1:40001".parse().unwrap()));
    }

    #[test]
    fn counts_distinct_frames_of_the_window() {
        let stats = PeerStats { video_frames: 6, video_sequence: vec![3, 4, 4, 5, 7, 9], ..PeerStats::default() };
        assert_eq!(frames_in(&stats, 4, 9), 3);
    }
}
