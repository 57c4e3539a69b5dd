//! One behavioural suite for both room backends: in memory, and Redis with several workers
//! sharing it. Redis-only tests cover leases (a crashed worker's users are removed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use huddle::rooms::redis::{RedisRooms, RedisRoomsConfig};
use huddle::rooms::{
    ClosedRoom, Delivery, Hub, ImMessage, KickCause, LocalMember, Member, RoomError, RoomEvent, RoomExtraInfo, RoomKey,
    RoomService, RoomSummary, StreamInfo, User,
};
use tokio::sync::mpsc;

/// Hands out "workers": the memory backend has one process, so every worker is the same
/// service; Redis gets a service per worker, all sharing one Redis.
#[derive(Clone)]
enum Backend {
    Memory(RoomService),
    Redis { url: String, lease: Duration },
}

impl Backend {
    async fn worker(&self) -> RoomService {
        match self {
            Backend::Memory(service) => service.clone(),
            Backend::Redis { url, lease } => redis_worker(url, *lease).await,
        }
    }
}

async fn redis_worker(url: &str, lease: Duration) -> RoomService {
    let hub = Arc::new(Hub::default());
    let worker_id = uuid::Uuid::new_v4().simple().to_string();
    let rooms = RedisRooms::start(
        url,
        hub.clone(),
        worker_id.clone(),
        RedisRoomsConfig { lease, ..RedisRoomsConfig::default() },
        None,
    )
    .await
    .expect("Redis reachable");
    RoomService::new(rooms, hub, worker_id)
}

fn fresh_room() -> RoomKey {
    // A random app id keeps tests that share one Redis apart.
    RoomKey::new(rand_app_id(), "room-1")
}

fn rand_app_id() -> u32 {
    (uuid::Uuid::new_v4().as_u128() % 4_000_000_000) as u32 + 1
}

fn user(id: &str) -> User {
    User { user_id: id.into(), user_name: format!("name-{id}") }
}

struct Client {
    service: RoomService,
    room: RoomKey,
    user: User,
    session: String,
    events: mpsc::Receiver<Arc<Delivery>>,
}

impl Client {
    async fn join(
        service: &RoomService,
        room: &RoomKey,
        user_id: &str,
        max_users: u32,
    ) -> Result<(Client, huddle::rooms::JoinOutcome), RoomError> {
        let session = uuid::Uuid::new_v4().simple().to_string();
        let (sender, events) = mpsc::channel(256);
        let local = LocalMember {
            session_id: session.clone(),
            user_id: user_id.into(),
            sender,
            overflowed: Arc::default(),
            kicked: Arc::default(),
        };
        let member = Member {
            user: user(user_id),
            session_id: session.clone(),
            worker_id: service.worker_id().into(),
            joined_at: 0,
            joined_ms: 0,
        };
        let outcome = service.enter(room, member, max_users, local).await?;
        Ok((Client { service: service.clone(), room: room.clone(), user: user(user_id), session, events }, outcome))
    }

    async fn joined(service: &RoomService, room: &RoomKey, user_id: &str) -> Client {
        Client::join(service, room, user_id, 100).await.expect("join").0
    }

    async fn next(&mut self) -> RoomEvent {
        match tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await {
            Ok(Some(delivery)) => delivery.event.clone(),
            other => panic!("{} expected an event, got {other:?}", self.user.user_id),
        }
    }

    /// The next event that is not a resync (backends may add those after a repair).
    async fn next_change(&mut self) -> RoomEvent {
        loop {
            let event = self.next().await;
            if event != RoomEvent::Resync {
                return event;
            }
        }
    }

