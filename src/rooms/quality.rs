//! Network quality of this worker's users, batched per room.
//!
//! Each worker keeps, for the users whose sessions it holds, the latest levels their clients
//! reported (`reportQuality`) and the latest the relays measured for them (`RelayQuality`
//! events, taken in by the hub). Every [`QUALITY_INTERVAL`] the worker publishes one
//! `NetworkQuality` event per room carrying only the users whose combined level changed. So a
//! report costs a map update, never a fan-out: a room of N members on W workers hears at most W
//! events per interval, whatever N.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::model::{RelayLevels, RoomKey, UserQuality};
use crate::quality::{Level, combine};

/// How often each worker publishes the changed levels of each room.
pub const QUALITY_INTERVAL: Duration = Duration::from_millis(2500);
/// A report or a measurement older than this no longer counts: a client that stopped
/// reporting, a relay link that ended.
pub const QUALITY_STALE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct UserEntry {
    client: Option<(Level, Level, Instant)>,
    relay_up: Option<(Level, Instant)>,
    relay_down: Option<(Level, Instant)>,
    /// What the room was last told.
    sent: Option<(Level, Level)>,
}

impl UserEntry {
    /// The combined (upstream, downstream) from what is still fresh at `now`.
    fn current(&self, now: Instant) -> (Level, Level) {
        let fresh = |at: Instant| now.saturating_duration_since(at) <= QUALITY_STALE;
        let client = self.client.filter(|c| fresh(c.2));
        let up = combine(client.map(|c| c.0), self.relay_up.filter(|r| fresh(r.1)).map(|r| r.0));
        let down = combine(client.map(|c| c.1), self.relay_down.filter(|r| fresh(r.1)).map(|r| r.0));
        (up, down)
    }
}

/// The levels of this worker's users, by room and user id.
#[derive(Debug, Default)]
pub struct QualityBoard {
    rooms: Mutex<HashMap<RoomKey, BTreeMap<String, UserEntry>>>,
}

impl QualityBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomKey, BTreeMap<String, UserEntry>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client's own report of its up- and downstream.
    pub fn client_report(&self, room: &RoomKey, user_id: &str, upstream: Level, downstream: Level, now: Instant) {
        let mut rooms = self.lock();
        let entry = rooms.entry(room.clone()).or_default().entry(user_id.to_owned()).or_default();
        entry.client = Some((upstream, downstream, now));
    }

    /// What a relay measured for `user_id`, a user of this worker.
    pub fn relay_levels(&self, room: &RoomKey, user_id: &str, levels: RelayLevels, now: Instant) {
        let mut rooms = self.lock();
        let entry = rooms.entry(room.clone()).or_default().entry(user_id.to_owned()).or_default();
        if let Some(up) = levels.upstream {
            entry.relay_up = Some((up, now));
        }
        if let Some(down) = levels.downstream {
            entry.relay_down = Some((down, now));
        }
    }

    /// The user left the room: nothing more to say about it.
    pub fn forget(&self, room: &RoomKey, user_id: &str) {
        let mut rooms = self.lock();
        if let Some(users) = rooms.get_mut(room) {
            users.remove(user_id);
            if users.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Per room, the users whose combined level differs from what the room was last told
    /// (sorted by user id), marked as told. A user about whom nothing is fresh any more is
    /// told once as unknown and then forgotten.
    pub fn take_changes(&self, now: Instant) -> Vec<(RoomKey, Vec<UserQuality>)> {
        let mut rooms = self.lock();
        let mut batches = Vec::new();
        for (room, users) in rooms.iter_mut() {
            let mut changed = Vec::new();
            users.retain(|user_id, entry| {
                let current = entry.current(now);
                let unknown = current == (Level::UNKNOWN, Level::UNKNOWN);
                if entry.sent != Some(current) && !(unknown && entry.sent.is_none()) {
                    changed.push(UserQuality { user_id: user_id.clone(), upstream: current.0, downstream: current.1 });
                    entry.sent = Some(current);
                }
                !unknown
            });
            if !changed.is_empty() {
                batches.push((room.clone(), changed));
            }
        }
        rooms.retain(|_, users| !users.is_empty());
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(user: &str, up: Level, down: Level) -> UserQuality {
        UserQuality { user_id: user.into(), upstream: up, downstream: down }
    }

    #[test]
    fn only_changes_are_batched_and_the_worse_side_wins() {
        let board = QualityBoard::default();
        let room = RoomKey::new(1, "r");
        let t0 = Instant::now();
        board.client_report(&room, "alice", Level::EXCELLENT, Level::EXCELLENT, t0);
        board.client_report(&room, "bob", Level::GOOD, Level::MIDDLE, t0);
        let first = board.take_changes(t0);
        assert_eq!(
            first,
            vec![(
                room.clone(),
                vec![quality("alice", Level::EXCELLENT, Level::EXCELLENT), quality("bob", Level::GOOD, Level::MIDDLE)]
            )]
        );
        // The same reports again: nothing to tell.
        board.client_report(&room, "alice", Level::EXCELLENT, Level::EXCELLENT, t0);
        assert_eq!(board.take_changes(t0), vec![]);
        // The relay sees alice's uplink lose packets: "excellent" from her client is not enough.
        let relay = RelayLevels { upstream: Some(Level::POOR), downstream: None };
        board.relay_levels(&room, "alice", relay, t0);
        assert_eq!(board.take_changes(t0), vec![(room.clone(), vec![quality("alice", Level::POOR, Level::EXCELLENT)])]);
    }

    #[test]
    fn stale_inputs_stop_counting_and_silent_users_end_unknown() {
        let board = QualityBoard::default();
        let room = RoomKey::new(1, "r");
        let t0 = Instant::now();
        board.client_report(&room, "alice", Level::GOOD, Level::GOOD, t0);
        board.relay_levels(&room, "alice", RelayLevels { upstream: Some(Level::DIE), downstream: None }, t0);
        assert_eq!(board.take_changes(t0)[0].1, vec![quality("alice", Level::DIE, Level::GOOD)]);
        let later = t0 + QUALITY_STALE / 2;
        board.client_report(&room, "alice", Level::GOOD, Level::GOOD, later);
        let stale_relay = t0 + QUALITY_STALE + Duration::from_millis(1);
        assert_eq!(board.take_changes(stale_relay)[0].1, vec![quality("alice", Level::GOOD, Level::GOOD)]);
        let silent = later + QUALITY_STALE + Duration::from_millis(1);
        assert_eq!(board.take_changes(silent)[0].1, vec![quality("alice", Level::UNKNOWN, Level::UNKNOWN)]);
        assert_eq!(board.take_changes(silent), vec![], "told once, then forgotten");
        // A user nobody knew anything about is never announced.
        board.client_report(&room, "bob", Level::UNKNOWN, Level::UNKNOWN, silent);
        assert_eq!(board.take_changes(silent), vec![]);
        board.client_report(&room, "carol", Level::GOOD, Level::GOOD, silent);
        board.forget(&room, "carol");
        assert_eq!(board.take_changes(silent), vec![]);
    }
}
