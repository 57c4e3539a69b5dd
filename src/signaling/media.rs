//! Publishing and playing through the relay: signaling hands out media grants (with TURN
//! credentials when TURN is configured), and turns the relay's reports into room events. A stream becomes visible to the room (`roomStreamUpdate`
//! ADD) when the relay reports its media live, and disappears when the relay reports it gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::SignalingContext;
use super::limits;
use super::protocol::{PublishRequest, StreamRef};
use super::session::{Reply, SessionState};
use crate::api::media::RelayNode;
use crate::auth::grant::{self, GrantClaims, GrantSpec, MediaAction};
use crate::auth::turn;
use crate::auth::unix_now;
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::relay::RelayEvent;
use crate::rooms::{LocalMember, MediaRole, MediaStateKind, Member, RoomError, RoomEvent, RoomKey, StreamInfo, User};

/// How long a grant from signaling lives: enough for one offer/answer round trip.
const GRANT_TTL_SECS: u64 = 30;

fn relay(ctx: &SignalingContext) -> Result<&RelayNode, ApiError> {
    ctx.relay.as_deref().ok_or_else(|| ApiError::new(ErrorCode::RelayUnavailable, "no relay is available"))
}

/// Where a new stream is published: this node's relay, or else the least-loaded relay that
/// announced itself in the rooms backend.
async fn relay_for_publish(ctx: &SignalingContext, state: &SessionState) -> Result<String, ApiError> {
    if let Some(node) = ctx.relay.as_deref() {
        return Ok(node.base_url(state.base_url.as_deref()).to_owned());
    }
    let relays = ctx.rooms.backend().relays().await?;
    relays
        .into_iter()
        .min_by_key(|r| (r.peers, r.streams))
        .map(|r| r.url)
        .ok_or_else(|| ApiError::new(ErrorCode::RelayUnavailable, "no relay node is up"))
}

async fn grant_reply(
    ctx: &SignalingContext,
    state: &SessionState,
    stream_id: String,
    action: MediaAction,
    extra_info: Option<String>,
    relay_url: String,
) -> Result<Reply, ApiError> {
    let app = ctx.store.active_app(state.room.app_id).await?;
    let spec = GrantSpec {
        room_id: state.room.room_id.clone(),
        user_id: state.user.user_id.clone(),
        stream_id,
        action,
        session_id: Some(state.session_id.clone()),
        user_name: Some(state.user.user_name.clone()),
        extra_info,
        ttl_secs: GRANT_TTL_SECS,
    };
    let now = unix_now();
    let (grant, claims) = grant::issue(app.app_id, app.server_secret.as_bytes(), spec, now)?;
    let ice_servers = turn::ice_servers(ctx.turn.as_deref(), app.app_id, &claims.user_id, now);
    Ok(Reply {
        data: json!({
            "streamID": claims.stream_id,
            "url": crate::api::media::relay_endpoint(&relay_url, action, &claims.stream_id),
            "grant": grant,
            "expiresAt": claims.exp,
            "iceServers": ice_servers,
        }),
        after: Vec::new(),
    })
}

/// `publishStream`: checks the token's rights and hands out a publish grant. The stream is
/// announced once the relay reports its media live.
pub async fn publish(ctx: &SignalingContext, state: &SessionState, request: PublishRequest) -> Result<Reply, ApiError> {
    ids::validate_stream_id(&request.stream_id)?;
    if !state.claims.privileges.publish_stream {
        return Err(ApiError::new(ErrorCode::NoPublishPrivilege, "the token does not grant publishStream"));
    }
    if !state.claims.may_publish(&request.stream_id) {
        return Err(ApiError::new(ErrorCode::StreamNotAllowed, "stream id not in the token's streamIds"));
    }
    if request.extra_info.len() > limits::MAX_EXTRA_VALUE_BYTES {
        return Err(ApiError::new(ErrorCode::InvalidExtraInfo, "extraInfo is longer than 4096 bytes"));
    }
    let taken = ctx.rooms.backend().find_stream(state.room.app_id, &request.stream_id).await?;
    if taken.is_some_and(|(room, stream)| room != state.room || stream.user.user_id != state.user.user_id) {
        return Err(RoomError::StreamIdTaken(request.stream_id).into());
    }
    let relay_url = relay_for_publish(ctx, state).await?;
    grant_reply(ctx, state, request.stream_id, MediaAction::Publish, Some(request.extra_info), relay_url).await
}

