//! The one consumer of the relay's events: what each report changes in rooms, usage records
//! and the session registry, in one place and in this order.
//!
//! - A publisher's media live: the stream is added to its room (through its signaling
//!   session, or an encoder's member), its usage record opens, the relay starts following the
//!   room's mutes of it, and the publisher hears `Publishing`. A room that refuses the stream
//!   ends the peer and the publisher hears `NoPublish` with the reason.
//! - A publisher gone: the session leaves the registry first (so nothing more is asked of the
//!   peer), its usage record closes with the bytes the stream moved (before the room hears,
//!   so that `stream_unpublished` precedes whatever the publisher does next), players of the
//!   stream still here are closed, the mute following ends, the stream leaves its room (with
//!   an encoder's stand-in member), and the publisher hears `NoPublish`.
//! - A player started or gone: it hears `Playing` / `NoPlay`; a gone one leaves the registry.
//!
//! Reports of peers this registry does not know (already forgotten) change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::UnboundedReceiver;

use super::MediaService;
use crate::auth::grant::{GrantClaims, MediaAction};
use crate::auth::unix_now;
use crate::error::ApiError;
use crate::relay::{PeerId, RelayEvent};
use crate::rooms::{LocalMember, MediaRole, MediaStateKind, Member, RoomError, RoomEvent, RoomKey, StreamInfo, User};

/// Events queued for a relay's mute listener; a busy room's chatter beyond it is dropped and
/// the flags are read again instead.
const MUTE_LISTENER_QUEUE: usize = 256;

