//! Huddle: self-hosted real-time audio/video rooms.
//!
//! Modules, one concern each: [`auth`] (tokens, media grants, request signatures, nonces),
//! [`store`] (apps in SQLite or PostgreSQL), [`rooms`] (live room state and its events, in
//! memory or Redis), [`signaling`] (the websocket), [`relay`] (the WebRTC media engine),
//! [`media`] (media sessions: the relay node, its
//! session registry, media grants, relay events applied to rooms), [`api`] (REST, WHIP/WHEP, assets), [`usage`] (session and stream records, minutes),
//! [`webhooks`] (the outbox and its dispatcher), [`metrics`], [`config`], [`error`] (the one mapping to
//! `{code, message}`), [`admin`] (room administration for business servers), [`app`] (wiring),
//! [`loadtest`] (load generators), [`ids`] (id rules).

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod ids;
pub mod loadtest;
pub mod media;
pub mod metrics;
pub mod quality;
pub mod relay;
pub mod rooms;
pub mod signaling;
pub mod store;
pub mod usage;
pub mod webhooks;
