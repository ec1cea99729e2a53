//! The S3 endpoint: a real S3-protocol server on 127.0.0.1 (path-style, SigV4 verified against the
//! credentials it hands out), in memory, with fault injection and a log of every request.

mod faults;
mod store;

pub use faults::{Faults, Injected};
pub use store::{StoredObject, WriteRecord};

use crate::platform::state::lock;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use store::Store;
use tokio::net::TcpListener;

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
}

struct EndpointState {
    faults: Faults,
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

impl S3Endpoint {
    /// Starts an endpoint on 127.0.0.1 (an ephemeral port).
    pub async fn start(region: &str) -> std::io::Result<Self> {
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
                    let svc = hyper::service::service_fn(move |req| {
                        let ep = ep.clone();
                        let service = service.clone();
                        async move { ep.handle(service, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
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
        let aws_chunked = req
            .headers()
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("STREAMING-"));
        let is_put = operation == "PutObject" || operation == "UploadPart";
        let (injected, latency) = {
            let mut st = lock(&self.state);
            if is_put {
                st.puts += 1;
            }
            let seq = st.puts;
            let latency = st.faults.latency;
            (
                faults::decide(&mut st.faults, is_put, seq, self.started.elapsed()),
                latency,
            )
        };
        let record = S3RequestRecord {
            at_ms: crate::clock::ms(self.started.elapsed()),
            method,
            path,
            operation: operation.to_string(),
            status: 0,
            injected,
            aws_chunked,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let response = match injected {
            Some(Injected::ConnectionReset) => {
                self.log(record, 0);
                // An error from the service makes hyper drop the connection without an answer.
                return Err(std::io::Error::other("injected connection reset"));
            }
            Some(i) => {
                // Drain the body so the client sees the answer rather than a broken pipe.
                let _ = req.into_body().collect().await;
                let (status, code, message) = faults::error_document(i);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>emulated</RequestId></Error>"
                );
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/xml")
                    .body(s3s::Body::from(Bytes::from(body)))
                    .expect("a static response")
            }
            None => service
                .call(req.map(s3s::Body::from))
                .await
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?,
        };
        self.log(record, response.status().as_u16());
        Ok(response)
    }

    fn log(&self, mut record: S3RequestRecord, status: u16) {
        record.status = status;
        lock(&self.state).requests.push(record);
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

    /// Edits the fault configuration in place.
    pub fn faults(&self, edit: impl FnOnce(&mut Faults)) {
        edit(&mut lock(&self.state).faults);
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
}