    async fn next_change_within(&mut self, limit: Duration) -> Option<RoomEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(delivery)) if delivery.event == RoomEvent::Resync => continue,
                Ok(Some(delivery)) => return Some(delivery.event.clone()),
                _ => return None,
            }
        }
    }

    /// Takes the events already queued, without waiting.
    fn take_queued(&mut self) -> Vec<RoomEvent> {
        let mut queued = Vec::new();
        while let Ok(delivery) = self.events.try_recv() {
            queued.push(delivery.event.clone());
        }
        queued
    }

    async fn silent(&mut self) {
        if let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_millis(300), self.events.recv()).await {
            panic!("{} expected silence, got {:?}", self.user.user_id, delivery.event);
        }
    }

    async fn leave(&self) -> bool {
        self.service.exit(&self.room, &self.user.user_id, &self.session).await.expect("leave")
    }

    fn stream(&self, id: &str) -> StreamInfo {
        StreamInfo {
            stream_id: id.into(),
            user: self.user.clone(),
            extra_info: String::new(),
            relay_url: None,
            audio_muted: false,
            video_muted: false,
            publisher_audio_muted: false,
            publisher_video_muted: false,
        }
    }

    async fn publish(&self, id: &str) -> Result<(), RoomError> {
        self.service.backend().add_stream(&self.room, &self.session, self.stream(id)).await
    }

    fn message(&self, text: &str) -> ImMessage {
        ImMessage { message: text.into(), from_user: self.user.clone(), send_time: 0, message_id: 7 }
    }
}

async fn joins_and_leaves_are_announced(backend: Backend) {
    let room = fresh_room();
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let (mut alice, first) = Client::join(&w1, &room, "alice", 100).await.unwrap();
    assert_eq!(first.snapshot.users(), vec![user("alice")]);
    let (mut bob, second) = Client::join(&w2, &room, "bob", 100).await.unwrap();
    assert_eq!(second.snapshot.users(), vec![user("alice"), user("bob")]);
    assert_eq!(alice.next().await, RoomEvent::UserAdded { user: user("bob"), online_count: 2 });
    bob.silent().await;
    assert!(bob.leave().await);
    assert_eq!(alice.next().await, RoomEvent::UserRemoved { user: user("bob"), online_count: 1 });
    assert!(!bob.leave().await, "leaving twice is a no-op");
    assert!(alice.leave().await);
    assert!(w1.backend().snapshot(&room).await.unwrap().members.is_empty());
}

async fn a_second_login_kicks_the_first_without_user_churn(backend: Backend) {
    let room = fresh_room();
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let mut observer = Client::joined(&w1, &room, "observer").await;
    let mut first = Client::joined(&w1, &room, "alice").await;
    assert!(matches!(observer.next().await, RoomEvent::UserAdded { .. }));
    first.publish("alice-cam").await.unwrap();
    assert!(matches!(observer.next().await, RoomEvent::StreamAdded { .. }));
    // Listening starts just before the join, so `first` may also hear the observer's join,
    // published before its own but delivered after it (on Redis, pub/sub lags the join's
    // reply; docs/PROTOCOL.md section 5). A worker hands out a room's events in order, so
    // with the stream seen, any such event is queued by now.
    let before_join = first.take_queued();
    assert!(
        before_join.iter().all(|e| matches!(e, RoomEvent::UserAdded { user: u, .. } if *u == user("observer"))),
        "only events from before alice's join: {before_join:?}"
    );

    let (mut second, outcome) = Client::join(&w2, &room, "alice", 100).await.unwrap();
    assert_eq!(outcome.replaced_session.as_deref(), Some(first.session.as_str()));
    assert_eq!(
        first.next().await,
        RoomEvent::Kickout { user_id: "alice".into(), session_id: first.session.clone(), cause: Default::default() }
    );
    // The old session's streams end; the user itself stays.
    assert_eq!(observer.next().await, RoomEvent::StreamRemoved { stream: first.stream("alice-cam") });
    observer.silent().await;
    second.silent().await;

    assert!(!first.leave().await, "the replaced session no longer holds the membership");
    observer.silent().await;
    assert!(second.leave().await);
    assert_eq!(observer.next().await, RoomEvent::UserRemoved { user: user("alice"), online_count: 1 });
}

async fn full_rooms_refuse_new_users_and_change_nothing(backend: Backend) {
    let room = fresh_room();
    let worker = backend.worker().await;
    let (mut a, _) = Client::join(&worker, &room, "a", 2).await.unwrap();
    let _b = Client::join(&worker, &room, "b", 2).await.unwrap();
    assert!(matches!(a.next().await, RoomEvent::UserAdded { .. }));
    let refused = Client::join(&worker, &room, "c", 2).await.err();
    assert_eq!(refused, Some(RoomError::RoomFull(2)));
    a.silent().await;
    assert_eq!(worker.backend().snapshot(&room).await.unwrap().members.len(), 2);
    assert!(Client::join(&worker, &room, "b", 2).await.is_ok(), "a member may log in again when full");
}

