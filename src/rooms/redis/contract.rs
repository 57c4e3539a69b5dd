//! Everything the Rust side and the Lua scripts must agree on, defined once: key names, the
//! JSON field and event names the scripts read and write, and the entries of a worker's
//! session set.
//!
//! The scripts never spell a JSON field or event name themselves: they read them from the
//! tables `F` (fields) and `E` (event types) that [`lua_tables`] generates from the constants
//! below and that are prepended to every script. The tests at the bottom serialize the real
//! Rust types and check that these names are the ones serde writes, so renaming a field in
//! `rooms/model.rs` fails a test instead of silently breaking the scripts; and
//! `scripts_run_against_real_redis` (in `scripts.rs`) runs every script on a real Redis and
//! decodes what it stored and published with the Rust types.

use serde::{Deserialize, Serialize};

use crate::rooms::model::{RoomKey, StreamInfo};

/// JSON field names the scripts use, as `(Lua name, JSON name)`.
pub const FIELDS: &[(&str, &str)] = &[
    // Member (rooms::model::Member)
    ("session_id", "sessionId"),
    ("worker_id", "workerId"),
    ("user", "user"),
    // User (rooms::model::User)
    ("user_id", "userID"),
    // StoredStream / StreamInfo
    ("extra_info", "extraInfo"),
    ("holder", "holder"),
    // RoomEvent fields
    ("type", "type"),
    ("online_count", "onlineCount"),
    ("stream", "stream"),
    ("extra", "extra"),
    ("event_user_id", "userId"),
    ("event_session_id", "sessionId"),
    ("cause", "cause"),
    // StreamInfo's mute flags
    ("audio_muted", "audioMuted"),
    ("video_muted", "videoMuted"),
    ("publisher_audio_muted", "publisherAudioMuted"),
    ("publisher_video_muted", "publisherVideoMuted"),
    ("by_server", "byServer"),
];

/// `type` tags of the room events the scripts publish, as `(Lua name, tag)`.
pub const EVENTS: &[(&str, &str)] = &[
    ("user_added", "userAdded"),
    ("user_removed", "userRemoved"),
    ("stream_added", "streamAdded"),
    ("stream_removed", "streamRemoved"),
    ("stream_extra_info", "streamExtraInfo"),
    ("room_extra_info", "roomExtraInfo"),
    ("kickout", "kickout"),
    ("stream_muted", "streamMuted"),
];

/// `local F = {...}` and `local E = {...}`, prepended to every script.
pub fn lua_tables() -> String {
    let table = |name: &str, pairs: &[(&str, &str)]| {
        let entries: Vec<String> = pairs.iter().map(|(lua, json)| format!("{lua} = '{json}'")).collect();
        format!("local {name} = {{{}}}\n", entries.join(", "))
    };
    format!("{}{}", table("F", FIELDS), table("E", EVENTS))
}

/// The Redis keys of one room: members, streams and extra info hashes, and its event channel.
/// Room ids never contain `:` (see `ids.rs`), so the channel maps back to its room.
pub struct RoomKeys {
    pub users: String,
    pub streams: String,
    pub extra: String,
    pub app_streams: String,
    pub channel: String,
    /// The app's rooms with members (a sorted set of room ids, all of score 0, so that it
    /// pages by room id).
    pub app_rooms: String,
    /// Set (with a TTL) while the room is closed to logins.
    pub closed: String,
}

impl RoomKeys {
    pub fn of(room: &RoomKey) -> RoomKeys {
        let base = format!("huddle:r:{}:{}", room.app_id, room.room_id);
        RoomKeys {
            users: format!("{base}:u"),
            streams: format!("{base}:s"),
            extra: format!("{base}:x"),
            app_streams: app_streams_key(room.app_id),
            channel: channel(room),
            app_rooms: app_rooms_key(room.app_id),
            closed: format!("huddle:closed:{}:{}", room.app_id, room.room_id),
        }
    }

    /// Set (with a TTL) while `user_id` may not log in to the room.
    pub fn ban(room: &RoomKey, user_id: &str) -> String {
        format!("{}{user_id}", Self::ban_prefix(room))
    }

    /// What [`RoomKeys::ban`] puts before the user id (the kick script appends it).
    pub fn ban_prefix(room: &RoomKey) -> String {
        format!("huddle:ban:{}:{}:", room.app_id, room.room_id)
    }

    /// Set (with a TTL, to the kick's cause) when the server removed `session_id`: a repair
    /// must not put that session back.
    pub fn kicked(room: &RoomKey, session_id: &str) -> String {
        format!("{}{session_id}", Self::kicked_prefix(room))
    }

    pub fn kicked_prefix(room: &RoomKey) -> String {
        format!("huddle:kicked:{}:{}:", room.app_id, room.room_id)
    }
}

