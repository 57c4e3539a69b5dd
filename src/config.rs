//! Command line and environment. Every flag has a `HUDDLE_*` variable; `DATABASE_URL` and
//! `REDIS_URL` are also read under their conventional names. Values are checked in
//! [`ServeArgs::resolve`] so that a bad setting stops start-up with a clear message.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use thiserror::Error;

#[derive(Debug, Parser)]
#[command(name = "huddle", version, about = "Self-hosted real-time audio/video rooms")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, which is also what plain `huddle` runs.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default). Boxed: the settings dwarf the other commands' arguments.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// Manage apps (tenants).
    #[command(subcommand)]
    App(AppCommand),
    /// Mint a user token locally from the store (for scripts and debugging).
    Token(TokenArgs),
    /// Administer an app's live rooms through a running server's admin API (signed with the
    /// app's secret from the store).
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// Participant and stream minutes of an app (the same report as GET /v1/usage).
    Usage(UsageArgs),
    /// Print the OpenAPI document (YAML) that the server serves at /openapi.yaml.
    Openapi,
    /// Load generators to point at a running deployment.
    #[command(subcommand)]
    Loadtest(crate::loadtest::LoadtestCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app and print {"appId", "serverSecret"} as JSON.
    Create(AppCreateArgs),
    /// List apps (without secrets) as JSON lines.
    List(StoreArgs),
    /// Replace an app's server secret and print the new one as JSON.
    RotateSecret(AppIdArgs),
    /// Refuse all requests and tokens of an app.
    Disable(AppIdArgs),
    /// Accept an app's requests and tokens again.
    Enable(AppIdArgs),
    /// Change an app's settings: its webhook URL and signing secret.
    Update(AppUpdateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AppUpdateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: u32,
    /// Where webhook events go (http:// or https://).
    #[arg(long, conflicts_with = "no_webhook")]
    pub webhook_url: Option<String>,
    /// The webhook signing secret (16-128 printable characters); generated when omitted.
    #[arg(long, requires = "webhook_url")]
    pub webhook_secret: Option<String>,
    /// Turn webhooks off (removes the URL and secret).
    #[arg(long)]
    pub no_webhook: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: u32,
    /// Window start (inclusive): unix milliseconds or YYYY-MM-DD (UTC midnight).
    #[arg(long)]
    pub from: String,
    /// Window end (exclusive), as --from.
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum, default_value = "room")]
    pub group_by: crate::usage::GroupBy,
    /// Print the JSON report (as GET /v1/usage returns it) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://PATH` or `postgres://…`. Also read from DATABASE_URL.
    /// Default: a SQLite file in the data directory.
    #[arg(long, env = "HUDDLE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the default SQLite database.
    #[arg(long, env = "HUDDLE_DATA_DIR", default_value = "huddle-data")]
    pub data_dir: PathBuf,
}

impl StoreArgs {
    /// The explicit URL (flag, HUDDLE_DATABASE_URL, then DATABASE_URL through `env`), if any.
    pub fn explicit_url(&self, env: &Env) -> Option<String> {
        self.database_url.clone().filter(|url| !url.is_empty()).or_else(|| non_empty(env, "DATABASE_URL"))
    }