async fn streams_are_registered_unique_and_announced(backend: Backend) {
    let room = fresh_room();
    let other_room = RoomKey::new(room.app_id, "room-2");
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let alice = Client::joined(&w1, &room, "alice").await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    let carol = Client::joined(&w2, &other_room, "carol").await;

    alice.publish("cam").await.unwrap();
    assert_eq!(bob.next().await, RoomEvent::StreamAdded { stream: alice.stream("cam") });
    alice.publish("cam").await.expect("publishing the same stream again is idempotent");
    assert_eq!(carol.publish("cam").await, Err(RoomError::StreamIdTaken("cam".into())), "unique per app");
    assert_eq!(bob.publish("cam").await, Err(RoomError::StreamIdTaken("cam".into())));
    let elsewhere = RoomKey::new(room.app_id + 1, "room-1");
    let dave = Client::joined(&w1, &elsewhere, "dave").await;
    dave.publish("cam").await.expect("another app may use the same stream id");

    let backend1 = w1.backend();
    backend1.set_stream_extra_info(&room, "alice", "cam", "hd").await.unwrap();
    let mut with_extra = alice.stream("cam");
    with_extra.extra_info = "hd".into();
    assert_eq!(bob.next().await, RoomEvent::StreamExtraInfo { stream: with_extra.clone() });
    assert_eq!(
        backend1.set_stream_extra_info(&room, "bob", "cam", "x").await,
        Err(RoomError::StreamNotFound("cam".into()))
    );
    assert_eq!(backend1.remove_stream(&room, "bob", "cam").await, Err(RoomError::StreamNotFound("cam".into())));
    assert_eq!(backend1.find_stream(room.app_id, "cam").await.unwrap(), Some((room.clone(), with_extra.clone())));
    let snapshot = w2.backend().snapshot(&room).await.unwrap();
    assert_eq!(snapshot.streams, vec![with_extra.clone()]);

    alice.publish("screen").await.unwrap();
    assert!(matches!(bob.next().await, RoomEvent::StreamAdded { .. }));
    assert!(alice.leave().await);
    let mut removed = vec![bob.next().await, bob.next().await];
    removed.sort_by_key(|e| format!("{e:?}"));
    assert!(removed.iter().all(|e| matches!(e, RoomEvent::StreamRemoved { .. })), "{removed:?}");
    assert_eq!(
        bob.next().await,
        RoomEvent::UserRemoved { user: user("alice"), online_count: 1 },
        "streams end before their user"
    );
    assert_eq!(backend1.find_stream(room.app_id, "cam").await.unwrap(), None);
    carol.publish("cam").await.expect("a freed stream id can be reused");

    let stranger = Client { session: "not-a-session".into(), ..Client::joined(&w1, &room, "eve").await };
    assert_eq!(stranger.publish("x").await, Err(RoomError::NotMember));
}

