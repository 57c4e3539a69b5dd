//! The websocket's media requests: signaling checks the token's rights and hands out media
//! grants (with TURN credentials when TURN is configured), and ends a session's relay peers.
//! What the relay then reports reaches rooms through [`crate::media::events`]: a stream becomes
//! visible to the room (`roomStreamUpdate` ADD) when its media is live, and leaves when gone.

use serde_json::json;

use super::SignalingContext;
use super::limits;
use super::protocol::{PublishRequest, StreamRef};
use super::session::{Reply, SessionState};
use crate::auth::grant::{GrantSpec, MediaAction};
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::media::{MediaService, grants};
use crate::rooms::{RelayInfo, RoomError};

/// How long a grant from signaling lives: enough for one offer/answer round trip.
const GRANT_TTL_SECS: u64 = 30;

fn relay(ctx: &SignalingContext) -> Result<&MediaService, ApiError> {
    ctx.relay.as_deref().ok_or_else(|| ApiError::new(ErrorCode::RelayUnavailable, "no relay is available"))
}

/// Where a new stream is published: this node's relay, or else the least-loaded relay that
/// announced itself in the rooms backend, of this node's region when there is one there.
async fn relay_for_publish(ctx: &SignalingContext, state: &SessionState) -> Result<String, ApiError> {
    if let Some(node) = ctx.relay.as_deref() {
        return Ok(node.base_url(state.base_url.as_deref()).to_owned());
    }
    let relays = ctx.rooms.backend().relays().await?;
    pick_publish_relay(&relays, &ctx.config.region)
        .ok_or_else(|| ApiError::new(ErrorCode::RelayUnavailable, "no relay node is up"))
}

/// The relays a client of a node in `region` should use: those of the region, or all of them
/// when the region has none (or the node names no region).
fn nearby<'a>(relays: &'a [RelayInfo], region: &str) -> Vec<&'a RelayInfo> {
    let local: Vec<&RelayInfo> = relays.iter().filter(|r| !region.is_empty() && r.region == region).collect();
    if local.is_empty() { relays.iter().collect() } else { local }
}

