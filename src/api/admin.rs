//! The admin API: business servers list, moderate and message their rooms. Every route is a
//! signed `POST` (like `/v1/tokens`; the app is the one that signed) with a JSON body; the
//! handlers parse, call [`crate::admin`] and map its errors.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::extract::{SignatureHeaderParams, Signed};
use super::schema::{RoomId, StreamId, UserId};
use crate::admin::{
    Admin, CloseOutcome, KickOutcome, Removal, RoomCounts, RoomPage, RoomStream, UserPage, server_user,
};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

fn admin(state: &AppState) -> Admin<'_> {
    Admin { rooms: &state.signaling.rooms, relay: state.relay.as_deref() }
}

/// Pages through the app's rooms.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRoomsRequest {
    /// `nextCursor` of the previous page; omitted: the first page.
    #[schema(value_type = Option<RoomId>)]
    pub cursor: Option<String>,
    /// Rooms per page, 1–500. Default 100.
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// Pages through a room's users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListUsersRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// `nextCursor` of the previous page (a user id); omitted: the first page.
    #[schema(value_type = Option<UserId>)]
    pub cursor: Option<String>,
    /// Users per page, 1–500. Default 100.
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamList {
    pub streams: Vec<RoomStream>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserCountsRequest {
    /// 1–100 room ids.
    #[schema(value_type = Vec<RoomId>, min_items = 1, max_items = 100)]
    pub room_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    /// One entry per room asked for, in the same order (zeros for rooms nobody is in).
    pub rooms: Vec<RoomCounts>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KickRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// 1–100 user ids.
    #[schema(value_type = Vec<UserId>, min_items = 1, max_items = 100)]
    pub user_ids: Vec<String>,
    /// Shown to the removed users in their `kickout` event (at most 256 bytes).
    #[schema(max_length = 256)]
    pub reason: Option<String>,
    /// Refuse these users' logins to this room (5025) for this many seconds, 0–2592000.
    /// Default 0: they may log in again at once.
    #[schema(minimum = 0, maximum = 2592000)]
    pub ban_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// Shown to every member in its `kickout` event (at most 256 bytes).
    #[schema(max_length = 256)]
    pub reason: Option<String>,
    /// Refuse every login to this room (5026) for this many seconds, 0–2592000. Default 0.
    #[schema(minimum = 0, maximum = 2592000)]
    pub ban_seconds: Option<u64>,
}

/// A broadcast or barrage message from the server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// At most 1024 bytes.
    #[schema(max_length = 1024)]
    pub message: String,
    /// The sender members see; default `@server`.
    #[schema(value_type = Option<UserId>)]
    pub from_user_id: Option<String>,
    /// Default: the sender's user id.
    pub from_user_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// 1–100 users that receive the command.
    #[schema(value_type = Vec<UserId>, min_items = 1, max_items = 100)]
    pub to_user_ids: Vec<String>,
    /// At most 1024 bytes.
    #[schema(max_length = 1024)]
    pub command: String,
    #[schema(value_type = Option<UserId>)]
    pub from_user_id: Option<String>,
    pub from_user_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent {
    #[serde(rename = "messageID")]
    pub message_id: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraInfoRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    /// 1–128 bytes.
    pub key: String,
    /// At most 4096 bytes.
    pub value: String,
    #[schema(value_type = Option<UserId>)]
    pub from_user_id: Option<String>,
    pub from_user_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteRequest {
    #[schema(value_type = RoomId)]
    pub room_id: String,
    #[schema(value_type = StreamId)]
    pub stream_id: String,
    /// true: stop forwarding the stream's audio to players; false: resume; omitted: unchanged.
    pub audio: Option<bool>,
    /// true: stop forwarding the stream's video to players; false: resume; omitted: unchanged.
    pub video: Option<bool>,
}

/// List the app's rooms.
#[utoipa::path(post, path = "/v1/rooms/list", tag = "rooms", params(SignatureHeaderParams),
    request_body = ListRoomsRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Rooms with members, by room id", body = RoomPage),
        (status = 400, description = "1005, 1006, 2002, 3002 invalid cursor, 8004 limit out of range", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007 store or Redis unavailable", body = ErrorBody),
    ))]
