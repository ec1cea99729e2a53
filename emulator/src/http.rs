//! The small HTTP layer the emulated APIs share: JSON answers, the `{errorType,errorMessage}` error
//! shape Lambda uses, and an accept loop over hyper.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Body = Full<Bytes>;

/// An error answer of the Lambda APIs: a status and the JSON body `{errorMessage, errorType}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
        }
    }
    pub fn forbidden(error_type: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, error_type, message)
    }
    pub fn bad_request(error_type: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error_type, message)
    }
    pub fn response(&self) -> Response<Body> {
        json_response(
            self.status,
            &json!({"errorMessage": self.message, "errorType": self.error_type}),
        )
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Reads a whole request body.
pub async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    body.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestFormat",
            format!("could not read the request body: {e}"),
        )
    })
}

/// Serves `handler` on `listener` (HTTP/1.1) until the returned task is aborted.
pub fn serve<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
