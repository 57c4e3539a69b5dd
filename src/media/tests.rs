//! The relay→room rules, against [`FakeRelay`] and the in-memory rooms backend (with a real
//! SQLite store for apps and usage records).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::fake::{BYTES, FakeRelay};
use super::{MediaService, RelayPort, RoomsLink};
use crate::auth::grant::{GrantClaims, MediaAction};
use crate::relay::{RelayError, StreamKey};
use crate::rooms::{
    Delivery, LocalMember, MediaRole, MediaStateKind, Member, RoomEvent, RoomKey, RoomService, StreamInfo, User,
};
use crate::store::{NewApp, Store};
use crate::usage::Usage;

const PUBLIC_URL: &str = "http://relay.test";

struct Harness {
    fake: Arc<FakeRelay>,
    media: Arc<MediaService>,
    rooms: RoomService,
    store: Store,
    app_id: u32,
    room: RoomKey,
    _dir: tempfile::TempDir,
}

/// A room member's view: the events its session receives.
struct Session {
    id: String,
    events: mpsc::Receiver<Arc<Delivery>>,
}

impl Session {
    /// The events delivered so far.
    fn drain(&mut self) -> Vec<RoomEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).map(|d| d.event.clone()).collect()
    }

    /// The media states this session was told, as (stream, role, state, code).
    fn media_states(&mut self) -> Vec<(String, MediaRole, MediaStateKind, u32)> {
        self.drain()
            .into_iter()
            .filter_map(|event| match event {
                RoomEvent::MediaState { stream_id, role, state, error_code, .. } => {
                    Some((stream_id, role, state, error_code))
                }
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    async fn new(usage_records: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("huddle.db").display())).await.unwrap();
        let app = store.create_app(NewApp { name: "media".into(), ..Default::default() }).await.unwrap();
        let rooms = RoomService::in_memory();
        let usage = Usage::new(store.clone(), "worker", usage_records, Duration::from_secs(15), false, false);
        usage.clone().start().await.unwrap();
        let fake = Arc::new(FakeRelay::default());
        let link = RoomsLink { rooms: rooms.clone(), store: store.clone(), usage };
        let media = Arc::new(MediaService::new(fake.clone(), PUBLIC_URL.into(), false, link));
        let room = RoomKey::new(app.app_id, "room");
        Harness { fake, media, rooms, store, app_id: app.app_id, room, _dir: dir }
    }

    /// A logged-in member of the room, hearing its events.
    async fn join(&self, user_id: &str, session_id: &str) -> Session {
        let (sender, events) = mpsc::channel(64);
        let local = LocalMember {
            session_id: session_id.into(),
            user_id: user_id.into(),
            sender,
            overflowed: Arc::default(),
            kicked: Arc::default(),
        };
        let member = Member {
            user: User { user_id: user_id.into(), user_name: user_id.into() },
            session_id: session_id.into(),
            worker_id: "local".into(),
            joined_at: 0,
            joined_ms: 0,
        };
        self.rooms.enter(&self.room, member, 100, local).await.unwrap();
        Session { id: session_id.into(), events }
    }

    fn grant(&self, user_id: &str, session: Option<&Session>, stream_id: &str, action: MediaAction) -> GrantClaims {
        GrantClaims {
            iss: "huddle".into(),
            aud: "relay".into(),
            app_id: self.app_id,
            room_id: self.room.room_id.clone(),
            user_id: user_id.into(),
            stream_id: stream_id.into(),
            action,
            session_id: session.map(|s| s.id.clone()),
            user_name: None,
            extra_info: Some(format!("extra of {stream_id}")),
            edge: false,
            iat: 0,
            exp: 0,
            jti: format!("jti-{user_id}-{stream_id}"),
        }
    }

    /// Opens a session and lets its media connect; returns its `Location` id.
    async fn open_live(&self, claims: GrantClaims) -> String {
        let before = self.media.sessions().len();
        let (id, answer) = self.media.open(claims, "offer".into()).await.unwrap();
        assert!(answer.starts_with("answer "), "{answer}");
        assert_eq!(self.media.sessions().len(), before + 1);
        let peer = self.media.sessions.peer_of(&id).unwrap();
        self.fake.connect(peer);
        self.pump().await;
        id
    }

    /// Hands every event the fake relay reported to the media service, until none is left
    /// (applying one may end more peers).
    async fn pump(&self) {
        loop {
            let events = self.fake.take_events();
            if events.is_empty() {
                return;
            }
            for event in events {
                self.media.on_relay_event(&event).await;
            }
        }
    }

    async fn stream(&self, stream_id: &str) -> Option<StreamInfo> {
        let found = self.rooms.backend().find_stream(self.app_id, stream_id).await.unwrap();
        found.map(|(room, stream)| {
            assert_eq!(room, self.room);
            stream
        })
    }

    fn key(&self, stream_id: &str) -> StreamKey {
        StreamKey { app_id: self.app_id, stream_id: stream_id.into() }
    }
}