    /// The URL to connect to, defaulting to `DATA_DIR/huddle.db`.
    pub fn url(&self, env: &Env) -> String {
        self.explicit_url(env).unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("huddle.db").display()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct AppCreateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// App id (1–4294967295); random when omitted.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: Option<u32>,
    /// Server secret (32–128 printable characters); 32 random bytes in hex when omitted.
    #[arg(long, conflicts_with = "server_secret")]
    pub secret: Option<String>,
    /// Import an app from ZEGO: its ServerSecret, exactly 32 characters (the AES-256 key of
    /// ZEGO "04" tokens, which are then accepted at login). Needs --app-id (its ZEGO AppID).
    #[arg(long, requires = "app_id")]
    pub server_secret: Option<String>,
    /// Most users one room of this app may hold.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_users_per_room: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct AppIdArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: u32,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: u32,
    #[arg(long)]
    pub user_id: String,
    /// Bind the token to one room.
    #[arg(long)]
    pub room_id: Option<String>,
    /// Grant the publishStream privilege.
    #[arg(long)]
    pub publish: bool,
    /// Restrict publishing to these stream ids (repeatable).
    #[arg(long = "stream-id")]
    pub stream_ids: Vec<String>,
    /// Lifetime in seconds (1–86400).
    #[arg(long, default_value_t = crate::auth::token::DEFAULT_TTL_SECS)]
    pub ttl: u64,
}

#[derive(Debug, Subcommand)]
pub enum RoomsCommand {
    /// List the app's rooms with their user and stream counts.
    List(RoomsListArgs),
    /// List a room's users.
    Users(RoomsUsersArgs),
    /// List a room's streams (publisher, extra info, relay, mute state).
    Streams(RoomsRoomArgs),
    /// Remove users from a room (they get `kickout` 5023), optionally banning them.
    Kick(RoomsKickArgs),
    /// Close a room: remove every member and stream, optionally refusing logins for a while.
    Close(RoomsCloseArgs),
    /// Stop (`on`) or resume (`off`) forwarding a stream's audio and/or video to its players.
    Mute(RoomsMuteArgs),
}

/// What every `huddle rooms` command needs: the server to call and the app to sign as.
#[derive(Debug, Clone, Args)]
pub struct RoomsTarget {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The app whose rooms to administer (its secret is read from the store).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_id: u32,
    /// Base URL of a running Huddle server.
    #[arg(long, env = "HUDDLE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RoomsListArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    /// Start after this room id (`nextCursor` of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Rooms per page (1–500).
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct RoomsUsersArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    #[arg(long)]
    pub room_id: String,
    /// Start after this user id (`nextCursor` of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Users per page (1–500).
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct RoomsRoomArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    #[arg(long)]
    pub room_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct RoomsKickArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    #[arg(long)]
    pub room_id: String,
    /// A user to remove (repeatable, at most 100).
    #[arg(long = "user-id", required = true)]
    pub user_ids: Vec<String>,
    /// Shown to the removed users.
    #[arg(long)]
    pub reason: Option<String>,
    /// Refuse their logins to this room for this many seconds.
    #[arg(long)]
    pub ban_seconds: Option<u64>,
}

/// A mute switch: `on` mutes, `off` unmutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MuteSwitch {
    On,
    Off,
}

impl MuteSwitch {
    pub fn muted(self) -> bool {
        self == MuteSwitch::On
    }
}

#[derive(Debug, Clone, Args)]
pub struct RoomsMuteArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    #[arg(long)]
    pub room_id: String,
    #[arg(long)]
    pub stream_id: String,
    /// Mute (`on`) or unmute (`off`) the stream's audio; omitted: unchanged.
    #[arg(long, value_enum)]
    pub audio: Option<MuteSwitch>,
    /// Mute (`on`) or unmute (`off`) the stream's video; omitted: unchanged.
    #[arg(long, value_enum)]
    pub video: Option<MuteSwitch>,
}

