//! Starting the extension: configuration, listener, register, subscribe, the actors. `main.rs` calls
//! [`start`] inside an actix System; tests call it in-process against the emulator.

use crate::actors::batch::{BatchActor, BatchSettings, ShipperHandles};
use crate::actors::lifecycle::{LifecycleActor, Neighbours, Terminate};
use crate::actors::receiver::{self, ReceiverState};
use crate::actors::shipper::{ShipperActor, ShipperSettings};
use crate::config::{Api, ShipAt};
use crate::config::{
    Config, ENV_CA_BUNDLE, ENV_INITIALIZATION_TYPE, Env, LogLevel, LogType, MANAGED_INSTANCES,
    Parsed, SNAP_START,
};
use crate::lambda::client::{ExtensionsClient, Subscribed};
use crate::lambda::requests::{LogsApi, Subscription};
use crate::sink::{ObjectSettings, S3Sink, tls};
use crate::spill::SpillDir;
use crate::{logging, stats::Counters};
use actix::{Actor, Addr};
use slog::{Logger, error, info, warn};
use std::sync::Arc;

/// What a started extension exposes.
pub struct Running {
    pub lifecycle: Addr<LifecycleActor>,
    pub listener: std::net::SocketAddr,
    /// The exit code, once the shutdown sequence is over.
    pub ended: tokio::sync::oneshot::Receiver<i32>,
}

/// Where the S3 client's configuration comes from.
pub enum S3Config {
    /// The SDK's standard chain (region, credentials, `AWS_ENDPOINT_URL_S3` from the environment).
    StandardChain,
    /// A configuration built by the caller (tests).
    Given(Box<aws_config::SdkConfig>),
}

/// What a failure before the first `next` needs: register if not yet done (so that `init/error` can
/// be posted), report, and give the exit code.
struct Init<'a> {
    client: &'a ExtensionsClient,
    log: &'a Logger,
    name: &'a str,
    /// Register for INVOKE too (never on Managed Instances, which refuse it).
    invoke: bool,
}

impl Init<'_> {
    async fn fail(&self, id: Option<&str>, error_type: &str, message: &str) -> u8 {
        error!(self.log, "init failed"; "error_type" => error_type, "error" => message);
        let id = match id {
            Some(id) => id.to_string(),
            None => match self.client.register(self.name, self.invoke).await {
                Ok(id) => id,
                Err(e) => {
                    error!(self.log, "cannot register to report the init failure"; "error" => e.to_string());
                    return 1;
                }
            },
        };
        if let Err(e) = self
            .client
            .report_error(&id, true, error_type, message)
            .await
        {
            error!(self.log, "cannot report init/error"; "error" => e.to_string());
        }
        1
    }
}