fn added(events: &[RoomEvent]) -> Vec<String> {
    let ids = events.iter().filter_map(|e| match e {
        RoomEvent::StreamAdded { stream } => Some(stream.stream_id.clone()),
        _ => None,
    });
    ids.collect()
}

fn removed(events: &[RoomEvent]) -> Vec<String> {
    let ids = events.iter().filter_map(|e| match e {
        RoomEvent::StreamRemoved { stream } => Some(stream.stream_id.clone()),
        _ => None,
    });
    ids.collect()
}

#[tokio::test]
async fn a_gone_publisher_leaves_its_room_and_takes_its_players_along() {
    let h = Harness::new(false).await;
    let mut alice = h.join("alice", "s-alice").await;
    let mut bob = h.join("bob", "s-bob").await;
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;

    let stream = h.stream("cam").await.expect("the live stream is in its room");
    assert_eq!(stream.relay_url.as_deref(), Some(PUBLIC_URL));
    assert_eq!(stream.extra_info, "extra of cam");
    assert_eq!(added(&bob.drain()), vec!["cam"]);
    assert_eq!(alice.media_states(), vec![("cam".into(), MediaRole::Publisher, MediaStateKind::Publishing, 0)]);

    let play = h.open_live(h.grant("bob", Some(&bob), "cam", MediaAction::Play)).await;
    assert_eq!(bob.media_states(), vec![("cam".into(), MediaRole::Player, MediaStateKind::Playing, 0)]);
    let player = h.media.sessions.peer_of(&play).unwrap();
    let publisher = h.media.sessions.peer_of(&publish).unwrap();

    h.media.end(&publish).await.unwrap();
    h.pump().await;
    assert_eq!(h.fake.closed(), vec![publisher, player], "the publisher, then its player");
    assert!(h.stream("cam").await.is_none());
    let told_bob = bob.drain();
    assert_eq!(removed(&told_bob), vec!["cam"]);
    let bob_states: Vec<_> = told_bob
        .iter()
        .filter_map(|e| match e {
            RoomEvent::MediaState { state, role, .. } => Some((*role, *state)),
            _ => None,
        })
        .collect();
    assert_eq!(bob_states, vec![(MediaRole::Player, MediaStateKind::NoPlay)]);
    assert_eq!(alice.media_states(), vec![("cam".into(), MediaRole::Publisher, MediaStateKind::NoPublish, 0)]);
    assert!(h.media.sessions().is_empty());
    assert_eq!(h.fake.load().peers, 0);
}

#[tokio::test]
async fn playing_a_stream_this_relay_does_not_hold_is_refused() {
    let h = Harness::new(false).await;
    let bob = h.join("bob", "s-bob").await;
    let refused = h.media.open(h.grant("bob", Some(&bob), "elsewhere", MediaAction::Play), "offer".into()).await;
    assert!(matches!(refused, Err(RelayError::UnknownStream(ref id)) if id == "elsewhere"), "{refused:?}");
    assert!(h.media.sessions().is_empty());
    let alice = h.join("alice", "s-alice").await;
    h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    let twice = h.media.open(h.grant("alice", Some(&alice), "cam", MediaAction::Publish), "offer".into()).await;
    assert!(matches!(twice, Err(RelayError::AlreadyPublished(_))), "{twice:?}");
    assert_eq!(h.media.sessions().len(), 1);
}

