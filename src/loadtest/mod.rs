//! Load generators an operator can point at a deployment (`huddle loadtest …`).
//! Every run is bounded in time and request count and stops by itself.

mod http;
mod light;
mod media;
pub mod peer;
mod signaling;
mod udp_floor;
mod webhooks;

use clap::Subcommand;

pub use http::HttpLoadArgs;
pub use media::MediaLoadArgs;
pub use signaling::SignalingLoadArgs;
pub use udp_floor::UdpFloorArgs;
pub use webhooks::WebhookReceiverArgs;

#[derive(Debug, Subcommand)]
pub enum LoadtestCommand {
    /// Signed `POST /v1/tokens` (unique nonce per request) or bare `GET /healthz`, at fixed concurrency.
    Http(HttpLoadArgs),
    /// Websocket clients: hold many sessions, measure fan-out of a large room, or message throughput.
    Signaling(SignalingLoadArgs),
    /// str0m publishers and players through the relay: forwarded packets/s, frame loss, relay CPU per packet.
    Media(MediaLoadArgs),
    /// The host's cost of the relay's UDP sends alone (no relay): a floor under its CPU per packet.
    UdpFloor(UdpFloorArgs),
    /// A webhook endpoint that counts, verifies and times what the outbox dispatchers deliver.
    WebhookReceiver(WebhookReceiverArgs),
}

impl LoadtestCommand {
    pub async fn run(self) -> Result<(), String> {
        match self {
            LoadtestCommand::Http(args) => http::run(args).await,
            LoadtestCommand::Signaling(args) => signaling::run(args).await,
            LoadtestCommand::Media(args) => media::run(args).await,
            LoadtestCommand::UdpFloor(args) => udp_floor::run(args).await,
            LoadtestCommand::WebhookReceiver(args) => webhooks::run(args).await,
        }
    }
}

/// The deployment a load generator talks to, as the business server of one app would: it
/// signs requests and mints tokens and grants with the app's secret.
#[derive(Debug, Clone, clap::Args)]
pub struct Deployment {
    /// Base URL of the deployment (http://…; the websocket is at /ws).
    #[arg(long, env = "HUDDLE_LOADTEST_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, env = "HUDDLE_LOADTEST_APP_ID")]
    pub app_id: u32,
    /// The app's server secret (prefer the environment variable over the flag).
    #[arg(long, env = "HUDDLE_LOADTEST_SECRET", hide_env_values = true)]
    pub secret: String,
}

/// Latency percentiles over recorded samples (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(samples: &mut [u64]) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| -> u64 {
            if samples.is_empty() {
                return 0;
            }
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Percentiles { p50_us: at(0.50), p90_us: at(0.90), p99_us: at(0.99), max_us: at(1.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(Percentiles::of(&mut samples), Percentiles { p50_us: 50, p90_us: 90, p99_us: 99, max_us: 100 });
        assert_eq!(Percentiles::of(&mut []).p99_us, 0);
    }
}
