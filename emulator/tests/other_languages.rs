//! An extension that shares nothing with this project — the Python example of `emulator/README.md`
//! (standard library only) — run by the CLI exactly as its README says, judged by the verdict.

use serde_json::Value;

fn run_python_example(extra: &[&str]) -> (Option<i32>, Value, String) {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/s3_shipper.py");
    // Tests run at once: each run's listener gets a port of its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["run", "--extension", example, "--bucket", "logs"])
        .args([
            "--env",
            "SHIPPER_BUCKET=logs",
            "--invocations",
            "12",
            "--json",
            "--quiet",
        ])
        .arg(format!("--env=SHIPPER_PORT={port}"))
        .args(extra)
        .output()
        .expect("the emulator runs (python3 must be on PATH)");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_python_example_ships_every_line_once_and_passes() {
    let (code, report, stderr) = run_python_example(&[]);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    let v = &report["verdict"];
    assert_eq!(v["lines_emitted"], 60);
    assert_eq!(v["lines_found"], 60);
    assert_eq!(v["passed"], true);
    assert_eq!(report["extensions"][0]["name"], "s3_shipper.py");
}

#[test]
fn the_verdict_catches_what_the_python_example_gets_wrong() {
    // Refused writes: the example keeps its records and writes them at the next invoke.
    let (code, report, stderr) = run_python_example(&["--s3-refuse-writes", "3"]);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    // A connection reset after S3 stored nothing: kept and written again, still exactly once.
    let (code, report, _) = run_python_example(&["--s3-reset-puts", "2"]);
    assert_eq!(code, Some(0), "{report}");
    // S3 refusing to the end: the example has no spill, and loses what it acknowledged.
    let (code, report, _) = run_python_example(&["--s3-refuse-writes", "1000"]);
    let v = &report["verdict"];
    assert_eq!(code, Some(1));
    assert_eq!(v["lost"]["after_ack"], 60, "{v}");
    assert_eq!(
        v["failures"][0],
        "60 lines lost after the extension acknowledged them (lost-after-ack)"
    );
    let (code, _, _) =
        run_python_example(&["--s3-refuse-writes", "1000", "--tolerate", "lost-after-ack"]);
    assert_eq!(code, Some(0));
}
