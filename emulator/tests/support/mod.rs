//! Helpers for the emulator's tests: an extensions directory of `tiny-extension` copies under
//! chosen names, their journals, and a raw client for the Runtime API.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lambda_emulator::EmulatorBuilder;
use lambda_emulator::s3::S3Endpoint;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub extensions: PathBuf,
    pub journals: PathBuf,
}

/// An extensions directory where each of `names` is the tiny test extension.
pub fn extensions(names: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let extensions = dir.path().join("extensions");
    let journals = dir.path().join("journals");
    std::fs::create_dir_all(&extensions).expect("mkdir");
    std::fs::create_dir_all(&journals).expect("mkdir");
    for n in names {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tiny-extension"), extensions.join(n))
            .expect("symlink");
    }
    Fixture {
        _dir: dir,
        extensions,
        journals,
    }
}

impl Fixture {
    /// A builder for this directory with the journal variable set and test-friendly timeouts.
    pub fn builder(&self) -> EmulatorBuilder {
        EmulatorBuilder::new(&self.extensions)
            .env("TINY_JOURNAL_DIR", self.journals.to_string_lossy())
            .with(|f| f.init_timeout_ms = 5_000)
            .with(|f| f.retry_backoff_ms = (10, 50))
    }

    /// Everything extension `name` journaled, in order.
    pub fn journal(&self, name: &str) -> Vec<Value> {
        read_journal(&self.journals.join(format!("{name}.jsonl")))
    }

    /// The records `name` accepted (deliveries it answered 200), in order.
    pub fn records(&self, name: &str) -> Vec<Value> {
        records_of(&self.journal(name))
    }
}

pub fn read_journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal lines are JSON"))
        .collect()
}

pub fn records_of(journal: &[Value]) -> Vec<Value> {
    journal
        .iter()
        .filter(|e| e["kind"] == "delivery" && e["answered"] == 200)
        .flat_map(|e| {
            e["body"]
                .as_array()
                .cloned()
                .expect("a delivery is a JSON array")
        })
        .collect()
}

pub fn of_kind(journal: &[Value], kind: &str) -> Vec<Value> {
    journal
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

pub fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

/// The function-line messages among `records`: the JSON format's `message`, or the text format's
/// last field (`<timestamp>\t<requestId>\t<LEVEL>\t<message>`, or the bare line outside a request).
pub fn function_messages(records: &[Value]) -> Vec<String> {
    of_type(records, "function")
        .into_iter()
        .map(|r| match &r["record"] {
            Value::String(s) => {
                let line = s.trim_end_matches('\n');
                line.splitn(4, '\t').nth(3).unwrap_or(line).to_string()
            }
            obj => obj["message"]
                .as_str()
                .expect("a JSON line has a message")
                .to_string(),
        })
        .collect()
}

/// One raw call to the Runtime API: (status, JSON body).
pub async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.to_string())))
                .expect("request"),
        )
        .await
        .expect("call");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An AWS SDK client for `ep`: its credentials (or another secret), path-style, `retries` retries.
pub fn s3_client(ep: &S3Endpoint, secret: Option<&str>, retries: u32) -> aws_sdk_s3::Client {
    let c = ep.credentials();
    let creds = Credentials::new(
        &c.access_key_id,
        secret.unwrap_or(&c.secret_access_key),
        Some(c.session_token.clone()),
        None,
        "emulator",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(ep.region().to_string()))
        .credentials_provider(creds)
        .endpoint_url(ep.url())
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(
            aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(retries + 1),
        )
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The S3 error code of an SDK error (or its debug text).
pub fn s3_code<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("").to_string(),
        other => format!("{other:?}"),
    }
}
