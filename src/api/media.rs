//! The relay's HTTP face, WHIP/WHEP style: `POST /relay/v1/publish/{streamId}` and
//! `POST /relay/v1/play/{streamId}` take an SDP offer (`application/sdp`) and a media grant
//! (`Authorization: Bearer …`) and answer `201 Created` with the SDP answer and a `Location`;
//! `DELETE` on that location ends the session. Standard WHIP clients (OBS, GStreamer
//! `whipclientsink`) publish with a grant from `POST /v1/grants`.
//!
//! Only the HTTP side lives here (extractors, status codes, OpenAPI): sessions, grants and
//! what the relay's reports change are [`crate::media`]'s.

use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{SignatureHeaderParams, Signed, TtlSeconds, parse_json, read_body, require_content_type};
use super::schema::{RoomId, StreamId, UserId};
use crate::app::AppState;
use crate::auth::grant::{self, GrantSpec, MediaAction};
use crate::auth::turn::IceServer;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::ids;
use crate::media::{MediaService, base_url_of, grants};
use crate::relay::LayerChoice;

fn node(state: &AppState) -> Result<&MediaService, ApiError> {
    state.relay.as_deref().ok_or_else(|| ApiError::new(ErrorCode::RelayUnavailable, "this node runs no relay"))
}

/// The relay and the JSON body of a player's control of its own session (`/mute`, `/layer`).
async fn player_control<'a, T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &'a AppState,
) -> Result<(&'a MediaService, T), ApiError> {
    let node = node(state)?;
    require_content_type(req, "application/json")?;
    let body = read_body(req, payload.into_inner()).await?;
    Ok((node, parse_json(&body)?))
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let missing = || ApiError::new(ErrorCode::MissingGrant, "send Authorization: Bearer <media grant>");
    let value = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(missing)?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or_else(missing)?;
    Ok(token.trim())
}

async fn offer_answer(
    req: HttpRequest,
    stream_id: String,
    payload: web::Payload,
    state: web::Data<AppState>,
    action: MediaAction,
) -> Result<HttpResponse, ApiError> {
    let node = node(&state)?;
    state.refuse_if_draining()?;
    ids::validate_stream_id(&stream_id)?;
    let grant_text = bearer(&req)?;
    require_content_type(&req, "application/sdp")?;
    let body = read_body(&req, payload.into_inner()).await?;
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::BadOffer, "the SDP offer is not UTF-8 text"))?;
    let claims = grants::check(&state.store, grant_text, action, &stream_id).await?;
    let (resource, answer) = node.open(claims, offer).await?;
    Ok(HttpResponse::Created()
        .content_type("application/sdp")
        .insert_header((LOCATION, format!("/relay/v1/sessions/{resource}")))
        .body(answer))
}

/// Publish a stream (WHIP): SDP offer in, SDP answer out.
#[utoipa::path(post, path = "/relay/v1/publish/{streamId}", tag = "relay",
    params(("streamId" = StreamId, Path, description = "The stream to publish; must match the grant")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (sendonly audio/video)"),
    security(("mediaGrant" = [])),
    responses(
        (status = 201, description = "SDP answer; `Location` names the session for DELETE", content_type = "application/sdp", body = String),
        (status = 400, description = "6005 bad offer, 6006 no media, 6011 no supported codec, 3003 invalid streamId", body = ErrorBody),
        (status = 401, description = "6001 missing grant, 6002 invalid grant, 6003 grant expired", body = ErrorBody),
        (status = 403, description = "6004 grant for another stream or action", body = ErrorBody),
        (status = 409, description = "6007 the stream already has a publisher", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/sdp", body = ErrorBody),
        (status = 503, description = "1010 draining, 6010 no relay on this node", body = ErrorBody),
    ))]
pub async fn publish(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    offer_answer(req, path.into_inner(), payload, state, MediaAction::Publish).await
}

