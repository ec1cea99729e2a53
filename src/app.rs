//! Starting the extension: configuration, listener, register, subscribe, the actors. `main.rs` calls
//! [`start`] inside an actix System; tests call it in-process against the emulator.

use crate::actors::batch::{BatchActor, ShipperHandles};
use crate::actors::lifecycle::{LifecycleActor, Neighbours, Terminate};
use crate::actors::receiver::{self, ReceiverState};
use crate::actors::shipper::ShipperActor;
use crate::config::{Config, Env, LogLevel, LogType};
use crate::lambda::client::{ExtensionsClient, Subscribed};
use crate::lambda::requests::{DEFAULT_BUFFERING, LogsApi, Subscription};
use crate::sink::{S3Sink, retry::DEFAULT_BACKOFF};
use crate::{logging, stats::Counters};
use actix::{Actor, Addr};
use slog::{Logger, error, info, warn};
use std::sync::Arc;

/// What a started extension exposes.
pub struct Running {
    pub lifecycle: Addr<LifecycleActor>,
    pub listener: std::net::SocketAddr,
}

/// Where the S3 client's configuration comes from.
pub enum S3Config {
    /// The SDK's standard chain (region, credentials, `AWS_ENDPOINT_URL_S3` from the environment).
    StandardChain,
    /// A configuration built by the caller (tests).
    Given(Box<aws_config::SdkConfig>),
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

/// Starts the extension. Must run inside an actix System. On a failure before the first `next` it
/// has already reported `init/error` when it could; the error is the exit code.
pub async fn start(
    name: &str,
    runtime_api: &str,
    env: &dyn Env,
    s3: S3Config,
    log: Option<Logger>,
) -> Result<Running, u8> {
    let name = name.to_string();
    let client = ExtensionsClient::new(runtime_api);
    let parsed = Config::from_env(env);
    let log = log.unwrap_or_else(|| {
        let level = parsed
            .as_ref()
            .map(|p| p.config.log_level)
            .unwrap_or(LogLevel::Info);
        logging::init(level)
    });
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
    let local = listener.local_addr().map_err(|_| 1u8)?;
    let listening = local.to_string();

    let id = match client.register(&name, true).await {
        Ok(id) => id,
        Err(e) => {
            error!(log, "register failed"; "name" => &name, "error" => e.to_string());
            return Err(1);
        }
    };
    info!(log, "registered"; "name" => &name, "listener" => &listening, "bucket" => config.bucket.as_str());

    let counters = Arc::new(Counters::default());
    let sink = match s3 {
        S3Config::StandardChain => {
            S3Sink::from_env(
                config.bucket.as_str(),
                config.force_path_style,
                config.create_bucket,
            )
            .await
        }
        S3Config::Given(shared) => S3Sink::new(
            &shared,
            config.bucket.as_str(),
            config.force_path_style,
            config.create_bucket,
        ),
    };
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

    let neighbours = Neighbours {
        invoke: batch.clone().recipient(),
        late_records: batch.clone().recipient(),
        shutdown: batch.recipient(),
        flush: shipper.recipient(),
        listener: Some(server_handle),
    };
    let lifecycle = LifecycleActor::new(client, id, neighbours, counters, log.clone()).start();
    let on_signal = lifecycle.clone();
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
        on_signal.do_send(Terminate);
    });
    Ok(Running {
        lifecycle,
        listener: local,
    })
}