#[derive(Debug, Clone, Args)]
pub struct RoomsCloseArgs {
    #[command(flatten)]
    pub target: RoomsTarget,
    #[arg(long)]
    pub room_id: String,
    /// Shown to every member.
    #[arg(long)]
    pub reason: Option<String>,
    /// Refuse every login to this room for this many seconds.
    #[arg(long)]
    pub ban_seconds: Option<u64>,
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Signaling, REST and the media relay in one process.
    All,
    /// Websocket signaling and REST; media goes to relay nodes found through Redis.
    Signaling,
    /// The media relay (with its HTTP offer/answer and the REST API), no websocket.
    Relay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server (REST, websocket, SDK, demo page) listens on. Port 0 picks a
    /// free port; the chosen address is printed on stdout.
    #[arg(long, env = "HUDDLE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// What this node runs. A split deployment (signaling and relay nodes) shares rooms
    /// and relay addresses through Redis.
    #[arg(long, env = "HUDDLE_ROLE", value_enum, default_value = "all")]
    pub role: Role,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HUDDLE_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Redis URL; when set, rooms, request nonces and relay announcements are shared through
    /// Redis by any number of workers. Also read from
    /// REDIS_URL. Absent: in memory.
    #[arg(long, env = "HUDDLE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Serve GET /dev/token (tokens of the dev app for anyone, no signature). Default: on only
    /// on embedded defaults (neither a database nor Redis configured) while the store holds no
    /// app but the dev app.
    #[arg(long, env = "HUDDLE_DEV", num_args = 0..=1, default_missing_value = "true")]
    pub dev: Option<bool>,
    /// Websocket: how often the server pings, in milliseconds.
    #[arg(long, env = "HUDDLE_WS_HEARTBEAT_INTERVAL_MS", default_value_t = 10_000)]
    pub ws_heartbeat_interval_ms: u64,
    /// Websocket: silence after which a connection counts as dead, in milliseconds.
    #[arg(long, env = "HUDDLE_WS_HEARTBEAT_TIMEOUT_MS", default_value_t = 30_000)]
    pub ws_heartbeat_timeout_ms: u64,
    /// How long a dropped session may be resumed before its user leaves the room, in ms.
    #[arg(long, env = "HUDDLE_RECONNECT_GRACE_MS", default_value_t = 30_000)]
    pub reconnect_grace_ms: u64,
    /// On SIGTERM: how long connected clients get to move to another worker before the
    /// sessions still here end, in ms (0: stop at once).
    #[arg(long, env = "HUDDLE_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
    /// Websocket connections this process accepts at once.
    #[arg(long, env = "HUDDLE_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,
    /// Most unexpired nonces of signed requests kept per app (a nonce is kept while its
    /// request's timestamp is inside the 300 s window); past it, the app's requests get 2008.
    #[arg(long, env = "HUDDLE_NONCE_CAP_PER_APP", default_value_t = crate::auth::nonce::DEFAULT_CAP_PER_APP)]
    pub nonce_cap_per_app: usize,
    /// With Redis: the longest any Redis call may take (ms); a request whose call takes longer
    /// fails with 1007 and leaves nothing behind in Redis. Default: 1000, or a fifth of the
    /// lease when that is shorter.
    #[arg(long, env = "HUDDLE_REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// With Redis: a worker silent this long (ms) is dead and its users are removed.
    #[arg(long, env = "HUDDLE_REDIS_LEASE_MS", default_value_t = 15_000)]
    pub redis_lease_ms: u64,
    /// Relay: UDP address of the first engine's socket (all its peers share that port); with
    /// a fixed port P, N engines use P..P+N-1, with port 0 each takes a free one.
    #[arg(long, env = "HUDDLE_RELAY_UDP_ADDR", default_value = "127.0.0.1:0")]
    pub relay_udp_addr: SocketAddr,
    /// Relay: IP addresses advertised to peers as host candidates (comma-separated); needed
    /// when the UDP address is 0.0.0.0 or behind NAT. Default: the bound address.
    #[arg(long = "relay-public-ip", env = "HUDDLE_RELAY_PUBLIC_IPS", value_delimiter = ',')]
    pub relay_public_ips: Vec<std::net::IpAddr>,
    /// Relay: engine threads, each with its own UDP socket (0: one per core). With a fixed
    /// --relay-udp-addr port P the relay binds P..P+threads-1.
    #[arg(long, env = "HUDDLE_RELAY_THREADS", default_value_t = 0)]
    pub relay_threads: usize,
    /// Relay: send a run of equal-sized datagrams to one peer (a video frame's packets) as one
    /// segmented message (UDP GSO, Linux 4.18+): one trip down the kernel's UDP/IP stack
    /// instead of one per packet. Falls back by itself where the kernel refuses.
    #[arg(long, env = "HUDDLE_RELAY_UDP_SEGMENTATION", value_enum, default_value_t = Switch::On)]
    pub relay_udp_segmentation: Switch,
    /// Relay cascade: a player is sent to another relay node (which pulls the stream from the
    /// stream's relay once and fans it out) when the stream's relay announces at least this
    /// many peers and another relay announces fewer. 0: players always go to the stream's relay.
    #[arg(long, env = "HUDDLE_RELAY_CASCADE_ABOVE", default_value_t = 400)]
    pub relay_cascade_above: u64,
    /// Where this node runs (`eu-west`, `us-east`: any name up to 64 letters, digits, `.`, `_`,
    /// `-`). A relay announces it; signaling sends its clients (which reached this node, the
    /// nearest to them) to relays of its own region: publishers to the least busy there, and
    /// players of a stream held in another region to one there that pulls it (a cascade across
    /// regions). Empty (the default): relays are chosen by load alone.
    #[arg(long, env = "HUDDLE_REGION", default_value = "")]
    pub region: String,
    /// Base URL clients reach this node's HTTP at (used in the relay URLs handed out with
    /// media grants). Default: `http://` plus the bound HTTP address.
    #[arg(long, env = "HUDDLE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// TURN servers handed to clients with every publish and play (comma-separated TURN URIs,
    /// RFC 7065: `turn:HOST:3478?transport=udp,turn:HOST:3478?transport=tcp,turns:HOST:5349?transport=tcp`).
    /// Needs --turn-secret. Default: none (clients reach the relay directly).
    #[arg(long = "turn-urls", env = "HUDDLE_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// The TURN servers' shared secret (coturn's `static-auth-secret` with `use-auth-secret`);
    /// each credential is base64(HMAC-SHA1(secret, "<expiry>:<app id>:<user id>")). Never logged.
    #[arg(long, env = "HUDDLE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<crate::auth::turn::TurnSecret>,
    /// How long a TURN credential can be used to start a relayed connection (60–604800 s).
    #[arg(long, env = "HUDDLE_TURN_CREDENTIAL_TTL_SECS", default_value_t = crate::auth::turn::DEFAULT_TTL_SECS)]
    pub turn_credential_ttl_secs: u64,
    /// Browser origins whose pages may call the HTTP API (CORS) and open the websocket:
    /// comma-separated exact origins (`https://app.example.com,http://localhost:3000`) or `*`.
    /// Huddle's own origin is always allowed. Default: any origin.
    #[arg(long, env = "HUDDLE_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Usage records (one row per session and per published stream) and the webhook events
    /// written with them: `on`, or `off` (nothing is recorded, no webhook is queued).
    #[arg(long, env = "HUDDLE_USAGE_RECORDS", value_enum, default_value = "on")]
    pub usage_records: Switch,
    /// With rooms in Redis: `on` queues usage records instead of waiting for their commit
    /// (logins answer at once; the lease reaper restores the start rows a dead worker left
    /// unwritten), at the cost of per-room event order across workers within the commit delay;
    /// `off`: logins wait for their rows. Without Redis logins always wait.
    #[arg(long, env = "HUDDLE_USAGE_QUEUE", value_enum, default_value = "off")]
    pub usage_queue: Switch,
    /// One webhook request's limit (connect and response), 100–60000 ms.
    #[arg(long, env = "HUDDLE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Delay before the first webhook retry; each further retry doubles it (with jitter).
    #[arg(long, env = "HUDDLE_WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000)]
    pub webhook_retry_base_ms: u64,
    /// Longest delay between two attempts at one webhook event.
    #[arg(long, env = "HUDDLE_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_retry_max_ms: u64,
    /// How long a failing webhook event is retried before it is given up (default 24 h).
    #[arg(long, env = "HUDDLE_WEBHOOK_RETRY_FOR_SECS", default_value_t = 86_400)]
    pub webhook_retry_for_secs: u64,
    /// Webhook events (of different rooms) sent at once per round, 1–1000.
    #[arg(long, env = "HUDDLE_WEBHOOK_BATCH", default_value_t = 64)]
    pub webhook_batch: usize,
    /// Log filter, e.g. `info` or `huddle=debug,actix_web=info`.
    #[arg(long, env = "HUDDLE_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, env = "HUDDLE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid database URL: {0} (expected sqlite://PATH or postgres://USER@HOST/DB)")]
    DatabaseUrl(String),
    #[error("invalid Redis URL: {0} (expected redis://HOST:PORT or rediss://…)")]
    RedisUrl(String),
    #[error("--http-workers must be between 1 and 1024")]
    Workers,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Origins(String),
    #[error("invalid log filter {0:?}: {1}")]
    LogFilter(String, String),
    #[error(transparent)]
    Turn(#[from] crate::auth::turn::TurnConfigError),
}

/// Whether `GET /dev/token` is served. `Auto` (embedded defaults, nothing asked) is decided at
/// start-up from the store: on only while it holds no app but the dev app, so that creating
/// a real app and restarting never leaves a token mint open for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevMode {
    On,
    Off,
    Auto,
}

