//! Durable data: the apps (tenants: id, name, server secret, limits).
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
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            sqlx::Error::Database(db) if database_unavailable(db.as_ref()) => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Database(err),
        }
    }
}

/// Errors that say the database itself is gone or unusable, not that a query was wrong:
/// the client should retry later (1007), and `/readyz` fails meanwhile.
fn database_unavailable(error: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(pg) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        // 08 connection exception, 53 insufficient resources, 57 operator intervention (the
        // server shutting down, the connection terminated), 58 system error, 3D000 the
        // database does not exist (dropped while running), 55000 it does not accept
        // connections now (ALLOW_CONNECTIONS false, maintenance), 42P01 a table does not exist.
        return ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class))
            || ["3D000", "55000", "42P01"].contains(&code);
    }
    if error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = error.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff);
        // BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB; and a schema that is
        // not there (the file was replaced by an empty one).
        return matches!(primary, Some(5 | 6 | 8 | 10 | 11 | 13 | 14 | 26))
            || error.message().starts_with("no such table");
    }
    false
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
    /// The SQLite file the store opened, to notice when it is deleted or replaced.
    sqlite_file: Option<FileIdentity>,
}

/// Which file a path named when the store opened it (device and inode).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    path: std::path::PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        Ok(FileIdentity { path: path.to_owned(), device: metadata.dev(), inode: metadata.ino() })
    }

    fn check(&self) -> Result<(), StoreError> {
        match FileIdentity::of(&self.path) {
            Ok(now) if now == *self => Ok(()),
            Ok(_) => Err(StoreError::Unavailable(format!("{} was replaced by another file", self.path.display()))),
            Err(err) => Err(StoreError::Unavailable(format!("{}: {err}", self.path.display()))),
        }
    }
}

impl Store {
    /// Connects and applies pending migrations. A SQLite file and its directory are created
    /// here, when missing, and nowhere else: the pool's connections open the file read-write
    /// without creating it, so a database file deleted while running makes requests fail
    /// (1007) instead of silently starting an empty database.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let (url, sqlite_file) = match backend {
            Backend::Sqlite => match prepare_sqlite_url(url)? {
                (url, Some(path)) => {
                    let identity = FileIdentity::of(&path)
                        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
                    (url, Some(identity))
                }
                (url, None) => (url, None),
            },
            Backend::Postgres => (url.to_owned(), None),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite serialises writers anyway; a few readers are enough.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // With the write-ahead log, a commit is an append that survives a crash
                        // of this process at once; it reaches the disk at the next checkpoint
                        // (a power loss may lose the last commits, never corrupts the file).
                        // Logins write a usage record each: see docs/OPERATING.md.
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // Persistent in the file; readers no longer wait for the writer either.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let store = Store { pool, backend, apps: AppCache::new(apps::CACHE_TTL), sqlite_file };
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

    /// The pool, unless the SQLite file it reads was deleted or replaced: connections still
    /// open would go on serving the orphaned file, so every query refuses instead (1007).
    pub(crate) fn pool(&self) -> Result<&AnyPool, StoreError> {
        if let Some(file) = &self.sqlite_file {
            file.check()?;
        }
        Ok(&self.pool)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For `/readyz`: the database answers, holds the schema, and (SQLite) is still the file
    /// the store opened.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT app_id FROM apps LIMIT 1").fetch_optional(self.pool()?).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite:path` / `sqlite://path` → a URL that opens the file read-write without creating it,
/// after creating its directory and the (empty) file when missing; plus the file's path
/// (`None` for in-memory databases).
fn prepare_sqlite_url(url: &str) -> Result<(String, Option<std::path::PathBuf>), StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Ok((url.to_owned(), None));
    }
    let file = Path::new(path);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    // An empty file is an empty SQLite database; migrations fill it.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", file.display())))?;
    let others = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode="));
    let query = others.chain(std::iter::once("mode=rw")).collect::<Vec<_>>().join("&");
    Ok((format!("sqlite://{path}?{query}"), Some(file.to_owned())))
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
    fn sqlite_files_are_created_once_and_opened_without_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/huddle.db");
        let (url, file) = prepare_sqlite_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rw", path.display()));
        assert_eq!(file.as_deref(), Some(path.as_path()));
        assert!(path.is_file());
        assert_eq!(prepare_sqlite_url("sqlite::memory:").unwrap(), ("sqlite::memory:".to_owned(), None));
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
