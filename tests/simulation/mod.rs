//! A deterministic simulation of the ship path, in the manner of FoundationDB's simulation tests
//! and TigerBeetle's VOPR: the real ship policy and held store (with the real spill format and
//! recovery) driven against a modelled S3 that throttles, refuses, rejects, fails, stores without
//! answering and stalls, and a modelled disk with a size limit, ENOSPC and I/O errors; with
//! crashes and restarts that recover the spill directory, SnapStart restores into two copies, and
//! SHUTDOWN with its deadline at random points. Every knob is drawn from the seed, so one seed is
//! one reproducible run. After every step the invariants are checked ([`world::World::check`]):
//! the accounts balance and agree with what happened; memory and disk hold exactly what the
//! policy counts, within their bounds; no key is rewritten with other content; no record is
//! stored under two keys; the last flush is answered before the deadline. At the end every record
//! is in S3 or was counted lost by a process, with its reason.
//!
//! * CI runs [`SEEDS`] seeds (a few seconds).
//! * `SIM_SEEDS=200000 cargo test --release --test extension simulation::seeds -- --nocapture`
//!   soaks; `SIM_FIRST` starts elsewhere.
//! * `SIM_SEED=<n> cargo test --release --test extension simulation::replay -- --nocapture`
//!   replays one run and prints its trace.

mod disk;
mod s3;
mod world;

use world::World;

/// Seeds run by default.
const SEEDS: u64 = 2000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeds() {
    let first = env_u64("SIM_FIRST").unwrap_or(1);
    let n = env_u64("SIM_SEEDS").unwrap_or(SEEDS);
    let started = std::time::Instant::now();
    let (mut simulated, mut steps, mut records, mut puts) = (std::time::Duration::ZERO, 0, 0, 0);
    let mut lost = std::collections::BTreeMap::new();
    for seed in first..first + n {
        let mut w = World::new(seed, false);
        if let Err(e) = w.run() {
            panic!(
                "seed {seed}: {e}\nreplay: SIM_SEED={seed} cargo test --release --test extension simulation::replay -- --nocapture\n{:?}",
                w.params()
            );
        }
        simulated += w.simulated();
        steps += w.steps;
        let (r, p, l) = w.summary();
        records += r;
        puts += p;
        for (why, n) in l {
            *lost.entry(why).or_insert(0) += n;
        }
    }
    println!(
        "{n} seeds from {first}: {:.1} simulated hours, {steps} steps, {records} records, {puts} PUTs, in {:.1} s; not in S3, each counted lost by a process: {lost:?}",
        simulated.as_secs_f64() / 3600.0,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn replay() {
    let Some(seed) = env_u64("SIM_SEED") else {
        return;
    };
    let mut w = World::new(seed, true);
    let outcome = w.run();
    for line in &w.trace {
        println!("{line}");
    }
    println!("{:?}", w.params());
    if let Err(e) = outcome {
        panic!("seed {seed}: {e}");
    }
}