/// The content of the `AWS_CA_BUNDLE` file, or an error naming the variable, the file and what it
/// must hold.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bad = |why: String| {
        format!(
            "{ENV_CA_BUNDLE}={} cannot be used: {why}; it must name a readable PEM file of CA certificates",
            path.display()
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    tls::check_ca_bundle(&pem).map_err(|e| bad(format!("the file {e}")))?;
    Ok(pem)
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
    let client = ExtensionsClient::new(runtime_api);
    let parsed = Config::from_env(env);
    let log = log.unwrap_or_else(|| {
        logging::init(
            parsed
                .as_ref()
                .map(|p| p.config.log_level)
                .unwrap_or(LogLevel::Info),
        )
    });
    // Known before the configuration is: a registration to report a bad one must not ask for INVOKE there.
    let managed = env.get(ENV_INITIALIZATION_TYPE).as_deref() == Some(MANAGED_INSTANCES);
    let init = Init {
        client: &client,
        log: &log,
        name,
        invoke: !managed,
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Err(init
                .fail(None, "Extension.ConfigInvalid", &e.to_string())
                .await);
        }
    };
    let config = announce(parsed, &log);

    let ca_bundle = match config.ca_bundle.as_deref().map(read_ca_bundle).transpose() {
        Ok(b) => b,
        Err(message) => {
            return Err(init.fail(None, "Extension.ConfigInvalid", &message).await);
        }
    };
    // Started first: the client builds on its own thread while we bind, register and subscribe.
    let sink = open_sink(&config, s3, ca_bundle.as_deref());

    // Listen before registering: a port that cannot be bound is an init error, not silent loss.
    let listener = match receiver::bind(config.listener_port) {
        Ok(l) => l,
        Err(e) => {
            let addr = receiver::listen_address(config.listener_port);
            let message = format!(
                "cannot listen on {addr} (ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT={}): {e}",
                config.listener_port
            );
            return Err(init.fail(None, "Extension.ListenerFailed", &message).await);
        }
    };
    let local = listener.local_addr().map_err(|_| 1u8)?;

    let id = match client.register(name, !managed).await {
        Ok(id) => id,
        Err(e) => {
            error!(log, "register failed"; "name" => name, "error" => e.to_string());
            return Err(1);
        }
    };
    info!(log, "registered"; "name" => name, "listener" => local.to_string(), "bucket" => config.bucket.as_str(),
        "managed_instances" => managed);

    let counters = Arc::new(Counters::default());
    let (shipper, batch) = start_actors(&config, env, sink, managed, &counters, &log);
    let server = match receiver::serve(
        listener,
        ReceiverState::new(batch.clone().recipient(), counters.clone(), log.clone()),
    ) {
        Ok(s) => s,
        Err(e) => {
            return Err(init
                .fail(Some(&id), "Extension.ListenerFailed", &e.to_string())
                .await);
        }
    };
    let server_handle = server.handle();
    actix_rt::spawn(server);

    if let Err(e) = subscribe(&client, &id, &config, managed, &log).await {
        return Err(init.fail(Some(&id), "Extension.SubscribeFailed", &e).await);
    }

    let (lifecycle, ended) = start_lifecycle(
        client,
        id,
        &config,
        (batch, shipper, server_handle),
        managed,
        counters,
        log.clone(),
    );
    forward_signals(lifecycle.clone());
    Ok(Running {
        lifecycle,
        listener: local,
        ended,
    })
}

/// Logs the configuration's warnings and profile once; the configuration from then on.
fn announce(parsed: Parsed, log: &Logger) -> Config {
    for w in &parsed.warnings {
        warn!(log, "configuration"; "warning" => w);
    }
    if let Some(p) = parsed.config.profile {
        info!(log, "configuration profile"; "profile" => p,
            "ship_rate_bytes" => parsed.config.thresholds.bytes.get(),
            "ship_rate_invokes" => parsed.config.thresholds.invokes.get(),
            "ship_rate_ms" => parsed.config.thresholds.elapsed.as_millis() as u64);
    }
    parsed.config
}

/// The S3 sink: the SDK's standard chain, or a configuration the caller gives (tests).
fn open_sink(config: &Config, s3: S3Config, ca_bundle: Option<&[u8]>) -> S3Sink {
    match s3 {
        S3Config::StandardChain => S3Sink::from_env(
            config.bucket.as_str(),
            config.force_path_style,
            config.create_bucket,
            ca_bundle,
        ),
        S3Config::Given(shared) => S3Sink::new(
            &shared,
            config.bucket.as_str(),
            config.force_path_style,
            config.create_bucket,
        ),
    }
    .with_objects(ObjectSettings {
        sse: config.sse.clone(),
        sse_kms_key_id: config.sse_kms_key_id.clone(),
        storage_class: config.storage_class.clone(),
        function_name: config.function_name.clone(),
        function_version: config.function_version.clone(),
    })
}