/// Play a stream (WHEP): SDP offer in, SDP answer out.
#[utoipa::path(post, path = "/relay/v1/play/{streamId}", tag = "relay",
    params(("streamId" = StreamId, Path, description = "The stream to play; must match the grant")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (recvonly audio/video)"),
    security(("mediaGrant" = [])),
    responses(
        (status = 201, description = "SDP answer; `Location` names the session for DELETE", content_type = "application/sdp", body = String),
        (status = 400, description = "6005 bad offer, 6006 no media, 6011 no supported codec, 3003 invalid streamId", body = ErrorBody),
        (status = 401, description = "6001 missing grant, 6002 invalid grant, 6003 grant expired", body = ErrorBody),
        (status = 403, description = "6004 grant for another stream or action", body = ErrorBody),
        (status = 404, description = "6008 no relay publishes this stream", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/sdp", body = ErrorBody),
        (status = 503, description = "1010 draining, 6010 no relay on this node, or the stream could not be pulled from the relay holding it", body = ErrorBody),
    ))]
pub async fn play(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    offer_answer(req, path.into_inner(), payload, state, MediaAction::Play).await
}

/// End a publish or play session (its `Location`).
#[utoipa::path(delete, path = "/relay/v1/sessions/{sessionId}", tag = "relay",
    params(("sessionId" = String, Path, description = "From the Location of the 201 answer")),
    responses(
        (status = 204, description = "Ended; a publisher's players end with it"),
        (status = 404, description = "6009 no such session", body = ErrorBody),
        (status = 503, description = "6010 no relay on this node", body = ErrorBody),
    ))]
pub async fn end_session(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // A second DELETE finds the session gone (6009).
    node(&state)?.end(path.as_str()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What a player asks its relay session to stop or resume sending it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayerMuteRequest {
    /// true: stop sending this player the stream's audio; false: resume; omitted: unchanged.
    pub audio: Option<bool>,
    /// true: stop sending this player the stream's video; false: resume (from a keyframe);
    /// omitted: unchanged.
    pub video: Option<bool>,
}

/// What the relay sends a player now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayerMuteState {
    /// The relay does not send this player the stream's audio.
    pub audio_muted: bool,
    /// The relay does not send this player the stream's video.
    pub video_muted: bool,
}

/// Stop or resume what the relay sends one player (its `Location`): the player's own
/// `mutePlayStreamAudio/Video`. Only this player is affected; the stream's other players and
/// the publisher are not. Knowing the `Location` authorizes it, as for `DELETE`.
#[utoipa::path(post, path = "/relay/v1/sessions/{sessionId}/mute", tag = "relay",
    params(("sessionId" = String, Path, description = "From the Location of the play session's 201 answer")),
    request_body = PlayerMuteRequest,
    responses(
        (status = 200, description = "What the relay sends this player now", body = PlayerMuteState),
        (status = 400, description = "1005 malformed JSON, 1006 invalid body or neither audio nor video", body = ErrorBody),
        (status = 404, description = "6009 no such session", body = ErrorBody),
        (status = 409, description = "6012 the session publishes; only a play session can be muted this way", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/json", body = ErrorBody),
        (status = 503, description = "6010 no relay on this node", body = ErrorBody),
    ))]
pub async fn mute_player(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (node, request) = player_control::<PlayerMuteRequest>(&req, payload, &state).await?;
    if request.audio.is_none() && request.video.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "name `audio` and/or `video` (true to mute, false to resume)",
        ));
    }
    let mute = node.mute_player(path.as_str(), request.audio, request.video).await?;
    crate::metrics::media_mute("player", request.audio, request.video);
    Ok(HttpResponse::Ok().json(PlayerMuteState { audio_muted: mute.audio, video_muted: mute.video }))
}

/// Choose which simulcast layer of the stream's video the relay sends one player (its
/// `Location`): ZEGO's `setPlayStreamVideoType`. `low` and `high` fix the layer; `auto` (the
/// default) follows the relay's bandwidth estimate towards the player. The change happens at the
/// new layer's next keyframe, which the relay asks of the publisher at once.
#[utoipa::path(post, path = "/relay/v1/sessions/{sessionId}/layer", tag = "relay",
    params(("sessionId" = String, Path, description = "From the Location of the play session's 201 answer")),
    request_body = PlayerLayerRequest,
    responses(
        (status = 200, description = "The choice, and how many layers the stream sends", body = PlayerLayerState),
        (status = 400, description = "1005 malformed JSON, 1006 invalid body", body = ErrorBody),
        (status = 404, description = "6009 no such session", body = ErrorBody),
        (status = 409, description = "6012 the session publishes; only a play session chooses a layer", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/json", body = ErrorBody),
        (status = 503, description = "6010 no relay on this node", body = ErrorBody),
    ))]