async fn extra_info_and_messages_fan_out(backend: Backend) {
    let room = fresh_room();
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let mut alice = Client::joined(&w1, &room, "alice").await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    let mut carol = Client::joined(&w2, &room, "carol").await;
    for _ in 0..2 {
        assert!(matches!(alice.next().await, RoomEvent::UserAdded { .. }));
    }
    assert!(matches!(bob.next().await, RoomEvent::UserAdded { .. }));
    // Carol, on bob's worker, may also hear bob's join delivered after her own (see
    // `a_second_login_kicks_the_first_without_user_churn`); bob has heard hers, so it is queued.
    let before_join = carol.take_queued();
    assert!(
        before_join.iter().all(|e| matches!(e, RoomEvent::UserAdded { user: u, .. } if *u == user("bob"))),
        "only events from before carol's join: {before_join:?}"
    );

    let extra =
        RoomExtraInfo { key: "topic".into(), value: "hello".into(), update_user: user("alice"), update_time: 1 };
    w1.backend().set_room_extra_info(&room, extra.clone(), 2).await.unwrap();
    assert_eq!(bob.next().await, RoomEvent::RoomExtraInfo { extra: extra.clone() });
    assert_eq!(carol.next().await, RoomEvent::RoomExtraInfo { extra: extra.clone() });
    alice.silent().await;
    let second = RoomExtraInfo { key: "k2".into(), ..extra.clone() };
    w1.backend().set_room_extra_info(&room, second.clone(), 2).await.unwrap();
    let third = RoomExtraInfo { key: "k3".into(), ..extra.clone() };
    assert_eq!(w1.backend().set_room_extra_info(&room, third, 2).await, Err(RoomError::TooManyExtraInfoKeys(2)));
    let updated = RoomExtraInfo { value: "changed".into(), ..extra.clone() };
    w1.backend().set_room_extra_info(&room, updated.clone(), 2).await.expect("an existing key may change when full");
    assert_eq!(w2.backend().snapshot(&room).await.unwrap().extra_info, vec![second.clone(), updated.clone()]);
    let empty_room = RoomKey::new(room.app_id, "nobody-here");
    assert_eq!(w1.backend().set_room_extra_info(&empty_room, extra, 2).await, Err(RoomError::NotMember));
    for _ in 0..2 {
        assert!(matches!(bob.next().await, RoomEvent::RoomExtraInfo { .. }));
        assert!(matches!(carol.next().await, RoomEvent::RoomExtraInfo { .. }));
    }

    w1.backend().publish(&room, RoomEvent::Broadcast { message: alice.message("hi all") }).await.unwrap();
    assert_eq!(bob.next().await, RoomEvent::Broadcast { message: alice.message("hi all") });
    assert_eq!(carol.next().await, RoomEvent::Broadcast { message: alice.message("hi all") });
    alice.silent().await;
    let command = RoomEvent::CustomCommand { message: alice.message("psst"), to_user_ids: vec!["carol".into()] };
    w1.backend().publish(&room, command.clone()).await.unwrap();
    assert_eq!(carol.next().await, command);
    bob.silent().await;
}

async fn events_keep_the_order_of_changes(backend: Backend) {
    let room = fresh_room();
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let alice = Client::joined(&w1, &room, "alice").await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    for i in 0..30 {
        let id = format!("s{i}");
        alice.publish(&id).await.unwrap();
        w1.backend().remove_stream(&room, "alice", &id).await.unwrap();
    }
    for i in 0..30 {
        let stream = alice.stream(&format!("s{i}"));
        assert_eq!(bob.next().await, RoomEvent::StreamAdded { stream: stream.clone() });
        assert_eq!(bob.next().await, RoomEvent::StreamRemoved { stream });
    }
}

