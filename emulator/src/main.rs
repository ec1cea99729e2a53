//! `lambda-emulator run --extensions DIR --invocations N …` (or `--scenario FILE`): runs the
//! extensions of DIR in an emulated Lambda execution environment, prints the measurements and the
//! line-exact verdict, and exits 1 when init failed or the verdict found a failure it was not told
//! to tolerate.

use clap::{Parser, Subcommand};
use lambda_emulator::s3::Refusal;
use lambda_emulator::scenario::{FaultEdit, S3Settings, Workload};
use lambda_emulator::settings::Function;
use lambda_emulator::{Expect, Scenario, Tolerate};
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
    Run(Box<RunArgs>),
    /// Run many environments at once on one S3 endpoint with a per-prefix request limit: PUT/s per
    /// prefix over time, SlowDown, freshness, the verdict over every environment, a plot.
    Fleet(Box<FleetArgs>),
}

#[derive(Parser)]
struct FleetArgs {
    /// Directory whose executables are started as extensions in every environment.
    #[arg(long, required_unless_present = "extension")]
    extensions: Option<PathBuf>,
    /// An extension binary to start in every environment (repeatable; instead of --extensions).
    #[arg(long)]
    extension: Vec<PathBuf>,
    /// Environments alive at once; each is replaced by a new one when it spins down.
    #[arg(long, default_value_t = 20)]
    environments: usize,
    /// How long new environments keep starting, in seconds. The run goes on until the last one's
    /// lifetime ends (up to 1.25 × --lifetime-s more); the progress lines show it.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// How long an environment lives before SHUTDOWN (±25 %), in seconds.
    #[arg(long, default_value_t = 20)]
    lifetime_s: u64,
    /// One invoke per environment every this many ms (frozen in between).
    #[arg(long, default_value_t = 500)]
    invoke_every_ms: u64,
    /// Function lines per invoke (each with its verdict marker).
    #[arg(long, default_value_t = 5)]
    lines: usize,
    /// Bytes per function line.
    #[arg(long, default_value_t = 200)]
    line_bytes: usize,
    /// How long the function runs per invoke, in ms.
    #[arg(long, default_value_t = 5)]
    duration_ms: u64,
    /// KEY=VALUE for every extension; `{env}` becomes the environment's number, `{port}` a port of
    /// its own (repeatable).
    #[arg(long, value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// The function's name (AWS_LAMBDA_FUNCTION_NAME; Hive layouts put it in the prefix).
    #[arg(long, default_value = "fleet-function")]
    function_name: String,
    /// The bucket every environment writes to.
    #[arg(long, default_value = "logs")]
    bucket: String,
    /// S3's per-prefix write limit, scaled down for this machine: writes per second per prefix
    /// before 503 SlowDown (S3 sustains 3,500).
    #[arg(long)]
    prefix_rate: Option<f64>,
    /// What one simulated PUT/s stands for, in real PUT/s (default: 3,500 / --prefix-rate).
    #[arg(long)]
    scale: Option<f64>,
    /// The time series' resolution, in ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// SlowDown is also counted after this many seconds (S3 and the extensions settle).
    #[arg(long, default_value_t = 10)]
    warmup_s: u64,
    /// The first port `{port}` hands out; environment n gets this + n % 20,000. Keep the range
    /// below the kernel's ephemeral ports (32768 and up on Linux): a port an outgoing connection
    /// holds cannot be bound, and the extension fails its init.
    #[arg(long, default_value_t = 12000)]
    port_base: u16,
    /// Seed of the lifetimes and of each environment's platform (runs are repeatable in shape).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fail when SlowDown is above this share of PUT requests after the warm-up (0.05 = 5 %).
    #[arg(long)]
    max_slowdown_ratio: Option<f64>,
    /// Fail when the freshness p99 is above this, in ms.
    #[arg(long)]
    max_freshness_p99_ms: Option<f64>,
    /// Failures the verdict tolerates (as for `run`).
    #[arg(long, value_delimiter = ',', value_parser = Tolerate::parse)]
    tolerate: Vec<Tolerate>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the plot of PUT/s and freshness over time to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Write each environment's extension output to DIR/env-<n>.log.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// No progress line on stderr (one every 5 s: time, environments, PUT/s, SlowDown, lines lost).
    #[arg(long)]
    quiet: bool,
}

