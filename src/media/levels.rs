//! Relay-measured link quality sent to rooms: every [`QUALITY_INTERVAL`], one `RelayQuality`
//! event per room with the worst level this relay measured for each user of that room it
//! serves; the worker holding each user's session takes it in. Relay and signaling may be
//! different nodes: they meet in the room.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::MediaService;
use crate::auth::grant::MediaAction;
use crate::quality::Level;
use crate::relay::PeerId;
use crate::rooms::quality::QUALITY_INTERVAL;
use crate::rooms::{RelayLevels, RoomEvent, RoomKey};

impl MediaService {
    /// Publishes what this relay measured for each user, room by room, for as long as it runs.
    pub fn publish_link_levels(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(QUALITY_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match self.relay.link_levels().await {
                    Ok(levels) => self.publish_levels(levels).await,
                    Err(err) => tracing::debug!(error = %err, "relay link levels unavailable"),
                }
            }
        });
    }

    /// One `RelayQuality` event per room, for the peers this registry knows.
    pub(super) async fn publish_levels(&self, levels: Vec<(PeerId, Level)>) {
        let mut rooms: HashMap<RoomKey, BTreeMap<String, RelayLevels>> = HashMap::new();
        for (peer, level) in levels {
            let Some(session) = self.sessions.get(peer) else { continue };
            let grant = session.grant;
            let user =
                rooms.entry(RoomKey::new(grant.app_id, grant.room_id)).or_default().entry(grant.user_id).or_default();
            let side = match grant.action {
                MediaAction::Publish => &mut user.upstream,
                MediaAction::Play => &mut user.downstream,
            };
            *side = Some(side.map_or(level, |worst| worst.max(level)));
        }
        for (room, users) in rooms {
            crate::metrics::quality_sample("relay", users.len() as u64);
            if let Err(err) = self.link.rooms.backend().publish(&room, RoomEvent::RelayQuality { users }).await {
                tracing::debug!(%room, error = %err, "could not publish relay link levels");
            }
        }
    }
}
