//! Starting the extension: configuration, listener, register, subscribe, the actors. `main.rs` calls
//! [`start`] inside an actix System; tests call it in-process against the emulator.

use crate::actors::batch::{BatchActor, ShipperHandles};
use crate::actors::lifecycle::{LifecycleActor, Neighbours, Terminate};
use crate::actors::receiver::{self, ReceiverState};
use crate::actors::shipper::ShipperActor;
use crate::config::{
    Config, ENV_CA_BUNDLE, ENV_INITIALIZATION_TYPE, ENV_LISTENER_PORT, Env, LogLevel,
    MANAGED_INSTANCES, Parsed, Subscription,
};
use crate::lambda::client::{ExtensionsClient, Subscribed};
use crate::sink::{S3Sink, tls};
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
    let (config, ca_bundle) = match configured(parsed, &log) {
        Ok(c) => c,
        Err(message) => return Err(init.fail(None, "Extension.ConfigInvalid", &message).await),
    };
    // Started first: the client builds on its own thread while we bind, register and subscribe.
    let sink = open_sink(&config, s3, ca_bundle.as_deref());

    // Listen before registering: a port that cannot be bound is an init error, not silent loss.
    let listener = match bind(config.subscription.port) {
        Ok(l) => l,
        Err(message) => return Err(init.fail(None, "Extension.ListenerFailed", &message).await),
    };
    let local = listener.local_addr().map_err(|_| 1u8)?;

    let id = match client.register(name, !managed).await {
        Ok(id) => id,
        Err(e) => {
            error!(log, "register failed"; "name" => name, "error" => e.to_string());
            return Err(1);
        }
    };
    info!(log, "registered"; "name" => name, "listener" => local.to_string(), "bucket" => config.s3.bucket.as_str(),
        "managed_instances" => managed);

    let counters = Arc::new(Counters::with_rules(config.intake.rules.names()));
    let (shipper, batch) = start_actors(&config, sink, &counters, &log);
    let state = ReceiverState::new(batch.clone().recipient(), counters.clone(), log.clone());
    let server_handle = match receiver::serve(listener, state) {
        Ok(server) => {
            let handle = server.handle();
            actix_rt::spawn(server);
            handle
        }
        Err(e) => {
            return Err(init
                .fail(Some(&id), "Extension.ListenerFailed", &e.to_string())
                .await);
        }
    };

    if let Err(e) = subscribe(&client, &id, &config.subscription, &log).await {
        return Err(init.fail(Some(&id), "Extension.SubscribeFailed", &e).await);
    }

    let (lifecycle, ended) = start_lifecycle(
        client,
        id,
        &config,
        (batch, shipper, server_handle),
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

/// The listener on `port`, or the init error that names the variable and the address.
fn bind(port: u16) -> Result<std::net::TcpListener, String> {
    receiver::bind(port).map_err(|e| {
        let addr = receiver::listen_address(port);
        format!("cannot listen on {addr} ({ENV_LISTENER_PORT}={port}): {e}")
    })
}

/// The configuration, announced, with the `AWS_CA_BUNDLE` file's content; or what makes it
/// invalid, for `init/error`.
fn configured(
    parsed: Result<Parsed, crate::config::ConfigError>,
    log: &Logger,
) -> Result<(Config, Option<Vec<u8>>), String> {
    let config = announce(parsed.map_err(|e| e.to_string())?, log);
    let ca_bundle = config
        .s3
        .ca_bundle
        .as_deref()
        .map(read_ca_bundle)
        .transpose()?;
    Ok((config, ca_bundle))
}

/// Logs the configuration's warnings and profile once; the configuration from then on.
fn announce(parsed: Parsed, log: &Logger) -> Config {
    for w in &parsed.warnings {
        warn!(log, "configuration"; "warning" => w);
    }
    if let Some(p) = parsed.config.profile {
        info!(log, "configuration profile"; "profile" => p,
            "ship_rate_bytes" => parsed.config.intake.thresholds.bytes.get(),
            "ship_rate_invokes" => parsed.config.intake.thresholds.invokes.get(),
            "ship_rate_ms" => parsed.config.intake.thresholds.elapsed.as_millis() as u64);
    }
    let rules = &parsed.config.intake.rules;
    if !rules.is_empty() {
        info!(log, "processing rules"; "count" => rules.specs().len(),
            "names" => rules.names().collect::<Vec<_>>().join(", "));
    }
    parsed.config
}

/// The S3 sink: the SDK's standard chain, or a configuration the caller gives (tests).
fn open_sink(config: &Config, s3: S3Config, ca_bundle: Option<&[u8]>) -> S3Sink {
    let c = &config.s3;
    match s3 {
        S3Config::StandardChain => S3Sink::from_env(
            c.bucket.as_str(),
            c.force_path_style,
            c.create_bucket,
            ca_bundle,
        ),
        S3Config::Given(shared) => S3Sink::new(
            &shared,
            c.bucket.as_str(),
            c.force_path_style,
            c.create_bucket,
        ),
    }
    .with_objects(config.objects.clone())
}

/// ShipperActor and BatchActor, each with its section of the configuration.
fn start_actors(
    config: &Config,
    sink: S3Sink,
    counters: &Arc<Counters>,
    log: &Logger,
) -> (Addr<ShipperActor>, Addr<BatchActor>) {
    let s = &config.shipper;
    let spill = match SpillDir::open(&s.spill_dir, s.spill_max_bytes, s.snap_start) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(log, "cannot use the spill directory; batches stay in memory only";
                "dir" => s.spill_dir.display().to_string(), "error" => e.to_string());
            None
        }
    };
    let shipper = ShipperActor::new(sink, s, spill, counters.clone(), log.clone())
        .with_emf(config.metrics.clone())
        .start();
    let batch = BatchActor::new(
        config.intake.clone(),
        uuid::Uuid::new_v4(),
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
    sub: &Subscription,
    log: &Logger,
) -> Result<(), String> {
    let api = sub.api;
    match client.subscribe(id, sub).await {
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
    counters: Arc<Counters>,
    log: Logger,
) -> (Addr<LifecycleActor>, tokio::sync::oneshot::Receiver<i32>) {
    let neighbours = Neighbours {
        invoke: batch.clone().recipient(),
        runtime_done: config
            .lifecycle
            .awaits_runtime_done
            .then(|| batch.clone().recipient()),
        late_records: batch.clone().recipient(),
        shutdown: batch.recipient(),
        flush: shipper.recipient(),
        listener: Some(server_handle),
    };
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let lifecycle = LifecycleActor::new(client, id, neighbours, config.lifecycle, counters, log)
        .with_emf(config.metrics.clone())
        .with_ended(ended_tx)
        .start();
    (lifecycle, ended)
}
