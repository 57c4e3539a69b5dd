//! The websocket protocol, version 1 (docs/PROTOCOL.md is the reference for clients).
//!
//! Client → server: `{"id": 7, "type": "login", "data": {…}}`; every request gets exactly
//! one reply `{"type": "reply", "id": 7, "ok": true, "data": {…}}` or
//! `{"type": "reply", "id": 7, "ok": false, "error": {"code": …, "message": "…"}}`.
//! Server → client pushes: `{"type": "event", "event": "roomUserUpdate", "data": {…}}`,
//! plus `hello` on connect and `error` for frames that carry no usable id.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::rooms::{ImMessage, KickCause, RoomEvent, RoomExtraInfo, RoomKey, Snapshot, StreamInfo, User};

pub const PROTOCOL_VERSION: u32 = 1;

/// A parsed request.
#[derive(Debug)]
pub enum Request {
    Login(LoginRequest),
    Resume(ResumeRequest),
    Logout(RoomRef),
    Ping,
    PublishStream(PublishRequest),
    StopPublishingStream(StreamRef),
    PlayStream(StreamRef),
    StopPlayingStream(StreamRef),
    SendBroadcastMessage(MessageRequest),
    SendBarrageMessage(MessageRequest),
    SendCustomCommand(CustomCommandRequest),
    SetRoomExtraInfo(RoomExtraInfoRequest),
    SetStreamExtraInfo(StreamExtraInfoRequest),
    RenewToken(RenewTokenRequest),
    MuteStream(MuteStreamRequest),
    ReportQuality(QualityReport),
}

impl Request {
    /// Label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Login(_) => "login",
            Request::Resume(_) => "resume",
            Request::Logout(_) => "logout",
            Request::Ping => "ping",
            Request::PublishStream(_) => "publishStream",
            Request::StopPublishingStream(_) => "stopPublishingStream",
            Request::PlayStream(_) => "playStream",
            Request::StopPlayingStream(_) => "stopPlayingStream",
            Request::SendBroadcastMessage(_) => "sendBroadcastMessage",
            Request::SendBarrageMessage(_) => "sendBarrageMessage",
            Request::SendCustomCommand(_) => "sendCustomCommand",
            Request::SetRoomExtraInfo(_) => "setRoomExtraInfo",
            Request::SetStreamExtraInfo(_) => "setStreamExtraInfo",
            Request::RenewToken(_) => "renewToken",
            Request::MuteStream(_) => "muteStream",
            Request::ReportQuality(_) => "reportQuality",
        }
    }

    /// Whether the rate limit for messages (not just requests) applies.
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            Request::SendBroadcastMessage(_) | Request::SendBarrageMessage(_) | Request::SendCustomCommand(_)
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIn {
    #[serde(rename = "userID")]
    pub user_id: String,
    #[serde(default)]
    pub user_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(rename = "appID")]
    pub app_id: u32,
    #[serde(rename = "roomID")]
    pub room_id: String,
    pub token: String,
    pub user: UserIn,
    /// Receive `roomUserUpdate` events (and the user list in the reply).
    #[serde(default)]
    pub user_update: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeRequest {
    #[serde(rename = "sessionID")]
    pub session_id: String,
    pub resume_token: String,
}

/// Requests that may name the room; when they do it must be the session's room.
#[derive(Debug, Default, Deserialize)]
pub struct RoomRef {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    #[serde(rename = "streamID")]
    pub stream_id: String,
    #[serde(default)]
    pub extra_info: String,
}

#[derive(Debug, Deserialize)]
pub struct StreamRef {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    #[serde(rename = "streamID")]
    pub stream_id: String,
}

#[derive(Debug, Deserialize)]
pub struct MessageRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct CustomCommandRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    pub command: String,
    /// Empty or absent: everyone else in the room.
    #[serde(rename = "toUserIDs", default)]
    pub to_user_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RoomExtraInfoRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamExtraInfoRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    #[serde(rename = "streamID")]
    pub stream_id: String,
    pub extra_info: String,
}

/// `muteStream`: the publisher turns its own audio and/or video off or on (at least one).
#[derive(Debug, Deserialize)]
pub struct MuteStreamRequest {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    #[serde(rename = "streamID")]
    pub stream_id: String,
    #[serde(default)]
    pub audio: Option<bool>,
    #[serde(default)]
    pub video: Option<bool>,
}

