//! Rooms in this process's memory: the embedded default. Events are dispatched to the hub
//! while the state lock is held, so they leave in the order the state changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::model::{
    ClosedRoom, JoinOutcome, KickCause, Member, RelayInfo, RoomEvent, RoomExtraInfo, RoomKey, RoomSummary, Snapshot,
    StreamInfo,
};
use super::{Hub, RoomBackend, RoomError};

#[derive(Default)]
struct RoomData {
    members: HashMap<String, Member>,
    streams: BTreeMap<String, StreamInfo>,
    extra: BTreeMap<String, RoomExtraInfo>,
}

impl RoomData {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            members: self.members.values().cloned().collect(),
            streams: self.streams.values().cloned().collect(),
            extra_info: self.extra.values().cloned().collect(),
        }
        .normalized()
    }

    fn count(&self) -> u32 {
        self.members.len() as u32
    }

    fn member_session(&self, user_id: &str) -> Option<&str> {
        self.members.get(user_id).map(|m| m.session_id.as_str())
    }
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomKey, RoomData>,
    /// (app, stream id) → room id: stream ids are unique per app.
    app_streams: HashMap<(u32, String), String>,
    /// Users the business server removed with a ban: (room, user id) → end of the ban.
    bans: HashMap<(RoomKey, String), Instant>,
    /// Rooms the business server closed with a ban on logins → end of the ban.
    closed: HashMap<RoomKey, Instant>,
}

/// Seconds left until `until`, rounded up; `None` once it has passed.
fn remaining_secs(until: Instant, now: Instant) -> Option<u64> {
    let left = until.checked_duration_since(now).filter(|left| !left.is_zero())?;
    Some(left.as_millis().div_ceil(1000) as u64)
}