pub async fn set_player_layer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (node, request) = player_control::<PlayerLayerRequest>(&req, payload, &state).await?;
    let layers = node.set_player_layer(path.as_str(), request.video).await?;
    crate::metrics::media_layer_choice(request.video);
    Ok(HttpResponse::Ok().json(PlayerLayerState { video: request.video, layers }))
}

/// Which simulcast layer a player wants.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayerLayerRequest {
    pub video: LayerChoice,
}

/// A player's layer choice as the relay holds it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlayerLayerState {
    pub video: LayerChoice,
    /// Simulcast layers the stream's video has; 0 when it is sent as one encoding (then every
    /// choice gets that one).
    pub layers: u8,
}

/// What a business server asks for: usually a publish grant for a WHIP encoder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    #[schema(value_type = UserId)]
    pub user_id: String,
    #[schema(value_type = StreamId)]
    pub stream_id: String,
    pub action: MediaAction,
    /// 1–60 seconds; default 60. The grant only has to last until the offer is posted.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 60)]
    pub ttl_seconds: Option<TtlSeconds>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantResponse {
    /// Send as `Authorization: Bearer <grant>` to `url`.
    pub grant: String,
    pub expires_at: i64,
    /// The WHIP (publish) or WHEP (play) endpoint to post the SDP offer to.
    pub url: String,
    /// TURN servers with credentials for this user (`RTCConfiguration.iceServers` shape; empty
    /// when the deployment has no TURN): a client that cannot reach the relay's UDP port
    /// directly relays its media through them.
    pub ice_servers: Vec<IceServer>,
}

/// Mint a media grant (for a WHIP encoder or a WHEP player).
#[utoipa::path(post, path = "/v1/grants", tag = "relay",
    params(SignatureHeaderParams),
    request_body = GrantRequest,
    security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Grant issued", body = GrantResponse),
        (status = 400, description = "1005 malformed JSON, 1006 invalid body, 2002 malformed signature header, \
            3001 invalid userId, 3002 invalid roomId, 3003 invalid streamId, 3004 ttl out of range", body = ErrorBody),
        (status = 401, description = "2001 missing header, 2003 unknown app, 2005 bad signature, \
            2006 stale timestamp, 2007 nonce reused", body = ErrorBody),
        (status = 403, description = "2004 app disabled", body = ErrorBody),
        (status = 413, description = "1004 body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "1003 content type is not application/json", body = ErrorBody),
        (status = 429, description = "2008 the app holds its cap of unexpired nonces", body = ErrorBody),
        (status = 503, description = "1007 store or Redis unavailable, 6010 no relay on this node", body = ErrorBody),
    ))]
pub async fn create_grant(
    req: HttpRequest,
    request: Signed<GrantRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let node = node(&state)?;
    let body = request.body;
    let ttl_secs = body.ttl_seconds.map(|ttl| ttl.within(grant::MAX_GRANT_TTL_SECS)).transpose()?;
    let spec = GrantSpec {
        room_id: body.room_id,
        user_id: body.user_id,
        stream_id: body.stream_id,
        action: body.action,
        session_id: None,
        user_name: None,
        extra_info: None,
        ttl_secs: ttl_secs.unwrap_or(grant::MAX_GRANT_TTL_SECS),
    };
    let issued = grants::issue(&request.app, spec, state.turn.as_deref())?;
    let url = node.url_for(issued.claims.action, &issued.claims.stream_id, base_url_of(&req).as_deref());
    let (grant, expires_at, ice_servers) = (issued.grant, issued.claims.exp, issued.ice_servers);
    Ok(HttpResponse::Ok().json(GrantResponse { grant, expires_at, url, ice_servers }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/grants", [(Method::POST, web::to(create_grant))]))
        .service(super::resource("/relay/v1/publish/{stream_id}", [(Method::POST, web::to(publish))]))
        .service(super::resource("/relay/v1/play/{stream_id}", [(Method::POST, web::to(play))]))
        .service(super::resource("/relay/v1/sessions/{session_id}", [(Method::DELETE, web::to(end_session))]))
        .service(super::resource("/relay/v1/sessions/{session_id}/mute", [(Method::POST, web::to(mute_player))]))
        .service(super::resource("/relay/v1/sessions/{session_id}/layer", [(Method::POST, web::to(set_player_layer))]));
}