/// `reportQuality`: the client's own view of its network, as levels of ZEGO's scale (-1..4).
#[derive(Debug, Deserialize)]
pub struct QualityReport {
    #[serde(rename = "roomID", default)]
    pub room_id: Option<String>,
    pub upstream: crate::quality::Level,
    pub downstream: crate::quality::Level,
}

#[derive(Debug, Deserialize)]
pub struct RenewTokenRequest {
    pub token: String,
}

/// A frame that could not be turned into a request. `id` is set when the frame had one, so
/// the error can be a reply.
#[derive(Debug)]
pub struct FrameError {
    pub id: Option<Value>,
    pub error: ApiError,
}

/// Parses one text frame. The frame must be a JSON object; once it has a usable `id`, every
/// other fault (`type` missing or not a string, `data` not an object, fields that do not fit)
/// is reported as a reply to that id.
pub fn parse(text: &str) -> Result<(Value, Request), FrameError> {
    let unattributed =
        |message: String| FrameError { id: None, error: ApiError::new(ErrorCode::MalformedFrame, message) };
    // A map, not a struct: serde would also accept a JSON array as a struct's fields in order.
    let mut frame: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| unattributed(format!("frame is not a JSON object: {e}")))?;
    let id = match frame.remove("id") {
        Some(id @ Value::Number(_)) => id,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Value::String(s),
        _ => return Err(unattributed("`id` must be a number or a string of 1-64 characters".into())),
    };
    let fail = |code, message: String| FrameError { id: Some(id.clone()), error: ApiError::new(code, message) };
    let kind = match frame.remove("type") {
        Some(Value::String(kind)) => kind,
        None | Some(Value::Null) => return Err(fail(ErrorCode::MalformedFrame, "missing `type`".into())),
        Some(other) => {
            return Err(fail(ErrorCode::MalformedFrame, format!("`type` must be a string, not {}", json_type(&other))));
        }
    };
    let data = match frame.remove("data") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(data @ Value::Object(_)) => data,
        Some(other) => {
            return Err(fail(
                ErrorCode::MalformedFrame,
                format!("`data` must be an object, not {}", json_type(&other)),
            ));
        }
    };
    fn decode<T: serde::de::DeserializeOwned>(kind: &str, data: Value) -> Result<T, String> {
        serde_json::from_value(data).map_err(|e| format!("`data` of {kind}: {e}"))
    }
    let request = match kind.as_str() {
        "login" => decode(&kind, data).map(Request::Login),
        "resume" => decode(&kind, data).map(Request::Resume),
        "logout" => decode(&kind, data).map(Request::Logout),
        "ping" => Ok(Request::Ping),
        "publishStream" => decode(&kind, data).map(Request::PublishStream),
        "stopPublishingStream" => decode(&kind, data).map(Request::StopPublishingStream),
        "playStream" => decode(&kind, data).map(Request::PlayStream),
        "stopPlayingStream" => decode(&kind, data).map(Request::StopPlayingStream),
        "sendBroadcastMessage" => decode(&kind, data).map(Request::SendBroadcastMessage),
        "sendBarrageMessage" => decode(&kind, data).map(Request::SendBarrageMessage),
        "sendCustomCommand" => decode(&kind, data).map(Request::SendCustomCommand),
        "setRoomExtraInfo" => decode(&kind, data).map(Request::SetRoomExtraInfo),
        "setStreamExtraInfo" => decode(&kind, data).map(Request::SetStreamExtraInfo),
        "renewToken" => decode(&kind, data).map(Request::RenewToken),
        "muteStream" => decode(&kind, data).map(Request::MuteStream),
        "reportQuality" => decode(&kind, data).map(Request::ReportQuality),
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(fail(ErrorCode::UnknownMessageType, format!("unknown request type {shown:?}")));
        }
    };
    match request {
        Ok(request) => Ok((id, request)),
        Err(message) => Err(fail(ErrorCode::MalformedFrame, message)),
    }
}

/// The JSON type of a value, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn frame(value: Value) -> ByteString {
    ByteString::from(value.to_string())
}

pub fn hello(heartbeat_ms: u64, max_frame_bytes: usize) -> ByteString {
    frame(
        json!({"type": "hello", "v": PROTOCOL_VERSION, "heartbeatMs": heartbeat_ms, "maxFrameBytes": max_frame_bytes}),
    )
}

