//! The S3 endpoint: a real S3-protocol server on 127.0.0.1 (path-style, SigV4 verified against the
//! credentials it hands out), in memory, with S3's rules at the edges ([`rules`]), its time limits
//! on connections ([`conn`]), fault injection and a log of every request.

mod conn;
mod faults;
mod integrity;
mod multipart;
pub mod operation_class;
pub mod rules;
mod store;

pub use faults::{Faults, Injected, Refusal, prefix_of};
pub use store::{StoredObject, WriteRecord};

use crate::sync::lock;
use bytes::Bytes;
use faults::PrefixBuckets;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;
use tokio::net::TcpListener;

/// S3's time limits on connections (spec §3). Neither is documented; client reports put the
/// socket timeout at about 20 s, and we take the same for idle keep-alive connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request whose body sends nothing for this long is answered 400 RequestTimeout and its
    /// connection closed.
    pub socket: Duration,
    /// A keep-alive connection with no request and no byte for this long is closed.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            socket: Duration::from_secs(20),
            idle: Duration::from_secs(20),
        }
    }
}

/// The credentials the endpoint accepts (handed to the extensions as the function's role would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// One request the endpoint received.
#[derive(Debug, Clone, Serialize)]
pub struct S3RequestRecord {
    pub at_ms: f64,
    pub method: String,
    pub path: String,
    pub operation: String,
    pub status: u16,
    pub injected: Option<Injected>,
    /// The body came `aws-chunked` (SigV4 streaming, possibly with trailing checksums).
    pub aws_chunked: bool,
    /// The object key (percent-decoded), for requests on an object.
    pub key: Option<String>,
    /// Bytes of the request body as received.
    pub body_bytes: usize,
    /// The S3 error code of a 4xx/5xx answer (the endpoint's own or the store's).
    pub error_code: Option<String>,
}

struct EndpointState {
    faults: Faults,
    timeouts: Timeouts,
    prefixes: PrefixBuckets,
    /// Whether the environment is frozen (the emulator's delivery hold), for uploads cut by a freeze.
    frozen: Option<tokio::sync::watch::Receiver<bool>>,
    puts: u64,
    requests: Vec<S3RequestRecord>,
}

/// A running S3 endpoint. Cheap to clone; every clone sees the same objects.
#[derive(Clone)]
pub struct S3Endpoint {
    addr: SocketAddr,
    credentials: Credentials,
    region: String,
    store: Store,
    state: Arc<Mutex<EndpointState>>,
    started: Instant,
}

impl std::fmt::Debug for S3Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Endpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

impl S3Endpoint {
    /// Starts an endpoint on 127.0.0.1 (an ephemeral port).
    pub async fn start(region: &str) -> std::io::Result<Self> {
        Self::start_with(region, Timeouts::default()).await
    }