/// The app's rooms that have members (see [`RoomKeys::app_rooms`]).
pub fn app_rooms_key(app_id: u32) -> String {
    format!("huddle:a:{app_id}:rooms")
}

/// Stream id → room id, per app (stream ids are unique within an app).
pub fn app_streams_key(app_id: u32) -> String {
    format!("huddle:a:{app_id}:s")
}

pub fn channel(room: &RoomKey) -> String {
    format!("huddle:ev:{}:{}", room.app_id, room.room_id)
}

/// Inverse of [`channel`].
pub fn room_of_channel(channel: &str) -> Option<RoomKey> {
    let rest = channel.strip_prefix("huddle:ev:")?;
    let (app, room) = rest.split_once(':')?;
    Some(RoomKey::new(app.parse().ok()?, room))
}

/// Worker id → the Redis time (ms) at which it counts as dead unless it renews its lease.
pub const WORKERS_KEY: &str = "huddle:leases";
/// Redis time (ms) of the last lease script any worker ran: how recently Redis answered.
pub const CLOCK_KEY: &str = "huddle:clock";
/// Dead worker id → what its reaper removed (a `PendingReap`, JSON) until the reap hook (usage
/// records) has taken it; any worker repeats a pending one that is older than a lease.
pub const REAPED_KEY: &str = "huddle:reaped";
/// Relay id → its latest announcement (JSON).
pub const RELAYS_KEY: &str = "huddle:relays";

/// The set of [`WorkerEntry`]s a worker holds: what another worker removes when it reaps it.
pub fn worker_entries_key(worker_id: &str) -> String {
    format!("huddle:w:{worker_id}:s")
}

/// What a worker holds in Redis and must be cleaned up after it: a session (member) or a
/// stream whose media its relay holds. Stored as JSON members of the worker's entry set; the
/// scripts treat them as opaque strings (Rust writes and reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkerEntry {
    #[serde(rename_all = "camelCase")]
    Session { app_id: u32, room_id: String, user_id: String, session_id: String },
    #[serde(rename_all = "camelCase")]
    Stream { app_id: u32, room_id: String, user_id: String, stream_id: String },
}

impl WorkerEntry {
    pub fn session(room: &RoomKey, user_id: &str, session_id: &str) -> WorkerEntry {
        WorkerEntry::Session {
            app_id: room.app_id,
            room_id: room.room_id.clone(),
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
        }
    }

    pub fn stream(room: &RoomKey, user_id: &str, stream_id: &str) -> WorkerEntry {
        WorkerEntry::Stream {
            app_id: room.app_id,
            room_id: room.room_id.clone(),
            user_id: user_id.to_owned(),
            stream_id: stream_id.to_owned(),
        }
    }

    pub fn room(&self) -> RoomKey {
        match self {
            WorkerEntry::Session { app_id, room_id, .. } | WorkerEntry::Stream { app_id, room_id, .. } => {
                RoomKey::new(*app_id, room_id.clone())
            }
        }
    }

    /// The set member (serde writes fields in declaration order, so one entry has one form).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(raw: &str) -> Option<WorkerEntry> {
        serde_json::from_str(raw).ok()
    }
}

