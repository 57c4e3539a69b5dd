//! The one place where module errors become `{"code", "message"}` responses.
//!
//! Every module keeps its own `thiserror` type; this file maps each of them to an
//! [`ErrorCode`] (a stable number for clients plus an HTTP status) and renders the JSON body.
//! Codes are grouped in ranges: 1xxx request and service, 2xxx server-request signatures,
//! 3xxx invalid input, 4xxx user tokens, 5xxx websocket, 6xxx relay, 8xxx server API
//! (admin, usage, webhooks). The README lists them all
//! (a test keeps it honest).

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::AdminError;
use crate::auth::grant::GrantError;
use crate::auth::{SignatureError, TokenError};
use crate::ids::{IdError, IdKind};
use crate::relay::RelayError;
use crate::rooms::RoomError;
use crate::store::StoreError;

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $doc:literal;)+) => {
        /// Stable error codes. Numbers never change meaning once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in numeric order (used by docs and tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn code(self) -> u32 {
                match self { $(ErrorCode::$variant => $code,)+ }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)+ }
            }

            /// One-line meaning, as printed in the README table.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)+ }
            }

            /// Label used in metrics and logs (the variant name).
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => stringify!($variant),)+ }
            }
        }
    };
}

error_codes! {
    Internal = 1000, INTERNAL_SERVER_ERROR, "Unexpected server error; details are in the server log.";
    NotFound = 1001, NOT_FOUND, "No such route.";
    MethodNotAllowed = 1002, METHOD_NOT_ALLOWED, "The route exists but not for this HTTP method; the `Allow` header lists the methods it takes.";
    UnsupportedContentType = 1003, UNSUPPORTED_MEDIA_TYPE, "The body's Content-Type is not what the route takes (`application/json`; `application/sdp` on relay routes).";
    BodyTooLarge = 1004, PAYLOAD_TOO_LARGE, "The body is larger than 64 KiB.";
    MalformedJson = 1005, BAD_REQUEST, "The body is not valid JSON.";
    InvalidBody = 1006, BAD_REQUEST, "The body is JSON but a field is missing, unknown or of the wrong type.";
    ServiceUnavailable = 1007, SERVICE_UNAVAILABLE, "The store or Redis cannot be reached, or did not answer within its timeout; retry later.";
    InvalidQuery = 1008, BAD_REQUEST, "A query parameter is missing or malformed.";
    DevAppOnly = 1009, FORBIDDEN, "`GET /dev/token` mints tokens of the dev app (1) only.";
    Draining = 1010, SERVICE_UNAVAILABLE, "This worker is shutting down (draining): new websockets, logins and relay sessions go to another worker; connect again.";
    MissingAuthHeader = 2001, UNAUTHORIZED, "A required `X-Huddle-*` signature header is missing.";
    InvalidAuthHeader = 2002, BAD_REQUEST, "A signature header is malformed (app id not a number, nonce not 8-64 printable characters, ...) or sent more than once.";
    UnknownApp = 2003, UNAUTHORIZED, "No app has this app id.";
    AppDisabled = 2004, FORBIDDEN, "The app exists but is disabled.";
    BadSignature = 2005, UNAUTHORIZED, "The signature does not match the request.";
    StaleTimestamp = 2006, UNAUTHORIZED, "`X-Huddle-Timestamp` is more than 300 s away from the server clock.";
    NonceReused = 2007, UNAUTHORIZED, "This nonce was already used by this app inside the time window.";
    NonceCapacity = 2008, TOO_MANY_REQUESTS, "The app holds the server's cap of unexpired nonces (`--nonce-cap-per-app`, default 1 000 000 over the 300 s window); slow down or raise the cap.";
    InvalidUserId = 3001, BAD_REQUEST, "userId is empty, longer than 64 bytes, or has characters outside `A-Za-z0-9_.~-@:`.";
    InvalidRoomId = 3002, BAD_REQUEST, "roomId is empty, longer than 128 bytes, or has characters outside `A-Za-z0-9_.~-`.";
    InvalidStreamId = 3003, BAD_REQUEST, "A streamId is empty, longer than 256 bytes, or has characters outside `A-Za-z0-9_.~-`.";
    TtlOutOfRange = 3004, BAD_REQUEST, "ttlSeconds is out of range: 1-86400 for tokens, 1-60 for media grants.";
    TooManyStreamIds = 3005, BAD_REQUEST, "streamIds holds more than 64 entries.";
    TokenMalformed = 4001, UNAUTHORIZED, "The token is neither a Huddle token (not a JWT, wrong algorithm, missing claims) nor a well-formed ZEGO 04 token (bad base64, cut short, wrong lengths, unknown mode, payload not ZEGO's JSON).";
    TokenBadSignature = 4002, UNAUTHORIZED, "The token was not signed (ZEGO 04: encrypted) with this app's server secret, or was changed since; a ZEGO 04 token also needs the app's secret to be 32 characters.";
    TokenExpired = 4003, UNAUTHORIZED, "The token has expired.";
    TokenNotYetValid = 4004, UNAUTHORIZED, "The token's `nbf` is in the future.";
    TokenAppMismatch = 4005, UNAUTHORIZED, "The token belongs to another app.";
    TokenUserMismatch = 4006, UNAUTHORIZED, "The token was issued for another user id.";
    TokenRoomMismatch = 4007, UNAUTHORIZED, "The token is bound to another room.";
    TokenNoLoginPrivilege = 4008, FORBIDDEN, "The token does not grant the loginRoom privilege.";
    NotLoggedIn = 5001, BAD_REQUEST, "Websocket: this request needs a logged-in session; send `login` (or `resume`) first.";
    AlreadyLoggedIn = 5002, CONFLICT, "Websocket: this connection already holds a session.";
    UnknownMessageType = 5003, BAD_REQUEST, "Websocket: the `type` of the request is not one the protocol knows.";
    MalformedFrame = 5004, BAD_REQUEST, "Websocket: the frame is not a JSON request with `id`, `type` and `data` as PROTOCOL.md describes.";
    FrameTooLarge = 5005, PAYLOAD_TOO_LARGE, "Websocket: a message (one frame, or the fragments of one) exceeded 64 KiB; the connection is closed.";
    RoomFull = 5006, FORBIDDEN, "The room holds the app's maximum number of users.";
    RateLimited = 5007, TOO_MANY_REQUESTS, "Too many requests or messages from this session, or too many requests waiting behind one in progress; slow down.";
    MessageTooLarge = 5008, PAYLOAD_TOO_LARGE, "A message or command exceeds 1024 bytes.";
    KickedOut = 5009, CONFLICT, "The same user id logged in to this room from another connection.";
    SessionNotFound = 5010, NOT_FOUND, "Resume failed: no such session, wrong resume token, or the grace period is over; log in again.";
    StreamIdTaken = 5011, CONFLICT, "Another user already publishes this stream id in this app.";
    NoPublishPrivilege = 5012, FORBIDDEN, "The token does not grant publishStream.";
    StreamNotAllowed = 5013, FORBIDDEN, "The token's streamIds allow-list does not contain this stream id.";
    StreamNotFound = 5014, NOT_FOUND, "No such stream in this room (or it is not yours).";
    TooManyConnections = 5015, SERVICE_UNAVAILABLE, "This worker holds its maximum number of websocket connections.";
    UnsupportedVersion = 5016, BAD_REQUEST, "The websocket protocol version (`v` query parameter) is not supported.";
    HeartbeatTimeout = 5017, REQUEST_TIMEOUT, "No frame or pong from the client, or nothing sent to it taken, within the heartbeat timeout; the connection is closed.";
    InvalidExtraInfo = 5018, BAD_REQUEST, "Extra info key or value too long (key 1-128 bytes, value up to 4096), or too many keys (32).";
    InvalidUserName = 5019, BAD_REQUEST, "userName is longer than 256 bytes.";
    WrongRoom = 5020, BAD_REQUEST, "The request names a room this session is not in.";
    TooManyTargets = 5021, BAD_REQUEST, "A custom command names more than 100 users.";
    OriginNotAllowed = 5022, FORBIDDEN, "Websocket: the page's `Origin` is not in the server's allowed origins (`--allowed-origins`); the upgrade is refused.";
    KickedByServer = 5023, FORBIDDEN, "The business server removed the user from the room (admin API `POST /v1/rooms/kick`); the `kickout` message carries its reason. The connection is closed with 4023.";
    RoomClosed = 5024, FORBIDDEN, "The business server closed the room (`POST /v1/rooms/close`); every member gets `kickout` with this code and the reason, then close 4024.";
    BannedFromRoom = 5025, FORBIDDEN, "Login refused: the business server removed this user from this room with a ban time that has not run out yet.";
    RoomClosedToLogins = 5026, FORBIDDEN, "Login refused: the business server closed this room with a ban time that has not run out yet.";
    MissingGrant = 6001, UNAUTHORIZED, "Relay: no `Authorization: Bearer <media grant>` header.";
    InvalidGrant = 6002, UNAUTHORIZED, "Relay: the media grant is malformed, forged, or for an unknown or disabled app.";
    GrantExpired = 6003, UNAUTHORIZED, "Relay: the media grant has expired (grants live at most 60 s); ask signaling for a new one.";
    GrantMismatch = 6004, FORBIDDEN, "Relay: the media grant is for another stream or another action (publish/play).";
    BadOffer = 6005, BAD_REQUEST, "Relay: the body is not a valid SDP offer.";
    NoMedia = 6006, BAD_REQUEST, "Relay: the SDP offer has no audio or video in the needed direction.";
    StreamAlreadyPublished = 6007, CONFLICT, "Relay: this stream id already has a publisher.";
    StreamNotPublished = 6008, NOT_FOUND, "Relay: nobody publishes this stream on this relay.";
    UnknownMediaSession = 6009, NOT_FOUND, "Relay: no such publish/play session (already ended?).";
    RelayUnavailable = 6010, SERVICE_UNAVAILABLE, "Relay: the media engine is not running on this node, or this relay could not pull the stream from the relay that holds it (cascade).";
    NoSupportedCodec = 6011, BAD_REQUEST, "Relay: the SDP offer's audio/video names no codec the relay forwards (Opus, VP8, H.264, VP9) or, to play, none the stream is sent in; the message lists both sides.";
    NotAPlaySession = 6012, CONFLICT, "Relay: a player-side mute names a publish session; only a play session can stop what the relay sends it.";
    AdminTooManyUsers = 8001, BAD_REQUEST, "Admin API: `userIds` is empty or names more than 100 users.";
    AdminTooManyRooms = 8002, BAD_REQUEST, "Admin API: `roomIds` is empty or names more than 100 rooms.";
    AdminBanOutOfRange = 8003, BAD_REQUEST, "Admin API: `banSeconds` is out of range (0-2592000, 30 days).";
    AdminLimitOutOfRange = 8004, BAD_REQUEST, "Admin API: `limit` is out of range (1-500).";
    AdminReasonTooLong = 8005, BAD_REQUEST, "Admin API: `reason` is longer than 256 bytes.";
    AdminRoomNotFound = 8006, NOT_FOUND, "Admin API: the room has no members (it is not open), so there is nobody to send to.";
    AdminStreamNotFound = 8007, NOT_FOUND, "Admin API: no such stream in this room.";
    AdminNothingToMute = 8008, BAD_REQUEST, "Admin API: a mute names neither `audio` nor `video`.";
    InvalidUsageRange = 8050, BAD_REQUEST, "Usage: `from`/`to` are not unix milliseconds (or `YYYY-MM-DD`), `from` is not before `to`, the window is longer than 366 days, or `groupBy` is not room, user or day.";
    InvalidWebhookUrl = 8051, BAD_REQUEST, "Webhooks: the URL is not http:// or https:// with a host, or longer than 2048 bytes.";
    InvalidWebhookSecret = 8052, BAD_REQUEST, "Webhooks: the signing secret is not 16-128 printable ASCII characters without spaces.";
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": 2005, "message": "signature does not match the request"}))]
pub struct ErrorBody {
    /// Stable numeric code; see the README's table.
    pub code: u32,
    /// Human-readable explanation, safe to show to a developer.
    pub message: String,
}

/// An error on its way to a client: a code plus a message that reveals no internals.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// An internal failure: the cause is logged here, the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code.code(), message: self.message.clone() }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        crate::metrics::error_returned(self.code);
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

impl From<IdError> for ApiError {
    fn from(err: IdError) -> Self {
        let code = match err.kind() {
            IdKind::User => ErrorCode::InvalidUserId,
            IdKind::Room => ErrorCode::InvalidRoomId,
            IdKind::Stream => ErrorCode::InvalidStreamId,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<SignatureError> for ApiError {
    fn from(err: SignatureError) -> Self {
        let code = match &err {
            SignatureError::MissingHeader(_) => ErrorCode::MissingAuthHeader,
            SignatureError::InvalidHeader { .. } => ErrorCode::InvalidAuthHeader,
            SignatureError::UnknownApp(_) => ErrorCode::UnknownApp,
            SignatureError::AppDisabled(_) => ErrorCode::AppDisabled,
            SignatureError::BadSignature => ErrorCode::BadSignature,
            SignatureError::StaleTimestamp { .. } => ErrorCode::StaleTimestamp,
            SignatureError::NonceReused => ErrorCode::NonceReused,
            SignatureError::NonceCapacity { .. } => ErrorCode::NonceCapacity,
            SignatureError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "signature check could not reach its backend");
                return ApiError::new(ErrorCode::ServiceUnavailable, "nonce store unavailable");
            }
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        let code = match &err {
            TokenError::Malformed(_) => ErrorCode::TokenMalformed,
            TokenError::BadSignature => ErrorCode::TokenBadSignature,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::NotYetValid => ErrorCode::TokenNotYetValid,
            TokenError::AppMismatch => ErrorCode::TokenAppMismatch,
            TokenError::UserMismatch => ErrorCode::TokenUserMismatch,
            TokenError::RoomMismatch => ErrorCode::TokenRoomMismatch,
            TokenError::NoLoginPrivilege => ErrorCode::TokenNoLoginPrivilege,
            TokenError::TtlOutOfRange(_) => ErrorCode::TtlOutOfRange,
            TokenError::TooManyStreamIds(_) => ErrorCode::TooManyStreamIds,
            TokenError::InvalidId(id_err) => return ApiError::from(id_err.clone()),
            TokenError::Signing(cause) => return ApiError::internal(cause),
            TokenError::SecretNotZego => ErrorCode::TokenBadSignature,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ApiError::new(ErrorCode::ServiceUnavailable, "store unavailable")
            }
            StoreError::AppNotFound(app_id) => ApiError::new(ErrorCode::UnknownApp, format!("unknown app id {app_id}")),
            StoreError::AppDisabled(_) => ApiError::new(ErrorCode::AppDisabled, err.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::usage::UsageError> for ApiError {
    fn from(err: crate::usage::UsageError) -> Self {
        use crate::usage::UsageError;
        match err {
            UsageError::Store(err) => err.into(),
            UsageError::InvalidRange(message) => ApiError::new(ErrorCode::InvalidUsageRange, message),
            UsageError::Write(cause) => {
                tracing::warn!(error = %cause, "usage record not written");
                ApiError::new(ErrorCode::ServiceUnavailable, "store unavailable")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(err: GrantError) -> Self {
        let code = match &err {
            GrantError::Malformed(_) | GrantError::BadSignature | GrantError::WrongApp => ErrorCode::InvalidGrant,
            GrantError::Expired => ErrorCode::GrantExpired,
            GrantError::WrongAction(_) | GrantError::WrongStream => ErrorCode::GrantMismatch,
            GrantError::TtlOutOfRange => ErrorCode::TtlOutOfRange,
            GrantError::InvalidId(id_err) => return ApiError::from(id_err.clone()),
            GrantError::Signing(cause) => return ApiError::internal(cause),
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<RelayError> for ApiError {
    fn from(err: RelayError) -> Self {
        let code = match &err {
            RelayError::BadOffer(_) => ErrorCode::BadOffer,
            RelayError::NoMedia => ErrorCode::NoMedia,
            RelayError::NoSupportedCodec { .. } => ErrorCode::NoSupportedCodec,
            RelayError::AlreadyPublished(_) => ErrorCode::StreamAlreadyPublished,
            RelayError::UnknownStream(_) => ErrorCode::StreamNotPublished,
            RelayError::UnknownPeer => ErrorCode::UnknownMediaSession,
            RelayError::NotAPlayer => ErrorCode::NotAPlaySession,
            RelayError::Unavailable(_) => ErrorCode::RelayUnavailable,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<RoomError> for ApiError {
    fn from(err: RoomError) -> Self {
        let code = match &err {
            RoomError::RoomFull(_) => ErrorCode::RoomFull,
            RoomError::NotMember => ErrorCode::SessionNotFound,
            RoomError::StreamIdTaken(_) => ErrorCode::StreamIdTaken,
            RoomError::StreamNotFound(_) => ErrorCode::StreamNotFound,
            RoomError::TooManyExtraInfoKeys(_) => ErrorCode::InvalidExtraInfo,
            RoomError::Banned { .. } => ErrorCode::BannedFromRoom,
            RoomError::Closed { .. } => ErrorCode::RoomClosedToLogins,
            RoomError::Removed(_) => ErrorCode::KickedByServer,
            RoomError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "room state unavailable");
                return ApiError::new(ErrorCode::ServiceUnavailable, "room state unavailable; retry");
            }
            RoomError::Corrupt(_) => return ApiError::internal(err),
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        let code = match &err {
            AdminError::TooManyUsers(_) => ErrorCode::AdminTooManyUsers,
            AdminError::TooManyRooms(_) => ErrorCode::AdminTooManyRooms,
            AdminError::BanOutOfRange(_) => ErrorCode::AdminBanOutOfRange,
            AdminError::LimitOutOfRange(_) => ErrorCode::AdminLimitOutOfRange,
            AdminError::ReasonTooLong(_) => ErrorCode::AdminReasonTooLong,
            AdminError::RoomNotFound(_) => ErrorCode::AdminRoomNotFound,
            AdminError::StreamNotFound(_) => ErrorCode::AdminStreamNotFound,
            AdminError::NothingToMute => ErrorCode::AdminNothingToMute,
            AdminError::MessageTooLarge(_) => ErrorCode::MessageTooLarge,
            AdminError::InvalidExtraInfo(_) => ErrorCode::InvalidExtraInfo,
            AdminError::InvalidUserName => ErrorCode::InvalidUserName,
            AdminError::Id(id_err) => return ApiError::from(id_err.clone()),
            AdminError::Rooms(room_err) => return ApiError::from(room_err.clone()),
        };
        ApiError::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_sorted() {
        let numbers: Vec<u32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        let unique: HashSet<u32> = numbers.iter().copied().collect();
        assert_eq!(unique.len(), numbers.len());
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, numbers);
    }

    #[test]
    fn every_code_is_documented_in_the_readme() {
        let readme = include_str!("../README.md");
        for code in ErrorCode::ALL {
            let row = format!("| {} | {} | {} |", code.code(), code.status().as_u16(), code.name());
            assert!(readme.contains(&row), "README.md lacks the row starting `{row}`");
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::internal("database file /secret/path is corrupt");
        assert_eq!(err.body().message, "internal error");
        assert_eq!(err.code.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