pub fn reply_ok(id: &Value, data: Value) -> ByteString {
    frame(json!({"type": "reply", "id": id, "ok": true, "data": data}))
}

pub fn reply_error(id: &Value, error: &ApiError) -> ByteString {
    frame(json!({"type": "reply", "id": id, "ok": false, "error": error.body()}))
}

/// An error that cannot be tied to a request (unparseable frame, closing reasons).
pub fn error(error: &ApiError) -> ByteString {
    frame(json!({"type": "error", "error": error.body()}))
}

pub fn event(name: &str, data: Value) -> ByteString {
    frame(json!({"type": "event", "event": name, "data": data}))
}

/// A room event in wire form, shared by every local recipient.
#[derive(Debug, Default)]
pub struct EncodedEvent {
    /// `roomUserUpdate`, only for sessions that asked for user updates.
    pub user_update: Option<ByteString>,
    /// Everything else, in order.
    pub frames: Vec<ByteString>,
}

fn user_update(room: &RoomKey, update_type: &str, users: &[User]) -> ByteString {
    event("roomUserUpdate", json!({"roomID": room.room_id, "updateType": update_type, "userList": users}))
}

fn online_count(room: &RoomKey, count: u32) -> ByteString {
    event("roomOnlineUserCountUpdate", json!({"roomID": room.room_id, "count": count}))
}

/// A stream as clients see it (PROTOCOL.md §4). [`StreamInfo`] also carries routing data
/// (which relay holds the media) that the rooms backend needs and clients must not rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireStream {
    #[serde(rename = "streamID")]
    pub stream_id: String,
    pub user: User,
    pub extra_info: String,
    /// Present (true) while the business server mutes the stream's audio.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub audio_muted: bool,
    /// Present (true) while the business server mutes the stream's video.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub video_muted: bool,
    /// Present (true) while the publisher has its own audio off (`muteStream`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publisher_audio_muted: bool,
    /// Present (true) while the publisher has its own video off (`muteStream`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publisher_video_muted: bool,
}

impl From<&StreamInfo> for WireStream {
    fn from(stream: &StreamInfo) -> Self {
        WireStream {
            stream_id: stream.stream_id.clone(),
            user: stream.user.clone(),
            extra_info: stream.extra_info.clone(),
            audio_muted: stream.audio_muted,
            video_muted: stream.video_muted,
            publisher_audio_muted: stream.publisher_audio_muted,
            publisher_video_muted: stream.publisher_video_muted,
        }
    }
}

fn stream_update(room: &RoomKey, update_type: &str, streams: &[WireStream]) -> ByteString {
    event("roomStreamUpdate", json!({"roomID": room.room_id, "updateType": update_type, "streamList": streams}))
}

fn extra_info_update(room: &RoomKey, extra: &[RoomExtraInfo]) -> ByteString {
    event("roomExtraInfoUpdate", json!({"roomID": room.room_id, "roomExtraInfoList": extra}))
}

fn messages(room: &RoomKey, name: &str, message: &ImMessage) -> ByteString {
    event(name, json!({"roomID": room.room_id, "messageList": [message]}))
}

/// The error a `kickout` event carries for `cause`, and the business server's reason if any.
pub fn kickout_error(cause: &KickCause) -> (ApiError, Option<&str>) {
    match cause {
        KickCause::Replaced => {
            (ApiError::new(ErrorCode::KickedOut, "the same user logged in from another connection"), None)
        }
        KickCause::Server { reason } => {
            (ApiError::new(ErrorCode::KickedByServer, "removed from the room by the server"), Some(reason))
        }
        KickCause::RoomClosed { reason } => {
            (ApiError::new(ErrorCode::RoomClosed, "the room was closed by the server"), Some(reason))
        }
    }
}

