//! Network quality reported by clients: every worker publishes, every [`QUALITY_INTERVAL`],
//! one `NetworkQuality` event per room with the users of its sessions whose level changed
//! (the batching itself lives in [`crate::rooms::quality`]; what relays measure reaches rooms
//! through [`crate::media::levels`]).

use std::sync::Arc;
use std::time::Instant;

use super::SignalingContext;
use crate::rooms::RoomEvent;
use crate::rooms::quality::QUALITY_INTERVAL;

fn ticker() -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(QUALITY_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Publishes the changed levels of this worker's users, room by room, for as long as it runs.
pub fn publish_changes(ctx: Arc<SignalingContext>) {
    tokio::spawn(async move {
        let mut ticker = ticker();
        loop {
            ticker.tick().await;
            for (room, users) in ctx.rooms.hub().quality().take_changes(Instant::now()) {
                let count = users.len();
                // A batch that cannot be published is not repeated: levels change often, and
                // the next change of a user is told in full.
                match ctx.rooms.backend().publish(&room, RoomEvent::NetworkQuality { users }).await {
                    Ok(()) => crate::metrics::quality_published(count),
                    Err(err) => tracing::debug!(%room, error = %err, "could not publish network quality"),
                }
            }
        }
    });
}