/// `playStream`: hands out a play grant for a stream of this room.
pub async fn play(ctx: &SignalingContext, state: &SessionState, request: StreamRef) -> Result<Reply, ApiError> {
    ids::validate_stream_id(&request.stream_id)?;
    let found = ctx.rooms.backend().find_stream(state.room.app_id, &request.stream_id).await?;
    let stream = match found {
        Some((room, stream)) if room == state.room => stream,
        _ => return Err(RoomError::StreamNotFound(request.stream_id).into()),
    };
    // Players go to the relay that holds the stream: this node's own when it is the only one
    // (then reached the way this client reached signaling).
    let only_node = ctx.relay.as_deref().is_some_and(RelayNode::follows_host);
    let relay_url = match stream.relay_url {
        Some(url) if !only_node => url,
        _ => relay(ctx)?.base_url(state.base_url.as_deref()).to_owned(),
    };
    grant_reply(ctx, state, request.stream_id, MediaAction::Play, None, relay_url).await
}

/// `stopPublishingStream`: the stream leaves the room at once; its relay peer is ended.
pub async fn stop_publishing(
    ctx: &SignalingContext,
    state: &SessionState,
    request: StreamRef,
) -> Result<Reply, ApiError> {
    ctx.rooms.backend().remove_stream(&state.room, &state.user.user_id, &request.stream_id).await?;
    if let Some(node) = ctx.relay.as_deref() {
        let (app_id, stream_id) = (state.room.app_id, request.stream_id.as_str());
        node.close_where(|g| g.app_id == app_id && g.stream_id == stream_id && g.action == MediaAction::Publish).await;
    }
    Ok(Reply { data: json!({"streamID": request.stream_id}), after: Vec::new() })
}

/// `stopPlayingStream`: ends this session's players of a stream.
pub async fn stop_playing(ctx: &SignalingContext, state: &SessionState, request: StreamRef) -> Result<Reply, ApiError> {
    let node = relay(ctx)?;
    let session_id = state.session_id.as_str();
    let stream_id = request.stream_id.as_str();
    node.close_where(|g| {
        g.session_id.as_deref() == Some(session_id) && g.stream_id == stream_id && g.action == MediaAction::Play
    })
    .await;
    Ok(Reply { data: json!({"streamID": request.stream_id}), after: Vec::new() })
}

/// Ends the relay peers a session opened (it logged out, was kicked, or timed out).
pub async fn end_session_media(ctx: &SignalingContext, session_id: &str) {
    if let Some(node) = ctx.relay.as_deref() {
        node.close_where(|g| g.session_id.as_deref() == Some(session_id)).await;
    }
}

/// Turns a relay report into room changes and publisher/player states.
pub async fn on_relay_event(ctx: &SignalingContext, node: &Arc<RelayNode>, event: &RelayEvent) {
    let (peer, live) = match event {
        RelayEvent::StreamLive { peer, .. } | RelayEvent::PlayerStarted { peer, .. } => (*peer, true),
        RelayEvent::StreamStopped { peer, .. } | RelayEvent::PlayerStopped { peer, .. } => (*peer, false),
    };
    let Some(session) = node.session_of(peer) else { return };
    let grant = session.grant;
    let room = RoomKey::new(grant.app_id, grant.room_id.clone());
    if let RelayEvent::StreamStopped { bytes, .. } = event {
        // Recorded before the room hears of it, so that `stream_unpublished` precedes whatever
        // the publisher does next (its logout's `user_left`).
        let record_id = stream_record_id(ctx, peer);
        let stopped =
            ctx.usage.stream_stopped(&record_id, grant.app_id, &grant.room_id, bytes.bytes_in, bytes.bytes_out).await;
        crate::usage::log_failure("stream_stopped", stopped);
    }
    let result = match (grant.action, live) {
        (MediaAction::Publish, true) => stream_live(ctx, node, &room, &grant, peer).await,
        (MediaAction::Publish, false) => {
            ctx.rooms.stop_listening(&room, &mute_listener_id(ctx, peer)).await;
            stream_stopped(ctx, &room, &grant).await
        }
        (MediaAction::Play, true) => notify(ctx, &room, &grant, MediaRole::Player, MediaStateKind::Playing, 0).await,
        (MediaAction::Play, false) => notify(ctx, &room, &grant, MediaRole::Player, MediaStateKind::NoPlay, 0).await,
    };
    if let Err(err) = result {
        tracing::warn!(%room, stream = %grant.stream_id, error = %err, "could not apply a relay event to the room");
    }
}