/// Serve settings after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    pub http_addr: SocketAddr,
    pub http_workers: usize,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub dev: DevMode,
    pub signaling: crate::signaling::SignalingConfig,
    pub redis_lease: std::time::Duration,
    pub redis_timeout: std::time::Duration,
    pub nonce_cap_per_app: usize,
    pub drain_timeout: std::time::Duration,
    pub usage_records: bool,
    /// Usage records are queued, not waited for (only with rooms in Redis).
    pub usage_queue: bool,
    pub webhooks: crate::webhooks::dispatcher::DispatchConfig,
    pub relay: crate::relay::RelayConfig,
    pub public_url: Option<String>,
    /// `None` when not configured: any origin is allowed (and start-up warns unless in dev mode).
    pub allowed_origins: Option<crate::api::cors::AllowedOrigins>,
    /// TURN servers and their shared secret; `None` when not configured.
    pub turn: Option<crate::auth::turn::TurnConfig>,
}

/// A region name: short, and safe to show in logs and announcements.
fn valid_region(region: &str) -> bool {
    region.len() <= 64 && region.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Reads an environment variable (the process's in production, a fixed map in tests).
pub type Env = dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl ServeArgs {
    /// Checks and completes the settings. `env` supplies the conventional `DATABASE_URL` and
    /// `REDIS_URL` (the `HUDDLE_*` variables are read by clap when parsing).
    pub fn resolve(&self, env: &Env) -> Result<Settings, ConfigError> {
        let explicit_db = self.store.explicit_url(env);
        let database_url = self.store.url(env);
        crate::store::Backend::of_url(&database_url)
            .map_err(|_| ConfigError::DatabaseUrl(crate::store::redact_url(&database_url)))?;
        let redis_url = self.redis_url.clone().filter(|url| !url.is_empty()).or_else(|| non_empty(env, "REDIS_URL"));
        if let Some(url) = &redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return Err(ConfigError::RedisUrl(crate::store::redact_url(url)));
        }
        let http_workers = match self.http_workers {
            Some(n) if (1..=1024).contains(&n) => n,
            Some(_) => return Err(ConfigError::Workers),
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        };
        let embedded_defaults = explicit_db.is_none() && redis_url.is_none();
        let ms = std::time::Duration::from_millis;
        if self.ws_heartbeat_interval_ms < 100 || self.ws_heartbeat_timeout_ms <= self.ws_heartbeat_interval_ms {
            return Err(ConfigError::Invalid(
                "--ws-heartbeat-interval-ms must be at least 100 and below --ws-heartbeat-timeout-ms",
            ));
        }
        if self.redis_lease_ms < 1000 {
            return Err(ConfigError::Invalid("--redis-lease-ms must be at least 1000"));
        }
        let redis_timeout_ms = self.redis_timeout_ms.unwrap_or((self.redis_lease_ms / 5).min(1000));
        if !(50..=self.redis_lease_ms / 3).contains(&redis_timeout_ms) {
            return Err(ConfigError::Invalid(
                "--redis-timeout-ms must be at least 50 and at most a third of --redis-lease-ms",
            ));
        }
        if self.relay_udp_addr.ip().is_unspecified() && self.relay_public_ips.is_empty() {
            return Err(ConfigError::Invalid(
                "--relay-udp-addr binds all interfaces: say which IPs peers should use with --relay-public-ip",
            ));
        }
        if self.public_url.as_deref().is_some_and(|u| !u.is_empty() && !u.starts_with("http")) {
            return Err(ConfigError::Invalid("--public-url must start with http:// or https://"));
        }
        // Without Redis the one process answers every request and builds relay URLs from the
        // Host its clients used; with Redis, relays announce a URL to other nodes.
        let announces_url = self.role != Role::Signaling && redis_url.is_some();
        if announces_url && self.http_addr.ip().is_unspecified() && self.public_url.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::Invalid(
                "--http-addr binds all interfaces and relays announce their URL to other nodes through Redis: \
                 set --public-url to the address clients reach this node at",
            ));
        }
        if self.role != Role::All && redis_url.is_none() {
            return Err(ConfigError::Invalid(
                "--role signaling/relay splits a deployment: set --redis-url so the nodes share rooms",
            ));
        }
        if self.relay_threads > crate::relay::MAX_THREADS {
            return Err(ConfigError::Invalid("--relay-threads must be at most 64 (0: one per core)"));
        }
        if !valid_region(&self.region) {
            return Err(ConfigError::Invalid(
                "--region must be at most 64 letters, digits, '.', '_' or '-' (e.g. eu-west), or empty",
            ));
        }
        if self.nonce_cap_per_app < 1000 {
            return Err(ConfigError::Invalid("--nonce-cap-per-app must be at least 1000"));
        }
        if self.drain_timeout_ms > 600_000 {
            return Err(ConfigError::Invalid("--drain-timeout-ms must be at most 600000 (10 minutes)"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid("--max-connections must be at least 1"));
        }
        if !(100..=60_000).contains(&self.webhook_timeout_ms) {
            return Err(ConfigError::Invalid("--webhook-timeout-ms must be between 100 and 60000"));
        }
        if self.webhook_retry_base_ms < 10 || self.webhook_retry_max_ms < self.webhook_retry_base_ms {
            return Err(ConfigError::Invalid(
                "--webhook-retry-base-ms must be at least 10 and at most --webhook-retry-max-ms",
            ));
        }
        if self.webhook_retry_for_secs < 1 {
            return Err(ConfigError::Invalid("--webhook-retry-for-secs must be at least 1 (default 86400: 24 h)"));
        }
        if !(1..=1000).contains(&self.webhook_batch) {
            return Err(ConfigError::Invalid("--webhook-batch must be between 1 and 1000"));
        }
        let allowed_origins = match self.allowed_origins.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(list) => Some(crate::api::cors::AllowedOrigins::parse(list).map_err(ConfigError::Origins)?),
        };
        let turn = crate::auth::turn::TurnConfig::from_settings(
            &self.turn_urls,
            self.turn_secret.as_ref(),
            self.turn_credential_ttl_secs,
        )?;
        let signaling = crate::signaling::SignalingConfig {
            heartbeat_interval: ms(self.ws_heartbeat_interval_ms),
            heartbeat_timeout: ms(self.ws_heartbeat_timeout_ms),
            reconnect_grace: ms(self.reconnect_grace_ms),
            max_connections: self.max_connections,
            cascade_above: self.relay_cascade_above,
            region: self.region.clone(),
        };
        Ok(Settings {
            role: self.role,
            http_addr: self.http_addr,
            http_workers,
            database_url,
            redis_url,
            dev: match self.dev {
                Some(true) => DevMode::On,
                Some(false) => DevMode::Off,
                None if embedded_defaults => DevMode::Auto,
                None => DevMode::Off,
            },
            signaling,
            redis_lease: ms(self.redis_lease_ms),
            redis_timeout: ms(redis_timeout_ms),
            nonce_cap_per_app: self.nonce_cap_per_app,
            drain_timeout: ms(self.drain_timeout_ms),
            usage_records: self.usage_records == Switch::On,
            usage_queue: self.usage_queue == Switch::On,
            webhooks: crate::webhooks::dispatcher::DispatchConfig {
                timeout: ms(self.webhook_timeout_ms),
                retry_base: ms(self.webhook_retry_base_ms),
                retry_max_delay: ms(self.webhook_retry_max_ms),
                retry_for: std::time::Duration::from_secs(self.webhook_retry_for_secs),
                batch: self.webhook_batch,
                ..Default::default()
            },
            relay: crate::relay::RelayConfig {
                udp_addr: self.relay_udp_addr,
                public_ips: self.relay_public_ips.clone(),
                threads: self.relay_threads,
                udp_segmentation: self.relay_udp_segmentation == Switch::On,
            },
            public_url: self.public_url.clone().filter(|u| !u.is_empty()),
            allowed_origins,
            turn,
        })
    }
}

