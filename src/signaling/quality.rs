//! Network quality: the two periodic steps that turn reports and measurements into room
//! events (the batching itself lives in [`crate::rooms::quality`]).
//!
//! - Every worker publishes, every [`QUALITY_INTERVAL`], one `NetworkQuality` event per room
//!   with the users of its sessions whose level changed.
//! - Every relay node publishes, as often, one `RelayQuality` event per room with the worst
//!   level it measured for each user of that room it serves; the worker holding each user's
//!   session takes it in. Relay and signaling may be different nodes: they meet in the room.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::SignalingContext;
use crate::api::media::RelayNode;
use crate::auth::grant::MediaAction;
use crate::rooms::quality::QUALITY_INTERVAL;
use crate::rooms::{RelayLevels, RoomEvent, RoomKey};

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

/// Publishes what this node's relay measured for each user, room by room.
pub fn publish_relay_levels(ctx: Arc<SignalingContext>, node: Arc<RelayNode>) {
    tokio::spawn(async move {
        let mut ticker = ticker();
        loop {
            ticker.tick().await;
            let levels = match node.relay.link_levels().await {
                Ok(levels) => levels,
                Err(err) => {
                    tracing::debug!(error = %err, "relay link levels unavailable");
                    continue;
                }
            };
            if levels.is_empty() {
                continue;
            }
            let grants = node.grants_by_peer();
            let mut rooms: HashMap<RoomKey, BTreeMap<String, RelayLevels>> = HashMap::new();
            for (peer, level) in levels {
                let Some(grant) = grants.get(&peer) else { continue };
                let room = RoomKey::new(grant.app_id, grant.room_id.clone());
                let user = rooms.entry(room).or_default().entry(grant.user_id.clone()).or_default();
                let side = match grant.action {
                    MediaAction::Publish => &mut user.upstream,
                    MediaAction::Play => &mut user.downstream,
                };
                *side = Some(side.map_or(level, |worst| worst.max(level)));
            }
            for (room, users) in rooms {
                crate::metrics::quality_sample("relay", users.len() as u64);
                if let Err(err) = ctx.rooms.backend().publish(&room, RoomEvent::RelayQuality { users }).await {
                    tracing::debug!(%room, error = %err, "could not publish relay link levels");
                }
            }
        }
    });
}
