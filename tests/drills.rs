//! Failure drills: three real `huddle serve` workers sharing a private `redis-server` (and
//! PostgreSQL), a crowd of about a thousand websocket sessions spread over rooms and workers,
//! and then Redis or a worker fails the way production ones do — killed and restarted empty,
//! frozen (SIGSTOP) and thawed, a worker `kill -9`ed. Each drill asserts what clients must see
//! afterwards.
//!
//! The drills run one at a time (a shared lock), whatever the test harness's thread count: each
//! starts its own cluster and crowd, which is about all two cores can carry. On failure (or
//! with `HUDDLE_DRILL_LOGS=1`) the tail of every worker's log is printed.
//!
//! Numbers a run depends on (crowd size, lease, outage lengths) are constants below; each
//! drill prints its measurements (`cargo test --test drills -- --nocapture` shows them).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crowd::{Crowd, CrowdSpec, LoginError, LoginSpec, Received, Session};
use common::redis_server::RedisServer;
use common::*;
use futures_util::FutureExt;
use serde_json::json;

/// Drills share two cores with their workers: never two at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WORKERS: usize = 3;
const ROOMS: usize = 15;
/// Crowd sessions per worker (3 × 350 = 1050 sessions, 70 per room); `HUDDLE_DRILL_SESSIONS_PER_WORKER`
/// overrides it (a faster machine can take more).
fn per_worker() -> usize {
    std::env::var("HUDDLE_DRILL_SESSIONS_PER_WORKER").ok().and_then(|n| n.parse().ok()).unwrap_or(350)
}
/// Logins in flight at once while a crowd logs in.
const LOGIN_CONCURRENCY: usize = 24;
/// How long an event may take from one client through Redis to the others on a healthy
/// cluster before the drill calls it lost (generous: a debug build on two busy cores).
const DELIVERY: Duration = Duration::from_secs(5);
const HEALTHY_LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn since(start: Instant, at: Instant) -> String {
    secs(at.saturating_duration_since(start))
}

/// Three workers on one private Redis and one PostgreSQL database.
struct Cluster {
    redis: RedisServer,
    db: Option<TestDb>,
    app: TestApp,
    /// `None` once killed.
    workers: Vec<Option<Server>>,
    lease: Duration,
    logs: tempfile::TempDir,
    http: reqwest::Client,
    rooms: Vec<String>,
    probes: std::sync::atomic::AtomicUsize,
}

impl Cluster {
    async fn start(lease: Duration, workers: usize) -> Cluster {
        let redis = RedisServer::start();
        let db = TestDb::new(Db::Postgres).await;
        let app = create_app(&db);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        let mut cluster = Cluster {
            redis,
            db: Some(db),
            app,
            workers: Vec::new(),
            lease,
            logs: tempfile::tempdir().expect("log dir"),
            http,
            rooms: (0..ROOMS).map(|r| format!("room-{r:02}")).collect(),
            probes: Default::default(),
        };
        for _ in 0..workers {
            cluster.start_worker();
        }
        cluster
    }

    /// Starts one more worker; returns its index.
    fn start_worker(&mut self) -> usize {
        let index = self.workers.len();
        let options = ServerOptions {
            extra_env: vec![
                ("HUDDLE_REDIS_URL", self.redis.url()),
                ("HUDDLE_REDIS_LEASE_MS", self.lease.as_millis().to_string()),
                // Every Redis call gives up after 1 s, or a fifth of the lease if shorter (the
                // most --redis-timeout-ms allows; versions without the flag ignore it).
                ("HUDDLE_REDIS_TIMEOUT_MS", (self.lease.as_millis() / 5).min(1000).to_string()),
                // Pings every 5 s that the crowd answers; a generous timeout, so that a busy
                // test process never looks like dead clients.
                ("HUDDLE_WS_HEARTBEAT_INTERVAL_MS", "5000".into()),
                ("HUDDLE_WS_HEARTBEAT_TIMEOUT_MS", "30000".into()),
                // A client that vanished leaves its room soon.
                ("HUDDLE_RECONNECT_GRACE_MS", "2000".into()),
            ],
            log_file: Some(self.log_path(index)),
            ..ServerOptions::default()
        };
        let server = Server::start_with(self.db.as_ref().expect("database"), options);
        self.workers.push(Some(server));
        index
    }

    fn log_path(&self, worker: usize) -> std::path::PathBuf {
        self.logs.path().join(format!("worker-{worker}.log"))
    }

