//! The live publish/play sessions of this node's relay, indexed every way they are looked up:
//! by their `Location` id (HTTP `DELETE` and player mutes), by relay peer (relay events), by
//! stream (a publisher ending, a stream's mute) and by signaling session (a session leaving,
//! `stopPlayingStream`). Every lookup is a map access; none scans the sessions.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::auth::grant::{GrantClaims, MediaAction};
use crate::relay::PeerId;

/// One relay peer and the grant that opened it.
#[derive(Debug, Clone)]
pub struct MediaSession {
    /// The random id of its `Location`: knowing it is what allows `DELETE` (as WHIP intends).
    pub id: String,
    pub peer: PeerId,
    pub grant: GrantClaims,
}

/// A stream as the registry indexes it: its app and stream id.
type StreamIndex = (u32, String);

#[derive(Default)]
struct Indexes {
    by_peer: HashMap<PeerId, MediaSession>,
    by_id: HashMap<String, PeerId>,
    by_stream: HashMap<StreamIndex, BTreeSet<PeerId>>,
    by_signaling: HashMap<String, BTreeSet<PeerId>>,
}

impl Indexes {
    fn peers<'a>(&'a self, peers: Option<&'a BTreeSet<PeerId>>) -> impl Iterator<Item = &'a MediaSession> + 'a {
        peers.into_iter().flatten().filter_map(|peer| self.by_peer.get(peer))
    }
}

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Indexes>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Indexes> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new session under a fresh random id and returns that id.
    pub fn insert(&self, peer: PeerId, grant: GrantClaims) -> String {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let id = hex::encode(bytes);
        let mut index = self.lock();
        index.by_id.insert(id.clone(), peer);
        index.by_stream.entry((grant.app_id, grant.stream_id.clone())).or_default().insert(peer);
        if let Some(session_id) = &grant.session_id {
            index.by_signaling.entry(session_id.clone()).or_default().insert(peer);
        }
        if let Some(replaced) = index.by_peer.insert(peer, MediaSession { id: id.clone(), peer, grant }) {
            // A relay never reuses a peer id; should it, the older entry's other indexes go.
            index.by_id.remove(&replaced.id);
        }
        id
    }

    /// Forgets a session (its relay peer ended) and returns what it was.
    pub fn remove(&self, peer: PeerId) -> Option<MediaSession> {
        let mut index = self.lock();
        let session = index.by_peer.remove(&peer)?;
        index.by_id.remove(&session.id);
        let stream = (session.grant.app_id, session.grant.stream_id.clone());
        if let Some(peers) = index.by_stream.get_mut(&stream) {
            peers.remove(&peer);
            if peers.is_empty() {
                index.by_stream.remove(&stream);
            }
        }
        if let Some(session_id) = &session.grant.session_id
            && let Some(peers) = index.by_signaling.get_mut(session_id)
        {
            peers.remove(&peer);
            if peers.is_empty() {
                index.by_signaling.remove(session_id);
            }
        }
        Some(session)
    }

    /// The peer behind a `Location` id.
    pub fn peer_of(&self, id: &str) -> Option<PeerId> {
        self.lock().by_id.get(id).copied()
    }

    /// The session of a live peer.
    pub fn get(&self, peer: PeerId) -> Option<MediaSession> {
        self.lock().by_peer.get(&peer).cloned()
    }

    /// The peers of a stream in one role (its publisher, or its players).
    pub fn stream_peers(&self, app_id: u32, stream_id: &str, action: MediaAction) -> Vec<PeerId> {
        let index = self.lock();
        let peers = index.by_stream.get(&(app_id, stream_id.to_owned()));
        index.peers(peers).filter(|s| s.grant.action == action).map(|s| s.peer).collect()
    }

    /// The peers a signaling session opened, optionally only those of one stream in one role.
    pub fn session_peers(&self, session_id: &str, only: Option<(&str, MediaAction)>) -> Vec<PeerId> {
        let index = self.lock();
        index
            .peers(index.by_signaling.get(session_id))
            .filter(|s| {
                only.is_none_or(|(stream_id, action)| s.grant.stream_id == stream_id && s.grant.action == action)
            })
            .map(|s| s.peer)
            .collect()
    }

    /// Every live session (for periodic work over all of them: link levels, a drain).
    pub fn all(&self) -> Vec<MediaSession> {
        self.lock().by_peer.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().by_peer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn grant(stream_id: &str, action: MediaAction, session_id: Option<&str>) -> GrantClaims {
        GrantClaims {
            iss: "huddle".into(),
            aud: "relay".into(),
            app_id: 7,
            room_id: "room".into(),
            user_id: "u".into(),
            stream_id: stream_id.into(),
            action,
            session_id: session_id.map(str::to_owned),
            user_name: None,
            extra_info: None,
            edge: false,
            iat: 0,
            exp: 0,
            jti: "j".into(),
        }
    }

    #[test]
    fn every_index_finds_a_session_until_it_is_removed() {
        let registry = Registry::default();
        let publisher = registry.insert(1, grant("s", MediaAction::Publish, Some("a")));
        registry.insert(2, grant("s", MediaAction::Play, Some("b")));
        registry.insert(3, grant("s", MediaAction::Play, Some("a")));
        registry.insert(4, grant("t", MediaAction::Play, Some("a")));
        assert_eq!(registry.peer_of(&publisher), Some(1));
        assert_eq!(registry.stream_peers(7, "s", MediaAction::Publish), vec![1]);
        assert_eq!(registry.stream_peers(7, "s", MediaAction::Play), vec![2, 3]);
        assert_eq!(registry.stream_peers(8, "s", MediaAction::Play), Vec::<PeerId>::new());
        assert_eq!(registry.session_peers("a", None), vec![1, 3, 4]);
        assert_eq!(registry.session_peers("a", Some(("s", MediaAction::Play))), vec![3]);
        let removed = registry.remove(1).map(|s| s.id);
        assert_eq!(removed.as_deref(), Some(publisher.as_str()));
        assert_eq!(registry.peer_of(&publisher), None);
        assert!(registry.remove(1).is_none());
        assert_eq!(registry.stream_peers(7, "s", MediaAction::Publish), Vec::<PeerId>::new());
        assert_eq!(registry.session_peers("a", None), vec![3, 4]);
        for peer in [2, 3, 4] {
            registry.remove(peer);
        }
        assert!(registry.is_empty());
        let index = registry.lock();
        assert!(index.by_stream.is_empty() && index.by_signaling.is_empty() && index.by_id.is_empty());
    }
}
