//! The lifecycle actor, then the whole actor system, run in-process against the emulator's
//! Extensions API and S3 endpoint (the emulator's "attached" mode: it waits for an extension it did
//! not launch). Each runs in an actix System of its own thread, as in the real process.

use crate::support::{BUCKET, assert_shipped_exactly_once, free_port, script};
use actix::prelude::*;
use adaptive_batching_extension::actors::lifecycle::{LifecycleActor, Neighbours};
use adaptive_batching_extension::actors::messages::{
    AwaitLateRecords, Flush, InvokeStarted, Pending, Shutdown,
};
use adaptive_batching_extension::app::{self, S3Config};
use adaptive_batching_extension::config::LifecycleSettings;
use adaptive_batching_extension::lambda::client::ExtensionsClient;
use adaptive_batching_extension::stats::Counters;
use lambda_emulator::EmulatorBuilder;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ATTACHED: &str = "in-process";

fn discard() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Runs `start` in a new actix System on its own thread; the handle yields the System's exit code.
fn in_system<F, Fut>(start: F) -> std::thread::JoinHandle<i32>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool>,
{
    std::thread::spawn(move || {
        let system = System::new();
        if !system.block_on(start()) {
            return -1;
        }
        system.run_with_code().unwrap_or(-2)
    })
}

/// Stands in for BatchActor and ShipperActor: records what LifecycleActor asks, in order.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<Vec<String>>>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<InvokeStarted> for Probe {
    type Result = ();
    fn handle(&mut self, m: InvokeStarted, _: &mut Context<Self>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("invoke {}", m.request_id));
    }
}

impl Handler<Flush> for Probe {
    type Result = Pending;
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Pending {
        self.0.lock().unwrap().push("flush".into());
        Pending::default()
    }
}

impl Handler<AwaitLateRecords> for Probe {
    type Result = ();
    fn handle(&mut self, m: AwaitLateRecords, _: &mut Context<Self>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("late-records {}", m.request_id.unwrap_or_default()));
    }
}

impl Handler<Shutdown> for Probe {
    type Result = Pending;
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Pending {
        self.0.lock().unwrap().push("shutdown".into());
        Pending::default()
    }
}

#[tokio::test]
async fn lifecycle_actor_drives_invokes_and_the_shutdown_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut emu = EmulatorBuilder::new(dir.path())
        .attach(ATTACHED)
        .start()
        .await
        .unwrap();
    let api = emu.runtime_api().to_string();
    let seen = Probe::default();
    let probe = seen.clone();
    let system = in_system(move || async move {
        let client = ExtensionsClient::new(&api);
        let Ok(id) = client.register(ATTACHED, true).await else {
            return false;
        };
        let p = probe.start();
        let n = Neighbours {
            invoke: p.clone().recipient(),
            runtime_done: None,
            late_records: p.clone().recipient(),
            shutdown: p.clone().recipient(),
            flush: p.recipient(),
            listener: None,
        };
        LifecycleActor::new(
            client,
            id,
            n,
            LifecycleSettings::default(),
            Arc::new(Counters::default()),
            discard(),
        )
        .start();
        true
    });
    emu.init().await.unwrap();
    let a = emu.invoke(script(1, 10, 5)).await;
    let b = emu.invoke(script(1, 10, 5)).await;
    emu.shutdown(0).await;
    let code = tokio::task::spawn_blocking(move || system.join().unwrap())
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![
            // `next` right after each INVOKE: no flush, nothing waits for S3 by default.
            format!("invoke {}", a.request_id),
            format!("invoke {}", b.request_id),
            format!("late-records {}", b.request_id),
            "shutdown".into(),
        ]
    );
}

#[tokio::test]
async fn the_whole_actor_system_ships_every_record_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut emu = EmulatorBuilder::new(dir.path())
        .attach(ATTACHED)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR",
            dir.path().join("spill").to_string_lossy(),
        )
        .with(|f| f.name = "in-proc-fn".to_string())
        .bucket(BUCKET)
        .env("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", BUCKET)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT",
            port.to_string(),
        )
        .start()
        .await
        .unwrap();
    let api = emu.runtime_api().to_string();
    let env: HashMap<String, String> = emu.extension_env().into_iter().collect();
    let s3 = emu.s3().clone();
    let system = in_system(move || async move {
        let shared = crate::support::sdk_config(&s3);
        app::start(
            ATTACHED,
            &api,
            &env,
            S3Config::Given(Box::new(shared)),
            Some(discard()),
        )
        .await
        .is_ok()
    });
    emu.init().await.unwrap();
    for _ in 0..20 {
        emu.invoke(script(4, 150, 5)).await;
    }
    emu.shutdown(2).await;
    let code = tokio::task::spawn_blocking(move || system.join().unwrap())
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert_shipped_exactly_once(&emu);
    assert!(
        emu.s3()
            .objects(BUCKET)
            .iter()
            .all(|o| o.key.contains("/in-proc-fn-"))
    );
}