/// A published stream's usage record: one per relay publisher session of this node.
fn stream_record_id(ctx: &SignalingContext, peer: crate::relay::PeerId) -> String {
    format!("{}:{peer}", ctx.usage.worker_id())
}

async fn stream_live(
    ctx: &SignalingContext,
    node: &Arc<RelayNode>,
    room: &RoomKey,
    grant: &GrantClaims,
    peer: crate::relay::PeerId,
) -> Result<(), RoomError> {
    let user = User {
        user_id: grant.user_id.clone(),
        user_name: grant.user_name.clone().unwrap_or_else(|| grant.user_id.clone()),
    };
    let session_id = match grant.session_id.clone() {
        Some(session_id) => session_id,
        None => encoder_session(ctx, room, grant, &user).await?,
    };
    let session_id = session_id.as_str();
    let stream = StreamInfo {
        stream_id: grant.stream_id.clone(),
        user,
        extra_info: grant.extra_info.clone().unwrap_or_default(),
        relay_url: Some(node.public_url.clone()),
        audio_muted: false,
        video_muted: false,
        publisher_audio_muted: false,
        publisher_video_muted: false,
    };
    match ctx.rooms.backend().add_stream(room, session_id, stream).await {
        Ok(()) => {
            let record = crate::usage::StreamStart {
                record_id: stream_record_id(ctx, peer),
                app_id: room.app_id,
                room_id: room.room_id.clone(),
                user_id: grant.user_id.clone(),
                stream_id: grant.stream_id.clone(),
                start_ms: crate::rooms::unix_millis(),
            };
            crate::usage::log_failure("stream_started", ctx.usage.stream_started(&record).await);
            if let Err(err) = follow_mutes(ctx, node, room, &grant.stream_id, peer).await {
                tracing::warn!(%room, stream = %grant.stream_id, error = %err, "cannot hear the room's mutes");
            }
            notify(ctx, room, grant, MediaRole::Publisher, MediaStateKind::Publishing, 0).await
        }
        Err(err) => {
            // The session left or another user holds the stream id: end the media.
            let code = ApiError::from(err.clone()).code.code();
            let _ = node.relay.close(peer).await;
            notify(ctx, room, grant, MediaRole::Publisher, MediaStateKind::NoPublish, code).await?;
            Err(err)
        }
    }
}