async fn server_kicks_and_closes_remove_members_and_ban_logins(backend: Backend) {
    let room = fresh_room();
    let (w1, w2) = (backend.worker().await, backend.worker().await);
    let mut alice = Client::joined(&w1, &room, "alice").await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    bob.publish("bob-cam").await.unwrap();
    assert!(matches!(alice.next().await, RoomEvent::UserAdded { .. }));
    assert!(matches!(alice.next().await, RoomEvent::StreamAdded { .. }));
    let other_room = RoomKey::new(room.app_id, "room-2");
    let _carol = Client::joined(&w2, &other_room, "carol").await;
    let summary =
        |id: &str, users, streams| RoomSummary { room_id: id.into(), user_count: users, stream_count: streams };
    let listed = w1.backend().list_rooms(room.app_id, None, 10).await.unwrap();
    assert_eq!(listed, vec![summary("room-1", 2, 1), summary("room-2", 1, 0)]);
    assert_eq!(w2.backend().list_rooms(room.app_id, Some("room-1"), 10).await.unwrap(), vec![summary("room-2", 1, 0)]);
    let ids = ["room-2".to_owned(), "nobody".to_owned()];
    assert_eq!(
        w1.backend().room_counts(room.app_id, &ids).await.unwrap(),
        vec![summary("room-2", 1, 0), summary("nobody", 0, 0)]
    );

    // Muting is a flag on the stream, announced to everyone (the publisher too).
    let muted = w1.backend().set_stream_muted(&room, "bob-cam", None, Some(true)).await.unwrap();
    assert!(muted.video_muted && !muted.audio_muted);
    assert_eq!(alice.next().await, RoomEvent::StreamMuted { stream: muted.clone(), by_server: true });
    assert_eq!(bob.next().await, RoomEvent::StreamMuted { stream: muted.clone(), by_server: true });
    assert_eq!(w2.backend().snapshot(&room).await.unwrap().streams, vec![muted.clone()]);
    let missing = w1.backend().set_stream_muted(&room, "nope", Some(true), None).await;
    assert_eq!(missing, Err(RoomError::StreamNotFound("nope".into())));

    // The publisher's own mute: only the publisher, beside the server's flags, to everyone.
    let not_owner = w1.backend().set_publisher_muted(&room, "alice", "bob-cam", Some(true), None).await;
    assert_eq!(not_owner, Err(RoomError::StreamNotFound("bob-cam".into())));
    let own = w2.backend().set_publisher_muted(&room, "bob", "bob-cam", None, Some(true)).await.unwrap();
    assert!(own.video_muted && own.publisher_video_muted && !own.publisher_audio_muted, "{own:?}");
    assert_eq!(alice.next().await, RoomEvent::StreamMuted { stream: own.clone(), by_server: false });
    assert_eq!(bob.next().await, RoomEvent::StreamMuted { stream: own.clone(), by_server: false });
    // Unmuting its own video leaves the server's mute in place.
    let own = w2.backend().set_publisher_muted(&room, "bob", "bob-cam", None, Some(false)).await.unwrap();
    assert!(own.video_muted && !own.publisher_video_muted, "{own:?}");
    assert_eq!(own, muted, "back to the server's mute alone");
    assert_eq!(alice.next().await, RoomEvent::StreamMuted { stream: own.clone(), by_server: false });
    assert_eq!(bob.next().await, RoomEvent::StreamMuted { stream: own, by_server: false });

    // A kick: only bob's session hears its kickout, then the room sees his stream and him go.
    let cause = KickCause::Server { reason: "spam".into() };
    let kicked = w1.backend().kick(&room, &["bob".into(), "zed".into()], &cause, 1).await.unwrap();
    assert_eq!(kicked, vec!["bob".to_owned()]);
    assert_eq!(bob.next().await, RoomEvent::Kickout { user_id: "bob".into(), session_id: bob.session.clone(), cause });
    assert_eq!(alice.next().await, RoomEvent::StreamRemoved { stream: muted });
    assert_eq!(alice.next().await, RoomEvent::UserRemoved { user: user("bob"), online_count: 1 });
    assert!(!bob.leave().await, "the kick already removed him");
    for banned in ["bob", "zed"] {
        match Client::join(&w2, &room, banned, 100).await {
            Err(RoomError::Banned { remaining_secs }) => assert_eq!(remaining_secs, 1),
            other => panic!("{banned} joined a room it is banned from: {:?}", other.map(|(_, o)| o)),
        }
    }
    assert!(Client::join(&w2, &other_room, "bob", 100).await.is_ok(), "the ban is for one room");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    bob.publish("bob-cam").await.unwrap();
    assert!(matches!(alice.next().await, RoomEvent::UserAdded { .. }));
    assert!(matches!(alice.next().await, RoomEvent::StreamAdded { .. }));

    // A close: every session hears its kickout first, then every stream, then every user goes.
    let cause = KickCause::RoomClosed { reason: "over".into() };
    let closed = w2.backend().close_room(&room, &cause, 1).await.unwrap();
    assert_eq!(closed, ClosedRoom { users_removed: 2, streams_removed: 1 });
    assert_eq!(
        alice.next().await,
        RoomEvent::Kickout { user_id: "alice".into(), session_id: alice.session.clone(), cause: cause.clone() }
    );
    assert!(matches!(alice.next().await, RoomEvent::StreamRemoved { .. }));
    assert!(matches!(alice.next().await, RoomEvent::UserRemoved { .. }), "alice hears bob leave before she is removed");
    assert_eq!(bob.next().await, RoomEvent::Kickout { user_id: "bob".into(), session_id: bob.session.clone(), cause });
    assert_eq!(w1.backend().snapshot(&room).await.unwrap(), huddle::rooms::Snapshot::default());
    assert_eq!(w1.backend().list_rooms(room.app_id, None, 10).await.unwrap(), vec![summary("room-2", 2, 0)]);
    assert_eq!(w1.backend().find_stream(room.app_id, "bob-cam").await.unwrap(), None);
    match Client::join(&w1, &room, "dan", 100).await {
        Err(RoomError::Closed { remaining_secs }) => assert_eq!(remaining_secs, 1),
        other => panic!("joined a closed room: {:?}", other.map(|(_, o)| o)),
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Client::joined(&w1, &room, "dan").await;
}

macro_rules! suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn joins_and_leaves_are_announced() {
                super::joins_and_leaves_are_announced($backend).await;
            }
            #[tokio::test]
            async fn a_second_login_kicks_the_first_without_user_churn() {
                super::a_second_login_kicks_the_first_without_user_churn($backend).await;
            }
            #[tokio::test]
            async fn full_rooms_refuse_new_users_and_change_nothing() {
                super::full_rooms_refuse_new_users_and_change_nothing($backend).await;
            }
            #[tokio::test]
            async fn streams_are_registered_unique_and_announced() {
                super::streams_are_registered_unique_and_announced($backend).await;
            }
            #[tokio::test]
            async fn extra_info_and_messages_fan_out() {
                super::extra_info_and_messages_fan_out($backend).await;
            }
            #[tokio::test]
            async fn events_keep_the_order_of_changes() {
                super::events_keep_the_order_of_changes($backend).await;
            }
            #[tokio::test]
            async fn server_kicks_and_closes_remove_members_and_ban_logins() {
                super::server_kicks_and_closes_remove_members_and_ban_logins($backend).await;
            }
        }
    };
}