fn pick_publish_relay(relays: &[RelayInfo], region: &str) -> Option<String> {
    nearby(relays, region).into_iter().min_by_key(|r| (r.peers, r.streams, &r.url)).map(|r| r.url.clone())
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
    let issued = grants::issue(&app, spec, ctx.turn.as_deref())?;
    Ok(Reply {
        data: json!({
            "streamID": issued.claims.stream_id,
            "url": crate::media::relay_endpoint(&relay_url, action, &issued.claims.stream_id),
            "grant": issued.grant,
            "expiresAt": issued.claims.exp,
            "iceServers": issued.ice_servers,
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
    // Players go to the relay that holds the stream (this node's own when it is the only one,
    // then reached the way this client reached signaling), or to a less busy one that pulls
    // the stream from it.
    let only_node = ctx.relay.as_deref().is_some_and(MediaService::follows_host);
    let relay_url = match stream.relay_url {
        Some(url) if !only_node => relay_for_play(ctx, url).await,
        _ => relay(ctx)?.base_url(state.base_url.as_deref()).to_owned(),
    };
    grant_reply(ctx, state, request.stream_id, MediaAction::Play, None, relay_url).await
}

/// The relay a new player of a stream held by the relay at `origin` is sent to: the origin
/// until it announces `cascade_above` peers, then the relay announcing the fewest peers if it
/// has fewer than the origin (it pulls the stream from the origin; see
/// [`crate::media::MediaService::open`]). With regions, only relays of this node's region are
/// considered when it has any, and a stream held in another region is always pulled to one of
/// them. The origin when the announcements cannot be read.
async fn relay_for_play(ctx: &SignalingContext, origin: String) -> String {
    let threshold = ctx.config.cascade_above;
    if threshold == 0 {
        return origin;
    }
    let relays = match ctx.rooms.backend().relays().await {
        Ok(relays) => relays,
        Err(err) => {
            tracing::debug!(error = %err, "relay announcements unreadable; the player goes to the stream's relay");
            return origin;
        }
    };
    pick_play_relay(&relays, origin, threshold, &ctx.config.region)
}

fn pick_play_relay(relays: &[RelayInfo], origin: String, threshold: u64, region: &str) -> String {
    let Some(origin_load) = relays.iter().find(|r| r.url == origin).map(|r| r.peers) else {
        return origin;
    };
    let candidates = nearby(relays, region);
    let origin_nearby = candidates.iter().any(|r| r.url == origin);
    if origin_nearby && origin_load < threshold {
        return origin;
    }
    // Ties (announcements lag behind a burst of players) go to one relay, by URL: one pull,
    // not one per idle relay.
    match candidates.into_iter().min_by_key(|r| (r.peers, r.streams, &r.url)) {
        // The stream is held in another region: a relay of this one pulls it across once.
        Some(least) if !origin_nearby => least.url.clone(),
        Some(least) if least.peers < origin_load => least.url.clone(),
        _ => origin,
    }
}

/// `stopPublishingStream`: the stream leaves the room at once; its relay peer is ended.
pub async fn stop_publishing(
    ctx: &SignalingContext,
    state: &SessionState,
    request: StreamRef,
) -> Result<Reply, ApiError> {
    ctx.rooms.backend().remove_stream(&state.room, &state.user.user_id, &request.stream_id).await?;
    if let Some(node) = ctx.relay.as_deref() {
        node.close_publisher(state.room.app_id, &request.stream_id).await;
    }
    Ok(Reply { data: json!({"streamID": request.stream_id}), after: Vec::new() })
}

/// `stopPlayingStream`: ends this session's players of a stream.
pub async fn stop_playing(ctx: &SignalingContext, state: &SessionState, request: StreamRef) -> Result<Reply, ApiError> {
    relay(ctx)?.close_players_of_session(&state.session_id, &request.stream_id).await;
    Ok(Reply { data: json!({"streamID": request.stream_id}), after: Vec::new() })
}

/// Ends the relay peers a session opened (it logged out, was kicked, or timed out).
pub async fn end_session_media(ctx: &SignalingContext, session_id: &str) {
    if let Some(node) = ctx.relay.as_deref() {
        node.close_session(session_id).await;
    }
}

/// A draining relay node: its publishers are asked to publish again elsewhere.
pub async fn ask_publishers_to_move(ctx: &SignalingContext) {
    if let Some(node) = ctx.relay.as_deref() {
        node.ask_publishers_to_move().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{pick_play_relay, pick_publish_relay};
    use crate::rooms::RelayInfo;

    fn relay(url: &str, peers: u64) -> RelayInfo {
        RelayInfo { id: url.into(), url: url.into(), peers, streams: 1, updated_at: 0, region: String::new() }
    }

    fn relay_in(region: &str, url: &str, peers: u64) -> RelayInfo {
        RelayInfo { region: region.into(), ..relay(url, peers) }
    }

    #[test]
    fn players_leave_the_streams_relay_only_when_it_is_busy_and_another_is_not() {
        let relays = [relay("a", 500), relay("b", 20), relay("c", 10)];
        assert_eq!(pick_play_relay(&relays, "a".into(), 400, ""), "c");
        assert_eq!(pick_play_relay(&relays, "a".into(), 501, ""), "a", "below the threshold");
        assert_eq!(pick_play_relay(&relays, "c".into(), 5, ""), "c", "the origin is the least busy");
        assert_eq!(pick_play_relay(&relays, "gone".into(), 1, ""), "gone", "an origin not announced");
        assert_eq!(pick_play_relay(&[relay("a", 9)], "a".into(), 1, ""), "a", "no other relay");
    }

    #[test]
    fn clients_use_relays_of_their_signaling_nodes_region() {
        let relays = [relay_in("eu", "eu-1", 50), relay_in("eu", "eu-2", 10), relay_in("us", "us-1", 0)];
        // Publishers: the least busy relay of the region, however idle another region's are.
        assert_eq!(pick_publish_relay(&relays, "eu").as_deref(), Some("eu-2"));
        assert_eq!(pick_publish_relay(&relays, "us").as_deref(), Some("us-1"));
        assert_eq!(pick_publish_relay(&relays, "").as_deref(), Some("us-1"), "no region: load alone");
        assert_eq!(pick_publish_relay(&relays, "ap").as_deref(), Some("us-1"), "a region without relays");
        assert_eq!(pick_publish_relay(&[], "eu"), None);

        // Players of a stream held in the region: the usual rule, within the region.
        assert_eq!(pick_play_relay(&relays, "eu-1".into(), 400, "eu"), "eu-1", "not busy");
        assert_eq!(pick_play_relay(&relays, "eu-1".into(), 40, "eu"), "eu-2", "busy: the region's least busy");
        let busy_region = [relay_in("eu", "eu-1", 50), relay_in("eu", "eu-2", 60), relay_in("us", "us-1", 0)];
        assert_eq!(pick_play_relay(&busy_region, "eu-1".into(), 40, "eu"), "eu-1", "nothing idler nearby");
        // Held in another region: pulled to the region's least busy relay, busy or not.
        assert_eq!(pick_play_relay(&relays, "us-1".into(), 400, "eu"), "eu-2");
        assert_eq!(pick_play_relay(&relays, "eu-2".into(), 400, "us"), "us-1");
        // A region without relays, or none named: as without regions.
        assert_eq!(pick_play_relay(&relays, "us-1".into(), 400, "ap"), "us-1");
        assert_eq!(pick_play_relay(&relays, "us-1".into(), 400, ""), "us-1");
    }
}
