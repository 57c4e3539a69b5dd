//! Graceful drain: how a worker leaves without anyone in a room noticing.
//!
//! On SIGTERM (`app::run`), the worker stops taking new websockets, logins and relay sessions
//! (`/readyz` answers 503 at once, so the load balancer sends newcomers elsewhere) and pushes
//! a `goaway` event to every connected client. The SDK then opens a websocket to the service
//! again (a ready worker), logs in there — which replaces the session here without the room
//! seeing the user leave — and publishes and plays again through that worker's relay.
//! Meanwhile this worker lets go of every session replaced elsewhere. When no client is left,
//! or the drain time is over, the sessions still here end (their users leave: they did not
//! come back in time) and the process exits.
//!
//! A relay node (`--role relay`) has no websockets: its publishers' sessions live on signaling
//! nodes. It withdraws from the announced relays (no new stream comes to it) and tells each
//! publisher, through its signaling session, that the publish ended with code 1010: the SDK
//! publishes again, which signaling sends to another relay; the room sees the stream go and
//! come back, and players play it again there. The node exits when its last peer is gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::SignalingContext;

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Clients are asked to move; `until` is when the rest is ended.
    Draining {
        until: Instant,
    },
    /// The drain time is over: every connection ends its session now.
    Closing,
}

/// The phase, shared by every connection task and the HTTP handlers.
pub struct Drain {
    phase: watch::Sender<Phase>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { phase: watch::Sender::new(Phase::Serving) }
    }
}

impl Drain {
    /// True from the moment the drain starts: refuse new websockets, logins and relay sessions.
    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() != Phase::Serving
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// What each connection watches.
    pub fn watch(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }
}

/// How often the drain looks at what is left.
const POLL: Duration = Duration::from_millis(100);
/// How long connections get to end their sessions once the drain time is over.
const CLOSING: Duration = Duration::from_secs(3);

/// Runs the drain to its end: asks clients to move, lets go of the sessions they replaced
/// elsewhere, and ends whatever is left after `timeout`. Returns when nothing is left.
pub async fn run(ctx: &Arc<SignalingContext>, timeout: Duration, move_media: bool) {
    let until = Instant::now() + timeout;
    ctx.drain.set(Phase::Draining { until });
    if ctx.relay.is_some()
        && let Err(err) = ctx.rooms.backend().withdraw_relay(ctx.rooms.worker_id()).await
    {
        tracing::warn!(error = %err, "could not withdraw the relay from the announced ones");
    }
    if move_media {
        super::media::ask_publishers_to_move(ctx).await;
    }
    let relay_peers = || ctx.relay.as_ref().map_or(0, |node| node.load().peers);
    crate::metrics::draining(true);
    tracing::info!(
        connections = ctx.connections(),
        parked = ctx.registry.len(),
        timeout_ms = timeout.as_millis() as u64,
        "draining: clients are asked to reconnect to another worker"
    );
    loop {
        for state in ctx.registry.take_replaced() {
            // Logged in again elsewhere: nothing of it is ours any more.
            state.abandon(ctx, None).await;
        }
        if ctx.connections() == 0 && ctx.registry.is_empty() && (!move_media || relay_peers() == 0) {
            tracing::info!("drained: every client moved");
            return;
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        connections = ctx.connections(),
        parked = ctx.registry.len(),
        relay_peers = relay_peers(),
        "drain time over: ending the sessions still here (their users leave their rooms)"
    );
    ctx.drain.set(Phase::Closing);
    let closing = Instant::now() + CLOSING;
    while ctx.connections() > 0 && Instant::now() < closing {
        tokio::time::sleep(POLL).await;
    }
    for state in ctx.registry.take_all() {
        state.end(ctx, crate::usage::EndReason::Shutdown).await;
    }
}