    fn base(&self, worker: usize) -> String {
        self.workers[worker].as_ref().unwrap_or_else(|| panic!("worker {worker} was killed")).base.clone()
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.workers.len()).filter(|w| self.workers[*w].is_some()).collect()
    }

    /// SIGSTOP: the worker stalls (its sockets stay open). `shutdown` kills it whatever happens.
    fn pause_worker(&mut self, worker: usize) {
        signal_worker(self.workers[worker].as_ref().expect("worker alive"), "STOP");
    }

    fn resume_worker(&mut self, worker: usize) {
        signal_worker(self.workers[worker].as_ref().expect("worker alive"), "CONT");
    }

    /// SIGKILL: no goodbye, no leave.
    fn kill_worker(&mut self, worker: usize) {
        let mut server = self.workers[worker].take().expect("worker alive");
        server.kill();
    }

    fn crowd_spec(&self, prefix: &str, per_worker: usize) -> CrowdSpec {
        CrowdSpec {
            prefix: prefix.to_owned(),
            rooms: self.rooms.clone(),
            per_worker,
            user_update: true,
            concurrency: LOGIN_CONCURRENCY,
            login_timeout: HEALTHY_LOGIN_TIMEOUT,
        }
    }

    /// A crowd on the given workers (every room gets members on each of them).
    async fn crowd(&self, prefix: &str, workers: &[usize], per_worker: usize) -> Crowd {
        let bases: Vec<(usize, String)> = workers.iter().map(|w| (*w, self.base(*w))).collect();
        let crowd = Crowd::join(&self.app, &bases, &self.crowd_spec(prefix, per_worker)).await;
        println!(
            "crowd {prefix}: {} sessions on workers {workers:?} in {} rooms, logged in in {}",
            crowd.len(),
            self.rooms.len(),
            secs(crowd.took)
        );
        crowd
    }

    async fn login(&self, worker: usize, room: &str, user_id: &str, timeout: Duration) -> Result<Session, LoginError> {
        let spec = LoginSpec {
            base: self.base(worker),
            worker,
            room: room.to_owned(),
            user_id: user_id.to_owned(),
            user_update: true,
        };
        Session::login(&self.app, spec, timeout).await
    }

    fn readyz_urls(&self) -> Vec<(usize, String)> {
        self.alive().into_iter().map(|worker| (worker, format!("{}/readyz", self.base(worker)))).collect()
    }

    /// `/readyz` status of every live worker (an error text when it does not answer).
    async fn readyz(&self) -> Vec<(usize, Result<u16, String>)> {
        let checks =
            self.readyz_urls().into_iter().map(|(worker, url)| async move { (worker, readyz(&self.http, &url).await) });
        futures_util::future::join_all(checks).await
    }

    /// Who a newcomer sees in each room: one fresh login (with `userUpdate`) per room, spread
    /// over the live workers, logged out again at once.
    async fn census(&self) -> BTreeMap<String, Result<Census, String>> {
        let alive = self.alive();
        let mut result = BTreeMap::new();
        for (k, room) in self.rooms.iter().enumerate() {
            let worker = alive[k % alive.len()];
            let n = self.probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let user = format!("probe-{n}");
            let outcome = match self.login(worker, room, &user, DELIVERY).await {
                Ok(session) => {
                    let census = Census {
                        worker,
                        users: session.reply_users().into_iter().collect(),
                        online_count: session.reply["room"]["onlineCount"].as_u64().unwrap_or(0),
                    };
                    if let Err(err) = session.logout(DELIVERY).await {
                        println!("census: {user} in {room}: {err}");
                    }
                    Ok(census)
                }
                Err(err) => Err(format!("probe login on worker {worker}: {err}")),
            };
            result.insert(room.clone(), outcome);
        }
        result
    }

    /// The last lines of every worker's log, for failure reports.
    fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for worker in 0..self.workers.len() {
            let text = std::fs::read_to_string(self.log_path(worker)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- worker {worker}: {} log lines, the last {lines}:\n", all.len()));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(&without_ansi_colors(line));
                out.push('\n');
            }
        }
        out
    }

    async fn shutdown(mut self) {
        for worker in self.workers.iter_mut() {
            if let Some(mut server) = worker.take() {
                server.kill();
            }
        }
        self.redis.stop();
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

fn signal_worker(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", server.pid());
}

/// How long a readiness probe waits for `/readyz`: room for two Redis calls that time out after
/// `HUDDLE_REDIS_TIMEOUT_MS` (at most 1 s) each; an answer later than this is none.
const READYZ_PATIENCE: Duration = Duration::from_secs(3);

/// One `/readyz` request: its status, or why there is none.
async fn readyz(http: &reqwest::Client, url: &str) -> Result<u16, String> {
    match http.get(url).timeout(READYZ_PATIENCE).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(err) if err.is_timeout() => Err(format!("no answer within {}", secs(READYZ_PATIENCE))),
        Err(err) => Err(err.to_string()),
    }
}

#[derive(Debug, Clone)]
struct Sample {
    worker: usize,
    asked_at: Instant,
    answered_at: Instant,
    status: Result<u16, String>,
}

/// Asks every worker's `/readyz` twice a second, each request on its own, until aborted.
/// `asked` counts the requests sent, `samples` gets each one's outcome.
async fn sample_readyz(
    http: reqwest::Client,
    urls: Vec<(usize, String)>,
    samples: Arc<Mutex<Vec<Sample>>>,
    asked: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        for (worker, url) in &urls {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (worker, url, samples, http) = (*worker, url.clone(), samples.clone(), http.clone());
            tokio::spawn(async move {
                let asked_at = Instant::now();
                let status = readyz(&http, &url).await;
                samples.lock().unwrap().push(Sample { worker, asked_at, answered_at: Instant::now(), status });
            });
        }
    }
}

