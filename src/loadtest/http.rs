//! HTTP load: `POST /v1/tokens` signed like a business server would, or `GET /healthz` as the
//! bare-handler baseline of the same server.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::Percentiles;
use crate::auth::{signature, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Signed token issuance (needs --app-id and --secret).
    Tokens,
    /// The bare liveness handler, as a baseline.
    Healthz,
}

#[derive(Debug, Clone, Args)]
pub struct HttpLoadArgs {
    /// Base URL of the deployment.
    #[arg(long, env = "HUDDLE_LOADTEST_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value = "tokens")]
    pub target: Target,
    #[arg(long, env = "HUDDLE_LOADTEST_APP_ID")]
    pub app_id: Option<u32>,
    /// The app's server secret (prefer the environment variable over the flag).
    #[arg(long, env = "HUDDLE_LOADTEST_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// How long to run, in seconds (at most 600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Unmeasured warm-up before the run, in seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    target: Target,
    concurrency: u32,
    seconds: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    requests_per_second: f64,
    latency: Percentiles,
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

pub async fn run(args: HttpLoadArgs) -> Result<(), String> {
    let credentials = match (args.target, args.app_id, args.secret.clone()) {
        (Target::Tokens, Some(app_id), Some(secret)) => Some((app_id, secret)),
        (Target::Tokens, _, _) => {
            return Err("--target tokens needs --app-id and --secret".to_owned());
        }
        (Target::Healthz, _, _) => None,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let base = args.url.trim_end_matches('/').to_owned();

    if args.warmup > 0 {
        let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
        drive(&client, &base, &credentials, args.concurrency, warmup_end, u64::MAX, "w").await;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let results = drive(&client, &base, &credentials, args.concurrency, deadline, args.max_requests, "m").await;
    let elapsed = started.elapsed().as_secs_f64();

    let (ok, errors) = results.iter().fold((0, 0), |(ok, errors), r| (ok + r.ok, errors + r.errors));
    let mut latencies: Vec<u64> = results.into_iter().flat_map(|r| r.latencies_us).collect();
    let report = Report {
        target: args.target,
        concurrency: args.concurrency,
        seconds: elapsed,
        requests: ok + errors,
        ok,
        errors,
        requests_per_second: ok as f64 / elapsed,
        latency: Percentiles::of(&mut latencies),
    };
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    if ok == 0 {
        return Err(format!("no request succeeded ({errors} errors)"));
    }
    Ok(())
}

/// Runs `concurrency` request loops until `deadline` or `max_requests` in total.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    credentials: &Option<(u32, String)>,
    concurrency: u32,
    deadline: Instant,
    max_requests: u64,
    phase: &'static str,
) -> Vec<WorkerResult> {
    let per_worker = max_requests.div_ceil(u64::from(concurrency));
    // A per-run prefix keeps nonces unique across runs against the same Redis.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let workers = (0..concurrency).map(|worker| {
        let client = client.clone();
        let base = base.to_owned();
        let credentials = credentials.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move {
            let mut result = WorkerResult { ok: 0, errors: 0, latencies_us: Vec::new() };
            let mut sequence = 0u64;
            while Instant::now() < deadline && sequence < per_worker {
                sequence += 1;
                let request = match &credentials {
                    Some((app_id, secret)) => {
                        let nonce = format!("{}{phase}{worker}x{sequence}", &run_id[..12]);
                        signed_token_request(&client, &base, *app_id, secret, &nonce, worker, sequence)
                    }
                    None => client.get(format!("{base}/healthz")),
                };
                let sent = Instant::now();
                let outcome = request.send().await;
                let ok = match outcome {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                result.latencies_us.push(sent.elapsed().as_micros() as u64);
                if ok { result.ok += 1 } else { result.errors += 1 }
            }
            result
        })
    });
    let mut results = Vec::new();
    for handle in workers.collect::<Vec<_>>() {
        if let Ok(result) = handle.await {
            results.push(result);
        }
    }
    results
}

fn signed_token_request(
    client: &reqwest::Client,
    base: &str,
    app_id: u32,
    secret: &str,
    nonce: &str,
    worker: u32,
    sequence: u64,
) -> reqwest::RequestBuilder {
    let path = "/v1/tokens";
    let body = format!(r#"{{"userId":"load-{worker}-{sequence}","roomId":"load-room"}}"#);
    let timestamp = unix_now();
    let sig = signature::sign(secret.as_bytes(), app_id, timestamp, nonce, "POST", path, body.as_bytes());
    client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("x-huddle-appid", app_id.to_string())
        .header("x-huddle-timestamp", timestamp.to_string())
        .header("x-huddle-nonce", nonce)
        .header("x-huddle-signature", sig)
        .body(body)
}
