//! The emulator's scenario files (`emulator/scenarios/`), run against the release binary: each
//! asserts its own expectations through the emulator's line-exact verdict (every function line in
//! S3 exactly once, no invoke paying for S3, as the file says).

use crate::support::{NAME, free_port, layer};
use lambda_emulator::{Report, Scenario};

/// Runs `emulator/scenarios/<name>.toml` on the extension; returns the report after asserting that
/// the verdict passed.
pub async fn scenario(name: &str) -> (Report, lambda_emulator::Emulator) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("emulator/scenarios")
        .join(format!("{name}.toml"));
    let s = Scenario::load(&path).unwrap();
    let l = layer();
    let mut emu = s
        .builder(&l.extensions)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT",
            free_port().to_string(),
        )
        .start()
        .await
        .unwrap();
    let report = s.run(&mut emu).await;
    assert!(
        report.init_failures.is_empty(),
        "{:?}",
        report.init_failures
    );
    assert!(
        report.verdict.passed,
        "{name}: {:?}\n{}\n{}",
        report.verdict.failures,
        report.to_table(),
        emu.extension_output(NAME).join("\n")
    );
    assert_eq!(report.verdict.lines_found, report.verdict.lines_emitted);
    (report, emu)
}

#[tokio::test]
async fn steady() {
    let (r, _) = scenario("steady").await;
    assert_eq!(r.verdict.lines_emitted, 1000);
}

#[tokio::test]
async fn idle_connections_closed() {
    let (r, _) = scenario("idle-connections-closed").await;
    assert_eq!(r.verdict.lines_emitted, 24);
}

#[tokio::test]
async fn stragglers() {
    let (r, _) = scenario("stragglers").await;
    assert_eq!(r.verdict.lines_emitted, 5 * 3 + 3 + 20);
}