/// The log's text without the terminal color codes tracing puts in.
fn without_ansi_colors(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Census {
    worker: usize,
    users: HashSet<String>,
    online_count: u64,
}

/// Runs a drill on a fresh cluster, one drill at a time; always tears the cluster down (the
/// PostgreSQL database too), then passes a failure on.
async fn drill(name: &str, lease: Duration, body: impl AsyncFnOnce(&mut Cluster)) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut cluster = Cluster::start(lease, WORKERS).await;
    let outcome = AssertUnwindSafe(body(&mut cluster)).catch_unwind().await;
    println!("{name}: {} in all ({})", secs(started.elapsed()), if outcome.is_ok() { "passed" } else { "FAILED" });
    if outcome.is_err() || std::env::var_os("HUDDLE_DRILL_LOGS").is_some() {
        eprintln!("{name}: worker logs:\n{}", cluster.log_tails(12));
    }
    cluster.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Polls `check` every `every` until it returns true or `deadline` passes; returns whether it
/// did and when.
async fn poll_until(deadline: Instant, every: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Instant> {
    loop {
        if check().await {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Delivery of one event per room to every other open crowd member of the room.
struct Delivery {
    /// (received, expected) per receiving worker.
    by_worker: BTreeMap<usize, (usize, usize)>,
    rooms_with_none: usize,
    rooms: usize,
    slowest: Duration,
}

impl Delivery {
    fn missing(&self) -> usize {
        self.by_worker.values().map(|(got, want)| want - got).sum()
    }

    fn describe(&self) -> String {
        let (got, want) = self.by_worker.values().fold((0, 0), |(g, w), (a, b)| (g + a, w + b));
        let per_worker: Vec<String> = self.by_worker.iter().map(|(w, (g, e))| format!("worker {w}: {g}/{e}")).collect();
        format!(
            "reached {got} of {want} members ({}); rooms where nobody got it: {}/{}; slowest delivery {}",
            per_worker.join(", "),
            self.rooms_with_none,
            self.rooms,
            secs(self.slowest)
        )
    }
}

/// One event per room that every other member of the room must receive.
struct Sent {
    room: String,
    /// The user who caused it (who does not receive it).
    from: String,
    at: Instant,
    matches: Box<dyn Fn(&Received) -> bool + Send + Sync>,
}

/// Counts, for each sent event, which open crowd members of its room (other than the one who
/// caused it) received it; waits up to [`DELIVERY`] for all of them.
async fn await_delivery(crowd: &Crowd, sent: &[Sent]) -> Delivery {
    let count = || {
        let mut by_worker: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        let mut rooms_with_none = 0;
        let mut slowest = Duration::ZERO;
        for Sent { room, from, at, matches } in sent {
            let mut got_in_room = 0;
            for member in crowd.in_room(room).filter(|m| m.user_id != *from && m.is_open()) {
                let entry = by_worker.entry(member.worker).or_default();
                entry.1 += 1;
                if let Some(received) = member.first_since(*at, matches) {
                    entry.0 += 1;
                    got_in_room += 1;
                    slowest = slowest.max(received - *at);
                }
            }
            if got_in_room == 0 {
                rooms_with_none += 1;
            }
        }
        Delivery { by_worker, rooms_with_none, rooms: sent.len(), slowest }
    };
    let deadline = Instant::now() + DELIVERY;
    loop {
        let delivery = count();
        if delivery.missing() == 0 || Instant::now() >= deadline {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A broadcast from one member per room (senders spread over the workers) must reach every
/// other member of the room, on every worker, its own included. Returns the problems.
async fn check_broadcasts(cluster: &Cluster, crowd: &Crowd, label: &str) -> Vec<String> {
    let alive = cluster.alive();
    let mut problems = Vec::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut refused = Vec::new();
    for (k, room) in cluster.rooms.iter().enumerate() {
        let worker = alive[k % alive.len()];
        let Some(sender) = crowd.in_room(room).find(|m| m.worker == worker && m.is_open()) else {
            problems.push(format!("{label}: no open crowd member in {room} on worker {worker} to send from"));
            continue;
        };
        let text = format!("{label} in {room}");
        let mut at = Instant::now();
        let mut answer = sender.request("sendBroadcastMessage", json!({"message": text}), DELIVERY).await;
        // 1007 says "retry" (docs/PROTOCOL.md): right after Redis came back empty, a busy machine
        // may still time a request out while members resync. A client retries; so does the
        // drill, once, and the broadcast must then reach everyone.
        if matches!(&answer, Ok(reply) if reply["error"]["code"] == 1007) {
            println!("{label}: the broadcast in {room} (worker {worker}) was refused with 1007; retried once");
            tokio::time::sleep(Duration::from_millis(500)).await;
            at = Instant::now();
            answer = sender.request("sendBroadcastMessage", json!({"message": text}), DELIVERY).await;
        }
        match answer {
            Ok(reply) if reply["ok"] == true => {
                let matches = move |e: &Received| e.broadcasts().contains(&text.as_str());
                sent.push(Sent { room: room.clone(), from: sender.user_id.clone(), at, matches: Box::new(matches) });
            }
            Ok(reply) => refused.push(format!("{room} (worker {worker}): {}", reply["error"])),
            Err(err) => refused.push(format!("{room} (worker {worker}): {err}")),
        }
    }
    if !refused.is_empty() {
        problems.push(format!("{label}: {} of {} broadcasts refused: {refused:?}", refused.len(), cluster.rooms.len()));
    }
    let delivery = await_delivery(crowd, &sent).await;
    println!("{label}: broadcasts {}", delivery.describe());
    if delivery.missing() > 0 {
        problems.push(format!(
            "{label}: broadcasts (replied ok to {} senders) {} within {}",
            sent.len(),
            delivery.describe(),
            secs(DELIVERY)
        ));
    }
    problems
}

/// A newcomer's login in each room (newcomers spread over the workers) must reach every
/// member of the room on every worker as `roomUserUpdate` ADD. Returns the problems.
async fn check_newcomers(cluster: &Cluster, crowd: &Crowd, label: &str) -> Vec<String> {
    let alive = cluster.alive();
    let mut problems = Vec::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut refused = Vec::new();
    let mut newcomers = Vec::new();
    for (k, room) in cluster.rooms.iter().enumerate() {
        let worker = alive[(k + 1) % alive.len()];
        let user = format!("{}-{k}", label.replace(' ', "-"));
        let at = Instant::now();
        match cluster.login(worker, room, &user, DELIVERY).await {
            Ok(session) => {
                let id = user.clone();
                let matches = move |e: &Received| {
                    e.user_update().is_some_and(|(kind, users)| kind == "ADD" && users.contains(&id.as_str()))
                };
                sent.push(Sent { room: room.clone(), from: user, at, matches: Box::new(matches) });
                newcomers.push(session);
            }
            Err(err) => refused.push(format!("{room} (worker {worker}): {err}")),
        }
    }
    if !refused.is_empty() {
        problems.push(format!(
            "{label}: {} of {} newcomer logins failed: {refused:?}",
            refused.len(),
            cluster.rooms.len()
        ));
    }
    let delivery = await_delivery(crowd, &sent).await;
    println!("{label}: newcomer ADDs {}", delivery.describe());
    if delivery.missing() > 0 {
        problems.push(format!(
            "{label}: newcomers' roomUserUpdate ADD {} within {}",
            delivery.describe(),
            secs(DELIVERY)
        ));
    }
    for session in newcomers {
        let _ = session.logout(DELIVERY).await;
    }
    problems
}

/// Crowd sessions the server closed (none should be: no drill ends a client's connection).
fn closed_sessions(crowd: &Crowd, label: &str) -> Vec<String> {
    let closed = crowd.closed();
    if closed.is_empty() {
        return Vec::new();
    }
    let examples: Vec<String> = closed
        .iter()
        .take(5)
        .map(|(s, c)| format!("{} on worker {}: code {:?} {}", s.user_id, s.worker, c.code, c.reason))
        .collect();
    vec![format!("{label}: {} crowd connections were closed by the server, e.g. {examples:?}", closed.len())]
}

/// Drill 5: Redis is killed and comes back empty on the same port after `outage`. Meanwhile
/// `/readyz` must say 503 on every worker; within 20 s of the restart it must say 200 on every
/// worker, and then broadcasts and newcomers' ADD events reach every member on every worker.
async fn redis_outage(cluster: &mut Cluster, outage: Duration) {
    const RECOVERY: Duration = Duration::from_secs(20);
    let all: Vec<usize> = cluster.alive();
    let crowd = cluster.crowd("crowd", &all, per_worker()).await;
    let baseline = check_broadcasts(cluster, &crowd, "baseline").await;
    assert!(baseline.is_empty(), "the healthy cluster does not deliver (a test problem?): {baseline:?}");

    let mut problems = Vec::new();
    let killed_at = Instant::now();
    cluster.redis.stop();
    // Every /readyz asked during the outage must answer 503: asked twice a second per worker,
    // in the background so that a slow answer never delays the restart.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler =
        tokio::spawn(sample_readyz(cluster.http.clone(), cluster.readyz_urls(), samples.clone(), asked.clone()));
    tokio::time::sleep_until((killed_at + outage).into()).await;
    sampler.abort();
    let restarting_at = Instant::now();
    cluster.redis.restart_empty();
    let restarted_at = Instant::now();
    // The requests still out get their answer (or give up) within READYZ_PATIENCE; judge them
    // all. A 200 that came after the restart is no evidence either way.
    let all_in = poll_until(restarted_at + READYZ_PATIENCE * 2, Duration::from_millis(100), async || {
        samples.lock().unwrap().len() >= asked.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    assert!(all_in.is_some(), "/readyz requests neither answered nor timed out (a test problem?)");
    let judged: Vec<Sample> = samples
        .lock()
        .unwrap()
        .iter()
        .filter(|s| !(s.status == Ok(200) && s.answered_at >= restarting_at))
        .cloned()
        .collect();
    let not_503: Vec<String> = judged
        .iter()
        .filter(|s| s.status != Ok(503))
        .map(|s| format!("worker {} asked at +{}: {:?}", s.worker, since(killed_at, s.asked_at), s.status))
        .collect();
    println!("outage {}: {} /readyz requests, {} not answered 503", secs(outage), judged.len(), not_503.len());
    if judged.is_empty() || !not_503.is_empty() {
        problems.push(format!(
            "/readyz asked while Redis was down did not answer 503 {} times (of {}), e.g. {:?}",
            not_503.len(),
            judged.len(),
            &not_503[..not_503.len().min(6)]
        ));
    }

    let mut ready_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let recovered = poll_until(restarted_at + RECOVERY, Duration::from_millis(250), async || {
        for (worker, status) in cluster.readyz().await {
            if status == Ok(200) {
                ready_at.entry(worker).or_insert_with(Instant::now);
            } else {
                ready_at.remove(&worker);
            }
        }
        ready_at.len() == all.len()
    })
    .await;
    let ready_times: Vec<String> =
        ready_at.iter().map(|(w, at)| format!("worker {w} +{}", since(restarted_at, *at))).collect();
    println!("after the restart: /readyz 200 on {ready_times:?}");
    if recovered.is_none() {
        let statuses = cluster.readyz().await;
        problems
            .push(format!("/readyz is not 200 on every worker {} after Redis restarted: {statuses:?}", secs(RECOVERY)));
    }
    let label = format!("after a {} outage", secs(outage));
    problems.extend(check_broadcasts(cluster, &crowd, &label).await);
    problems.extend(check_newcomers(cluster, &crowd, &format!("newcomer after {}", secs(outage))).await);
    problems.extend(closed_sessions(&crowd, &label));
    let resyncs = crowd.sessions.iter().filter(|s| s.count_since(killed_at, |e| e.event == "resync") > 0).count();
    println!("{label}: {resyncs} of {} crowd members got a resync", crowd.len());
    // How many room reads those resyncs cost (a worker reads a room once for its members there).
    for worker in cluster.alive() {
        let Some(server) = &cluster.workers[worker] else { continue };
        let metrics = server.metrics().await;
        let reads: Vec<&str> = metrics.lines().filter(|l| l.starts_with("huddle_resync_snapshots_total")).collect();
        println!("worker {worker}: {reads:?}");
    }
    assert!(problems.is_empty(), "Redis down for {}, restarted empty:\n  {}", secs(outage), problems.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_5_pubsub_recovers_after_a_long_redis_outage() {
    drill("drill 5 (11 s outage)", Duration::from_millis(3000), async |cluster: &mut Cluster| {
        redis_outage(cluster, Duration::from_secs(11)).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_5b_pubsub_recovers_after_a_short_redis_outage() {
    drill("drill 5b (3 s outage)", Duration::from_millis(3000), async |cluster: &mut Cluster| {
        redis_outage(cluster, Duration::from_secs(3)).await
    })
    .await;
}

/// `roomUserUpdate` DELETEs crowd members received since `since` about any of `users`:
/// (events, distinct users deleted, receivers, by receiving worker, first arrival).
struct Deletes {
    events: usize,
    users: HashSet<String>,
    receivers: usize,
    by_worker: BTreeMap<usize, usize>,
    first: Option<Instant>,
}

fn deletes_of(crowd: &Crowd, users: &HashSet<String>, since: Instant) -> Deletes {
    let mut deletes =
        Deletes { events: 0, users: HashSet::new(), receivers: 0, by_worker: BTreeMap::new(), first: None };
    for member in &crowd.sessions {
        let mut got = 0;
        member.each_since(since, |e| {
            if let Some(("DELETE", named)) = e.user_update() {
                for user in named.into_iter().filter(|u| users.contains(*u)) {
                    got += 1;
                    deletes.users.insert(user.to_owned());
                    deletes.first = Some(deletes.first.map_or(e.at, |f: Instant| f.min(e.at)));
                }
            }
        });
        if got > 0 {
            deletes.events += got;
            deletes.receivers += 1;
            *deletes.by_worker.entry(member.worker).or_default() += got;
        }
    }
    deletes
}

/// Compares each room's census with who is logged in: `(missing crowd users, users present
/// that are not logged in, online-count mismatches, failed probes)`, as texts per room.
fn compare_census(
    census: &BTreeMap<String, Result<Census, String>>,
    crowd: &Crowd,
) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    let (mut missing, mut extra, mut counts, mut failed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (room, outcome) in census {
        let census = match outcome {
            Ok(census) => census,
            Err(err) => {
                failed.push(format!("{room}: {err}"));
                continue;
            }
        };
        let expected: HashSet<String> = crowd.in_room(room).map(|m| m.user_id.clone()).collect();
        let mut absent: Vec<&String> = expected.difference(&census.users).collect();
        let mut ghosts: Vec<&String> = census.users.difference(&expected).collect();
        absent.sort();
        ghosts.sort();
        if !absent.is_empty() {
            missing.push(format!(
                "{room} (seen from worker {}): {} of {} missing",
                census.worker,
                absent.len(),
                expected.len()
            ));
        }
        if !ghosts.is_empty() {
            let shown: Vec<&String> = ghosts.iter().copied().take(3).collect();
            let more = if ghosts.len() > shown.len() {
                format!(" and {} more", ghosts.len() - shown.len())
            } else {
                String::new()
            };
            extra.push(format!("{room}: {} {shown:?}{more}", ghosts.len()));
        }
        if census.online_count != expected.len() as u64 + 1 {
            counts.push(format!("{room}: onlineCount {} for {} + the probe", census.online_count, expected.len()));
        }
    }
    (missing, extra, counts, failed)
}

/// Drill 6: Redis frozen for more than three leases. Its clients time out, but nobody left: once
/// it thaws, no worker may reap another live one. With `stall`, one worker is itself paused (SIGSTOP)
/// for that long, well short of the lease, just as Redis thaws — a CPU-throttled pod, or a busy
/// host: a worker that was silent for less than a lease while Redis answered is alive.
async fn frozen_redis(cluster: &mut Cluster, lease: Duration, freeze: Duration, stall: Option<Duration>) {
    let all = cluster.alive();
    let crowd = cluster.crowd("crowd", &all, per_worker()).await;
    let before = cluster.census().await;
    let (missing, extra, counts, failed) = compare_census(&before, &crowd);
    assert!(
        missing.is_empty() && extra.is_empty() && counts.is_empty() && failed.is_empty(),
        "the healthy cluster's rooms are wrong already (a test problem?): {missing:?} {extra:?} {counts:?} {failed:?}"
    );

    let frozen_at = Instant::now();
    cluster.redis.freeze();
    tokio::time::sleep(freeze).await; // the drill: more than three leases of silence
    let stalled = stall.map(|pause| (*all.last().expect("workers"), pause));
    if let Some((worker, _)) = stalled {
        cluster.pause_worker(worker);
    }
    cluster.redis.thaw();
    let thawed_at = Instant::now();
    if let Some((worker, pause)) = stalled {
        tokio::time::sleep(pause).await; // the drill: the worker's own stall
        cluster.resume_worker(worker);
    }
    // Watch two leases: nobody left, so nobody may be announced gone.
    tokio::time::sleep_until((thawed_at + lease * 2).into()).await;

    let users: HashSet<String> = crowd.sessions.iter().map(|m| m.user_id.clone()).collect();
    let in_window = deletes_of(&crowd, &users, frozen_at).events;
    let after = cluster.census().await;
    let deletes = deletes_of(&crowd, &users, frozen_at);
    let (missing, extra, counts, failed) = compare_census(&after, &crowd);
    let mut problems = Vec::new();
    if deletes.events > 0 {
        let first = deletes.first.map(|f| f.saturating_duration_since(thawed_at)).unwrap_or_default();
        problems.push(format!(
            "{} roomUserUpdate DELETEs ({in_window} within two leases of the thaw) for {} of {} users who never \
             left, received by {} members (by receiving worker {:?}), the first {} after the thaw",
            deletes.events,
            deletes.users.len(),
            users.len(),
            deletes.receivers,
            deletes.by_worker,
            secs(first)
        ));
    }
    let missing_users: usize = after
        .iter()
        .filter_map(|(room, c)| {
            c.as_ref().ok().map(|c| crowd.in_room(room).filter(|m| !c.users.contains(&m.user_id)).count())
        })
        .sum();
    if !missing.is_empty() {
        problems.push(format!(
            "{} after the thaw, fresh logins miss {missing_users} of {} crowd users: {missing:?}",
            secs(thawed_at.elapsed()),
            users.len()
        ));
    }
    if !extra.is_empty() {
        problems.push(format!("rooms list users who are not logged in: {extra:?}"));
    }
    if !counts.is_empty() {
        problems.push(format!("online counts are wrong: {counts:?}"));
    }
    if !failed.is_empty() {
        problems.push(format!("probe logins failed after the thaw: {failed:?}"));
    }
    problems.extend(closed_sessions(&crowd, "frozen Redis"));
    // Users announced gone and then back (clients that got a DELETE and later an ADD).
    let re_adds: usize = crowd
        .sessions
        .iter()
        .map(|m| {
            m.count_since(frozen_at, |e| {
                e.user_update().is_some_and(|(kind, named)| kind == "ADD" && named.iter().any(|u| users.contains(*u)))
            })
        })
        .sum();
    let stall_text = stalled.map(|(w, pause)| format!(", worker {w} paused {} ms at the thaw", pause.as_millis()));
    println!(
        "frozen Redis{}: frozen {}, watched {} after the thaw: {} DELETEs and {re_adds} ADDs of crowd users, census \
         missing {missing_users}",
        stall_text.clone().unwrap_or_default(),
        secs(thawed_at - frozen_at),
        secs(lease * 2),
        deletes.events
    );
    assert!(
        problems.is_empty(),
        "Redis frozen {} with a {} lease{}:\n  {}",
        secs(thawed_at - frozen_at),
        secs(lease),
        stall_text.unwrap_or_default(),
        problems.join("\n  ")
    );
}

/// 3⅓ leases of 3 s (drill 6): long enough for every lease to lapse, short of the four leases after
/// which the rooms' keys expire — a freeze that leaves the rooms' state behind.
const FREEZE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_6_a_frozen_redis_makes_no_worker_reap_a_live_one() {
    const LEASE: Duration = Duration::from_millis(3000);
    drill("drill 6 (Redis frozen 10 s, 3 s lease)", LEASE, async |cluster: &mut Cluster| {
        frozen_redis(cluster, LEASE, FREEZE, None).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_6b_a_frozen_redis_makes_no_worker_reap_one_that_stalled_as_it_thawed() {
    const LEASE: Duration = Duration::from_millis(6000);
    // A sixth of the lease: even a worker that renewed a renewal period (a fifth of the lease)
    // before the freeze, and renews a renewal period after its stall, has been silent for well
    // under the lease while Redis answered.
    drill(
        "drill 6b (Redis frozen 10 s, a worker stalled 1 s at the thaw, 6 s lease)",
        LEASE,
        async |cluster: &mut Cluster| frozen_redis(cluster, LEASE, FREEZE, Some(LEASE / 6)).await,
    )
    .await;
}

/// Drill 7: logins during a freeze fail (1007 or no answer) and their clients give up; once
/// Redis thaws, no room may list those users (or, if it announced them, it must announce
/// their DELETE) within a lease and 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_7_logins_that_failed_during_a_freeze_leave_no_ghosts() {
    // A freeze shorter than the lease: no lease lapses, so this drill sees ghosts alone.
    const LEASE: Duration = Duration::from_millis(8000);
    const FREEZE: Duration = Duration::from_secs(4);
    /// How long a client waits for its login reply before giving up (closing its socket).
    const PATIENCE: Duration = Duration::from_millis(3000);
    const QUITTERS_PER_ROOM_AND_WORKER: usize = 2;
    drill("drill 7 (ghosts of failed logins)", LEASE, async |cluster: &mut Cluster| {
        let all = cluster.alive();
        let crowd = cluster.crowd("crowd", &all, per_worker()).await;

        let frozen_at = Instant::now();
        cluster.redis.freeze();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut attempts = Vec::new();
        for (k, room) in cluster.rooms.iter().enumerate() {
            for &worker in &all {
                for i in 0..QUITTERS_PER_ROOM_AND_WORKER {
                    attempts.push((worker, room.clone(), format!("quitter-{k}-w{worker}-{i}")));
                }
            }
        }
        let shared: &Cluster = cluster;
        let outcomes = futures_util::future::join_all(attempts.iter().map(|(worker, room, user)| async move {
            let outcome = shared.login(*worker, room, user, PATIENCE).await;
            (user.clone(), outcome) // a session, if any, is dropped here: the client gives up
        }))
        .await;
        let logins_done = frozen_at.elapsed();
        tokio::time::sleep_until((frozen_at + FREEZE).into()).await;
        cluster.redis.thaw();
        let thawed_at = Instant::now();

        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        let mut problems = Vec::new();
        for (user, outcome) in &outcomes {
            let key = match outcome {
                Ok(_) => {
                    problems.push(format!("{user}'s login succeeded while Redis was frozen"));
                    "succeeded".to_owned()
                }
                Err(LoginError::Refused { code: 1007, .. }) => "1007".to_owned(),
                Err(LoginError::TimedOut) => "no answer".to_owned(),
                Err(other) => {
                    problems.push(format!("{user}: unexpected login failure during the freeze: {other}"));
                    other.to_string()
                }
            };
            *tally.entry(key).or_default() += 1;
        }
        println!(
            "drill 7: {} logins during a {} freeze, all answered or abandoned after {}: {tally:?}",
            outcomes.len(),
            secs(FREEZE),
            secs(logins_done)
        );
        drop(outcomes);

        // Poll fresh logins in every room until none lists a user who is not logged in.
        let bound = LEASE + Duration::from_secs(5);
        let mut last = BTreeMap::new();
        let clean = poll_until(thawed_at + bound, Duration::from_millis(500), async || {
            last = cluster.census().await;
            let (_, extra, _, failed) = compare_census(&last, &crowd);
            extra.is_empty() && failed.is_empty()
        })
        .await;
        let (missing, extra, _, failed) = compare_census(&last, &crowd);
        let ghosts: usize = last
            .iter()
            .filter_map(|(room, c)| {
                c.as_ref()
                    .ok()
                    .map(|c| c.users.iter().filter(|u| !crowd.in_room(room).any(|m| &m.user_id == *u)).count())
            })
            .sum();
        match clean {
            Some(at) => println!("drill 7: no ghosts {} after the thaw", since(thawed_at, at)),
            None => problems.push(format!(
                "{ghosts} ghosts in {} of {} rooms {} after the thaw (bound: lease + 5 s = {}): {extra:?}",
                extra.len(),
                cluster.rooms.len(),
                secs(thawed_at.elapsed()),
                secs(bound)
            )),
        }
        if !failed.is_empty() {
            problems.push(format!("probe logins failed after the thaw: {failed:?}"));
        }
        if !missing.is_empty() {
            println!("drill 7: (not this drill's assertion) crowd users missing after the freeze: {missing:?}");
        }

        // Members who were told a quitter joined must have been told it left.
        let is_quitter = |u: &str| u.starts_with("quitter-");
        let mut told_added = 0;
        let mut still_listed = 0;
        for member in &crowd.sessions {
            let mut net: HashMap<String, i32> = HashMap::new();
            member.each_since(frozen_at, |e| {
                if let Some((kind, users)) = e.user_update() {
                    for user in users.into_iter().filter(|u| is_quitter(u)) {
                        *net.entry(user.to_owned()).or_default() += if kind == "ADD" { 1 } else { -1 };
                    }
                }
            });
            if !net.is_empty() {
                told_added += 1;
            }
            if net.values().any(|n| *n > 0) {
                still_listed += 1;
            }
        }
        println!(
            "drill 7: {told_added} crowd members were told a quitter joined; {still_listed} were never told it left"
        );
        if still_listed > 0 {
            problems.push(format!(
                "{still_listed} crowd members got roomUserUpdate ADD for users whose login failed, and no DELETE"
            ));
        }
        problems.extend(closed_sessions(&crowd, "ghosts"));
        assert!(problems.is_empty(), "logins during a {} freeze:\n  {}", secs(FREEZE), problems.join("\n  "));
    })
    .await;
}

/// One kill: how long until the survivors' members got the DELETE of each of the dead
/// worker's users in their room.
struct KillTrial {
    worker: usize,
    dead_users: usize,
    /// One time per (survivor member, dead user in its room), from the kill.
    took: Vec<Duration>,
    missing: usize,
}

impl KillTrial {
    fn max(&self) -> Duration {
        self.took.iter().copied().max().unwrap_or_default()
    }

    fn describe(&self) -> String {
        let mut took = self.took.clone();
        took.sort();
        let at = |q: f64| took.get(((took.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        format!(
            "worker {} ({} users): {} DELETEs, first {}, median {}, last {}, {} never arrived",
            self.worker,
            self.dead_users,
            took.len(),
            secs(at(0.0)),
            secs(at(0.5)),
            secs(at(1.0)),
            self.missing
        )
    }
}

async fn kill_and_measure(cluster: &mut Cluster, watchers: &Crowd, doomed: &Crowd, worker: usize) -> KillTrial {
    cluster.kill_worker(worker);
    let killed_at = Instant::now();
    let deadline = killed_at + cluster.lease * 2 + Duration::from_secs(5);
    let mut trial = KillTrial { worker, dead_users: doomed.len(), took: Vec::new(), missing: 0 };
    poll_until(deadline, Duration::from_millis(200), async || {
        trial.took.clear();
        trial.missing = 0;
        for victim in &doomed.sessions {
            for watcher in watchers.in_room(&victim.room).filter(|w| w.is_open()) {
                let id = victim.user_id.as_str();
                let matched =
                    |e: &Received| e.user_update().is_some_and(|(kind, u)| kind == "DELETE" && u.contains(&id));
                match watcher.first_since(killed_at, matched) {
                    Some(at) => trial.took.push(at - killed_at),
                    None => trial.missing += 1,
                }
            }
        }
        trial.missing == 0
    })
    .await;
    trial
}

/// Drill 8: `kill -9` of a worker. The README: "when one dies (even `kill -9`) another removes
/// its users within the lease". Three kills (one worker the crowd started on, then two more
/// started and filled one after the other), each at whatever point of its lease it happens to
/// be; every DELETE must arrive within the lease of the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_8_a_killed_worker_s_users_are_deleted_within_the_lease() {
    // The default lease, whose bound the README states.
    const LEASE: Duration = Duration::from_millis(15_000);
    const KILLS: usize = 3;
    drill("drill 8 (kill -9, 15 s lease)", LEASE, async |cluster: &mut Cluster| {
        let watchers = cluster.crowd("watcher", &[0, 1], per_worker()).await;
        let mut trials = Vec::new();
        for kill in 0..KILLS {
            let worker = if kill == 0 { 2 } else { cluster.start_worker() };
            let joining = Instant::now();
            let doomed = cluster.crowd(&format!("doomed{kill}"), &[worker], per_worker()).await;
            // The watchers must have seen every doomed user arrive, or a missing DELETE means nothing.
            let seen = poll_until(Instant::now() + Duration::from_secs(20), Duration::from_millis(200), async || {
                doomed.sessions.iter().all(|victim| {
                    let id = victim.user_id.as_str();
                    watchers.in_room(&victim.room).all(|w| {
                        w.first_since(joining, |e| {
                            e.user_update().is_some_and(|(kind, u)| kind == "ADD" && u.contains(&id))
                        })
                        .is_some()
                    })
                })
            })
            .await;
            assert!(seen.is_some(), "kill {kill}: the watchers never saw all of worker {worker}'s users arrive");
            // Kill at a random point of the worker's lease period.
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..LEASE.as_millis() as u64 / 3))).await;
            let trial = kill_and_measure(cluster, &watchers, &doomed, worker).await;
            println!("drill 8 kill {kill}: {}", trial.describe());
            trials.push(trial);
        }
        let mut problems = Vec::new();
        for trial in &trials {
            if trial.missing > 0 || trial.max() > LEASE {
                problems.push(trial.describe());
            }
        }
        problems.extend(closed_sessions(&watchers, "watchers"));
        assert!(
            problems.is_empty(),
            "DELETEs of a killed worker's users must arrive within the {} lease; {} of {KILLS} kills did not:\n  {}\n(all kills: {})",
            secs(LEASE),
            problems.len(),
            problems.join("\n  "),
            trials.iter().map(KillTrial::describe).collect::<Vec<_>>().join("; ")
        );
    })
    .await;
}