/// How this node's relay hears the business server's mutes of a stream it holds: it listens
/// to the stream's room (without joining it) for as long as the publisher peer lives. A mute
/// can only take effect on the relay holding the media, wherever the API call landed and
/// wherever the publisher's session is (a relay-only node, an encoder's stream).
async fn follow_mutes(
    ctx: &SignalingContext,
    node: &Arc<RelayNode>,
    room: &RoomKey,
    stream_id: &str,
    peer: crate::relay::PeerId,
) -> Result<(), RoomError> {
    let (sender, mut events) = tokio::sync::mpsc::channel(MUTE_LISTENER_QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let listener = LocalMember {
        session_id: mute_listener_id(ctx, peer),
        // No user: every event for the room as a whole reaches it, none aimed at a user.
        user_id: String::new(),
        sender,
        overflowed: overflowed.clone(),
        kicked: Arc::default(),
    };
    ctx.rooms.listen(room, listener).await?;
    let (rooms, node, room, stream_id) = (ctx.rooms.clone(), node.clone(), room.clone(), stream_id.to_owned());
    tokio::spawn(async move {
        // Ends when the listener is detached (the stream stopped): its sender is dropped.
        while let Some(delivery) = events.recv().await {
            let missed = overflowed.swap(false, Ordering::AcqRel);
            match &delivery.event {
                // The publisher's own mute is a signal only: its browser sends silence or black.
                RoomEvent::StreamMuted { stream, by_server: true } if stream.stream_id == stream_id => {
                    crate::admin::apply_mute(&node, room.app_id, stream).await;
                }
                // Events may be lost (a full queue, a Redis outage): read the flags again.
                RoomEvent::Resync => reapply_mute(&rooms, &node, &room, &stream_id).await,
                _ if missed => reapply_mute(&rooms, &node, &room, &stream_id).await,
                _ => {}
            }
        }
    });
    Ok(())
}

/// Events queued for a relay's mute listener; a busy room's chatter beyond it is dropped and
/// the flags are read again instead.
const MUTE_LISTENER_QUEUE: usize = 256;

fn mute_listener_id(ctx: &SignalingContext, peer: crate::relay::PeerId) -> String {
    format!("relay-mutes:{}:{peer}", ctx.rooms.worker_id())
}

/// Applies the stream's stored mute flags, as the room holds them now.
async fn reapply_mute(rooms: &crate::rooms::RoomService, node: &RelayNode, room: &RoomKey, stream_id: &str) {
    match rooms.backend().find_stream(room.app_id, stream_id).await {
        Ok(Some((held_in, stream))) if held_in == *room => crate::admin::apply_mute(node, room.app_id, &stream).await,
        Ok(_) => {}
        Err(err) => tracing::warn!(%room, stream = %stream_id, error = %err, "cannot read the stream's mute flags"),
    }
}

async fn stream_stopped(ctx: &SignalingContext, room: &RoomKey, grant: &GrantClaims) -> Result<(), RoomError> {
    match ctx.rooms.backend().remove_stream_held_here(room, &grant.user_id, &grant.stream_id).await {
        Ok(()) | Err(RoomError::StreamNotFound(_)) => {}
        Err(err) => return Err(err),
    }
    if grant.session_id.is_none() {
        // An encoder's stand-in member leaves with its stream (a no-op if the stream was
        // attached to a logged-in member instead: leaving is guarded by the session id).
        ctx.rooms.backend().leave(room, &grant.user_id, &encoder_session_id(grant)).await?;
    }
    notify(ctx, room, grant, MediaRole::Publisher, MediaStateKind::NoPublish, 0).await
}

/// The session id of an encoder's stand-in member: derived from the grant, so that the stop
/// finds it again.
fn encoder_session_id(grant: &GrantClaims) -> String {
    format!("encoder-{}", grant.jti)
}

/// A stream published with a REST grant (an encoder: OBS, GStreamer) has no signaling session.
/// It is announced through a member for its user id: the logged-in member if that user is in
/// the room, else a stand-in member held by this node (so it leaves with the node's lease).
async fn encoder_session(
    ctx: &SignalingContext,
    room: &RoomKey,
    grant: &GrantClaims,
    user: &User,
) -> Result<String, RoomError> {
    let backend = ctx.rooms.backend();
    let snapshot = backend.snapshot(room).await?;
    if let Some(member) = snapshot.members.iter().find(|m| m.user.user_id == grant.user_id) {
        return Ok(member.session_id.clone());
    }
    let max_users = room_size_limit(&ctx.store, room.app_id).await?;
    let member = Member {
        user: user.clone(),
        session_id: encoder_session_id(grant),
        worker_id: ctx.rooms.worker_id().to_owned(),
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

/// The app's room size limit. When it cannot be read the join fails (closed), rather than
/// letting a room grow without a limit.
async fn room_size_limit(store: &crate::store::Store, app_id: u32) -> Result<u32, RoomError> {
    match store.active_app(app_id).await {
        Ok(app) => Ok(app.max_users_per_room),
        Err(err) => Err(RoomError::Unavailable(format!("the app's room size limit cannot be read: {err}"))),
    }
}

/// A draining relay node: every publisher with a signaling session hears that its publish
/// ended with code 1010 (Draining), so that it publishes again through another relay.
pub async fn ask_publishers_to_move(ctx: &SignalingContext) {
    let Some(node) = ctx.relay.as_deref() else { return };
    let code = crate::error::ErrorCode::Draining.code();
    let publishers = node.grants().into_iter().filter(|g| g.action == MediaAction::Publish && g.session_id.is_some());
    for grant in publishers {
        let room = RoomKey::new(grant.app_id, grant.room_id.clone());
        if let Err(err) = notify(ctx, &room, &grant, MediaRole::Publisher, MediaStateKind::NoPublish, code).await {
            tracing::warn!(%room, stream = %grant.stream_id, error = %err, "could not ask a publisher to move");
        }
    }
}

async fn notify(
    ctx: &SignalingContext,
    room: &RoomKey,
    grant: &GrantClaims,
    role: MediaRole,
    state: MediaStateKind,
    error_code: u32,
) -> Result<(), RoomError> {
    let Some(session_id) = grant.session_id.clone() else { return Ok(()) };
    let event = RoomEvent::MediaState { session_id, stream_id: grant.stream_id.clone(), role, state, error_code };
    ctx.rooms.backend().publish(room, event).await
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