#[tokio::test]
async fn a_stopped_session_still_reaches_its_room_and_is_then_forgotten() {
    // The report of a gone peer is tied to its grant before the registry forgets it: the
    // room hears of it, and afterwards its `Location` names nothing.
    let h = Harness::new(false).await;
    let alice = h.join("alice", "s-alice").await;
    let mut bob = h.join("bob", "s-bob").await;
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    bob.drain();
    h.media.end(&publish).await.unwrap();
    assert_eq!(h.media.sessions().len(), 1, "kept until the relay reports the end");
    h.pump().await;
    assert_eq!(removed(&bob.drain()), vec!["cam"]);
    assert!(matches!(h.media.end(&publish).await, Err(RelayError::UnknownPeer)));
    // A repeated report of the same peer changes nothing.
    let again = crate::relay::RelayEvent::StreamStopped { stream: h.key("cam"), peer: 1, bytes: BYTES };
    h.media.on_relay_event(&again).await;
    assert!(bob.drain().is_empty());
}

#[tokio::test]
async fn a_room_that_refuses_the_stream_ends_the_publisher_with_the_reason() {
    let h = Harness::new(false).await;
    let mut alice = h.join("alice", "s-alice").await;
    let bob = h.join("bob", "s-bob").await;
    // Bob holds "cam" in the room through another relay; this relay gets Alice's "cam".
    let elsewhere = StreamInfo {
        stream_id: "cam".into(),
        user: User { user_id: "bob".into(), user_name: "bob".into() },
        extra_info: String::new(),
        relay_url: Some("http://other-relay.test".into()),
        audio_muted: false,
        video_muted: false,
        publisher_audio_muted: false,
        publisher_video_muted: false,
    };
    h.rooms.backend().add_stream(&h.room, &bob.id, elsewhere).await.unwrap();
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    let code = crate::error::ErrorCode::StreamIdTaken.code();
    assert_eq!(
        alice.media_states(),
        vec![
            ("cam".into(), MediaRole::Publisher, MediaStateKind::NoPublish, code),
            ("cam".into(), MediaRole::Publisher, MediaStateKind::NoPublish, 0),
        ]
    );
    assert_eq!(h.fake.closed().len(), 1, "the refused peer is ended");
    assert!(matches!(h.media.end(&publish).await, Err(RelayError::UnknownPeer)));
    assert_eq!(h.stream("cam").await.map(|s| s.user.user_id), Some("bob".into()), "Bob's stream stays");
}

#[tokio::test]
async fn the_relay_holding_a_stream_follows_the_rooms_mutes_and_players_mute_alone() {
    let h = Harness::new(false).await;
    let alice = h.join("alice", "s-alice").await;
    let bob = h.join("bob", "s-bob").await;
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    h.rooms.backend().set_stream_muted(&h.room, "cam", Some(true), None).await.unwrap();
    let mut waited = Duration::ZERO;
    while h.fake.mutes().is_empty() && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    assert_eq!(h.fake.mutes(), vec![(h.key("cam"), Some(true), Some(false))]);
    // The publisher's own mute is a signal only: the relay forwards as before.
    h.rooms.backend().set_publisher_muted(&h.room, "alice", "cam", Some(true), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.fake.mutes().len(), 1);

    let play = h.open_live(h.grant("bob", Some(&bob), "cam", MediaAction::Play)).await;
    let muted = h.media.mute_player(&play, None, Some(true)).await.unwrap();
    assert!(muted.video && !muted.audio);
    assert!(matches!(h.media.mute_player(&publish, Some(true), None).await, Err(RelayError::NotAPlayer)));
    assert!(matches!(h.media.mute_player("nope", Some(true), None).await, Err(RelayError::UnknownPeer)));
    assert_eq!(h.fake.mutes().len(), 1, "a player's mute is not the stream's");
}