impl MediaService {
    /// Applies the relay's reports, in their order, for as long as the relay runs.
    pub fn follow(self: Arc<Self>, mut events: UnboundedReceiver<RelayEvent>) {
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                tracing::debug!(?event, "relay event");
                self.on_relay_event(&event).await;
            }
        });
    }

    /// Applies one relay report (see the module's rules).
    pub async fn on_relay_event(self: &Arc<Self>, event: &RelayEvent) {
        let session = match event {
            RelayEvent::StreamLive { peer, .. } | RelayEvent::PlayerStarted { peer, .. } => self.sessions.get(*peer),
            RelayEvent::StreamStopped { peer, .. } | RelayEvent::PlayerStopped { peer, .. } => {
                self.sessions.remove(*peer)
            }
        };
        let Some(session) = session else { return };
        let (peer, grant) = (session.peer, session.grant);
        if grant.edge {
            // Another relay pulling the stream (cascade): transport, not a viewer.
            return;
        }
        let room = RoomKey::new(grant.app_id, grant.room_id.clone());
        let result = match event {
            RelayEvent::StreamLive { .. } if grant.action == MediaAction::Publish => {
                self.stream_live(&room, &grant, peer).await
            }
            RelayEvent::StreamStopped { bytes, .. } if grant.action == MediaAction::Publish => {
                let record_id = self.stream_record_id(peer);
                let usage = &self.link.usage;
                let stopped = usage
                    .stream_stopped(&record_id, grant.app_id, &grant.room_id, bytes.bytes_in, bytes.bytes_out)
                    .await;
                crate::usage::log_failure("stream_stopped", stopped);
                self.close(self.sessions.stream_peers(grant.app_id, &grant.stream_id, MediaAction::Play)).await;
                self.link.rooms.stop_listening(&room, &self.mute_listener_id(peer)).await;
                self.stream_stopped(&room, &grant).await
            }
            RelayEvent::PlayerStarted { .. } if grant.action == MediaAction::Play => {
                self.notify(&room, &grant, MediaRole::Player, MediaStateKind::Playing, 0).await
            }
            RelayEvent::PlayerStopped { .. } if grant.action == MediaAction::Play => {
                self.notify(&room, &grant, MediaRole::Player, MediaStateKind::NoPlay, 0).await
            }
            // A report that does not fit the session's role (never sent by the relay).
            _ => Ok(()),
        };
        if let Err(err) = result {
            tracing::warn!(%room, stream = %grant.stream_id, error = %err, "could not apply a relay event to the room");
        }
    }

    /// A published stream's usage record: one per relay publisher session of this node.
    fn stream_record_id(&self, peer: PeerId) -> String {
        format!("{}:{peer}", self.link.usage.worker_id())
    }

    fn mute_listener_id(&self, peer: PeerId) -> String {
        format!("relay-mutes:{}:{peer}", self.link.rooms.worker_id())
    }

    async fn stream_live(self: &Arc<Self>, room: &RoomKey, grant: &GrantClaims, peer: PeerId) -> Result<(), RoomError> {
        let user = User {
            user_id: grant.user_id.clone(),
            user_name: grant.user_name.clone().unwrap_or_else(|| grant.user_id.clone()),
        };
        let session_id = match grant.session_id.clone() {
            Some(session_id) => session_id,
            None => self.encoder_session(room, grant, &user).await?,
        };
        let stream = StreamInfo {
            stream_id: grant.stream_id.clone(),
            user,
            extra_info: grant.extra_info.clone().unwrap_or_default(),
            relay_url: Some(self.public_url.clone()),
            audio_muted: false,
            video_muted: false,
            publisher_audio_muted: false,
            publisher_video_muted: false,
        };
        match self.link.rooms.backend().add_stream(room, &session_id, stream).await {
            Ok(()) => {
                let record = crate::usage::StreamStart {
                    record_id: self.stream_record_id(peer),
                    app_id: room.app_id,
                    room_id: room.room_id.clone(),
                    user_id: grant.user_id.clone(),
                    stream_id: grant.stream_id.clone(),
                    start_ms: crate::rooms::unix_millis(),
                };
                crate::usage::log_failure("stream_started", self.link.usage.stream_started(&record).await);
                if let Err(err) = self.follow_mutes(room, &grant.stream_id, peer).await {
                    tracing::warn!(%room, stream = %grant.stream_id, error = %err, "cannot hear the room's mutes");
                }
                self.notify(room, grant, MediaRole::Publisher, MediaStateKind::Publishing, 0).await
            }
            Err(err) => {
                // The session left or another user holds the stream id: end the media.
                let code = ApiError::from(err.clone()).code.code();
                let _ = self.relay.close(peer).await;
                self.notify(room, grant, MediaRole::Publisher, MediaStateKind::NoPublish, code).await?;
                Err(err)
            }
        }
    }

    /// How this node's relay hears the business server's mutes of a stream it holds: it
    /// listens to the stream's room (without joining it) for as long as the publisher peer
    /// lives. A mute can only take effect on the relay holding the media, wherever the API call
    /// landed and wherever the publisher's session is (a relay-only node, an encoder's stream).
    async fn follow_mutes(self: &Arc<Self>, room: &RoomKey, stream_id: &str, peer: PeerId) -> Result<(), RoomError> {
        let (sender, mut events) = tokio::sync::mpsc::channel(MUTE_LISTENER_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let listener = LocalMember {
            session_id: self.mute_listener_id(peer),
            // No user: every event for the room as a whole reaches it, none aimed at a user.
            user_id: String::new(),
            sender,
            overflowed: overflowed.clone(),
            kicked: Arc::default(),
        };
        self.link.rooms.listen(room, listener).await?;
        let (node, room, stream_id) = (self.clone(), room.clone(), stream_id.to_owned());
        tokio::spawn(async move {
            // Ends when the listener is detached (the stream stopped): its sender is dropped.
            while let Some(delivery) = events.recv().await {
                let missed = overflowed.swap(false, Ordering::AcqRel);
                match &delivery.event {
                    // The publisher's own mute is a signal only: its browser sends silence or black.
                    RoomEvent::StreamMuted { stream, by_server: true } if stream.stream_id == stream_id => {
                        node.apply_mute(room.app_id, stream).await;
                    }
                    // Events may be lost (a full queue, a Redis outage): read the flags again.
                    RoomEvent::Resync => node.reapply_mute(&room, &stream_id).await,
                    _ if missed => node.reapply_mute(&room, &stream_id).await,
                    _ => {}
                }
            }
        });
        Ok(())
    }

    /// Applies the stream's stored mute flags, as the room holds them now.
    async fn reapply_mute(&self, room: &RoomKey, stream_id: &str) {
        match self.link.rooms.backend().find_stream(room.app_id, stream_id).await {
            Ok(Some((held_in, stream))) if held_in == *room => self.apply_mute(room.app_id, &stream).await,
            Ok(_) => {}
            Err(err) => tracing::warn!(%room, stream = %stream_id, error = %err, "cannot read the stream's mute flags"),
        }
    }

    async fn stream_stopped(&self, room: &RoomKey, grant: &GrantClaims) -> Result<(), RoomError> {
        let backend = self.link.rooms.backend();
        match backend.remove_stream_held_here(room, &grant.user_id, &grant.stream_id).await {
            Ok(()) | Err(RoomError::StreamNotFound(_)) => {}
            Err(err) => return Err(err),
        }
        if grant.session_id.is_none() {
            // An encoder's stand-in member leaves with its stream (a no-op if the stream was
            // attached to a logged-in member instead: leaving is guarded by the session id).
            backend.leave(room, &grant.user_id, &encoder_session_id(grant)).await?;
        }
        self.notify(room, grant, MediaRole::Publisher, MediaStateKind::NoPublish, 0).await
    }

    /// A stream published with a REST grant (an encoder: OBS, GStreamer) has no signaling
    /// session. It is announced through a member for its user id: the logged-in member if
    /// that user is in the room, else a stand-in member held by this node (so it leaves with
    /// the node's lease).
    async fn encoder_session(&self, room: &RoomKey, grant: &GrantClaims, user: &User) -> Result<String, RoomError> {
        let backend = self.link.rooms.backend();
        let snapshot = backend.snapshot(room).await?;
        if let Some(member) = snapshot.members.iter().find(|m| m.user.user_id == grant.user_id) {
            return Ok(member.session_id.clone());
        }
        let max_users = room_size_limit(&self.link.store, room.app_id).await?;
        let member = Member {
            user: user.clone(),
            session_id: encoder_session_id(grant),
            worker_id: self.link.rooms.worker_id().to_owned(),
            joined_at: unix_now(),
            joined_ms: crate::rooms::unix_millis(),
        };
        let outcome = backend.join(room, member, max_users).await?;
        if let Some(replaced) = outcome.replaced_session {
            // The user logged in between the snapshot and the join; the encoder took over.
            tracing::warn!(%room, user = %grant.user_id, %replaced, "an encoder replaced a member with its user id");
        }
        Ok(encoder_session_id(grant))
    }

    /// A draining relay node: every publisher with a signaling session hears that its publish
    /// ended with code 1010 (Draining), so that it publishes again through another relay.
    pub async fn ask_publishers_to_move(&self) {
        let code = crate::error::ErrorCode::Draining.code();
        let sessions = self.sessions.all();
        let publishers = sessions.iter().filter(|s| s.grant.action == MediaAction::Publish);
        for grant in publishers.map(|s| &s.grant).filter(|g| g.session_id.is_some()) {
            let room = RoomKey::new(grant.app_id, grant.room_id.clone());
            if let Err(err) = self.notify(&room, grant, MediaRole::Publisher, MediaStateKind::NoPublish, code).await {
                tracing::warn!(%room, stream = %grant.stream_id, error = %err, "could not ask a publisher to move");
            }
        }
    }

    /// Tells the grant's signaling session (if any) what became of its publish or play.
    async fn notify(
        &self,
        room: &RoomKey,
        grant: &GrantClaims,
        role: MediaRole,
        state: MediaStateKind,
        error_code: u32,
    ) -> Result<(), RoomError> {
        let Some(session_id) = grant.session_id.clone() else { return Ok(()) };
        let event = RoomEvent::MediaState { session_id, stream_id: grant.stream_id.clone(), role, state, error_code };
        self.link.rooms.backend().publish(room, event).await
    }
}