    /// Starts an endpoint with the given connection time limits.
    pub async fn start_with(region: &str, timeouts: Timeouts) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let credentials = Credentials {
            access_key_id: format!("ASIAEMULATOR{}", id[..8].to_uppercase()),
            secret_access_key: format!("emulated-secret-{id}"),
            session_token: format!("emulated-session-{}", &id[8..]),
        };
        let store = Store::new(region, started);
        let mut builder = s3s::service::S3ServiceBuilder::new(store.clone());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
        ));
        let service = builder.build();
        let endpoint = Self {
            addr,
            credentials,
            region: region.to_string(),
            store,
            state: Arc::new(Mutex::new(EndpointState {
                faults: Faults::default(),
                timeouts,
                prefixes: PrefixBuckets::default(),
                frozen: None,
                puts: 0,
                requests: Vec::new(),
            })),
            started,
        };
        let ep = endpoint.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ep = ep.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let idle = lock(&ep.state).timeouts.idle;
                    let (io, activity) = conn::Tracked::new(stream);
                    let busy = activity.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let ep = ep.clone();
                        let service = service.clone();
                        let guard = busy.request();
                        async move {
                            let r = ep.handle(service, req).await;
                            drop(guard);
                            r
                        }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc);
                    conn::close_when_idle(connection, &activity, idle).await;
                });
            }
        });
        Ok(endpoint)
    }

    async fn handle(
        &self,
        service: s3s::service::S3Service,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<s3s::Body>, std::io::Error> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let operation = operation(&method, &path, &query);
        let key = object_key(&path);
        let aws_chunked = req
            .headers()
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("STREAMING-"));
        let class = operation_class::classify(operation);
        let kind = faults::Kind {
            put: class.uploads,
            write: class.writes_object,
        };
        let since_start = self.started.elapsed();
        let (mut injected, latency, timeouts, cut) = self.inject(kind, key.as_deref(), since_start);
        let mut record = S3RequestRecord {
            at_ms: crate::clock::ms(since_start),
            method,
            path,
            operation: operation.to_string(),
            status: 0,
            injected,
            aws_chunked,
            key,
            body_bytes: 0,
            error_code: None,
        };
        if injected == Some(Injected::FreezeCut) && !cut_by_freeze(cut, timeouts.socket).await {
            injected = None;
            record.injected = None;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if injected == Some(Injected::ConnectionReset) {
            self.log(record, 0);
            // An error from the service makes hyper drop the connection without an answer.
            return Err(std::io::Error::other("injected connection reset"));
        }
        // S3 reads the whole body before it answers, and gives up on one that stalls (spec §3).
        let (parts, body) = req.into_parts();
        let body = match conn::read_body(body, timeouts.socket).await {
            Ok(b) => b,
            Err(conn::BodyError::Stalled(got)) => {
                record.body_bytes = got;
                let response = error_response(400, "RequestTimeout", faults::REQUEST_TIMEOUT, true);
                self.log_answer(record, &response);
                return Ok(response);
            }
            Err(conn::BodyError::Gone(e)) => {
                self.log(record, 0);
                return Err(std::io::Error::other(e));
            }
        };
        record.body_bytes = body.len();
        let response = match injected {
            Some(i) if i != Injected::ReplyLost => {
                let (status, code, message) = faults::error_document(i);
                error_response(status, code, message, i == Injected::FreezeCut)
            }
            _ => {
                self.serve(service, parts, body, operation, &mut record)
                    .await?
            }
        };
        if injected == Some(Injected::ReplyLost) {
            // Stored (or answered with the store's error); the answer never leaves.
            self.log(record, 0);
            return Err(std::io::Error::other("injected lost reply"));
        }
        self.log_answer(record, &response);
        Ok(response)
    }

    /// What this request meets: the fault injected (a scheduled one, or SlowDown from a prefix
    /// past its write rate), the latency, the time limits, and the freeze that cuts it.
    fn inject(
        &self,
        kind: faults::Kind,
        key: Option<&str>,
        since_start: Duration,
    ) -> (Option<Injected>, Duration, Timeouts, Option<FreezeCut>) {
        let mut st = lock(&self.state);
        if kind.put {
            st.puts += 1;
        }
        let seq = st.puts;
        let latency = st.faults.latency;
        let mut injected = faults::decide(&mut st.faults, kind, seq, since_start);
        if injected.is_none()
            && kind.write
            && let (Some(rate), Some(k)) = (st.faults.prefix_write_rate, key)
            && !st.prefixes.admit(k, rate, since_start)
        {
            injected = Some(Injected::PrefixSlowDown);
        }
        let cut = (injected == Some(Injected::FreezeCut))
            .then(|| st.frozen.clone().map(|f| (f, st.faults.freeze_cut_wait)))
            .flatten();
        (injected, latency, st.timeouts, cut)
    }

    /// The store's answer (s3s over the in-memory store), with its error code read for the log;
    /// an UploadPart's checksum headers are left out when the faults say so.
    async fn serve(
        &self,
        service: s3s::service::S3Service,
        parts: http::request::Parts,
        body: bytes::Bytes,
        operation: &str,
        record: &mut S3RequestRecord,
    ) -> Result<http::Response<s3s::Body>, std::io::Error> {
        let req = http::Request::from_parts(parts, s3s::Body::from(body));
        let mut response = service
            .call(req)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        if !response.status().is_success() {
            // The store's errors are small XML documents: read the code for the log.
            let (parts, body) = response.into_parts();
            let bytes = http_body_util::BodyExt::collect(body)
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            record.error_code = error_code(&bytes);
            response = http::Response::from_parts(parts, s3s::Body::from(bytes));
        }
        if operation == "UploadPart" && lock(&self.state).faults.omit_part_checksums {
            let headers = response.headers_mut();
            let echoed: Vec<http::HeaderName> = headers
                .keys()
                .filter(|h| h.as_str().starts_with("x-amz-checksum-"))
                .cloned()
                .collect();
            for h in echoed {
                headers.remove(h);
            }
        }
        Ok(response)
    }

    fn log_answer(&self, mut record: S3RequestRecord, response: &http::Response<s3s::Body>) {
        if record.error_code.is_none() && !response.status().is_success() {
            record.error_code = response
                .headers()
                .get("x-emulator-error-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
        self.log(record, response.status().as_u16());
    }

    fn log(&self, mut record: S3RequestRecord, status: u16) {
        record.status = status;
        lock(&self.state).requests.push(record);
    }

    /// When the endpoint started: request and write times are milliseconds since then.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL_S3` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn create_bucket(&self, name: &str) {
        self.store.create_bucket(name);
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// The fault configuration now (counters count down as faults are injected).
    pub fn faults_now(&self) -> Faults {
        lock(&self.state).faults.clone()
    }

    /// Edits the fault configuration in place.
    pub fn faults(&self, edit: impl FnOnce(&mut Faults)) {
        edit(&mut lock(&self.state).faults);
    }

    /// Changes the connection time limits (for connections accepted from now on, and for the
    /// socket timeout of every request from now on).
    pub fn set_timeouts(&self, timeouts: Timeouts) {
        lock(&self.state).timeouts = timeouts;
    }

    /// Tells the endpoint when the environment is frozen (see [`Faults::freeze_cut_next_writes`]).
    pub fn set_frozen_signal(&self, frozen: tokio::sync::watch::Receiver<bool>) {
        lock(&self.state).frozen = Some(frozen);
    }

    /// Every object of `bucket`, by key.
    pub fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        lock(&self.store.inner)
            .buckets
            .get(bucket)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        lock(&self.store.inner)
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .cloned()
    }

    pub fn bucket_exists(&self, bucket: &str) -> bool {
        lock(&self.store.inner).buckets.contains_key(bucket)
    }

    /// Every successful write, in order (a key written twice appears twice).
    pub fn writes(&self) -> Vec<WriteRecord> {
        lock(&self.store.inner).writes.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<S3RequestRecord> {
        lock(&self.state).requests.clone()
    }
}

/// Whether a write marked [`Injected::FreezeCut`] is cut: the environment freezes within the wait
/// and stays frozen past the socket timeout (a body still being sent then stops arriving).
/// The freeze that may cut an upload, and how long S3 waits before it answers RequestTimeout.
type FreezeCut = (tokio::sync::watch::Receiver<bool>, Duration);

async fn cut_by_freeze(cut: Option<FreezeCut>, socket_timeout: Duration) -> bool {
    let Some((mut frozen, wait)) = cut else {
        return false;
    };
    if tokio::time::timeout(wait, frozen.wait_for(|f| *f))
        .await
        .is_err()
    {
        return false;
    }
    // Frozen: S3 gives up on the body after its socket timeout, unless the thaw comes first.
    tokio::time::timeout(socket_timeout, frozen.wait_for(|f| !*f))
        .await
        .is_err()
}

/// An S3 error document, as the endpoint answers an injected fault or a timeout.
fn error_response(
    status: u16,
    code: &str,
    message: &str,
    close: bool,
) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>emulated</RequestId></Error>"
    );
    let mut b = http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-emulator-error-code", code);
    if close {
        b = b.header("connection", "close");
    }
    b.body(s3s::Body::from(Bytes::from(body)))
        .expect("a static response")
}

