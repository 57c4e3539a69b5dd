//! Local fan-out: the sessions of this worker, by room. Every backend delivers events here,
//! so memory and Redis share one delivery path. An event is wrapped once in an
//! `Arc<Delivery>`; its wire form is encoded by the first recipient and reused by the rest.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;

use super::model::{KickCause, RoomEvent, RoomKey};
use crate::metrics;

/// Independent locks, so that busy rooms do not serialise each other.
const SHARDS: usize = 16;

/// One event on its way to the local members of a room.
#[derive(Debug)]
pub struct Delivery {
    pub room: RoomKey,
    pub event: RoomEvent,
    /// When it was dispatched here (a `Resync`'s members may share a room read started since).
    pub dispatched_at: std::time::Instant,
    encoded: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Delivery {
    pub fn new(room: RoomKey, event: RoomEvent) -> Self {
        Delivery { room, event, dispatched_at: std::time::Instant::now(), encoded: OnceLock::new() }
    }

    /// The wire form, computed by the first recipient and shared with the rest. The type is
    /// the transport's choice (rooms know nothing of websockets); one transport, one type.
    pub fn encoded<T: Any + Send + Sync>(&self, encode: impl Fn(&RoomKey, &RoomEvent) -> T) -> Arc<T> {
        let stored = self.encoded.get_or_init(|| Arc::new(encode(&self.room, &self.event)));
        match stored.clone().downcast::<T>() {
            Ok(shared) => shared,
            Err(_) => Arc::new(encode(&self.room, &self.event)),
        }
    }
}

/// A session of this worker that is in a room.
#[derive(Debug, Clone)]
pub struct LocalMember {
    pub session_id: String,
    pub user_id: String,
    pub sender: mpsc::Sender<Arc<Delivery>>,
    /// Set when an event could not be queued (slow consumer): the session must resync.
    pub overflowed: Arc<AtomicBool>,
    /// Raised with the `Kickout` for this session, beside its queue: a session nobody reads
    /// (parked while its client reconnects) ends at once, and a full queue cannot lose it.
    pub kicked: Arc<KickSignal>,
}

/// That a session was removed from its room, and why (see [`LocalMember::kicked`]).
#[derive(Debug, Default)]
pub struct KickSignal {
    cause: Mutex<Option<KickCause>>,
    notify: tokio::sync::Notify,
}

impl KickSignal {
    fn raise(&self, cause: &KickCause) {
        *self.cause.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.clone());
        self.notify.notify_one();
    }