fn non_empty(env: &Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::{CommandFactory, FromArgMatches};

    /// The command line without its environment fallbacks, so that no `HUDDLE_*` variable of
    /// the shell running the tests changes their outcome.
    fn without_env(command: clap::Command) -> clap::Command {
        command.mut_args(|arg| arg.env(None)).mut_subcommands(without_env)
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches =
            without_env(Cli::command()).try_get_matches_from(std::iter::once("huddle").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&matches)
    }

    /// No environment at all (for `DATABASE_URL` and `REDIS_URL`).
    fn no_env(_: &str) -> Option<String> {
        None
    }

    struct Args(ServeArgs);

    impl Args {
        fn resolve(&self) -> Result<Settings, ConfigError> {
            self.0.resolve(&no_env)
        }
    }

    impl std::ops::Deref for Args {
        type Target = ServeArgs;
        fn deref(&self) -> &ServeArgs {
            &self.0
        }
    }

    fn serve(args: &[&str]) -> Args {
        let cli = parse(args).unwrap();
        Args(match cli.command {
            Some(Command::Serve(a)) => *a,
            _ => cli.serve,
        })
    }

    #[test]
    fn plain_huddle_means_serve_on_embedded_defaults_with_dev_mode() {
        let args = serve(&["--database-url", "sqlite://x.db"]);
        assert_eq!(args.http_addr.to_string(), "127.0.0.1:8080");
        let settings = serve(&["serve", "--data-dir", "d"]).resolve().unwrap();
        assert_eq!(settings.dev, DevMode::Auto);
        assert_eq!(settings.database_url, "sqlite://d/huddle.db");
    }

    #[test]
    fn conventional_database_and_redis_variables_are_read_after_the_flags() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u@env/db".to_owned()),
            "REDIS_URL" => Some("redis://env:6379".to_owned()),
            _ => None,
        };
        let settings = serve(&["serve"]).0.resolve(&env).unwrap();
        assert_eq!(settings.database_url, "postgres://u@env/db");
        assert_eq!(settings.redis_url.as_deref(), Some("redis://env:6379"));
        assert_eq!(settings.dev, DevMode::Off);
        let flags = serve(&["serve", "--database-url", "sqlite://f.db", "--redis-url", "redis://flag:1"]);
        let settings = flags.0.resolve(&env).unwrap();
        assert_eq!(
            (settings.database_url.as_str(), settings.redis_url.as_deref()),
            ("sqlite://f.db", Some("redis://flag:1"))
        );
    }

    #[test]
    fn dev_mode_is_off_once_a_database_is_configured_unless_asked_for() {
        let configured = serve(&["serve", "--database-url", "postgres://u@h/db"]).resolve().unwrap();
        assert_eq!(configured.dev, DevMode::Off);
        let asked = serve(&["serve", "--database-url", "postgres://u@h/db", "--dev"]).resolve().unwrap();
        assert_eq!(asked.dev, DevMode::On);
        let refused = serve(&["serve", "--dev=false"]).resolve().unwrap();
        assert_eq!(refused.dev, DevMode::Off);
    }

    #[test]
    fn bad_settings_give_clear_errors() {
        let err = serve(&["serve", "--database-url", "mysql://u:pw@h/db"]).resolve().unwrap_err();
        assert!(err.to_string().contains("invalid database URL"));
        assert!(!err.to_string().contains("pw"));
        let err = serve(&["serve", "--redis-url", "http://nope"]).resolve().unwrap_err();
        assert!(matches!(err, ConfigError::RedisUrl(_)));
        assert!(matches!(serve(&["serve", "--http-workers", "0"]).resolve(), Err(ConfigError::Workers)));
        assert!(parse(&["serve", "--http-addr", "nope"]).is_err());
        let split = serve(&["serve", "--role", "relay", "--database-url", "sqlite://x.db"]).resolve();
        assert!(split.unwrap_err().to_string().contains("--redis-url"), "split roles need Redis");
        let wildcard = serve(&["serve", "--relay-udp-addr", "0.0.0.0:5000"]).resolve();
        assert!(wildcard.unwrap_err().to_string().contains("--relay-public-ip"));
        let public = serve(&["serve", "--relay-udp-addr", "0.0.0.0:5000", "--relay-public-ip", "10.0.0.5,10.0.0.6"]);
        assert_eq!(public.resolve().unwrap().relay.public_ips.len(), 2);
        assert_eq!(serve(&["serve", "--relay-threads", "3"]).resolve().unwrap().relay.threads, 3);
        let redis = ["serve", "--redis-url", "redis://127.0.0.1:6379", "--http-addr", "0.0.0.0:8080"];
        let unreachable = serve(&redis).resolve().unwrap_err();
        assert!(unreachable.to_string().contains("--public-url"), "{unreachable}");
        let reachable = [&redis[..], &["--public-url", "https://huddle.example"]].concat();
        assert!(serve(&reachable).resolve().is_ok());
        assert!(serve(&["serve", "--http-addr", "0.0.0.0:8080"]).resolve().is_ok(), "one node uses Host");
        let too_many = serve(&["serve", "--relay-threads", "65"]).resolve().unwrap_err();
        assert!(too_many.to_string().contains("--relay-threads"));
        let region = serve(&["serve", "--region", "eu-west.2"]).resolve().unwrap();
        assert_eq!(region.signaling.region, "eu-west.2");
        for bad in ["eu west", "eu/west", &"x".repeat(65)] {
            let err = serve(&["serve", "--region", bad]).resolve().unwrap_err();
            assert!(err.to_string().contains("--region"), "{bad}: {err}");
        }
    }

    #[test]
    fn turn_settings_are_validated_at_start_up_and_the_secret_stays_hidden() {
        use crate::auth::turn::TurnConfigError;
        assert!(serve(&["serve"]).resolve().unwrap().turn.is_none());
        let urls = "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349?transport=tcp";
        let args = serve(&["serve", "--turn-urls", urls, "--turn-secret", "coturn-static-auth-secret"]);
        assert!(!format!("{:?}", args.0).contains("coturn-static-auth-secret"), "ServeArgs Debug redacts");
        let settings = args.resolve().unwrap();
        assert!(!format!("{settings:?}").contains("coturn-static-auth-secret"), "Settings Debug redacts");
        let turn = settings.turn.unwrap();
        assert_eq!(turn.urls().len(), 2);
        assert_eq!(turn.ttl_secs(), 3600);
        let err = serve(&["serve", "--turn-urls", urls]).resolve().unwrap_err();
        assert!(matches!(err, ConfigError::Turn(TurnConfigError::MissingSecret)), "{err}");
        let err = serve(&["serve", "--turn-secret", "coturn-static-auth-secret"]).resolve().unwrap_err();
        assert!(matches!(err, ConfigError::Turn(TurnConfigError::MissingUrls)), "{err}");
        let bad_url = [
            "serve",
            "--turn-urls",
            "turn:ok.example,turns:x.example?transport=udp",
            "--turn-secret",
            "coturn-static-auth-secret",
        ];
        let err = serve(&bad_url).resolve().unwrap_err();
        assert!(err.to_string().contains("turns:x.example?transport=udp"), "{err}");
        let ttl = [
            "serve",
            "--turn-urls",
            urls,
            "--turn-secret",
            "coturn-static-auth-secret",
            "--turn-credential-ttl-secs",
            "30",
        ];
        assert!(serve(&ttl).resolve().unwrap_err().to_string().contains("--turn-credential-ttl-secs"));
        let help = without_env(Cli::command()).render_long_help().to_string();
        assert!(help.contains("--turn-urls") && help.contains("--turn-secret"), "{help}");
    }

    #[test]
    fn allowed_origins_are_validated_at_start_up() {
        use crate::api::cors::AllowedOrigins;
        assert_eq!(serve(&["serve"]).resolve().unwrap().allowed_origins, None);
        let any = serve(&["serve", "--allowed-origins", "*"]).resolve().unwrap();
        assert_eq!(any.allowed_origins, Some(AllowedOrigins::Any));
        let list = serve(&["serve", "--allowed-origins", "https://a.example,http://localhost:3000"]).resolve();
        let expected = vec!["https://a.example".to_owned(), "http://localhost:3000".to_owned()];
        assert_eq!(list.unwrap().allowed_origins, Some(AllowedOrigins::Only(expected)));
        let err = serve(&["serve", "--allowed-origins", "https://a.example/app"]).resolve().unwrap_err();
        assert!(matches!(err, ConfigError::Origins(_)));
        assert!(err.to_string().contains("did you mean https://a.example?"), "{err}");
        let err = serve(&["serve", "--allowed-origins", "a.example"]).resolve().unwrap_err();
        assert!(err.to_string().contains("scheme://host[:port]"), "{err}");
    }
}
