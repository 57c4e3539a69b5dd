//! The `apps` table and a short-lived cache in front of it.
//!
//! Every signed request needs its app's secret; the cache keeps that off the database on the
//! hot path. A rotated secret or a disabled app therefore takes effect on every worker within
//! [`CACHE_TTL`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Store, StoreError};
use crate::auth::{secret, unix_now};

/// How long a looked-up app is served from memory.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Default room size limit of a new app.
pub const DEFAULT_MAX_USERS_PER_ROOM: u32 = 1000;

/// One tenant of the service.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: u32,
    pub name: String,
    pub server_secret: String,
    pub created_at: i64,
    pub disabled: bool,
    pub max_users_per_room: u32,
    pub webhook_url: Option<String>,
    /// Signs webhook requests (`X-Huddle-Webhook-Signature`); set together with the URL.
    pub webhook_secret: Option<String>,
}

impl fmt::Debug for App {
    // The secret must never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("app_id", &self.app_id)
            .field("name", &self.name)
            .field("server_secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .field("max_users_per_room", &self.max_users_per_room)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What `huddle app create` asks for; unset fields get generated or default values.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub app_id: Option<u32>,
    pub name: String,
    pub server_secret: Option<String>,
    pub max_users_per_room: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct AppRow {
    app_id: i64,
    name: String,
    server_secret: String,
    created_at: i64,
    disabled: i64,
    max_users_per_room: i64,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
}

impl From<AppRow> for App {
    fn from(row: AppRow) -> Self {
        App {
            // The table's CHECK constraints keep both values in range.
            app_id: u32::try_from(row.app_id).unwrap_or(0),
            name: row.name,
            server_secret: row.server_secret,
            created_at: row.created_at,
            disabled: row.disabled != 0,
            max_users_per_room: u32::try_from(row.max_users_per_room).unwrap_or(u32::MAX),
            webhook_url: row.webhook_url,
            webhook_secret: row.webhook_secret,
        }
    }
}

/// The column list of [`AppRow`], as a macro so that queries stay `&'static str` (sqlx
/// refuses runtime-built SQL).
macro_rules! select_app {
    ($rest:literal) => {
        concat!(
            "SELECT app_id, name, server_secret, created_at, disabled, max_users_per_room, webhook_url, webhook_secret FROM apps ",
            $rest
        )
    };
}

/// How many times `create_app` draws a new random id after a collision.
const ID_ATTEMPTS: usize = 8;

impl Store {
    /// Creates an app. Without an explicit id, a random 9–10 digit id is drawn; without a
    /// secret, one is generated.
    pub async fn create_app(&self, new: NewApp) -> Result<App, StoreError> {
        let server_secret = new.server_secret.unwrap_or_else(secret::generate);
        for _ in 0..ID_ATTEMPTS {
            let app_id = new.app_id.unwrap_or_else(|| rand::rng().random_range(100_000_000..=4_294_967_295));
            let app = App {
                app_id,
                name: new.name.clone(),
                server_secret: server_secret.clone(),
                created_at: unix_now(),
                disabled: false,
                max_users_per_room: new.max_users_per_room.unwrap_or(DEFAULT_MAX_USERS_PER_ROOM),
                webhook_url: None,
                webhook_secret: None,
            };
            let inserted = sqlx::query(
                "INSERT INTO apps (app_id, name, server_secret, created_at, disabled, max_users_per_room) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_id) DO NOTHING",
            )
            .bind(i64::from(app.app_id))
            .bind(&app.name)
            .bind(&app.server_secret)
            .bind(app.created_at)
            .bind(i64::from(app.disabled))
            .bind(i64::from(app.max_users_per_room))
            .execute(self.pool()?)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(app);
            }
            if new.app_id.is_some() {
                return Err(StoreError::AppExists(app_id));
            }
        }
        Err(StoreError::NoFreeAppId(ID_ATTEMPTS))
    }

    pub async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(select_app!("ORDER BY app_id")).fetch_all(self.pool()?).await?;
        Ok(rows.into_iter().map(App::from).collect())
    }

    /// Reads an app from the database, bypassing the cache.
    pub async fn find_app(&self, app_id: u32) -> Result<Option<App>, StoreError> {
        let row: Option<AppRow> = sqlx::query_as(select_app!("WHERE app_id = $1"))
            .bind(i64::from(app_id))
            .fetch_optional(self.pool()?)
            .await?;
        Ok(row.map(App::from))
    }