    /// Why the session was removed, if it was.
    pub fn cause(&self) -> Option<KickCause> {
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the session is removed; the cause.
    pub async fn removed(&self) -> KickCause {
        loop {
            if let Some(cause) = self.cause() {
                return cause;
            }
            self.notify.notified().await;
        }
    }
}

#[derive(Default)]
pub struct Hub {
    shards: [Mutex<HashMap<RoomKey, Vec<LocalMember>>>; SHARDS],
    /// Network quality of the local members (see [`super::quality`]).
    quality: super::quality::QualityBoard,
}

impl Hub {
    fn shard(&self, room: &RoomKey) -> std::sync::MutexGuard<'_, HashMap<RoomKey, Vec<LocalMember>>> {
        let mut hasher = DefaultHasher::new();
        room.hash(&mut hasher);
        let index = (hasher.finish() as usize) % SHARDS;
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each operation is a single insert or retain), so poisoning is ignored.
        self.shards[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a local member; true when it is the first of its room on this worker (the
    /// backend must start listening to the room).
    pub fn attach(&self, room: &RoomKey, member: LocalMember) -> bool {
        let mut shard = self.shard(room);
        let members = shard.entry(room.clone()).or_default();
        members.retain(|m| m.session_id != member.session_id);
        members.push(member);
        let first = members.len() == 1;
        if first {
            metrics::local_room_opened();
        }
        first
    }

    /// Removes a session; true when the room has no local member left.
    pub fn detach(&self, room: &RoomKey, session_id: &str) -> bool {
        let mut shard = self.shard(room);
        let Some(members) = shard.get_mut(room) else {
            return false;
        };
        let before = members.len();
        members.retain(|m| m.session_id != session_id);
        if members.is_empty() {
            shard.remove(room);
            if before > 0 {
                metrics::local_room_closed();
            }
            return before > 0;
        }
        false
    }

    pub fn quality(&self) -> &super::quality::QualityBoard {
        &self.quality
    }

    pub fn has_room(&self, room: &RoomKey) -> bool {
        self.shard(room).contains_key(room)
    }

    /// Rooms with local members.
    pub fn rooms(&self) -> Vec<RoomKey> {
        self.shards
            .iter()
            .flat_map(|shard| shard.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Hands `event` to every local member of `room` that should see it.
    pub fn dispatch(&self, room: RoomKey, event: RoomEvent) {
        let shard = self.shard(&room);
        let Some(members) = shard.get(&room) else {
            return;
        };
        if let RoomEvent::RelayQuality { users } = &event {
            // A relay's measurements: kept for the users whose sessions are here, who are
            // reported from here; nobody is sent them.
            let now = std::time::Instant::now();
            for member in members {
                if let Some(levels) = users.get(&member.user_id) {
                    self.quality.relay_levels(&room, &member.user_id, *levels, now);
                }
            }
            return;
        }
        let kind = event.kind();
        let delivery = Arc::new(Delivery::new(room.clone(), event));
        let mut delivered = 0u64;
        for member in members.iter().filter(|m| is_recipient(&delivery.event, m)) {
            if let RoomEvent::Kickout { cause, .. } = &delivery.event {
                member.kicked.raise(cause);
            }
            match member.sender.try_send(delivery.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.overflowed.store(true, Ordering::Release);
                    metrics::event_dropped();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        metrics::events_fanned_out(kind, delivered);
    }
}

/// Who gets what: people are not told about themselves, and targeted events go to their
/// targets only.
fn is_recipient(event: &RoomEvent, member: &LocalMember) -> bool {
    let not_self = |user_id: &str| member.user_id != user_id;
    match event {
        RoomEvent::UserAdded { user, .. } | RoomEvent::UserRemoved { user, .. } => not_self(&user.user_id),
        RoomEvent::StreamAdded { stream }
        | RoomEvent::StreamRemoved { stream }
        | RoomEvent::StreamExtraInfo { stream } => not_self(&stream.user.user_id),
        RoomEvent::RoomExtraInfo { extra } => not_self(&extra.update_user.user_id),
        RoomEvent::Broadcast { message } | RoomEvent::Barrage { message } => not_self(&message.from_user.user_id),
        RoomEvent::CustomCommand { message, to_user_ids } => {
            not_self(&message.from_user.user_id) && (to_user_ids.is_empty() || to_user_ids.contains(&member.user_id))
        }
        RoomEvent::Kickout { session_id, .. } | RoomEvent::MediaState { session_id, .. } => {
            member.session_id == *session_id
        }
        RoomEvent::Resync | RoomEvent::StreamMuted { .. } | RoomEvent::NetworkQuality { .. } => true,
        RoomEvent::RelayQuality { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::model::{ImMessage, User};

    fn member(session: &str, user: &str, capacity: usize) -> (LocalMember, mpsc::Receiver<Arc<Delivery>>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let member = LocalMember {
            session_id: session.into(),
            user_id: user.into(),
            sender,
            overflowed: Arc::default(),
            kicked: Arc::default(),
        };
        (member, receiver)
    }

    fn user(id: &str) -> User {
        User { user_id: id.into(), user_name: id.into() }
    }

    #[test]
    fn first_attach_and_last_detach_are_reported() {
        let hub = Hub::default();
        let room = RoomKey::new(1, "r");
        let (a, _ra) = member("s1", "a", 4);
        let (b, _rb) = member("s2", "b", 4);
        assert!(hub.attach(&room, a));
        assert!(!hub.attach(&room, b));
        assert!(!hub.detach(&room, "s1"));
        assert!(hub.detach(&room, "s2"));
        assert!(!hub.has_room(&room));
        assert!(!hub.detach(&room, "s2"), "detaching twice is harmless");
    }

    #[test]
    fn events_skip_their_author_and_reach_only_targets() {
        let hub = Hub::default();
        let room = RoomKey::new(1, "r");
        let (a, mut ra) = member("s1", "a", 4);
        let (b, mut rb) = member("s2", "b", 4);
        let (c, mut rc) = member("s3", "c", 4);
        for m in [a, b, c] {
            hub.attach(&room, m);
        }
        hub.dispatch(room.clone(), RoomEvent::UserAdded { user: user("a"), online_count: 3 });
        assert!(ra.try_recv().is_err());
        assert!(rb.try_recv().is_ok() && rc.try_recv().is_ok());

        let message = ImMessage { message: "hi".into(), from_user: user("a"), send_time: 0, message_id: 1 };
        hub.dispatch(room.clone(), RoomEvent::CustomCommand { message, to_user_ids: vec!["c".into()] });
        assert!(rb.try_recv().is_err());
        let got = rc.try_recv().unwrap();
        // The encoded form is shared between recipients.
        let first = got.encoded(|_, _| "x".to_owned());
        assert_eq!(first.as_str(), "x");
        assert_eq!(got.encoded(|_, _| "y".to_owned()).as_str(), "x");

        hub.dispatch(
            room.clone(),
            RoomEvent::Kickout { user_id: "b".into(), session_id: "s2".into(), cause: Default::default() },
        );
        assert!(rb.try_recv().is_ok());
        assert!(ra.try_recv().is_err() && rc.try_recv().is_err());
    }

    #[test]
    fn relay_measurements_are_kept_for_local_members_and_sent_to_nobody() {
        use crate::quality::Level;
        use crate::rooms::{RelayLevels, UserQuality};
        let hub = Hub::default();
        let room = RoomKey::new(1, "r");
        let (a, mut ra) = member("s1", "a", 4);
        hub.attach(&room, a);
        let poor = RelayLevels { upstream: Some(Level::POOR), downstream: None };
        let users = [("a".to_owned(), poor), ("elsewhere".to_owned(), poor)].into_iter().collect();
        hub.dispatch(room.clone(), RoomEvent::RelayQuality { users });
        assert!(ra.try_recv().is_err(), "not for clients");
        let changes = hub.quality().take_changes(std::time::Instant::now());
        let expected = UserQuality { user_id: "a".into(), upstream: Level::POOR, downstream: Level::UNKNOWN };
        assert_eq!(changes, vec![(room.clone(), vec![expected.clone()])], "only the local member");
        hub.dispatch(room.clone(), RoomEvent::NetworkQuality { users: vec![expected] });
        assert!(ra.try_recv().is_ok(), "the batch reaches every member, the user itself too");
    }

    #[test]
    fn a_full_queue_marks_the_member_for_resync() {
        let hub = Hub::default();
        let room = RoomKey::new(1, "r");
        let (slow, _receiver) = member("s1", "slow", 1);
        let flag = slow.overflowed.clone();
        hub.attach(&room, slow);
        hub.dispatch(room.clone(), RoomEvent::Resync);
        assert!(!flag.load(Ordering::Acquire));
        hub.dispatch(room.clone(), RoomEvent::Resync);
        assert!(flag.load(Ordering::Acquire));
    }

    #[test]
    fn a_kickout_is_signalled_to_its_session_even_when_its_queue_is_full() {
        let hub = Hub::default();
        let room = RoomKey::new(1, "r");
        let (full, _receiver) = member("s1", "full", 1);
        let (other, _other_receiver) = member("s2", "other", 4);
        let (signal, other_signal) = (full.kicked.clone(), other.kicked.clone());
        hub.attach(&room, full);
        hub.attach(&room, other);
        hub.dispatch(room.clone(), RoomEvent::Resync);
        let cause = KickCause::Server { reason: "r".into() };
        hub.dispatch(
            room.clone(),
            RoomEvent::Kickout { user_id: "full".into(), session_id: "s1".into(), cause: cause.clone() },
        );
        assert_eq!(signal.cause(), Some(cause));
        assert_eq!(other_signal.cause(), None, "only the session named");
    }
}