/// Wire form of a room event. `Kickout` and `Resync` are acted on by the session, not sent.
pub fn encode_event(room: &RoomKey, room_event: &RoomEvent) -> EncodedEvent {
    let one = |frame| EncodedEvent { user_update: None, frames: vec![frame] };
    match room_event {
        RoomEvent::UserAdded { user, online_count: count } => EncodedEvent {
            user_update: Some(user_update(room, "ADD", std::slice::from_ref(user))),
            frames: vec![online_count(room, *count)],
        },
        RoomEvent::UserRemoved { user, online_count: count } => EncodedEvent {
            user_update: Some(user_update(room, "DELETE", std::slice::from_ref(user))),
            frames: vec![online_count(room, *count)],
        },
        RoomEvent::StreamAdded { stream } => one(stream_update(room, "ADD", &[stream.into()])),
        RoomEvent::StreamRemoved { stream } => one(stream_update(room, "DELETE", &[stream.into()])),
        RoomEvent::StreamExtraInfo { stream } => one(event(
            "streamExtraInfoUpdate",
            json!({"roomID": room.room_id, "streamList": [WireStream::from(stream)]}),
        )),
        RoomEvent::RoomExtraInfo { extra } => one(extra_info_update(room, std::slice::from_ref(extra))),
        RoomEvent::Broadcast { message } => one(messages(room, "IMRecvBroadcastMessage", message)),
        RoomEvent::Barrage { message } => one(messages(room, "IMRecvBarrageMessage", message)),
        RoomEvent::CustomCommand { message, .. } => one(event(
            "IMRecvCustomCommand",
            json!({"roomID": room.room_id, "fromUser": message.from_user, "command": message.message,
                   "sendTime": message.send_time, "messageID": message.message_id}),
        )),
        RoomEvent::MediaState { stream_id, role, state, error_code, .. } => {
            let name = match role {
                crate::rooms::MediaRole::Publisher => "publisherStateUpdate",
                crate::rooms::MediaRole::Player => "playerStateUpdate",
            };
            one(event(
                name,
                json!({"roomID": room.room_id, "streamID": stream_id, "state": state, "errorCode": error_code}),
            ))
        }
        RoomEvent::StreamMuted { stream, by_server } => one(event(
            "streamMuteUpdate",
            json!({"roomID": room.room_id, "streamID": stream.stream_id, "user": stream.user,
                   "audioMuted": stream.audio_muted, "videoMuted": stream.video_muted,
                   "publisherAudioMuted": stream.publisher_audio_muted,
                   "publisherVideoMuted": stream.publisher_video_muted, "byServer": by_server}),
        )),
        RoomEvent::NetworkQuality { users } => {
            one(event("networkQuality", json!({"roomID": room.room_id, "qualityList": users})))
        }
        RoomEvent::Kickout { .. } | RoomEvent::Resync | RoomEvent::RelayQuality { .. } => EncodedEvent::default(),
    }
}

/// The room as one client sees it: everyone and everything except itself.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    #[serde(rename = "roomID")]
    pub room_id: String,
    /// Present when the session asked for user updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_list: Option<Vec<User>>,
    pub stream_list: Vec<WireStream>,
    pub room_extra_info_list: Vec<RoomExtraInfo>,
    pub online_count: u32,
}

impl RoomView {
    pub fn of(room: &RoomKey, snapshot: &Snapshot, me: &str, with_users: bool) -> RoomView {
        RoomView {
            room_id: room.room_id.clone(),
            user_list: with_users.then(|| snapshot.users().into_iter().filter(|u| u.user_id != me).collect()),
            stream_list: snapshot.streams.iter().filter(|s| s.user.user_id != me).map(WireStream::from).collect(),
            room_extra_info_list: snapshot.extra_info.clone(),
            online_count: snapshot.members.len() as u32,
        }
    }

