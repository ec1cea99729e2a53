//! Helpers: an extensions directory holding the extension binary under its real name, an emulator
//! configured like a Lambda function using it, and readers of what landed in S3.

use adaptive_batching_extension::sink;
use lambda_emulator::{Emulator, EmulatorBuilder};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const BUCKET: &str = "logs-bucket";
pub const NAME: &str = "adaptive-batching-extension";

pub struct Lambda {
    _dir: tempfile::TempDir,
    pub extensions: PathBuf,
    /// This function's spill directory (its /tmp): tests run side by side and must not share one.
    pub spill: PathBuf,
}

/// An extensions directory with the extension as Lambda would have it (`/opt/extensions/<name>`).
pub fn layer() -> Lambda {
    let dir = tempfile::tempdir().expect("tempdir");
    let extensions = dir.path().join("extensions");
    std::fs::create_dir_all(&extensions).expect("mkdir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_adaptive-batching-extension"),
        extensions.join(NAME),
    )
    .expect("symlink");
    let spill = dir.path().join("tmp").join("spill");
    Lambda {
        _dir: dir,
        extensions,
        spill,
    }
}

impl Lambda {
    /// A function `demo-fn` with the bucket configured and existing, on a free listener port.
    pub fn function(&self) -> EmulatorBuilder {
        self.bare()
            .with(|f| f.name = "Demo-Fn".to_string())
            .bucket(BUCKET)
            .env("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", BUCKET)
            .env(
                "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT",
                free_port().to_string(),
            )
            .with(|f| f.init_timeout_ms = 5_000)
            .with(|f| f.timeout_ms = 5_000)
    }

    /// The emulator for this layer with nothing configured but the spill directory.
    pub fn bare(&self) -> EmulatorBuilder {
        EmulatorBuilder::new(&self.extensions).env(
            "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR",
            self.spill.to_string_lossy(),
        )
    }
}

/// The SDK configuration an extension in this process uses to reach the emulator's S3 endpoint.
pub fn sdk_config(ep: &lambda_emulator::s3::S3Endpoint) -> aws_config::SdkConfig {
    let c = ep.credentials();
    let creds = aws_sdk_s3::config::Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(c.session_token.clone()),
        None,
        "emulator",
    );
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(ep.region().to_string()))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .endpoint_url(ep.url())
        .http_client(sink::http_client(&sink::tls::trust_store(None)))
        .build()
}

/// Sets the three ship rates (bytes, invokes, milliseconds).
pub fn ship_rates(b: EmulatorBuilder, bytes: u64, invokes: u64, ms: u64) -> EmulatorBuilder {
    b.env(
        "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTES",
        bytes.to_string(),
    )
    .env(
        "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES",
        invokes.to_string(),
    )
    .env(
        "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_MILLISECONDS",
        ms.to_string(),
    )
}

/// One invocation: `lines` function lines of `line_bytes` over `ms` milliseconds.
pub fn script(lines: usize, line_bytes: usize, ms: u64) -> lambda_emulator::InvokeScript {
    lambda_emulator::InvokeScript {
        lines,
        line_bytes,
        duration: Duration::from_millis(ms),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What landed in the bucket, by key, each object checked to be valid NDJSON (every line one JSON
/// value, every line `\n`-terminated).
pub fn objects(emu: &Emulator) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for o in emu.s3().objects(BUCKET) {
        assert_eq!(
            o.content_type.as_deref(),
            Some("application/x-ndjson"),
            "{}",
            o.key
        );
        let text = std::str::from_utf8(&o.body).expect("UTF-8 body");
        assert!(text.ends_with('\n'), "{} is not newline-terminated", o.key);
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for l in &lines {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{}: a line that is not JSON: {e}: {l}", o.key));
        }
        out.insert(o.key.clone(), lines);
    }
    out
}

/// Starts `b` and expects init to fail with `Extension.ConfigInvalid`: the message reported.
pub async fn config_error(b: EmulatorBuilder) -> String {
    let mut emu = b.start().await.expect("emulator");
    let err = emu.init().await.expect_err("init fails");
    assert_eq!(
        err.extension_error_type.as_deref(),
        Some("Extension.ConfigInvalid")
    );
    err.message.expect("a message")
}

/// Every line of every object.
pub fn shipped_lines(emu: &Emulator) -> Vec<String> {
    objects(emu).into_values().flatten().collect()
}

/// The exact record texts Lambda delivered to the extension (answered 2xx).
pub fn delivered_records(emu: &Emulator) -> Vec<String> {
    emu.subscribers()
        .into_iter()
        .flat_map(|s| s.delivered_records)
        .collect()
}

/// Asserts that S3 holds exactly the delivered records, each once, byte for byte.
pub fn assert_shipped_exactly_once(emu: &Emulator) {
    let mut shipped = shipped_lines(emu);
    let mut delivered = delivered_records(emu);
    assert!(!delivered.is_empty());
    shipped.sort();
    delivered.sort();
    assert_eq!(
        shipped.len(),
        delivered.len(),
        "as many lines in S3 as records delivered"
    );
    assert!(
        shipped == delivered,
        "S3 holds exactly the delivered records"
    );
    // And every line the function wrote is among them.
    let text = shipped.join("\n");
    for line in emu.function_lines() {
        assert_eq!(
            text.matches(line.as_str()).count(),
            1,
            "function line {line:?} shipped exactly once"
        );
    }
}

/// Asserts that no key was written twice with different content.
pub fn assert_no_key_rewritten_differently(emu: &Emulator) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for w in emu.s3().writes() {
        if let Some(prev) = seen.insert(w.key.clone(), w.etag.clone()) {
            assert_eq!(
                prev, w.etag,
                "{} was written twice with different content",
                w.key
            );
        }
    }
}

/// The extension's `shutdown summary` log line.
pub fn summary(emu: &Emulator) -> serde_json::Value {
    log_lines(emu)
        .into_iter()
        .find(|l| l["msg"] == "shutdown summary")
        .expect("a summary line")
}

/// The extension's JSON log lines.
pub fn log_lines(emu: &Emulator) -> Vec<serde_json::Value> {
    emu.extension_output(NAME)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