impl State {
    /// Refuses a login the business server banned (the room closed, or the user removed).
    fn check_admission(&mut self, room: &RoomKey, user_id: &str) -> Result<(), RoomError> {
        let now = Instant::now();
        if let Some(until) = self.closed.get(room).copied() {
            match remaining_secs(until, now) {
                Some(remaining_secs) => return Err(RoomError::Closed { remaining_secs }),
                None => {
                    self.closed.remove(room);
                }
            }
        }
        let key = (room.clone(), user_id.to_owned());
        if let Some(until) = self.bans.get(&key).copied() {
            match remaining_secs(until, now) {
                Some(remaining_secs) => return Err(RoomError::Banned { remaining_secs }),
                None => {
                    self.bans.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Drops expired bans once in a while, so that the maps do not grow without bound.
    fn prune_bans(&mut self) {
        let now = Instant::now();
        self.bans.retain(|_, until| *until > now);
        self.closed.retain(|_, until| *until > now);
    }

    /// Removes a member as the server asked: `Kickout` to its session, its streams and the
    /// user DELETEd. The room itself is dropped by the caller when it empties.
    fn remove_member(&mut self, hub: &Hub, room: &RoomKey, user_id: &str, cause: &KickCause) -> bool {
        let Some(session_id) = self.rooms.get(room).and_then(|d| d.member_session(user_id)).map(str::to_owned) else {
            return false;
        };
        hub.dispatch(
            room.clone(),
            RoomEvent::Kickout { user_id: user_id.to_owned(), session_id, cause: cause.clone() },
        );
        self.drop_streams_of(hub, room, user_id);
        let Some(data) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(member) = data.members.remove(user_id) else {
            return false;
        };
        let count = data.count();
        hub.dispatch(room.clone(), RoomEvent::UserRemoved { user: member.user, online_count: count });
        true
    }

    fn drop_room_if_empty(&mut self, room: &RoomKey) {
        if self.rooms.get(room).is_some_and(|d| d.members.is_empty())
            && let Some(data) = self.rooms.remove(room)
        {
            for stream_id in data.streams.into_keys() {
                self.app_streams.remove(&(room.app_id, stream_id));
            }
        }
    }

    /// Removes every stream of `user_id`, emitting `StreamRemoved` for each.
    fn drop_streams_of(&mut self, hub: &Hub, room: &RoomKey, user_id: &str) {
        let Some(data) = self.rooms.get_mut(room) else {
            return;
        };
        let owned: Vec<String> =
            data.streams.values().filter(|s| s.user.user_id == user_id).map(|s| s.stream_id.clone()).collect();
        for stream_id in owned {
            if let Some(stream) = data.streams.remove(&stream_id) {
                self.app_streams.remove(&(room.app_id, stream_id));
                hub.dispatch(room.clone(), RoomEvent::StreamRemoved { stream });
            }
        }
    }
}

fn summary(room_id: &str, data: Option<&RoomData>) -> RoomSummary {
    RoomSummary {
        room_id: room_id.to_owned(),
        user_count: data.map_or(0, RoomData::count),
        stream_count: data.map_or(0, |d| d.streams.len() as u32),
    }
}

pub struct MemoryRooms {
    hub: Arc<Hub>,
    state: Mutex<State>,
    relays: Mutex<HashMap<String, RelayInfo>>,
}

impl MemoryRooms {
    pub fn new(hub: Arc<Hub>) -> Self {
        MemoryRooms { hub, state: Mutex::default(), relays: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl RoomBackend for MemoryRooms {
    async fn watch(&self, _room: &RoomKey) -> Result<(), RoomError> {
        Ok(())
    }

    async fn unwatch(&self, _room: &RoomKey) -> Result<(), RoomError> {
        Ok(())
    }

    async fn join(&self, room: &RoomKey, member: Member, max_users: u32) -> Result<JoinOutcome, RoomError> {
        let mut state = self.lock();
        state.check_admission(room, &member.user.user_id)?;
        let data = state.rooms.entry(room.clone()).or_default();
        let user_id = member.user.user_id.clone();
        let replaced_session = match data.member_session(&user_id) {
            Some(existing) if existing == member.session_id => None,
            Some(existing) => Some(existing.to_owned()),
            None if data.count() >= max_users => {
                if data.members.is_empty() {
                    state.rooms.remove(room);
                }
                return Err(RoomError::RoomFull(max_users));
            }
            None => None,
        };
        let is_new = !data.members.contains_key(&user_id);
        let user = member.user.clone();
        data.members.insert(user_id.clone(), member);
        let count = data.count();
        if let Some(old_session) = &replaced_session {
            self.hub.dispatch(
                room.clone(),
                RoomEvent::Kickout {
                    user_id: user_id.clone(),
                    session_id: old_session.clone(),
                    cause: KickCause::Replaced,
                },
            );
            state.drop_streams_of(&self.hub, room, &user_id);
        } else if is_new {
            self.hub.dispatch(room.clone(), RoomEvent::UserAdded { user, online_count: count });
        }
        let snapshot = state.rooms.get(room).map(RoomData::snapshot).unwrap_or_default();
        Ok(JoinOutcome { snapshot, replaced_session })
    }

    async fn leave(&self, room: &RoomKey, user_id: &str, session_id: &str) -> Result<bool, RoomError> {
        let mut state = self.lock();
        let holds = state.rooms.get(room).and_then(|d| d.member_session(user_id)) == Some(session_id);
        if !holds {
            return Ok(false);
        }
        state.drop_streams_of(&self.hub, room, user_id);
        let Some(data) = state.rooms.get_mut(room) else {
            return Ok(false);
        };
        let Some(member) = data.members.remove(user_id) else {
            return Ok(false);
        };
        let count = data.count();
        self.hub.dispatch(room.clone(), RoomEvent::UserRemoved { user: member.user, online_count: count });
        if data.members.is_empty() {
            state.rooms.remove(room);
        }
        Ok(true)
    }

    async fn add_stream(&self, room: &RoomKey, session_id: &str, stream: StreamInfo) -> Result<(), RoomError> {
        let mut state = self.lock();
        let user_id = stream.user.user_id.clone();
        let holds = state.rooms.get(room).and_then(|d| d.member_session(&user_id)) == Some(session_id);
        if !holds {
            return Err(RoomError::NotMember);
        }
        let key = (room.app_id, stream.stream_id.clone());
        if let Some(holder_room) = state.app_streams.get(&key) {
            let own = holder_room == &room.room_id
                && state
                    .rooms
                    .get(room)
                    .and_then(|d| d.streams.get(&stream.stream_id))
                    .is_some_and(|s| s.user.user_id == user_id);
            return if own { Ok(()) } else { Err(RoomError::StreamIdTaken(stream.stream_id)) };
        }
        state.app_streams.insert(key, room.room_id.clone());
        let data = state.rooms.entry(room.clone()).or_default();
        data.streams.insert(stream.stream_id.clone(), stream.clone());
        self.hub.dispatch(room.clone(), RoomEvent::StreamAdded { stream });
        Ok(())
    }

    async fn remove_stream(&self, room: &RoomKey, user_id: &str, stream_id: &str) -> Result<(), RoomError> {
        let mut state = self.lock();
        let data = state.rooms.get_mut(room).ok_or_else(|| RoomError::StreamNotFound(stream_id.to_owned()))?;
        match data.streams.get(stream_id) {
            Some(s) if s.user.user_id == user_id => {}
            _ => return Err(RoomError::StreamNotFound(stream_id.to_owned())),
        }
        let Some(stream) = data.streams.remove(stream_id) else {
            return Ok(());
        };
        state.app_streams.remove(&(room.app_id, stream_id.to_owned()));
        self.hub.dispatch(room.clone(), RoomEvent::StreamRemoved { stream });
        Ok(())
    }

    async fn set_stream_extra_info(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        extra_info: &str,
    ) -> Result<(), RoomError> {
        let mut state = self.lock();
        let stream = state
            .rooms
            .get_mut(room)
            .and_then(|d| d.streams.get_mut(stream_id))
            .filter(|s| s.user.user_id == user_id)
            .ok_or_else(|| RoomError::StreamNotFound(stream_id.to_owned()))?;
        stream.extra_info = extra_info.to_owned();
        let stream = stream.clone();
        self.hub.dispatch(room.clone(), RoomEvent::StreamExtraInfo { stream });
        Ok(())
    }

    async fn set_room_extra_info(
        &self,
        room: &RoomKey,
        extra: RoomExtraInfo,
        max_keys: usize,
    ) -> Result<(), RoomError> {
        let mut state = self.lock();
        let data = state.rooms.get_mut(room).ok_or(RoomError::NotMember)?;
        if !data.extra.contains_key(&extra.key) && data.extra.len() >= max_keys {
            return Err(RoomError::TooManyExtraInfoKeys(max_keys));
        }
        data.extra.insert(extra.key.clone(), extra.clone());
        self.hub.dispatch(room.clone(), RoomEvent::RoomExtraInfo { extra });
        Ok(())
    }

    async fn list_rooms(&self, app_id: u32, after: Option<&str>, limit: usize) -> Result<Vec<RoomSummary>, RoomError> {
        let state = self.lock();
        let mut rooms: Vec<RoomSummary> = state
            .rooms
            .iter()
            .filter(|(key, data)| {
                key.app_id == app_id
                    && !data.members.is_empty()
                    && after.is_none_or(|after| key.room_id.as_str() > after)
            })
            .map(|(key, data)| summary(&key.room_id, Some(data)))
            .collect();
        rooms.sort_by(|a, b| a.room_id.cmp(&b.room_id));
        rooms.truncate(limit);
        Ok(rooms)
    }

    async fn room_counts(&self, app_id: u32, room_ids: &[String]) -> Result<Vec<RoomSummary>, RoomError> {
        let state = self.lock();
        Ok(room_ids.iter().map(|id| summary(id, state.rooms.get(&RoomKey::new(app_id, id.clone())))).collect())
    }

    async fn kick(
        &self,
        room: &RoomKey,
        user_ids: &[String],
        cause: &KickCause,
        ban_secs: u64,
    ) -> Result<Vec<String>, RoomError> {
        let mut state = self.lock();
        state.prune_bans();
        let mut kicked = Vec::new();
        for user_id in user_ids {
            if state.remove_member(&self.hub, room, user_id, cause) {
                kicked.push(user_id.clone());
            }
            if ban_secs > 0 {
                let until = Instant::now() + Duration::from_secs(ban_secs);
                state.bans.insert((room.clone(), user_id.clone()), until);
            }
        }
        state.drop_room_if_empty(room);
        Ok(kicked)
    }

    async fn close_room(&self, room: &RoomKey, cause: &KickCause, ban_secs: u64) -> Result<ClosedRoom, RoomError> {
        let mut state = self.lock();
        state.prune_bans();
        if ban_secs > 0 {
            state.closed.insert(room.clone(), Instant::now() + Duration::from_secs(ban_secs));
        }
        let Some(data) = state.rooms.get(room) else {
            return Ok(ClosedRoom::default());
        };
        let mut user_ids: Vec<String> = data.members.keys().cloned().collect();
        user_ids.sort();
        let mut closed = ClosedRoom { users_removed: 0, streams_removed: data.streams.len() as u32 };
        // Every session hears its kickout before the room starts to empty.
        for user_id in &user_ids {
            if let Some(session_id) = data.member_session(user_id) {
                self.hub.dispatch(
                    room.clone(),
                    RoomEvent::Kickout {
                        user_id: user_id.clone(),
                        session_id: session_id.to_owned(),
                        cause: cause.clone(),
                    },
                );
            }
        }
        if let Some(data) = state.rooms.get_mut(room) {
            let streams = std::mem::take(&mut data.streams);
            for (stream_id, stream) in streams {
                state.app_streams.remove(&(room.app_id, stream_id));
                self.hub.dispatch(room.clone(), RoomEvent::StreamRemoved { stream });
            }
        }
        for user_id in &user_ids {
            let Some(data) = state.rooms.get_mut(room) else { break };
            if let Some(member) = data.members.remove(user_id) {
                closed.users_removed += 1;
                let count = data.count();
                self.hub.dispatch(room.clone(), RoomEvent::UserRemoved { user: member.user, online_count: count });
            }
        }
        state.drop_room_if_empty(room);
        Ok(closed)
    }

    async fn set_stream_muted(
        &self,
        room: &RoomKey,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError> {
        let mut state = self.lock();
        let stream = state
            .rooms
            .get_mut(room)
            .and_then(|d| d.streams.get_mut(stream_id))
            .ok_or_else(|| RoomError::StreamNotFound(stream_id.to_owned()))?;
        stream.audio_muted = audio.unwrap_or(stream.audio_muted);
        stream.video_muted = video.unwrap_or(stream.video_muted);
        let stream = stream.clone();
        self.hub.dispatch(room.clone(), RoomEvent::StreamMuted { stream: stream.clone(), by_server: true });
        Ok(stream)
    }

    async fn set_publisher_muted(
        &self,
        room: &RoomKey,
        user_id: &str,
        stream_id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<StreamInfo, RoomError> {
        let mut state = self.lock();
        let stream = state
            .rooms
            .get_mut(room)
            .and_then(|d| d.streams.get_mut(stream_id))
            .filter(|s| s.user.user_id == user_id)
            .ok_or_else(|| RoomError::StreamNotFound(stream_id.to_owned()))?;
        stream.publisher_audio_muted = audio.unwrap_or(stream.publisher_audio_muted);
        stream.publisher_video_muted = video.unwrap_or(stream.publisher_video_muted);
        let stream = stream.clone();
        self.hub.dispatch(room.clone(), RoomEvent::StreamMuted { stream: stream.clone(), by_server: false });
        Ok(stream)
    }

    async fn publish(&self, room: &RoomKey, event: RoomEvent) -> Result<(), RoomError> {
        // Taking the lock keeps messages ordered with state events of the same room.
        let _state = self.lock();
        self.hub.dispatch(room.clone(), event);
        Ok(())
    }

    async fn snapshot(&self, room: &RoomKey) -> Result<Snapshot, RoomError> {
        Ok(self.lock().rooms.get(room).map(RoomData::snapshot).unwrap_or_default())
    }

    async fn find_stream(&self, app_id: u32, stream_id: &str) -> Result<Option<(RoomKey, StreamInfo)>, RoomError> {
        let state = self.lock();
        let Some(room_id) = state.app_streams.get(&(app_id, stream_id.to_owned())) else {
            return Ok(None);
        };
        let room = RoomKey::new(app_id, room_id.clone());
        let stream = state.rooms.get(&room).and_then(|d| d.streams.get(stream_id)).cloned();
        Ok(stream.map(|s| (room, s)))
    }

    async fn ping(&self) -> Result<(), RoomError> {
        Ok(())
    }

    async fn announce_relay(&self, relay: RelayInfo) -> Result<(), RoomError> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner()).insert(relay.id.clone(), relay);
        Ok(())
    }

    async fn relays(&self) -> Result<Vec<RelayInfo>, RoomError> {
        let now = super::unix_millis();
        let mut relays = self.relays.lock().unwrap_or_else(|p| p.into_inner());
        relays.retain(|_, r| r.is_fresh(now));
        Ok(relays.values().cloned().collect())
    }
}