pub async fn list_rooms(
    state: web::Data<AppState>,
    request: Signed<ListRoomsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let page = admin(&state).list_rooms(request.app.app_id, body.cursor.as_deref(), body.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// List a room's users.
#[utoipa::path(post, path = "/v1/rooms/users", tag = "rooms", params(SignatureHeaderParams),
    request_body = ListUsersRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "The room's users by user id (none for an unknown room)", body = UserPage),
        (status = 400, description = "1005, 1006, 2002, 3001 invalid cursor, 3002, 8004 limit out of range", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn list_users(
    state: web::Data<AppState>,
    request: Signed<ListUsersRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let page = admin(&state).list_users(request.app.app_id, &body.room_id, body.cursor.as_deref(), body.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// List a room's streams (publisher, extra info, relay, mute state).
#[utoipa::path(post, path = "/v1/rooms/streams", tag = "rooms", params(SignatureHeaderParams),
    request_body = RoomRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "The room's streams (none for an unknown room)", body = StreamList),
        (status = 400, description = "1005, 1006, 2002, 3002", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn list_streams(state: web::Data<AppState>, request: Signed<RoomRequest>) -> Result<HttpResponse, ApiError> {
    let streams = admin(&state).list_streams(request.app.app_id, &request.body.room_id).await?;
    Ok(HttpResponse::Ok().json(StreamList { streams }))
}

/// User and stream counts of up to 100 rooms.
#[utoipa::path(post, path = "/v1/rooms/user-counts", tag = "rooms", params(SignatureHeaderParams),
    request_body = UserCountsRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Counts, in the order asked", body = UserCounts),
        (status = 400, description = "1005, 1006, 2002, 3002, 8002 empty or more than 100 rooms", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn user_counts(
    state: web::Data<AppState>,
    request: Signed<UserCountsRequest>,
) -> Result<HttpResponse, ApiError> {
    let rooms = admin(&state).user_counts(request.app.app_id, &request.body.room_ids).await?;
    Ok(HttpResponse::Ok().json(UserCounts { rooms }))
}

/// Remove users from a room, optionally banning them from it for a while.
#[utoipa::path(post, path = "/v1/rooms/kick", tag = "rooms", params(SignatureHeaderParams),
    request_body = KickRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Who was removed; each got `kickout` (5023) and its connection closed", body = KickOutcome),
        (status = 400, description = "1005, 1006, 2002, 3001, 3002, 8001 empty or more than 100 users, \
            8003 banSeconds out of range, 8005 reason too long", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn kick(state: web::Data<AppState>, request: Signed<KickRequest>) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let removal = Removal { reason: body.reason, ban_secs: body.ban_seconds };
    let outcome = admin(&state).kick(request.app.app_id, &body.room_id, &body.user_ids, &removal).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// Close a room: remove every member, stop every stream, optionally refuse logins for a while.
#[utoipa::path(post, path = "/v1/rooms/close", tag = "rooms", params(SignatureHeaderParams),
    request_body = CloseRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "What was removed; every member got `kickout` (5024)", body = CloseOutcome),
        (status = 400, description = "1005, 1006, 2002, 3002, 8003 banSeconds out of range, 8005 reason too long", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn close(state: web::Data<AppState>, request: Signed<CloseRequest>) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let removal = Removal { reason: body.reason, ban_secs: body.ban_seconds };
    let closed = admin(&state).close(request.app.app_id, &body.room_id, &removal).await?;
    Ok(HttpResponse::Ok().json(closed))
}

async fn send_message(
    state: &AppState,
    app_id: u32,
    body: MessageRequest,
    barrage: bool,
) -> Result<HttpResponse, ApiError> {
    let from = server_user(body.from_user_id, body.from_user_name)?;
    let message_id = admin(state).message(app_id, &body.room_id, from, body.message, barrage).await?;
    Ok(HttpResponse::Ok().json(MessageSent { message_id }))
}

/// Send a broadcast message to a room (members get `IMRecvBroadcastMessage`).
#[utoipa::path(post, path = "/v1/rooms/broadcast", tag = "rooms", params(SignatureHeaderParams),
    request_body = MessageRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Sent", body = MessageSent),
        (status = 400, description = "1005, 1006, 2002, 3001, 3002, 5019 fromUserName too long", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 404, description = "8006 the room has no members", body = ErrorBody),
        (status = 413, description = "5008 message longer than 1024 bytes", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn broadcast(state: web::Data<AppState>, request: Signed<MessageRequest>) -> Result<HttpResponse, ApiError> {
    send_message(&state, request.app.app_id, request.body, false).await
}

/// Send a barrage message to a room (members get `IMRecvBarrageMessage`).
#[utoipa::path(post, path = "/v1/rooms/barrage", tag = "rooms", params(SignatureHeaderParams),
    request_body = MessageRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Sent", body = MessageSent),
        (status = 400, description = "1005, 1006, 2002, 3001, 3002, 5019", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 404, description = "8006 the room has no members", body = ErrorBody),
        (status = 413, description = "5008 message longer than 1024 bytes", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn barrage(state: web::Data<AppState>, request: Signed<MessageRequest>) -> Result<HttpResponse, ApiError> {
    send_message(&state, request.app.app_id, request.body, true).await
}

/// Send a custom command to listed users of a room (they get `IMRecvCustomCommand`).
#[utoipa::path(post, path = "/v1/rooms/command", tag = "rooms", params(SignatureHeaderParams),
    request_body = CommandRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Sent", body = MessageSent),
        (status = 400, description = "1005, 1006, 2002, 3001, 3002, 5019, 8001 empty or more than 100 users", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 404, description = "8006 the room has no members", body = ErrorBody),
        (status = 413, description = "5008 command longer than 1024 bytes", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn command(state: web::Data<AppState>, request: Signed<CommandRequest>) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let from = server_user(body.from_user_id, body.from_user_name)?;
    let message_id =
        admin(&state).command(request.app.app_id, &body.room_id, from, body.to_user_ids, body.command).await?;
    Ok(HttpResponse::Ok().json(MessageSent { message_id }))
}

/// Set one key of a room's extra info (members get `roomExtraInfoUpdate`).
#[utoipa::path(post, path = "/v1/rooms/extra-info", tag = "rooms", params(SignatureHeaderParams),
    request_body = ExtraInfoRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "Set", body = Object),
        (status = 400, description = "1005, 1006, 2002, 3001, 3002, 5018 key/value too long or too many keys, 5019", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 404, description = "8006 the room has no members", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn extra_info(
    state: web::Data<AppState>,
    request: Signed<ExtraInfoRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let from = server_user(body.from_user_id, body.from_user_name)?;
    admin(&state).set_extra_info(request.app.app_id, &body.room_id, from, body.key, body.value).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// Mute or unmute a stream's audio and/or video: the relay stops (resumes) forwarding it and
/// the room's members get `streamMuteUpdate`.
#[utoipa::path(post, path = "/v1/rooms/mute", tag = "rooms", params(SignatureHeaderParams),
    request_body = MuteRequest, security(("huddleSignature" = [])),
    responses(
        (status = 200, description = "The stream as it is now", body = RoomStream),
        (status = 400, description = "1005, 1006, 2002, 3002, 3003, 8008 neither audio nor video", body = ErrorBody),
        (status = 401, description = "2001, 2003, 2005, 2006, 2007", body = ErrorBody),
        (status = 404, description = "8007 no such stream in the room", body = ErrorBody),
        (status = 503, description = "1007", body = ErrorBody),
    ))]
pub async fn mute(state: web::Data<AppState>, request: Signed<MuteRequest>) -> Result<HttpResponse, ApiError> {
    let body = request.body;
    let stream = admin(&state).mute(request.app.app_id, &body.room_id, &body.stream_id, body.audio, body.video).await?;
    Ok(HttpResponse::Ok().json(stream))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/rooms/list", [(Method::POST, web::to(list_rooms))]))
        .service(super::resource("/v1/rooms/users", [(Method::POST, web::to(list_users))]))
        .service(super::resource("/v1/rooms/streams", [(Method::POST, web::to(list_streams))]))
        .service(super::resource("/v1/rooms/user-counts", [(Method::POST, web::to(user_counts))]))
        .service(super::resource("/v1/rooms/kick", [(Method::POST, web::to(kick))]))
        .service(super::resource("/v1/rooms/close", [(Method::POST, web::to(close))]))
        .service(super::resource("/v1/rooms/broadcast", [(Method::POST, web::to(broadcast))]))
        .service(super::resource("/v1/rooms/barrage", [(Method::POST, web::to(barrage))]))
        .service(super::resource("/v1/rooms/command", [(Method::POST, web::to(command))]))
        .service(super::resource("/v1/rooms/extra-info", [(Method::POST, web::to(extra_info))]))
        .service(super::resource("/v1/rooms/mute", [(Method::POST, web::to(mute))]));
}