suite!(memory, Backend::Memory(RoomService::in_memory()));
suite!(redis, Backend::Redis { url: common::redis_url(), lease: Duration::from_secs(15) });

/// A worker that stops renewing its lease (crashed) has its users removed by another worker,
/// and the room is told.
#[tokio::test]
async fn a_dead_workers_users_are_removed_within_the_lease() {
    let url = common::redis_url();
    let lease = Duration::from_secs(2);
    let room = fresh_room();
    let survivor = redis_worker(&url, lease).await;
    let mut watcher = Client::joined(&survivor, &room, "watcher").await;
    let doomed = redis_worker(&url, lease).await;
    let victim = Client::joined(&doomed, &room, "victim").await;
    victim.publish("victim-cam").await.unwrap();
    assert!(matches!(watcher.next().await, RoomEvent::UserAdded { .. }));
    assert!(matches!(watcher.next().await, RoomEvent::StreamAdded { .. }));

    // Dropping the last handle stops the lease loop, as a crash would.
    drop(victim);
    drop(doomed);
    let started = std::time::Instant::now();
    assert_eq!(
        watcher.next_change().await,
        RoomEvent::StreamRemoved {
            stream: StreamInfo {
                stream_id: "victim-cam".into(),
                user: user("victim"),
                extra_info: String::new(),
                relay_url: None,
                audio_muted: false,
                video_muted: false,
                publisher_audio_muted: false,
                publisher_video_muted: false,
            }
        }
    );
    assert_eq!(watcher.next_change().await, RoomEvent::UserRemoved { user: user("victim"), online_count: 1 });
    assert!(started.elapsed() < lease * 4, "reaped after {:?}", started.elapsed());
}

/// A user whose worker crashed logs in again through another worker and publishes the same
/// stream id before the dead worker is reaped: reaping removes the dead session, never the
/// stream published again.
#[tokio::test]
async fn reaping_a_dead_worker_spares_its_streams_published_again_elsewhere() {
    let url = common::redis_url();
    let lease = Duration::from_secs(1);
    let room = fresh_room();
    let survivor = redis_worker(&url, lease).await;
    let doomed = redis_worker(&url, lease).await;
    let first = Client::joined(&doomed, &room, "phoenix").await;
    first.publish("phoenix-cam").await.unwrap();
    drop(first);
    drop(doomed);

    let again = Client::joined(&survivor, &room, "phoenix").await;
    again.publish("phoenix-cam").await.unwrap();
    // Long enough for the lapsed lease to be noticed and the dead worker reaped.
    tokio::time::sleep(lease * 4).await;
    let snapshot = survivor.backend().snapshot(&room).await.unwrap();
    let streams: Vec<&str> = snapshot.streams.iter().map(|s| s.stream_id.as_str()).collect();
    assert_eq!(streams, ["phoenix-cam"]);
    let users: Vec<&str> = snapshot.members.iter().map(|m| m.user.user_id.as_str()).collect();
    assert_eq!(users, ["phoenix"]);
}