/// A stream as stored in a room's stream hash: what members see, plus the worker whose relay
/// holds its media (so reaping that worker removes only its own streams, not the same id
/// published again through another worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStream {
    #[serde(flatten)]
    pub info: StreamInfo,
    pub holder: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::model::{Member, RoomEvent, RoomExtraInfo, User};
    use serde_json::json;

    fn json_name(lua: &str) -> &'static str {
        FIELDS.iter().chain(EVENTS).find(|(name, _)| *name == lua).map(|(_, json)| *json).unwrap()
    }

    fn user() -> User {
        User { user_id: "u".into(), user_name: "U".into() }
    }

    fn stream() -> StreamInfo {
        StreamInfo {
            stream_id: "s".into(),
            user: user(),
            extra_info: "x".into(),
            relay_url: None,
            audio_muted: false,
            video_muted: false,
            publisher_audio_muted: false,
            publisher_video_muted: false,
        }
    }

    #[test]
    fn members_and_streams_have_the_fields_the_scripts_read() {
        let member =
            Member { user: user(), session_id: "s1".into(), worker_id: "w1".into(), joined_at: 0, joined_ms: 0 };
        let member = serde_json::to_value(&member).unwrap();
        assert_eq!(member[json_name("session_id")], "s1");
        assert_eq!(member[json_name("worker_id")], "w1");
        assert_eq!(member[json_name("user")][json_name("user_id")], "u");

        let stored = serde_json::to_value(StoredStream { info: stream(), holder: "w1".into() }).unwrap();
        assert_eq!(stored[json_name("user")][json_name("user_id")], "u");
        assert_eq!(stored[json_name("extra_info")], "x");
        assert_eq!(stored[json_name("holder")], "w1");
        let back: StreamInfo = serde_json::from_value(stored).unwrap();
        assert_eq!(back, stream(), "a stored stream reads back as what members see");
    }

    #[test]
    fn the_events_the_scripts_publish_are_the_ones_rust_decodes() {
        let check = |event: RoomEvent, tag: &str, fields: &[&str]| {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value[json_name("type")], json_name(tag), "{value}");
            for field in fields {
                assert!(value.get(json_name(field)).is_some(), "{value} lacks {field}");
            }
        };
        check(RoomEvent::UserAdded { user: user(), online_count: 1 }, "user_added", &["user", "online_count"]);
        check(RoomEvent::UserRemoved { user: user(), online_count: 0 }, "user_removed", &["user", "online_count"]);
        check(RoomEvent::StreamAdded { stream: stream() }, "stream_added", &["stream"]);
        check(RoomEvent::StreamRemoved { stream: stream() }, "stream_removed", &["stream"]);
        check(RoomEvent::StreamExtraInfo { stream: stream() }, "stream_extra_info", &["stream"]);
        let extra = RoomExtraInfo { key: "k".into(), value: "v".into(), update_user: user(), update_time: 0 };
        check(RoomEvent::RoomExtraInfo { extra }, "room_extra_info", &["extra"]);
        check(
            RoomEvent::Kickout { user_id: "u".into(), session_id: "s".into(), cause: Default::default() },
            "kickout",
            &["event_user_id", "event_session_id"],
        );
        let cause = crate::rooms::KickCause::Server { reason: "r".into() };
        check(
            RoomEvent::Kickout { user_id: "u".into(), session_id: "s".into(), cause: cause.clone() },
            "kickout",
            &["event_user_id", "event_session_id", "cause"],
        );
        // The scripts put the cause in as Rust encoded it; without one (a duplicate login,
        // published by join.lua) it reads as Replaced.
        let without: RoomEvent = serde_json::from_value(serde_json::json!(
            {json_name("type"): json_name("kickout"), json_name("event_user_id"): "u", json_name("event_session_id"): "s"}
        ))
        .unwrap();
        assert_eq!(
            without,
            RoomEvent::Kickout { user_id: "u".into(), session_id: "s".into(), cause: Default::default() }
        );
        let muted = StreamInfo {
            audio_muted: true,
            video_muted: true,
            publisher_audio_muted: true,
            publisher_video_muted: true,
            ..stream()
        };
        check(RoomEvent::StreamMuted { stream: muted.clone(), by_server: true }, "stream_muted", &["stream"]);
        check(
            RoomEvent::StreamMuted { stream: muted.clone(), by_server: false },
            "stream_muted",
            &["stream", "by_server"],
        );
        let value = serde_json::to_value(&muted).unwrap();
        assert_eq!((&value[json_name("audio_muted")], &value[json_name("video_muted")]), (&json!(true), &json!(true)));
        let publisher = (&value[json_name("publisher_audio_muted")], &value[json_name("publisher_video_muted")]);
        assert_eq!(publisher, (&json!(true), &json!(true)));
        // stream_muted.lua publishes no byServer: that is the server's mute.
        let without: RoomEvent = serde_json::from_value(json!(
            {json_name("type"): json_name("stream_muted"), json_name("stream"): serde_json::to_value(stream()).unwrap()}
        ))
        .unwrap();
        assert_eq!(without, RoomEvent::StreamMuted { stream: stream(), by_server: true });
    }

    #[test]
    fn worker_entries_have_one_form_and_round_trip() {
        let room = RoomKey::new(7, "r-1");
        let session = WorkerEntry::session(&room, "u:1", "abc");
        assert_eq!(session.encode(), r#"{"session":{"appId":7,"roomId":"r-1","userId":"u:1","sessionId":"abc"}}"#);
        assert_eq!(WorkerEntry::decode(&session.encode()), Some(session));
        let stream = WorkerEntry::stream(&room, "u", "cam");
        assert_eq!(WorkerEntry::decode(&stream.encode()).map(|e| e.room()), Some(room));
        assert_eq!(WorkerEntry::decode("app\troom\tuser\tsession"), None);
    }

    #[test]
    fn channels_round_trip_to_rooms() {
        let room = RoomKey::new(42, "room-1.a~b_c");
        assert_eq!(room_of_channel(&channel(&room)), Some(room));
        assert_eq!(room_of_channel("huddle:ev:x:room"), None);
        assert_eq!(room_of_channel("other"), None);
    }

    #[test]
    fn the_lua_tables_list_every_name() {
        let tables = lua_tables();
        for (lua, json) in FIELDS.iter().chain(EVENTS) {
            assert!(tables.contains(&format!("{lua} = '{json}'")), "{tables}");
        }
    }
}