/// ShipperActor and BatchActor, with every value derived from the settings computed here once.
fn start_actors(
    config: &Config,
    env: &dyn Env,
    sink: S3Sink,
    managed: bool,
    counters: &Arc<Counters>,
    log: &Logger,
) -> (Addr<ShipperActor>, Addr<BatchActor>) {
    // In a SnapStart environment any spilled batch may come from the snapshot, whose keys every
    // restored copy shares: each may be in S3 already, from another copy.
    let snap_start = env.get(ENV_INITIALIZATION_TYPE).as_deref() == Some(SNAP_START);
    let spill = match SpillDir::open(&config.spill_dir, config.spill_max_bytes, snap_start) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(log, "cannot use the spill directory; batches stay in memory only";
                "dir" => config.spill_dir.display().to_string(), "error" => e.to_string());
            None
        }
    };
    // The largest object: the bytes threshold, or half the memory bound if larger, so the open
    // buffer and the batches in flight stay near MAX_BUFFER_BYTES.
    let max_object = config
        .thresholds
        .bytes
        .get()
        .max(config.max_buffer_bytes / 2);
    let settings = ShipperSettings {
        max_memory: config.max_buffer_bytes,
        max_object,
        spill,
        emf_function: config.emf_metrics.then(|| config.function_name.clone()),
        snap_start,
    };
    let shipper = ShipperActor::new(sink, settings, counters.clone(), log.clone()).start();
    let batch = BatchActor::new(
        BatchSettings {
            thresholds: config.thresholds,
            max_object_bytes: max_object,
            max_delay: config.max_delay,
            compression: config.compression,
            key_template: config.key_template.clone(),
            function_version: config.function_version.clone(),
            environment_id: uuid::Uuid::new_v4(),
            function_name: config.function_name.clone(),
            platform_records: config.log_types.contains(&LogType::Platform),
            managed_instances: managed,
            ship_at: config.ship_at,
        },
        ShipperHandles {
            ship: shipper.clone().recipient(),
            flush: shipper.clone().recipient(),
            restored: shipper.clone().recipient(),
        },
        counters.clone(),
        log.clone(),
    )
    .start();
    shipper.do_send(crate::actors::messages::PaceTo(batch.clone().recipient()));
    (shipper, batch)
}

/// Subscribes to the configured API; a sandbox without it (202) runs without records.
async fn subscribe(
    client: &ExtensionsClient,
    id: &str,
    config: &Config,
    managed: bool,
    log: &Logger,
) -> Result<(), String> {
    let api = match config.api {
        Api::Logs => LogsApi::Logs,
        Api::Telemetry => LogsApi::Telemetry {
            managed_instances: managed,
        },
    };
    let sub = Subscription {
        api,
        types: config.log_types.clone(),
        buffering: config.buffering,
        port: config.listener_port,
    };
    match client.subscribe(id, &sub).await {
        Ok(Subscribed::Yes) => {
            info!(log, "subscribed"; "api" => api.name(), "schema" => api.schema(),
            "types" => sub.body()["types"].to_string())
        }
        Ok(Subscribed::NotSupported) => {
            warn!(log, "this sandbox does not support the API (202); running without records"; "api" => api.name())
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

/// SIGTERM or SIGINT: LifecycleActor ships what it holds and exits.
fn forward_signals(on_signal: Addr<LifecycleActor>) {
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
}

/// LifecycleActor, with BatchActor, ShipperActor and the listener as its neighbours.
fn start_lifecycle(
    client: ExtensionsClient,
    id: String,
    config: &Config,
    (batch, shipper, server_handle): (
        Addr<BatchActor>,
        Addr<ShipperActor>,
        actix_web::dev::ServerHandle,
    ),
    managed: bool,
    counters: Arc<Counters>,
    log: Logger,
) -> (Addr<LifecycleActor>, tokio::sync::oneshot::Receiver<i32>) {
    let neighbours = Neighbours {
        invoke: batch.clone().recipient(),
        runtime_done: (config.ship_at == ShipAt::EndOfInvoke).then(|| batch.clone().recipient()),
        late_records: batch.clone().recipient(),
        shutdown: batch.recipient(),
        flush: shipper.recipient(),
        listener: Some(server_handle),
    };
    let next_wait = match config.ship_at {
        // The invoke's lines are in S3 before its `next`, within its deadline.
        ShipAt::EndOfInvoke => Some(std::time::Duration::MAX),
        ShipAt::NextInvoke => Some(config.next_wait),
    };
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let lifecycle = LifecycleActor::new(client, id, neighbours, managed, counters, log)
        .with_emf(config.emf_metrics.then(|| config.function_name.clone()))
        .with_next_wait(next_wait)
        .with_ended(ended_tx)
        .start();
    (lifecycle, ended)
}