/// A user moves to another worker (a drain) and publishes the same stream id there; the first
/// worker's relay then reports its old publisher stopped: that must not remove the new stream.
#[tokio::test]
async fn a_stream_stopped_on_one_worker_spares_the_same_stream_published_again_on_another() {
    let url = common::redis_url();
    let lease = Duration::from_secs(15);
    let room = fresh_room();
    let (old_worker, new_worker) = (redis_worker(&url, lease).await, redis_worker(&url, lease).await);
    let mut observer = Client::joined(&new_worker, &room, "observer").await;
    let first = Client::joined(&old_worker, &room, "mover").await;
    first.publish("mover-cam").await.unwrap();
    let again = Client::joined(&new_worker, &room, "mover").await;
    again.publish("mover-cam").await.unwrap();
    assert!(matches!(observer.next_change().await, RoomEvent::UserAdded { .. }));
    assert!(matches!(observer.next_change().await, RoomEvent::StreamAdded { .. }));
    assert!(matches!(observer.next_change().await, RoomEvent::StreamRemoved { .. }), "the replaced session's stream");
    assert!(matches!(observer.next_change().await, RoomEvent::StreamAdded { .. }), "published again");

    let stopped = old_worker.backend().remove_stream_held_here(&room, "mover", "mover-cam").await;
    assert!(matches!(stopped, Err(RoomError::StreamNotFound(_))), "{stopped:?}");
    observer.silent().await;
    let snapshot = new_worker.backend().snapshot(&room).await.unwrap();
    assert_eq!(snapshot.streams.iter().map(|s| s.stream_id.as_str()).collect::<Vec<_>>(), ["mover-cam"]);
    // The worker holding it may remove it.
    new_worker.backend().remove_stream_held_here(&room, "mover", "mover-cam").await.unwrap();
    assert!(matches!(observer.next_change().await, RoomEvent::StreamRemoved { .. }));
}

/// A worker that missed the kickout of a session the server removed (it still holds the
/// session) must not put it back when it repairs Redis: it ends the session as the kickout
/// would have.
#[tokio::test]
async fn a_repair_never_restores_a_session_the_server_removed() {
    let lease = Duration::from_millis(1000);
    let url = common::redis_url();
    let (w1, w2) = (redis_worker(&url, lease).await, redis_worker(&url, lease).await);
    let room = fresh_room();
    let mut alice = Client::joined(&w1, &room, "alice").await;
    let mut bob = Client::joined(&w2, &room, "bob").await;
    assert!(matches!(alice.next().await, RoomEvent::UserAdded { .. }));
    let cause = KickCause::Server { reason: "bye".into() };
    w1.backend().kick(&room, &["bob".into()], &cause, 0).await.unwrap();
    let kickout = RoomEvent::Kickout { user_id: "bob".into(), session_id: bob.session.clone(), cause };
    assert_eq!(bob.next().await, kickout);
    assert!(matches!(alice.next().await, RoomEvent::UserRemoved { .. }));
    // Bob's worker never acts on the kickout (no connection here), so its periodic repair
    // (every 40 ticks of lease/10) finds bob missing in Redis and would restore him.
    assert_eq!(
        bob.next_change_within(Duration::from_secs(8)).await,
        Some(kickout),
        "the repair ends the session again"
    );
    assert_eq!(w1.backend().snapshot(&room).await.unwrap().users(), vec![user("alice")]);
    alice.silent().await;
}

/// The room index may name a room whose keys expired without a leave (a worker died long
/// ago, Redis lost them): listing skips and forgets it, and still fills the page.
#[tokio::test]
async fn listing_rooms_skips_index_entries_whose_room_is_gone() {
    let url = common::redis_url();
    let worker = redis_worker(&url, Duration::from_secs(15)).await;
    let room = fresh_room();
    let _alice = Client::joined(&worker, &room, "alice").await;
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let index = huddle::rooms::redis::contract::app_rooms_key(room.app_id);
    let _: () = ::redis::AsyncCommands::zadd(&mut conn, &index, "a-ghost", 0).await.unwrap();
    let listed = worker.backend().list_rooms(room.app_id, None, 1).await.unwrap();
    let expected = RoomSummary { room_id: room.room_id.clone(), user_count: 1, stream_count: 0 };
    assert_eq!(listed, vec![expected]);
    let left: Vec<String> = ::redis::AsyncCommands::zrange(&mut conn, &index, 0, -1).await.unwrap();
    assert_eq!(left, vec![room.room_id.clone()], "the ghost left the index");
}
