//! Durable data: apps now; usage records and the webhook outbox later.
//!
//! One set of queries serves SQLite (embedded default) and PostgreSQL (shared by workers)
//! through sqlx's `Any` driver; the schema sticks to `BIGINT` and `TEXT` so both
//! dialects decode the same way. Migrations for each live under `migrations/`.

mod apps;

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use thiserror::Error;

pub use apps::{App, AppCache, NewApp};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database unreachable: {0}")]
    Unavailable(String),
    #[error("unsupported DATABASE_URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("no app with id {0}")]
    AppNotFound(u32),
    #[error("app {0} is disabled")]
    AppDisabled(u32),
    #[error("an app with id {0} already exists")]
    AppExists(u32),
    #[error("could not draw a free app id after {0} attempts")]
    NoFreeAppId(usize),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(err.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A connection pool plus the app cache in front of it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    apps: AppCache,
}

impl Store {
    /// Connects and applies pending migrations. A SQLite file and its directory are created
    /// when missing.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite serialises writers anyway; a few readers are enough.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await?;
        let store = Store { pool, backend, apps: AppCache::new(apps::CACHE_TTL) };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.run(&self.pool).await.map_err(|e| StoreError::Migration(e.to_string()))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial query, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite:path` / `sqlite://path` → a URL that creates the file, after creating its directory.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mode = if query.contains("mode=") { String::new() } else { "mode=rwc".to_owned() };
    let query = [query, mode.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join("&");
    Ok(format!("sqlite://{path}?{query}"))
}

/// Hides the password in a database URL before it reaches a log line or error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/huddle.db");
        let url = prepare_sqlite_url(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(prepare_sqlite_url("sqlite::memory:").unwrap(), "sqlite::memory:");
    }

    #[test]
    fn urls_are_redacted_and_classified() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(Backend::of_url("postgresql://h/db").unwrap(), Backend::Postgres);
        assert!(
            matches!(Backend::of_url("mysql://u:pw@h/db"), Err(StoreError::UnsupportedUrl(u)) if !u.contains("pw"))
        );
    }
}
