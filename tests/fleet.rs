//! A small fleet on one throttled prefix, through the emulator's fleet mode: environments that
//! start and spin down, all writing the Hive layout to one S3 prefix that takes a third of what
//! they would write unpaced. They must pace themselves (larger objects), lose nothing and never
//! write a key twice with different content.

use crate::support::{BUCKET, layer};
use lambda_emulator::fleet::{FleetConfig, run};
use std::time::Duration;

#[tokio::test]
async fn a_throttled_fleet_ships_larger_objects_and_loses_nothing() {
    let l = layer();
    let cfg = FleetConfig {
        extensions_dir: l.extensions.clone(),
        environments: 4,
        duration: Duration::from_secs(14),
        lifetime: Duration::from_secs(12),
        invoke_every: Duration::from_millis(250),
        env: [
            ("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", BUCKET),
            ("ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT", "{port}"),
            (
                "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE",
                "logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{uuid}.ndjson",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        bucket: BUCKET.into(),
        // Unpaced, each environment ships 4 KiB about twice a second: 8 writes/s in all, three
        // times the limit.
        prefix_write_rate: Some(2.7),
        // Below the ports bind(0) hands out (the other tests' listeners), apart per test process.
        port_base: 21_000 + (std::process::id() % 400) as u16 * 20,
        ..FleetConfig::default()
    };
    let report = run(cfg).await.unwrap();
    let v = &report.verdict;
    assert!(
        v.passed && v.lines_found == v.lines_emitted && v.lines_emitted > 0,
        "{}",
        report.to_table()
    );
    assert_eq!(v.keys_rewritten_differently, 0);
    assert!(
        report.slowdowns > 0,
        "the prefix throttled: {}",
        report.to_table()
    );
    // Unpaced, an object holds what two or three invokes logged (4–6 KiB; a throttled batch is
    // retried as it is). Paced by 4 on the first SlowDown (spread ±25 %), or merged while
    // throttled, objects hold at least three times the 4 KiB threshold. (Environments that lived
    // only seconds never paced: the median is not a safe measure here.)
    assert!(
        report.object_bytes.max >= 3.0 * 4096.0,
        "{}",
        report.to_table()
    );
}
