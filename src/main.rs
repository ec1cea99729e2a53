//! Wiring only: read the configuration, bind the listener, register, subscribe, start the actors,
//! and map the outcome to an exit code. Failures before the first `next` go to `init/error`.

#![deny(clippy::unwrap_used)]

use actix::{Actor, System};
use adaptive_batching_extension::actors::batch::{BatchActor, ShipperHandles};
use adaptive_batching_extension::actors::lifecycle::{LifecycleActor, Terminate};
use adaptive_batching_extension::actors::receiver::{self, ReceiverState};
use adaptive_batching_extension::actors::shipper::ShipperActor;
use adaptive_batching_extension::config::{Config, LogLevel, LogType, ProcessEnv};
use adaptive_batching_extension::lambda::client::{ExtensionsClient, Subscribed};
use adaptive_batching_extension::lambda::requests::{DEFAULT_BUFFERING, LogsApi, Subscription};
use adaptive_batching_extension::sink::{S3Sink, retry::DEFAULT_BACKOFF};
use adaptive_batching_extension::{logging, stats::Counters};
use slog::{Logger, error, info, warn};
use std::process::ExitCode;
use std::sync::Arc;

/// The name Lambda knows us by: our file name in /opt/extensions.
fn extension_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_string())
}

fn main() -> ExitCode {
    let Ok(runtime_api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!(
            "adaptive-batching-extension: AWS_LAMBDA_RUNTIME_API is not set; this program runs as a Lambda extension"
        );
        return ExitCode::FAILURE;
    };
    let system = System::new();
    if let Err(code) = system.block_on(start(extension_name(), runtime_api)) {
        return ExitCode::from(code);
    }
    match system.run_with_code() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(_) => ExitCode::FAILURE,
    }
}

/// Registers (so that `init/error` can be posted) and reports an init failure; returns the exit code.
async fn fail_init(
    client: &ExtensionsClient,
    log: &Logger,
    name: &str,
    id: Option<String>,
    error_type: &str,
    message: &str,
) -> u8 {
    error!(log, "init failed"; "error_type" => error_type, "error" => message);
    let id = match id {
        Some(id) => id,
        None => match client.register(name, true).await {
            Ok(id) => id,
            Err(e) => {
                error!(log, "cannot register to report the init failure"; "error" => e.to_string());
                return 1;
            }
        },
    };
    if let Err(e) = client.report_error(&id, true, error_type, message).await {
        error!(log, "cannot report init/error"; "error" => e.to_string());
    }
    1
}

async fn start(name: String, runtime_api: String) -> Result<(), u8> {
    let client = ExtensionsClient::new(&runtime_api);
    let parsed = Config::from_env(&ProcessEnv);
    let log = logging::init(
        parsed
            .as_ref()
            .map(|p| p.config.log_level)
            .unwrap_or(LogLevel::Info),
    );
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Err(fail_init(
                &client,
                &log,
                &name,
                None,
                "Extension.ConfigInvalid",
                &e.to_string(),
            )
            .await);
        }
    };
    for w in &parsed.warnings {
        warn!(log, "configuration"; "warning" => w);
    }
    let config = parsed.config;

    // Listen before registering: a port that cannot be bound is an init error, not silent loss.
    let listener = match receiver::bind(config.listener_port) {
        Ok(l) => l,
        Err(e) => {
            let addr = receiver::listen_address(config.listener_port);
            let message = format!(
                "cannot listen on {addr} (ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT={}): {e}",
                config.listener_port
            );
            return Err(fail_init(
                &client,
                &log,
                &name,
                None,
                "Extension.ListenerFailed",
                &message,
            )
            .await);
        }
    };
    let listening = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();

    let id = match client.register(&name, true).await {
        Ok(id) => id,
        Err(e) => {
            error!(log, "register failed"; "name" => &name, "error" => e.to_string());
            return Err(1);
        }
    };
    info!(log, "registered"; "name" => &name, "listener" => &listening, "bucket" => config.bucket.as_str());

    let counters = Arc::new(Counters::default());
    let sink = S3Sink::from_env(
        config.bucket.as_str(),
        config.force_path_style,
        config.create_bucket,
    )
    .await;
    let shipper = ShipperActor::new(sink, DEFAULT_BACKOFF, counters.clone(), log.clone()).start();
    let batch = BatchActor::new(
        config.thresholds,
        ShipperHandles {
            ship: shipper.clone().recipient(),
            flush: shipper.clone().recipient(),
        },
        uuid::Uuid::new_v4(),
        config.function_name.clone(),
        config.log_types.contains(&LogType::Platform),
        counters.clone(),
        log.clone(),
    )
    .start();
    let server = match receiver::serve(
        listener,
        ReceiverState::new(batch.clone().recipient(), counters.clone(), log.clone()),
    ) {
        Ok(s) => s,
        Err(e) => {
            return Err(fail_init(
                &client,
                &log,
                &name,
                Some(id),
                "Extension.ListenerFailed",
                &e.to_string(),
            )
            .await);
        }
    };
    let server_handle = server.handle();
    actix_rt::spawn(server);

    let sub = Subscription {
        api: LogsApi::Logs,
        types: config.log_types.clone(),
        buffering: DEFAULT_BUFFERING,
        port: config.listener_port,
    };
    match client.subscribe(&id, &sub).await {
        Ok(Subscribed::Yes) => {
            info!(log, "subscribed"; "api" => "logs", "types" => format!("{:?}", sub.body()["types"]))
        }
        Ok(Subscribed::NotSupported) => warn!(
            log,
            "the Logs API is not supported here (202); running without records"
        ),
        Err(e) => {
            return Err(fail_init(
                &client,
                &log,
                &name,
                Some(id),
                "Extension.SubscribeFailed",
                &e.to_string(),
            )
            .await);
        }
    }

    let lifecycle = LifecycleActor::new(
        client,
        id,
        batch,
        shipper.recipient(),
        server_handle,
        counters,
        log.clone(),
    )
    .start();
    actix_rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        lifecycle.do_send(Terminate);
    });
    Ok(())
}
