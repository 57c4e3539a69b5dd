//! Huddle: self-hosted real-time audio/video rooms.
//!
//! Modules, one concern each: [`auth`] (tokens, request signatures, nonces), [`store`]
//! (apps in SQLite or PostgreSQL), [`api`] (REST), [`metrics`], [`config`], [`error`] (the one
//! mapping to `{code, message}`), [`app`] (wiring). Rooms, signaling and the relay slot in
//! beside them.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod ids;
pub mod loadtest;
pub mod metrics;
pub mod relay;
pub mod rooms;
pub mod signaling;
pub mod store;
