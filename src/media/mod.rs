//! Media sessions: this node's relay, the publish/play sessions it serves (indexed in
//! [`registry`]), media grants ([`grants`]), and the one consumer of the relay's events that
//! brings rooms up to date ([`events`]). The HTTP face (`api::media`, WHIP/WHEP) and the
//! websocket face (`signaling::media`) are thin adapters over [`MediaService`].
//!
//! The service reaches the relay through [`RelayPort`], which the str0m relay implements;
//! the relay→room rules are unit-tested against a fake one.

pub mod events;
pub mod grants;
pub mod levels;
pub mod registry;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::HOST;
use async_trait::async_trait;

use crate::auth::grant::{GrantClaims, MediaAction};
use crate::quality::Level;
use crate::relay::{LayerChoice, PeerId, PlayerMute, Relay, RelayError, RelayLoad, RelayStats, StreamKey};
use crate::rooms::RoomService;
use crate::store::Store;
use crate::usage::Usage;
use registry::{MediaSession, Registry};

/// What the media service needs of a relay. Peers are created from SDP offers; the relay
/// reports what becomes of them as [`crate::relay::RelayEvent`]s, which reach
/// [`MediaService::on_relay_event`] through [`MediaService::follow`] (wired once, in `app`).
#[async_trait]
pub trait RelayPort: Send + Sync + 'static {
    /// Opens a publisher of `stream`: its peer id and the SDP answer.
    async fn publish(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError>;
    /// Opens a player of `stream` (published on this relay): its peer id and the SDP answer.
    async fn play(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError>;
    /// Starts pulling `stream` from another relay (cascade edge): the session and its offer.
    async fn pull_offer(&self, stream: StreamKey) -> Result<(PeerId, String), RelayError>;
    /// Completes a pull with the origin relay's answer.
    async fn pull_answer(&self, peer: PeerId, answer: String) -> Result<(), RelayError>;
    /// Ends a peer (a publisher takes its players along); its end is reported as an event.
    async fn close(&self, peer: PeerId) -> Result<(), RelayError>;
    /// Stops or resumes forwarding a stream's audio/video to all of its players.
    async fn mute(&self, stream: StreamKey, audio: Option<bool>, video: Option<bool>) -> Result<(), RelayError>;
    /// Stops or resumes what one player receives.
    async fn mute_player(
        &self,
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError>;
    /// Chooses which simulcast layer one player receives; returns the stream's layer count.
    async fn set_player_layer(&self, peer: PeerId, choice: LayerChoice) -> Result<u8, RelayError>;
    /// The link quality the relay measured for each live peer.
    async fn link_levels(&self) -> Result<Vec<(PeerId, Level)>, RelayError>;
    fn load(&self) -> RelayLoad;
    /// The load of each engine thread; a relay without threads of its own is one.
    fn thread_loads(&self) -> Vec<RelayLoad> {
        vec![self.load()]
    }
    fn stats(&self) -> RelayStats;
}

#[async_trait]
impl RelayPort for Relay {
    async fn publish(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        Relay::publish(self, stream, offer).await
    }
    async fn play(&self, stream: StreamKey, offer: String) -> Result<(PeerId, String), RelayError> {
        Relay::play(self, stream, offer).await
    }
    async fn pull_offer(&self, stream: StreamKey) -> Result<(PeerId, String), RelayError> {
        Relay::pull_offer(self, stream).await
    }
    async fn pull_answer(&self, peer: PeerId, answer: String) -> Result<(), RelayError> {
        Relay::pull_answer(self, peer, answer).await
    }
    async fn close(&self, peer: PeerId) -> Result<(), RelayError> {
        Relay::close(self, peer).await
    }
    async fn mute(&self, stream: StreamKey, audio: Option<bool>, video: Option<bool>) -> Result<(), RelayError> {
        Relay::mute(self, stream, audio, video).await
    }
    async fn mute_player(
        &self,
        peer: PeerId,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError> {
        Relay::mute_player(self, peer, audio, video).await
    }
    async fn set_player_layer(&self, peer: PeerId, choice: LayerChoice) -> Result<u8, RelayError> {
        Relay::set_player_layer(self, peer, choice).await
    }
    async fn link_levels(&self) -> Result<Vec<(PeerId, Level)>, RelayError> {
        Relay::link_levels(self).await
    }
    fn load(&self) -> RelayLoad {
        Relay::load(self)
    }
    fn thread_loads(&self) -> Vec<RelayLoad> {
        Relay::thread_loads(self)
    }
    fn stats(&self) -> RelayStats {
        Relay::stats(self)
    }
}

/// What the relay's events change besides the relay itself: rooms, and usage records.
#[derive(Clone)]
pub struct RoomsLink {
    pub rooms: RoomService,
    /// For an encoder's room size limit.
    pub store: Store,
    pub usage: Usage,
}

/// This node's relay and the publish/play sessions it serves.
pub struct MediaService {
    relay: Arc<dyn RelayPort>,
    /// Base URL clients reach this node's HTTP at (for the URLs handed out with grants, and
    /// announced to other nodes): `--public-url`, else `http://` plus the bound address.
    public_url: String,
    /// No `--public-url` and no other node to tell (no Redis): each client is handed URLs on
    /// the host it reached this node at, which works even when bound to `0.0.0.0`.
    follows_host: bool,
    sessions: Registry,
    link: RoomsLink,
    /// Pulls from other relays (cascade), one at a time per stream: a burst of players of a
    /// stream this relay does not hold yet starts one pull, and the rest wait for it. Pulls of
    /// other streams do not wait.
    pulls: std::sync::Mutex<HashMap<StreamKey, Arc<tokio::sync::Mutex<()>>>>,
    /// For offering pulls to origin relays.
    http: reqwest::Client,
}

/// Longest wait for an origin relay to answer a pull.
const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl MediaService {
    pub fn new(relay: Arc<dyn RelayPort>, public_url: String, follows_host: bool, link: RoomsLink) -> Self {
        MediaService {
            relay,
            public_url,
            follows_host,
            sessions: Registry::default(),
            link,
            pulls: Default::default(),
            http: reqwest::Client::builder().timeout(PULL_TIMEOUT).build().unwrap_or_default(),
        }
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn follows_host(&self) -> bool {
        self.follows_host
    }

    /// The base URL for a client whose request reached this node at `seen` (see [`base_url_of`]).
    pub fn base_url<'a>(&'a self, seen: Option<&'a str>) -> &'a str {
        match seen {
            Some(seen) if self.follows_host => seen,
            _ => &self.public_url,
        }
    }

    pub fn url_for(&self, action: MediaAction, stream_id: &str, seen: Option<&str>) -> String {
        relay_endpoint(self.base_url(seen), action, stream_id)
    }

    pub fn load(&self) -> RelayLoad {
        self.relay.load()
    }

    /// The load of each engine thread.
    pub fn thread_loads(&self) -> Vec<RelayLoad> {
        self.relay.thread_loads()
    }

    pub fn stats(&self) -> RelayStats {
        self.relay.stats()
    }

    /// Opens a publish or play session for a checked grant: its `Location` id and the SDP
    /// answer. A stream to play that this relay does not hold is pulled from the relay that
    /// holds it (the room's record of the stream says which) — this relay becomes a cascade
    /// edge for it; a stream no relay holds is refused ([`RelayError::UnknownStream`]).
    pub async fn open(&self, claims: GrantClaims, offer: String) -> Result<(String, String), RelayError> {
        let key = StreamKey { app_id: claims.app_id, stream_id: claims.stream_id.clone() };
        let (peer, answer) = match claims.action {
            MediaAction::Publish => self.relay.publish(key, offer).await?,
            MediaAction::Play => match self.relay.play(key.clone(), offer.clone()).await {
                Err(RelayError::UnknownStream(_)) if !claims.edge => {
                    self.pull(&key).await?;
                    self.relay.play(key, offer).await?
                }
                other => other?,
            },
        };
        Ok((self.sessions.insert(peer, claims), answer))
    }

    /// Makes this relay a cascade edge for `key`: offers to play it at the relay that holds it
    /// (with a grant this relay mints from the app's secret) and completes the pull with the
    /// answer. Done when the stream is already held here. Edge grants are never pulled for
    /// (see `open`), so two relays cannot pull a stream from each other in a loop.
    async fn pull(&self, key: &StreamKey) -> Result<(), RelayError> {
        let gate = {
            let mut pulls = self.pulls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Entries nobody waits on any more go; what is left is streams being pulled now.
            pulls.retain(|_, gate| Arc::strong_count(gate) > 1);
            Arc::clone(pulls.entry(key.clone()).or_default())
        };
        let _one_at_a_time = gate.lock().await;
        let unknown = || RelayError::UnknownStream(key.stream_id.clone());
        let unavailable = |why: String| RelayError::Unavailable(format!("cannot pull the stream: {why}"));
        let found = self.link.rooms.backend().find_stream(key.app_id, &key.stream_id).await;
        let (room, origin) = match found {
            Ok(Some((room, stream))) => (room, stream.relay_url.ok_or_else(unknown)?),
            Ok(None) => return Err(unknown()),
            Err(err) => return Err(unavailable(err.to_string())),
        };
        if origin.trim_end_matches('/') == self.public_url.trim_end_matches('/') {
            return Err(unknown());
        }
        let app = self.link.store.active_app(key.app_id).await.map_err(|e| unavailable(e.to_string()))?;
        let (peer, offer) = match self.relay.pull_offer(key.clone()).await {
            // Pulled (or published) here meanwhile.
            Err(RelayError::AlreadyPublished(_)) => return Ok(()),
            other => other?,
        };
        let now = crate::auth::unix_now();
        let answer = match crate::auth::grant::issue_edge(
            key.app_id,
            app.server_secret.as_bytes(),
            &room.room_id,
            &key.stream_id,
            now,
        ) {
            Ok((grant, _)) => self.offer_to_origin(&origin, &key.stream_id, &grant, offer).await,
            Err(err) => Err(err.to_string()),
        };
        let answered = match answer {
            Ok(answer) => self.relay.pull_answer(peer, answer).await,
            Err(why) => Err(unavailable(why)),
        };
        if let Err(err) = answered {
            tracing::warn!(stream = %key.stream_id, %origin, error = %err, "relay cascade pull failed");
            let _ = self.relay.close(peer).await;
            return Err(err);
        }
        tracing::info!(stream = %key.stream_id, %origin, "pulling a stream from its relay (cascade edge)");
        Ok(())
    }

    /// POSTs a pull's offer to the origin relay's play endpoint; its SDP answer.
    async fn offer_to_origin(
        &self,
        origin: &str,
        stream_id: &str,
        grant: &str,
        offer: String,
    ) -> Result<String, String> {
        let url = relay_endpoint(origin, MediaAction::Play, stream_id);
        let response = self
            .http
            .post(&url)
            .bearer_auth(grant)
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer)
            .send()
            .await
            .map_err(|e| format!("the origin relay is unreachable: {}", e.without_url()))?;
        let status = response.status();
        let body =
            response.text().await.map_err(|e| format!("the origin relay's answer was cut: {}", e.without_url()))?;
        if !status.is_success() {
            let excerpt: String = body.chars().take(200).collect();
            return Err(format!("the origin relay refused ({status}): {excerpt}"));
        }
        Ok(body)
    }

    /// Ends the session behind a `Location` id. Its entry stays until the relay reports the
    /// end, so that the report can still be tied to its grant (and the room told); a second
    /// call finds the peer gone ([`RelayError::UnknownPeer`]).
    pub async fn end(&self, id: &str) -> Result<(), RelayError> {
        let peer = self.sessions.peer_of(id).ok_or(RelayError::UnknownPeer)?;
        self.relay.close(peer).await
    }

    /// Stops or resumes what the relay sends the player behind a `Location` id.
    pub async fn mute_player(
        &self,
        id: &str,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<PlayerMute, RelayError> {
        let peer = self.sessions.peer_of(id).ok_or(RelayError::UnknownPeer)?;
        self.relay.mute_player(peer, audio, video).await
    }

    /// Chooses the simulcast layer the relay sends the player behind a `Location` id.
    pub async fn set_player_layer(&self, id: &str, choice: LayerChoice) -> Result<u8, RelayError> {
        let peer = self.sessions.peer_of(id).ok_or(RelayError::UnknownPeer)?;
        self.relay.set_player_layer(peer, choice).await
    }

    /// Ends a stream's publisher here (its players end with it).
    pub async fn close_publisher(&self, app_id: u32, stream_id: &str) {
        self.close(self.sessions.stream_peers(app_id, stream_id, MediaAction::Publish)).await;
    }

    /// Ends a signaling session's players of a stream.
    pub async fn close_players_of_session(&self, session_id: &str, stream_id: &str) {
        self.close(self.sessions.session_peers(session_id, Some((stream_id, MediaAction::Play)))).await;
    }

    /// Ends every peer a signaling session opened (it logged out, was kicked, or timed out).
    pub async fn close_session(&self, session_id: &str) {
        self.close(self.sessions.session_peers(session_id, None)).await;
    }

    /// Ends peers; those already gone are skipped.
    async fn close(&self, peers: Vec<PeerId>) {
        for peer in peers {
            if let Err(err) = self.relay.close(peer).await {
                tracing::debug!(peer, error = %err, "relay peer already gone");
            }
        }
    }

    /// The live sessions (for a drain).
    pub fn sessions(&self) -> Vec<MediaSession> {
        self.sessions.all()
    }

    /// Applies a stream's mute flags to this relay if it holds the stream (else nothing).
    pub async fn apply_mute(&self, app_id: u32, stream: &crate::rooms::StreamInfo) {
        let key = StreamKey { app_id, stream_id: stream.stream_id.clone() };
        match self.relay.mute(key, Some(stream.audio_muted), Some(stream.video_muted)).await {
            Ok(()) => tracing::debug!(stream = %stream.stream_id, "applied a mute to the relay"),
            Err(RelayError::UnknownStream(_)) => {}
            Err(err) => tracing::warn!(stream = %stream.stream_id, error = %err, "could not apply a mute to the relay"),
        }
    }
}

/// `http://HOST` from a request's `Host` (`https://` when a proxy says `X-Forwarded-Proto:
/// https`): the base URL the client reached this node at. `None` for a missing or odd `Host`.
pub fn base_url_of(req: &HttpRequest) -> Option<String> {
    let host = req.headers().get(HOST)?.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if host.is_empty() || host.len() > 255 || !host.chars().all(plain) {
        return None;
    }
    let forwarded = req.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let scheme = if forwarded.is_some_and(|p| p.trim().eq_ignore_ascii_case("https")) { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// The WHIP/WHEP endpoint for `action` on the relay at `base`.
pub fn relay_endpoint(base: &str, action: MediaAction, stream_id: &str) -> String {
    let action = match action {
        MediaAction::Publish => "publish",
        MediaAction::Play => "play",
    };
    format!("{}/relay/v1/{action}/{stream_id}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