/// The session id of an encoder's stand-in member: derived from the grant, so that the stop
/// finds it again.
fn encoder_session_id(grant: &GrantClaims) -> String {
    format!("encoder-{}", grant.jti)
}

/// The app's room size limit. When it cannot be read the join fails (closed), rather than
/// letting a room grow without a limit.
async fn room_size_limit(store: &crate::store::Store, app_id: u32) -> Result<u32, RoomError> {
    match store.active_app(app_id).await {
        Ok(app) => Ok(app.max_users_per_room),
        Err(err) => Err(RoomError::Unavailable(format!("the app's room size limit cannot be read: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_room_size_limit_fails_closed_when_the_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huddle.db");
        let store = crate::store::Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
        let new = crate::store::NewApp { max_users_per_room: Some(7), name: "a".into(), ..Default::default() };
        let app = store.create_app(new).await.unwrap();
        assert_eq!(room_size_limit(&store, app.app_id).await, Ok(7));
        let unknown = room_size_limit(&store, app.app_id.wrapping_add(1)).await;
        assert!(matches!(unknown, Err(RoomError::Unavailable(_))), "{unknown:?}");
        std::fs::remove_file(&path).unwrap();
        let other = crate::store::NewApp { name: "b".into(), ..Default::default() };
        assert!(store.create_app(other).await.is_err());
        // Not cached (found only after the outage began): the limit is unknown, so no join.
        let outage = room_size_limit(&store, 4_000_000_000).await;
        assert!(matches!(outage, Err(RoomError::Unavailable(_))), "{outage:?}");
    }
}
