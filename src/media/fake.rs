//! A relay without media, for unit tests of the relay→room rules: it keeps publishers and
//! players as the real one does, records what it was asked, and queues the events the real
//! relay would report (which the test hands to [`super::MediaService::on_relay_event`]).
//! Unlike the real relay it ends only the peer it is asked to end, so that the media
//! service's own rule for a gone publisher's players is what is tested.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::RelayPort;
use crate::quality::Level;
use crate::relay::{
    LayerChoice, MediaBytes, PeerId, PlayerMute, RelayError, RelayEvent, RelayLoad, RelayStats, StreamKey,
};

#[derive(Default)]
pub struct FakeRelay {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_peer: PeerId,
    /// Live peers: their stream and whether they publish it.
    peers: HashMap<PeerId, (StreamKey, bool)>,
    publishers: HashMap<StreamKey, PeerId>,
    player_mutes: HashMap<PeerId, PlayerMute>,
    pub player_layers: HashMap<PeerId, LayerChoice>,
    pub closed: Vec<PeerId>,
    pub mutes: Vec<(StreamKey, Option<bool>, Option<bool>)>,
    events: Vec<RelayEvent>,
    levels: Vec<(PeerId, Level)>,
}

/// What a fake publisher moved: fixed, so that usage records can be checked.
pub const BYTES: MediaBytes = MediaBytes { bytes_in: 1234, bytes_out: 5678 };

impl FakeRelay {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The events reported since the last call, oldest first.
    pub fn take_events(&self) -> Vec<RelayEvent> {
        std::mem::take(&mut self.lock().events)
    }

    /// A peer's media became live (a publisher's first RTP, a player connected).
    pub fn connect(&self, peer: PeerId) {
        let mut state = self.lock();
        let Some((stream, publishes)) = state.peers.get(&peer).cloned() else { return };
        let event = if publishes {
            RelayEvent::StreamLive { stream, peer }
        } else {
            RelayEvent::PlayerStarted { stream, peer }
        };
        state.events.push(event);
    }

    pub fn closed(&self) -> Vec<PeerId> {
        self.lock().closed.clone()
    }

    pub fn mutes(&self) -> Vec<(StreamKey, Option<bool>, Option<bool>)> {
        self.lock().mutes.clone()
    }

    pub fn set_levels(&self, levels: Vec<(PeerId, Level)>) {
        self.lock().levels = levels;
    }

    fn open(&self, stream: StreamKey, publishes: bool) -> (PeerId, String) {
        let mut state = self.lock();
        state.last_peer += 1;
        let peer = state.last_peer;
        if publishes {
            state.publishers.insert(stream.clone(), peer);
        }
        state.peers.insert(peer, (stream, publishes));
        (peer, format!("answer {peer}"))
    }
}

#[async_trait]
impl RelayPort for FakeRelay {
    async fn publish(&self, stream: StreamKey, _offer: String) -> Result<(PeerId, String), RelayError> {
        if self.lock().publishers.contains_key(&stream) {
            return Err(RelayError::AlreadyPublished(stream.stream_id));
        }
        Ok(self.open(stream, true))
    }

    async fn play(&self, stream: StreamKey, _offer: String) -> Result<(PeerId, String), RelayError> {
        if !self.lock().publishers.contains_key(&stream) {
            return Err(RelayError::UnknownStream(stream.stream_id));
        }
        Ok(self.open(stream, false))
    }

    async fn pull_offer(&self, stream: StreamKey) -> Result<(PeerId, String), RelayError> {
        self.publish(stream, String::new()).await.map(|(peer, _)| (peer, format!("pull offer {peer}")))
    }

    async fn pull_answer(&self, peer: PeerId, _answer: String) -> Result<(), RelayError> {
        self.lock().peers.get(&peer).map(|_| ()).ok_or(RelayError::UnknownPeer)
    }

    async fn close(&self, peer: PeerId) -> Result<(), RelayError> {
        let mut state = self.lock();
        let (stream, publishes) = state.peers.remove(&peer).ok_or(RelayError::UnknownPeer)?;
        state.closed.push(peer);
        let event = if publishes {
            state.publishers.remove(&stream);
            RelayEvent::StreamStopped { stream, peer, bytes: BYTES }
        } else {
            RelayEvent::PlayerStopped { stream, peer }
        };
        state.events.push(event);
        Ok(())
    }

    async fn mute(&self, stream: StreamKey, audio: Option<bool>, video: Option<bool>) -> Result<(), RelayError> {
        let mut state = self.lock();
        if !state.publishers.contains_key(&stream) {
            return Err(RelayError::UnknownStream(stream.stream_id));
        }
        state.mutes.push((stream, audio, video));
        Ok(())
    }

    async fn mute_player(
        &self,
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError> {
        let mut state = self.lock();
        match state.peers.get(&peer) {
            None => return Err(RelayError::UnknownPeer),
            Some((_, true)) => return Err(RelayError::NotAPlayer),
            Some((_, false)) => {}
        }
        let mute = state.player_mutes.entry(peer).or_default();
        mute.audio = audio.unwrap_or(mute.audio);
        mute.video = video.unwrap_or(mute.video);
        Ok(*mute)
    }

    /// Records the choice; the fake's streams have no simulcast layers.
    async fn set_player_layer(&self, peer: PeerId, choice: LayerChoice) -> Result<u8, RelayError> {
        let mut state = self.lock();
        match state.peers.get(&peer) {
            None => return Err(RelayError::UnknownPeer),
            Some((_, true)) => return Err(RelayError::NotAPlayer),
            Some((_, false)) => {}
        }
        state.player_layers.insert(peer, choice);
        Ok(0)
    }

    async fn link_levels(&self) -> Result<Vec<(PeerId, Level)>, RelayError> {
        Ok(self.lock().levels.clone())
    }

    fn load(&self) -> RelayLoad {
        let state = self.lock();
        RelayLoad { peers: state.peers.len(), streams: state.publishers.len() }
    }

    fn stats(&self) -> RelayStats {
        RelayStats::default()
    }
}