/// The `<Code>` of an S3 error document.
fn error_code(xml: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(xml).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].to_string())
}

/// The object key of a path-style request (`/bucket/key`), percent-decoded.
fn object_key(path: &str) -> Option<String> {
    let (_, key) = path.trim_start_matches('/').split_once('/')?;
    if key.is_empty() {
        return None;
    }
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Names the S3 operation of a path-style request.
fn operation(method: &str, path: &str, query: &str) -> &'static str {
    let has_key = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let q = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    match (method, has_key) {
        ("PUT", true) if q("partNumber") && q("uploadId") => "UploadPart",
        ("PUT", true) => "PutObject",
        ("PUT", false) => "CreateBucket",
        ("POST", true) if q("uploads") => "CreateMultipartUpload",
        ("POST", true) if q("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if q("uploadId") => "AbortMultipartUpload",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("GET", false) if q("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn names_operations_of_path_style_requests() {
        assert_eq!(operation("PUT", "/logs/2026/a.log", ""), "PutObject");
        assert_eq!(operation("PUT", "/logs", ""), "CreateBucket");
        assert_eq!(
            operation("PUT", "/logs/k", "partNumber=1&uploadId=x"),
            "UploadPart"
        );
        assert_eq!(
            operation("POST", "/logs/k", "uploads"),
            "CreateMultipartUpload"
        );
        assert_eq!(
            operation("POST", "/logs/k", "uploadId=x"),
            "CompleteMultipartUpload"
        );
        assert_eq!(
            operation("GET", "/logs", "list-type=2&prefix=a"),
            "ListObjectsV2"
        );
        assert_eq!(operation("HEAD", "/logs", ""), "HeadBucket");
    }

    #[test]
    fn keys_are_decoded_and_error_codes_read() {
        assert_eq!(
            super::object_key("/logs/function%3Dx/dt%3D1/a.gz").as_deref(),
            Some("function=x/dt=1/a.gz")
        );
        assert_eq!(super::object_key("/logs"), None);
        assert_eq!(super::object_key("/logs/100%"), Some("100%".into()));
        assert_eq!(
            super::error_code(b"<Error><Code>EntityTooSmall</Code></Error>").as_deref(),
            Some("EntityTooSmall")
        );
    }
}