    /// The events a client that just arrived would have seen: users, streams, count, extra info.
    pub fn as_events(&self, room: &RoomKey) -> Vec<ByteString> {
        let mut frames = Vec::new();
        if let Some(users) = self.user_list.as_ref().filter(|u| !u.is_empty()) {
            frames.push(user_update(room, "ADD", users));
        }
        if !self.stream_list.is_empty() {
            frames.push(stream_update(room, "ADD", &self.stream_list));
        }
        frames.push(online_count(room, self.online_count));
        if !self.room_extra_info_list.is_empty() {
            frames.push(extra_info_update(room, &self.room_extra_info_list));
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_reports_what_is_wrong() {
        let (id, request) = parse(r#"{"id":1,"type":"ping"}"#).unwrap();
        assert_eq!(id, json!(1));
        assert!(matches!(request, Request::Ping));
        let (id, request) =
            parse(r#"{"id":"a","type":"sendBroadcastMessage","data":{"roomID":"r","message":"hi"}}"#).unwrap();
        assert_eq!(id, json!("a"));
        assert!(matches!(request, Request::SendBroadcastMessage(m) if m.message == "hi"));

        let no_json = parse("nope").unwrap_err();
        assert_eq!((no_json.id, no_json.error.code), (None, ErrorCode::MalformedFrame));
        let no_id = parse(r#"{"type":"ping"}"#).unwrap_err();
        assert_eq!((no_id.id, no_id.error.code), (None, ErrorCode::MalformedFrame));
        let unknown = parse(r#"{"id":2,"type":"dance"}"#).unwrap_err();
        assert_eq!((unknown.id, unknown.error.code), (Some(json!(2)), ErrorCode::UnknownMessageType));
        let bad_data = parse(r#"{"id":3,"type":"login","data":{"roomID":5}}"#).unwrap_err();
        assert_eq!((bad_data.id, bad_data.error.code), (Some(json!(3)), ErrorCode::MalformedFrame));
        let object_id = parse(r#"{"id":{"x":1},"type":"ping"}"#).unwrap_err();
        assert_eq!(object_id.error.code, ErrorCode::MalformedFrame);

        // Once the id is usable, everything else is answered to it.
        for text in [
            r#"{"id":4,"type":5}"#,
            r#"{"id":4,"type":["ping"]}"#,
            r#"{"id":4,"type":null}"#,
            r#"{"id":4,"type":"ping","data":[]}"#,
            r#"{"id":4,"type":"sendBroadcastMessage","data":["room-1","hi"]}"#,
            r#"{"id":4,"type":"login","data":"x"}"#,
        ] {
            let failure = parse(text).unwrap_err();
            assert_eq!((failure.id, failure.error.code), (Some(json!(4)), ErrorCode::MalformedFrame), "{text}");
        }
        // An array is not a frame, even one whose items would fill the fields in order.
        let array = parse(r#"[1,"ping",{}]"#).unwrap_err();
        assert_eq!((array.id, array.error.code), (None, ErrorCode::MalformedFrame));
        assert!(matches!(parse(r#"{"id":5,"type":"ping","data":null}"#), Ok((_, Request::Ping))));
    }

    #[test]
    fn streams_reach_clients_without_their_relay() {
        let room = RoomKey::new(1, "r");
        let stream = StreamInfo {
            stream_id: "cam".into(),
            user: User { user_id: "u".into(), user_name: "U".into() },
            extra_info: "hd".into(),
            relay_url: Some("http://relay-7:8080".into()),
            audio_muted: false,
            video_muted: false,
            publisher_audio_muted: false,
            publisher_video_muted: false,
        };
        let wire = json!({"streamID": "cam", "user": {"userID": "u", "userName": "U"}, "extraInfo": "hd"});
        for event in [
            RoomEvent::StreamAdded { stream: stream.clone() },
            RoomEvent::StreamRemoved { stream: stream.clone() },
            RoomEvent::StreamExtraInfo { stream: stream.clone() },
        ] {
            let frame: Value = serde_json::from_str(&encode_event(&room, &event).frames[0]).unwrap();
            assert_eq!(frame["data"]["streamList"], json!([wire]), "{frame}");
        }
        // Login and resume replies and `resync` share the room view.
        let snapshot = Snapshot { streams: vec![stream], ..Snapshot::default() };
        let view = serde_json::to_value(RoomView::of(&room, &snapshot, "me", true)).unwrap();
        assert_eq!(view["streamList"], json!([wire]));
    }

    #[test]
    fn user_events_carry_the_list_and_the_count_separately() {
        let room = RoomKey::new(1, "r");
        let user = User { user_id: "u".into(), user_name: "U".into() };
        let encoded = encode_event(&room, &RoomEvent::UserAdded { user, online_count: 2 });
        let list: Value = serde_json::from_str(encoded.user_update.as_deref().unwrap()).unwrap();
        assert_eq!(list["event"], "roomUserUpdate");
        assert_eq!(list["data"]["userList"][0]["userID"], "u");
        let count: Value = serde_json::from_str(&encoded.frames[0]).unwrap();
        assert_eq!(count["data"], json!({"roomID": "r", "count": 2}));
    }
}