    /// Reads an app through the cache (the signed-request hot path).
    pub async fn app(&self, app_id: u32) -> Result<Option<App>, StoreError> {
        if let Some(app) = self.apps.get(app_id, Instant::now()) {
            return Ok(Some(app));
        }
        let app = self.find_app(app_id).await?;
        if let Some(app) = &app {
            self.apps.put(app.clone(), Instant::now());
        }
        Ok(app)
    }

    /// An app that may be used right now: known and not disabled (read through the cache).
    pub async fn active_app(&self, app_id: u32) -> Result<App, StoreError> {
        let app = self.app(app_id).await?.ok_or(StoreError::AppNotFound(app_id))?;
        if app.disabled {
            return Err(StoreError::AppDisabled(app_id));
        }
        Ok(app)
    }

    /// Replaces the app's server secret with a fresh one and returns the app.
    pub async fn rotate_secret(&self, app_id: u32) -> Result<App, StoreError> {
        let updated = sqlx::query("UPDATE apps SET server_secret = $1 WHERE app_id = $2")
            .bind(secret::generate())
            .bind(i64::from(app_id))
            .execute(self.pool()?)
            .await?
            .rows_affected();
        self.updated_app(app_id, updated).await
    }

    /// Sets (or, with `None`, removes) the app's webhook URL and signing secret.
    pub async fn set_webhook(&self, app_id: u32, webhook: Option<(String, String)>) -> Result<App, StoreError> {
        let (url, secret) = webhook.unzip();
        let updated = sqlx::query("UPDATE apps SET webhook_url = $1, webhook_secret = $2 WHERE app_id = $3")
            .bind(url)
            .bind(secret)
            .bind(i64::from(app_id))
            .execute(self.pool()?)
            .await?
            .rows_affected();
        self.updated_app(app_id, updated).await
    }

    /// After an `UPDATE` of one app: the cache forgets it, and the app as it is now (or
    /// `AppNotFound` when the update touched no row).
    async fn updated_app(&self, app_id: u32, rows_updated: u64) -> Result<App, StoreError> {
        self.apps.forget(app_id);
        if rows_updated == 0 {
            return Err(StoreError::AppNotFound(app_id));
        }
        self.find_app(app_id).await?.ok_or(StoreError::AppNotFound(app_id))
    }

    /// Enables or disables an app; a disabled app's requests and tokens are refused.
    pub async fn set_app_disabled(&self, app_id: u32, disabled: bool) -> Result<(), StoreError> {
        let updated = sqlx::query("UPDATE apps SET disabled = $1 WHERE app_id = $2")
            .bind(i64::from(disabled))
            .bind(i64::from(app_id))
            .execute(self.pool()?)
            .await?
            .rows_affected();
        self.apps.forget(app_id);
        if updated == 0 { Err(StoreError::AppNotFound(app_id)) } else { Ok(()) }
    }
}

/// Found apps, each kept for a TTL. Unknown ids are not cached, so probing random ids
/// cannot grow it.
#[derive(Clone)]
pub struct AppCache {
    ttl: Duration,
    entries: Arc<RwLock<HashMap<u32, (App, Instant)>>>,
}

impl AppCache {
    pub fn new(ttl: Duration) -> Self {
        AppCache { ttl, entries: Arc::default() }
    }

    fn get(&self, app_id: u32, now: Instant) -> Option<App> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&app_id)
            .filter(|(_, fetched)| now.saturating_duration_since(*fetched) < self.ttl)
            .map(|(app, _)| app.clone())
    }

    fn put(&self, app: App, now: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.insert(app.app_id, (app, now));
    }

    fn forget(&self, app_id: u32) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(&app_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: u32) -> App {
        App {
            app_id: id,
            name: "n".into(),
            server_secret: "s".repeat(64),
            created_at: 0,
            disabled: false,
            max_users_per_room: 10,
            webhook_url: None,
            webhook_secret: Some("w".repeat(32)),
        }
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let text = format!("{:?}", app(1));
        assert!(!text.contains("sss") && !text.contains("www"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn cache_entries_expire_after_the_ttl() {
        let cache = AppCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        cache.put(app(1), t0);
        assert_eq!(cache.get(1, t0 + Duration::from_secs(4)), Some(app(1)));
        assert_eq!(cache.get(1, t0 + Duration::from_secs(5)), None);
        cache.forget(1);
        assert_eq!(cache.get(1, t0), None);
    }
}
