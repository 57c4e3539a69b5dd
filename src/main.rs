use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use huddle::auth::{TokenSpec, token, unix_now};
use huddle::config::{AppCommand, Cli, Command, ConfigError, LogFormat, ServeArgs, StoreArgs, TokenArgs, UsageArgs};
use huddle::store::{NewApp, Store};
use huddle::{api, app, auth};

/// mimalloc instead of glibc's malloc: the relay allocates and frees per forwarded packet and
/// player (str0m's send-queue entry and encrypted datagram), where glibc's arenas cost
/// measurably more (docs/BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` runs on actix's system runtime (its HTTP workers are threads of their own).
    let command = match cli.command {
        None => return serve_until_stopped(cli.serve),
        Some(Command::Serve(args)) => return serve_until_stopped(*args),
        Some(command) => command,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return fail(format!("cannot start the async runtime: {err}")),
    };
    let outcome = match command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::Openapi => api::openapi_yaml().map(|yaml| print!("{yaml}")),
        Command::Loadtest(command) => runtime.block_on(command.run()),
        Command::Migrate(args) => runtime.block_on(migrate(args)),
        Command::App(command) => runtime.block_on(app_command(command)),
        Command::Token(args) => runtime.block_on(mint_token(args)),
        Command::Rooms(command) => runtime.block_on(huddle::admin::client::run(command)),
        Command::Usage(args) => runtime.block_on(usage(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn serve_until_stopped(args: ServeArgs) -> ExitCode {
    match actix_web::rt::System::new().block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    init_tracing(&args).map_err(|e| e.to_string())?;
    let settings = args.resolve(&huddle::config::process_env).map_err(|e| e.to_string())?;
    app::run(settings).await.map_err(|e| e.to_string())
}

fn init_tracing(args: &ServeArgs) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&args.log).map_err(|e| ConfigError::LogFilter(args.log.clone(), e.to_string()))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn open(args: &StoreArgs) -> Result<Store, String> {
    Store::open(&args.url(&huddle::config::process_env)).await.map_err(|e| e.to_string())
}

fn print_json(value: serde_json::Value) {
    println!("{value}");
}

async fn migrate(args: StoreArgs) -> Result<(), String> {
    let store = open(&args).await?;
    print_json(json!({"migrated": true, "database": store.backend().name()}));
    Ok(())
}

async fn app_command(command: AppCommand) -> Result<(), String> {
    match command {
        AppCommand::Create(args) => {
            if let Some(secret) = &args.secret {
                auth::secret::validate(secret).map_err(|e| e.to_string())?;
            }
            if let Some(secret) = &args.server_secret {
                auth::secret::validate_zego(secret).map_err(|e| e.to_string())?;
            }
            let store = open(&args.store).await?;
            let new = NewApp {
                app_id: args.app_id,
                name: args.name,
                server_secret: args.secret.or(args.server_secret),
                max_users_per_room: args.max_users_per_room,
            };
            let app = store.create_app(new).await.map_err(|e| e.to_string())?;
            print_json(json!({"appId": app.app_id, "serverSecret": app.server_secret}));
        }
        AppCommand::List(args) => {
            let apps = open(&args).await?.list_apps().await.map_err(|e| e.to_string())?;
            let listed: Vec<_> = apps
                .iter()
                .map(|app| {
                    json!({
                        "appId": app.app_id,
                        "name": app.name,
                        "createdAt": app.created_at,
                        "disabled": app.disabled,
                        "maxUsersPerRoom": app.max_users_per_room,
                        "webhookUrl": app.webhook_url,
                    })
                })
                .collect();
            print_json(json!(listed));
        }
        AppCommand::RotateSecret(args) => {
            let app = open(&args.store).await?.rotate_secret(args.app_id).await.map_err(|e| e.to_string())?;
            print_json(json!({"appId": app.app_id, "serverSecret": app.server_secret}));
        }
        AppCommand::Disable(args) => set_disabled(args.store, args.app_id, true).await?,
        AppCommand::Enable(args) => set_disabled(args.store, args.app_id, false).await?,
        AppCommand::Update(args) => {
            let setting = if args.no_webhook {
                None
            } else {
                let Some(url) = args.webhook_url else {
                    return Err("nothing to update: pass --webhook-url URL [--webhook-secret S] or --no-webhook".into());
                };
                api::usage::webhook_setting(Some(url), args.webhook_secret).map_err(|e| e.message)?
            };
            let app = open(&args.store).await?.set_webhook(args.app_id, setting).await.map_err(|e| e.to_string())?;
            print_json(
                json!({"appId": app.app_id, "webhookUrl": app.webhook_url, "webhookSecret": app.webhook_secret}),
            );
        }
    }
    Ok(())
}

async fn set_disabled(store: StoreArgs, app_id: u32, disabled: bool) -> Result<(), String> {
    open(&store).await?.set_app_disabled(app_id, disabled).await.map_err(|e| e.to_string())?;
    print_json(json!({"appId": app_id, "disabled": disabled}));
    Ok(())
}

/// `huddle usage`: the report of `GET /v1/usage`, as a table or JSON.
async fn usage(args: UsageArgs) -> Result<(), String> {
    use huddle::usage::report;
    let time = |name: &str, text: &str| {
        report::parse_time(text)
            .ok_or_else(|| format!("--{name} must be unix milliseconds or YYYY-MM-DD, got {text:?}"))
    };
    let query = huddle::usage::UsageQuery {
        app_id: args.app_id,
        from_ms: time("from", &args.from)?,
        to_ms: time("to", &args.to)?,
        group_by: args.group_by,
    };
    let store = open(&args.store).await?;
    let report = report::query(&store, &query, huddle::rooms::unix_millis()).await.map_err(|e| e.to_string())?;
    if args.json {
        print_json(serde_json::to_value(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report::table(&report));
    }
    Ok(())
}

async fn mint_token(args: TokenArgs) -> Result<(), String> {
    let store = open(&args.store).await?;
    let app = store
        .find_app(args.app_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no app with id {}", args.app_id))?;
    let spec = TokenSpec {
        user_id: args.user_id,
        room_id: args.room_id,
        privileges: auth::Privileges { login_room: true, publish_stream: args.publish },
        stream_ids: (!args.stream_ids.is_empty()).then_some(args.stream_ids),
        ttl_secs: Some(args.ttl),
    };
    let issued =
        token::issue(app.app_id, app.server_secret.as_bytes(), &spec, unix_now()).map_err(|e| e.to_string())?;
    print_json(json!({"token": issued.token, "expiresAt": issued.claims.exp}));
    Ok(())
}
