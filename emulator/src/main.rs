//! `lambda-emulator run --extensions DIR --invocations N …`: runs the extensions of DIR in an
//! emulated Lambda execution environment and prints the measurements.

use clap::{Parser, Subcommand};
use lambda_emulator::s3::Faults;
use lambda_emulator::{EmulatorBuilder, InvokeScript, Script};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "An emulated AWS Lambda execution environment with an S3 endpoint, for running Lambda extensions locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the extensions of a directory, run invocations, shut down, print the report.
    Run(RunArgs),
}

#[derive(Parser)]
struct RunArgs {
    /// Directory whose executables are started as extensions (file name = extension name).
    #[arg(long, required_unless_present = "extension")]
    extensions: Option<PathBuf>,
    /// An extension binary to start, under its file name (repeatable; instead of --extensions).
    #[arg(long)]
    extension: Vec<PathBuf>,
    #[arg(long, default_value_t = 10)]
    invocations: u64,
    /// Function lines per invocation.
    #[arg(long, default_value_t = 5)]
    lines: usize,
    /// Bytes per function line.
    #[arg(long, default_value_t = 200)]
    line_bytes: usize,
    /// How long each invocation's function runs.
    #[arg(long, default_value_t = 20)]
    duration_ms: u64,
    /// Frozen time between invocations.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
    /// Function lines Lambda still holds at SHUTDOWN.
    #[arg(long, default_value_t = 0)]
    late_lines: usize,
    /// A bucket to create on the S3 endpoint (repeatable).
    #[arg(long)]
    bucket: Vec<String>,
    /// KEY=VALUE added to the extensions' environment (repeatable).
    #[arg(long, value_parser = parse_kv)]
    env: Vec<(String, String)>,
    #[arg(long, default_value = "emulated-function")]
    function_name: String,
    #[arg(long, default_value_t = 128)]
    memory_mb: u64,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Function timeout (bounds the runtime and the extensions together).
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    init_timeout_ms: u64,
    /// SHUTDOWN deadlineMs = release + this.
    #[arg(long, default_value_t = 1700)]
    shutdown_budget_ms: u64,
    /// Seed for the order of held records against the next event.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Emulate Lambda Managed Instances.
    #[arg(long)]
    managed_instances: bool,
    /// Managed Instances: concurrent invocations.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The function uses the JSON log format.
    #[arg(long)]
    json_logs: bool,
    /// Send shutdownReason in upper case, as the docs spell it.
    #[arg(long)]
    upper_case_reason: bool,
    /// Also SIGTERM the extensions at SHUTDOWN.
    #[arg(long)]
    sigterm: bool,
    /// S3: fail the first N object writes with 500.
    #[arg(long, default_value_t = 0)]
    s3_fail_puts: u32,
    /// S3: 503 SlowDown on every k-th object write.
    #[arg(long)]
    s3_slowdown_every: Option<u32>,
    /// S3: latency added to every request.
    #[arg(long, default_value_t = 0)]
    s3_latency_ms: u64,
    /// S3: reset the connection of the first N object writes.
    #[arg(long, default_value_t = 0)]
    s3_reset_puts: u32,
    /// S3: an outage window, START-END in milliseconds from the start.
    #[arg(long, value_parser = parse_window)]
    s3_outage_ms: Option<(u64, u64)>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Do not copy the extensions' output to stderr.
    #[arg(long)]
    quiet: bool,
    /// Write every S3 object under DIR/<bucket>/<key> after the run.
    #[arg(long)]
    dump_s3: Option<PathBuf>,
}

/// Links each binary into a fresh directory under its file name.
fn stage(binaries: &[PathBuf]) -> std::io::Result<Option<tempfile::TempDir>> {
    if binaries.is_empty() {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    for b in binaries {
        let path = std::fs::canonicalize(b)?;
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other(format!("{} has no file name", b.display())))?;
        std::os::unix::fs::symlink(&path, dir.path().join(name))?;
    }
    Ok(Some(dir))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn parse_window(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected START-END, got {s:?}"))?;
    Ok((
        a.parse().map_err(|_| "START is not a number")?,
        b.parse().map_err(|_| "END is not a number")?,
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Run(a) = Cli::parse().command;
    // Single binaries are linked into a temporary extensions directory, as a layer would place them.
    let staged = match stage(&a.extension) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lambda-emulator: cannot stage the extensions: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = match (&a.extensions, &staged) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => {
            eprintln!("lambda-emulator: give --extensions DIR or --extension BINARY");
            return ExitCode::from(2);
        }
    };
    let mut b = EmulatorBuilder::new(&dir)
        .function_name(&a.function_name)
        .memory_mb(a.memory_mb)
        .region(&a.region)
        .invoke_timeout(Duration::from_millis(a.timeout_ms))
        .init_timeout(Duration::from_millis(a.init_timeout_ms))
        .shutdown_budget(Duration::from_millis(a.shutdown_budget_ms))
        .seed(a.seed)
        .upper_case_shutdown_reason(a.upper_case_reason)
        .sigterm_on_shutdown(a.sigterm)
        .echo_extension_output(!a.quiet)
        .s3_faults(Faults {
            fail_next_puts: a.s3_fail_puts,
            slowdown_every: a.s3_slowdown_every,
            outage: a
                .s3_outage_ms
                .map(|(x, y)| (Duration::from_millis(x), Duration::from_millis(y))),
            latency: Duration::from_millis(a.s3_latency_ms),
            reset_next_puts: a.s3_reset_puts,
            ..Faults::default()
        });
    if a.managed_instances {
        b = b.managed_instances();
    }
    if a.json_logs {
        b = b.json_log_format(true);
    }
    for bucket in &a.bucket {
        b = b.bucket(bucket);
    }
    for (k, v) in &a.env {
        b = b.env(k, v);
    }
    let mut emu = match b.start().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("lambda-emulator: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let script = Script {
        invocations: a.invocations,
        invoke: InvokeScript {
            lines: a.lines,
            line_bytes: a.line_bytes,
            duration: Duration::from_millis(a.duration_ms),
        },
        gap: Duration::from_millis(a.gap_ms),
        late_lines: a.late_lines,
        concurrency: a.concurrency,
    };
    let report = emu.run(&script).await;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(dir) = &a.dump_s3 {
        for bucket in &a.bucket {
            for o in emu.s3().objects(bucket) {
                let path = dir.join(bucket).join(&o.key);
                let written = path
                    .parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .and_then(|_| std::fs::write(&path, &o.body));
                if let Err(e) = written {
                    eprintln!("lambda-emulator: cannot write {}: {e}", path.display());
                }
            }
        }
    }
    if report.init_failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