#[derive(Parser)]
struct RunArgs {
    /// A scenario file (TOML, or JSON for .json): function, environment, workload, S3 faults over
    /// time, expectations. The workload, fault and function options below are then not used;
    /// --env, --bucket and --tolerate add to the file's.
    #[arg(long)]
    scenario: Option<PathBuf>,
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
    /// Function lines the runtime writes after SHUTDOWN (after the last report), over 200 ms.
    #[arg(long, default_value_t = 0)]
    stragglers: usize,
    /// A bucket to create on the S3 endpoint (repeatable).
    #[arg(long)]
    bucket: Vec<String>,
    /// KEY=VALUE added to the extensions' environment (repeatable).
    #[arg(long, value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// The function and platform (--function-name, --memory-mb, --timeout-ms, ...).
    #[command(flatten)]
    function: Function,
    /// Managed Instances: concurrent invocations.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
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
    /// S3: refuse the first N writes with 403 (see --s3-refusal).
    #[arg(long, default_value_t = 0)]
    s3_refuse_writes: u32,
    /// S3: refuse every write in a window, START-END in milliseconds from the start.
    #[arg(long, value_parser = parse_window)]
    s3_refuse_window_ms: Option<(u64, u64)>,
    /// S3: what a refusal is: access-denied, or kms (AccessDenied naming kms:GenerateDataKey).
    #[arg(long, default_value = "access-denied", value_parser = parse_refusal)]
    s3_refusal: Refusal,
    /// S3: writes per second each key prefix takes before 503 SlowDown (S3: 3,500).
    #[arg(long)]
    s3_prefix_rate: Option<f64>,
    /// S3: the first N object writes are cut if the environment freezes while they are in
    /// flight (400 RequestTimeout after the thaw).
    #[arg(long, default_value_t = 0)]
    s3_freeze_cut_writes: u32,
    /// S3: a body that stalls this long gets 400 RequestTimeout.
    #[arg(long, default_value_t = 20_000)]
    s3_socket_timeout_ms: u64,
    /// S3: an idle keep-alive connection is closed after this long.
    #[arg(long, default_value_t = 20_000)]
    s3_idle_timeout_ms: u64,
    /// Failures the verdict tolerates, comma-separated: lost-after-ack, dropped-by-lambda,
    /// unacknowledged, duplicate, bad-object, timeout, crash, kill.
    #[arg(long, value_delimiter = ',', value_parser = Tolerate::parse)]
    tolerate: Vec<Tolerate>,
    /// Fail the verdict when post-runtime p99 is above this.
    #[arg(long)]
    max_post_runtime_p99_ms: Option<f64>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Do not copy the extensions' output to stderr, and print no progress line (one every 5 s:
    /// time, PUT/s, SlowDown so far, objects in S3).
    #[arg(long)]
    quiet: bool,
    /// Write every S3 object under DIR/<bucket>/<key> after the run.
    #[arg(long)]
    dump_s3: Option<PathBuf>,
}

impl RunArgs {
    /// The run the options describe, as a scenario.
    fn scenario(&self) -> Scenario {
        let a = self;
        let window = |w: Option<(u64, u64)>| w.map(|(x, y)| [x, y]);
        Scenario {
            name: "command line".into(),
            function: a.function.clone(),
            workload: Workload {
                invocations: a.invocations,
                lines: a.lines,
                line_bytes: a.line_bytes,
                duration_ms: a.duration_ms,
                gap_ms: a.gap_ms,
                late_lines: a.late_lines,
                stragglers: a.stragglers,
                concurrency: a.concurrency,
                ..Workload::default()
            },
            s3: S3Settings {
                socket_timeout_ms: a.s3_socket_timeout_ms,
                idle_timeout_ms: a.s3_idle_timeout_ms,
            },
            faults: vec![FaultEdit {
                fail_next_puts: Some(a.s3_fail_puts),
                slowdown_every: a.s3_slowdown_every,
                outage_ms: window(a.s3_outage_ms),
                latency_ms: Some(a.s3_latency_ms),
                reset_next_puts: Some(a.s3_reset_puts),
                refuse_next_writes: Some(a.s3_refuse_writes),
                refuse_window_ms: window(a.s3_refuse_window_ms),
                refusal: Some(a.s3_refusal),
                prefix_write_rate: a.s3_prefix_rate,
                freeze_cut_next_writes: Some(a.s3_freeze_cut_writes),
                ..FaultEdit::default()
            }],
            expect: Expect {
                max_post_runtime_p99_ms: a.max_post_runtime_p99_ms,
                ..Expect::default()
            },
            ..Scenario::default()
        }
    }
}

/// Links each binary into a fresh directory under its file name.
/// The extensions directory: `--extensions DIR`, or the `--extension` binaries linked into a
/// temporary one, as a layer would place them (kept alive by the returned guard).
fn extensions_dir(
    dir: Option<&PathBuf>,
    binaries: &[PathBuf],
) -> Result<(PathBuf, Option<tempfile::TempDir>), ExitCode> {
    let staged = stage(binaries).map_err(|e| {
        eprintln!("lambda-emulator: cannot stage the extensions: {e}");
        ExitCode::from(2)
    })?;
    match (dir, staged) {
        (Some(d), staged) => Ok((d.clone(), staged)),
        (None, Some(t)) => Ok((t.path().to_path_buf(), Some(t))),
        (None, None) => {
            eprintln!("lambda-emulator: give --extensions DIR or --extension BINARY");
            Err(ExitCode::from(2))
        }
    }
}

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

