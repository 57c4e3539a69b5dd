//! `huddle loadtest webhook-receiver`: a webhook endpoint that answers `200` as fast as it can,
//! verifies every signature, and reports once it has seen `--expect` distinct events: how
//! fast they came (first to last), duplicates, bad signatures, and rooms whose events arrived
//! out of order (events carrying an `n` field must arrive in increasing `n` per room, which
//! is what `scripts/bench-webhooks` writes into the outbox).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Args)]
pub struct WebhookReceiverArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9099")]
    pub listen: std::net::SocketAddr,
    /// Report and exit after this many distinct events.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub expect: u64,
    /// The app's webhook secret, to verify `X-Huddle-Webhook-Signature`.
    #[arg(long, env = "HUDDLE_LOADTEST_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Give up after this many seconds (the report says how many arrived).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    requests: u64,
    duplicates: u64,
    bad_signatures: u64,
    last_n: HashMap<String, i64>,
    out_of_order: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    expected: u64,
    distinct: u64,
    requests: u64,
    duplicates: u64,
    bad_signatures: u64,
    out_of_order: u64,
    seconds_first_to_last: f64,
    events_per_second: f64,
}

pub async fn run(args: WebhookReceiverArgs) -> Result<(), String> {
    let listener =
        TcpListener::bind(args.listen).await.map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!("webhook receiver listening on http://{}/", args.listen);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let secret: Arc<str> = args.secret.into();
    let accept_seen = seen.clone();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, accept_seen.clone(), secret.clone()));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    loop {
        let distinct = seen.lock().unwrap_or_else(|p| p.into_inner()).ids.len() as u64;
        if distinct >= args.expect || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A moment for duplicates that are still on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    acceptor.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let seconds = match (seen.first, seen.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let distinct = seen.ids.len() as u64;
    let report = Report {
        expected: args.expect,
        distinct,
        requests: seen.requests,
        duplicates: seen.duplicates,
        bad_signatures: seen.bad_signatures,
        out_of_order: seen.out_of_order,
        seconds_first_to_last: seconds,
        events_per_second: if seconds > 0.0 { distinct as f64 / seconds } else { 0.0 },
    };
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    Ok(())
}

fn record(seen: &Mutex<Seen>, secret: &str, signature: &str, body: &[u8]) {
    let now = Instant::now();
    let valid = crate::webhooks::verify(secret.as_bytes(), signature, body, crate::auth::unix_now(), 300).is_ok();
    let event: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    seen.requests += 1;
    seen.first.get_or_insert(now);
    seen.last = Some(now);
    if !valid {
        seen.bad_signatures += 1;
    }
    let id = event["id"].as_str().unwrap_or("").to_owned();
    if !seen.ids.insert(id) {
        seen.duplicates += 1;
    }
    if let (Some(room), Some(n)) = (event["roomId"].as_str(), event["n"].as_i64()) {
        let last = seen.last_n.insert(room.to_owned(), n);
        if last.is_some_and(|last| last >= n) {
            seen.out_of_order += 1;
        }
    }
}

/// HTTP/1.1 with keep-alive, just enough for the dispatcher's requests.
async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, secret: Arc<str>) {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let header_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < header_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let signature = header(crate::webhooks::SIGNATURE_HEADER).unwrap_or_default();
        record(&seen, &secret, &signature, &buffer[header_end..header_end + length]);
        buffer.drain(..header_end + length);
        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
            return;
        }
    }
}