#[tokio::test]
async fn a_signaling_session_leaving_closes_only_its_own_peers() {
    let h = Harness::new(false).await;
    let alice = h.join("alice", "s-alice").await;
    let bob = h.join("bob", "s-bob").await;
    let a_cam = h.open_live(h.grant("alice", Some(&alice), "a-cam", MediaAction::Publish)).await;
    let b_cam = h.open_live(h.grant("bob", Some(&bob), "b-cam", MediaAction::Publish)).await;
    let a_plays = h.open_live(h.grant("alice", Some(&alice), "b-cam", MediaAction::Play)).await;
    let b_plays = h.open_live(h.grant("bob", Some(&bob), "a-cam", MediaAction::Play)).await;
    let peer = |id: &str| h.media.sessions.peer_of(id).unwrap();
    let (a_cam, b_cam, a_plays, b_plays) = (peer(&a_cam), peer(&b_cam), peer(&a_plays), peer(&b_plays));

    h.media.close_players_of_session("s-bob", "b-cam").await;
    assert!(h.fake.closed().is_empty(), "bob plays a-cam, not b-cam");
    h.media.close_players_of_session("s-bob", "a-cam").await;
    assert_eq!(h.fake.closed(), vec![b_plays]);
    h.pump().await;

    h.media.close_session("s-alice").await;
    let mut closed = h.fake.closed();
    closed.sort_unstable();
    assert_eq!(closed, vec![a_cam, a_plays, b_plays]);
    h.pump().await;
    assert!(h.stream("a-cam").await.is_none());
    assert!(h.stream("b-cam").await.is_some());

    h.media.close_publisher(h.app_id, "b-cam").await;
    assert!(h.fake.closed().contains(&b_cam));
    h.pump().await;
    assert!(h.media.sessions().is_empty());
}

#[tokio::test]
async fn an_encoders_stream_brings_a_stand_in_member_that_leaves_with_it() {
    let h = Harness::new(false).await;
    let mut bob = h.join("bob", "s-bob").await;
    let publish = h.open_live(h.grant("obs", None, "studio", MediaAction::Publish)).await;
    let snapshot = h.rooms.backend().snapshot(&h.room).await.unwrap();
    let stand_in = snapshot.members.iter().find(|m| m.user.user_id == "obs").expect("a member for the encoder");
    assert_eq!(stand_in.session_id, "encoder-jti-obs-studio");
    assert_eq!(added(&bob.drain()), vec!["studio"]);
    h.media.end(&publish).await.unwrap();
    h.pump().await;
    let snapshot = h.rooms.backend().snapshot(&h.room).await.unwrap();
    assert!(snapshot.members.iter().all(|m| m.user.user_id != "obs"));
    assert_eq!(removed(&bob.drain()), vec!["studio"]);
}

#[tokio::test]
async fn a_stopped_stream_is_recorded_with_the_bytes_it_moved() {
    let h = Harness::new(true).await;
    let alice = h.join("alice", "s-alice").await;
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    let peer = h.media.sessions.peer_of(&publish).unwrap();
    h.media.end(&publish).await.unwrap();
    h.pump().await;
    let pool = h.store.pool().unwrap();
    let row: (String, String, i64, i64) =
        sqlx::query_as("SELECT record_id, stream_id, bytes_in, bytes_out FROM usage_streams WHERE stop_ms IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(row, (format!("worker:{peer}"), "cam".into(), BYTES.bytes_in as i64, BYTES.bytes_out as i64));
}

#[tokio::test]
async fn relay_levels_reach_the_rooms_of_known_peers() {
    use crate::quality::Level;
    let h = Harness::new(false).await;
    let alice = h.join("alice", "s-alice").await;
    let bob = h.join("bob", "s-bob").await;
    let publish = h.open_live(h.grant("alice", Some(&alice), "cam", MediaAction::Publish)).await;
    let play = h.open_live(h.grant("bob", Some(&bob), "cam", MediaAction::Play)).await;
    let (publisher, player) = (h.media.sessions.peer_of(&publish).unwrap(), h.media.sessions.peer_of(&play).unwrap());
    h.rooms.hub().quality().take_changes(std::time::Instant::now());
    let unknown_peer = 999;
    h.fake.set_levels(vec![(publisher, Level::POOR), (player, Level::POOR), (unknown_peer, Level::POOR)]);
    h.media.publish_levels(h.media.relay.link_levels().await.unwrap()).await;
    let changes = h.rooms.hub().quality().take_changes(std::time::Instant::now());
    let users: Vec<_> = changes
        .iter()
        .flat_map(|(_, users)| users.iter().map(|u| (u.user_id.as_str(), u.upstream, u.downstream)))
        .collect();
    assert_eq!(users, vec![("alice", Level::POOR, Level::UNKNOWN), ("bob", Level::UNKNOWN, Level::POOR)]);
}