/// Resolves at SIGTERM or SIGINT (never, if neither can be watched).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} },
        _ => std::future::pending().await,
    }
}

/// Every object of `buckets` under `dir/<bucket>/<key>`; a file that cannot be written is said.
fn dump_s3(s3: &lambda_emulator::s3::S3Endpoint, buckets: &[String], dir: &std::path::Path) {
    for bucket in buckets {
        for o in s3.objects(bucket) {
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

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn parse_refusal(s: &str) -> Result<Refusal, String> {
    match s {
        "access-denied" => Ok(Refusal::AccessDenied),
        "kms" => Ok(Refusal::Kms),
        _ => Err(format!("expected access-denied or kms, got {s:?}")),
    }
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
    let a = match Cli::parse().command {
        Command::Run(a) => *a,
        Command::Fleet(f) => return fleet(*f).await,
    };
    let mut scenario = match &a.scenario {
        Some(path) => match Scenario::load(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("lambda-emulator: {e}");
                return ExitCode::from(2);
            }
        },
        None => a.scenario(),
    };
    scenario.env.extend(a.env.iter().cloned());
    for b in &a.bucket {
        if !scenario.buckets.contains(b) {
            scenario.buckets.push(b.clone());
        }
    }
    scenario.expect.tolerate.extend(a.tolerate.iter().copied());
    let (dir, _staged) = match extensions_dir(a.extensions.as_ref(), &a.extension) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let builder = scenario.builder(&dir).echo_extension_output(!a.quiet);
    let mut emu = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("lambda-emulator: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    // Interrupted (Ctrl-C, or a timeout's SIGTERM): leave no extension process behind.
    let interrupted = interrupted();
    let progress = (!a.quiet).then(|| {
        lambda_emulator::progress::spawn_for_run(emu.s3().clone(), scenario.buckets.clone())
    });
    let report = tokio::select! {
        r = scenario.run(&mut emu) => Some(r),
        _ = interrupted => None,
    };
    if let Some(p) = progress {
        p.abort();
    }
    let Some(report) = report else {
        drop(emu);
        eprintln!("lambda-emulator: interrupted; the extensions were killed");
        return ExitCode::from(130);
    };
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(dir) = &a.dump_s3 {
        dump_s3(emu.s3(), &scenario.buckets, dir);
    }
    // Init failures, and any failure the verdict does not tolerate, fail the run.
    if report.init_failures.is_empty() && report.verdict.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn fleet(a: FleetArgs) -> ExitCode {
    let (dir, _staged) = match extensions_dir(a.extensions.as_ref(), &a.extension) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let cfg = lambda_emulator::fleet::FleetConfig {
        extensions_dir: dir,
        environments: a.environments.max(1),
        duration: Duration::from_secs(a.duration_s),
        lifetime: Duration::from_secs(a.lifetime_s.max(1)),
        invoke_every: Duration::from_millis(a.invoke_every_ms),
        invoke: lambda_emulator::InvokeScript {
            lines: a.lines,
            line_bytes: a.line_bytes,
            duration: Duration::from_millis(a.duration_ms),
        },
        env: a.env.clone(),
        function_name: a.function_name.clone(),
        bucket: a.bucket.clone(),
        prefix_write_rate: a.prefix_rate,
        interval: Duration::from_millis(a.interval_ms.max(10)),
        warmup: Duration::from_secs(a.warmup_s),
        port_base: a.port_base,
        seed: a.seed,
        expect: Expect {
            tolerate: a.tolerate.clone(),
            ..Expect::default()
        },
        log_dir: a.log_dir.clone(),
        progress_every: (!a.quiet).then_some(lambda_emulator::progress::EVERY),
    };
    let report = match lambda_emulator::fleet::run(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lambda-emulator: the fleet could not start: {e}");
            return ExitCode::from(2);
        }
    };
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
        if let Some(rate) = a.prefix_rate {
            let scale = a.scale.unwrap_or(3500.0 / rate);
            println!(
                "scale: one simulated PUT/s stands for {scale:.0} real PUT/s (S3's 3,500 per prefix / {rate})"
            );
        }
    }
    if let Some(path) = &a.svg
        && let Err(e) = std::fs::write(path, lambda_emulator::fleet::svg(&report))
    {
        eprintln!("lambda-emulator: cannot write {}: {e}", path.display());
    }
    let mut ok = report.verdict.passed;
    if let Some(max) = a.max_slowdown_ratio
        && report.slowdown_ratio_after_warmup > max
    {
        println!(
            "FAILED: SlowDown is {:.1} % of PUT requests after the warm-up, above {:.1} %",
            report.slowdown_ratio_after_warmup * 100.0,
            max * 100.0
        );
        ok = false;
    }
    if let Some(max) = a.max_freshness_p99_ms
        && report.freshness_ms.p99 > max
    {
        println!(
            "FAILED: freshness p99 {:.0} ms is above {max} ms",
            report.freshness_ms.p99
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
