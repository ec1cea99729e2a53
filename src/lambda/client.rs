//! The Extensions API client over awc. `event/next` has no timeout: the environment may stay
//! frozen for hours while it is outstanding (spec §1.3); every other call is bounded.

use super::events::NextEvent;
use super::requests::{self, Subscription};
use std::time::Duration;

const ID_HEADER: &str = "Lambda-Extension-Identifier";
/// Bound on every call but `event/next`.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to the Lambda APIs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaApiError {
    #[error("cannot reach the Lambda API at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot read the answer of {url}: {message}")]
    Decode { url: String, message: String },
    #[error("register answered without a Lambda-Extension-Identifier header")]
    MissingIdentifier,
}

/// The answer of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    Yes,
    /// 202: a local sandbox without the API (SAM, the RIE); the extension carries on.
    NotSupported,
}

#[derive(Clone)]
pub struct ExtensionsClient {
    base: String,
    http: awc::Client,
}

impl ExtensionsClient {
    /// `runtime_api` is `AWS_LAMBDA_RUNTIME_API` (host:port). Must be called inside an actix System.
    pub fn new(runtime_api: &str) -> Self {
        Self {
            base: format!("http://{runtime_api}"),
            http: awc::Client::builder().disable_timeout().finish(),
        }
    }

    async fn send(
        &self,
        req: awc::ClientRequest,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, awc::http::header::HeaderMap, bytes::Bytes), LambdaApiError> {
        let url = req.get_uri().to_string();
        let sent = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| LambdaApiError::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .body()
            .limit(1024 * 1024)
            .await
            .map_err(|e| LambdaApiError::Decode {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok((status, headers, body))
    }

    fn check(url: &str, status: u16, ok: &[u16], body: &[u8]) -> Result<(), LambdaApiError> {
        if ok.contains(&status) {
            Ok(())
        } else {
            Err(LambdaApiError::Status {
                url: url.to_string(),
                status,
                body: String::from_utf8_lossy(body).into_owned(),
            })
        }
    }

    /// Registers under `name` (the binary's file name); returns the extension identifier.
    pub async fn register(&self, name: &str, invoke: bool) -> Result<String, LambdaApiError> {
        let url = format!("{}{}", self.base, requests::REGISTER_PATH);
        let req = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .insert_header(("Lambda-Extension-Name", name))
            .insert_header(("Lambda-Extension-Accept-Feature", "accountId"));
        let (status, headers, body) = self
            .send(req, Some(requests::register_body(invoke)))
            .await?;
        Self::check(&url, status, &[200], &body)?;
        headers
            .get(ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(LambdaApiError::MissingIdentifier)
    }

    pub async fn subscribe(
        &self,
        id: &str,
        sub: &Subscription,
    ) -> Result<Subscribed, LambdaApiError> {
        let url = format!("{}{}", self.base, sub.api.path());
        let req = self
            .http
            .put(&url)
            .timeout(CALL_TIMEOUT)
            .insert_header((ID_HEADER, id));
        let (status, _, body) = self.send(req, Some(sub.body())).await?;
        Self::check(&url, status, &[200, 202], &body)?;
        Ok(if status == 202 {
            Subscribed::NotSupported
        } else {
            Subscribed::Yes
        })
    }

    /// Blocks until Lambda has an event for us. No timeout, on purpose.
    pub async fn next(&self, id: &str) -> Result<NextEvent, LambdaApiError> {
        let url = format!("{}{}", self.base, requests::NEXT_PATH);
        let req = self.http.get(&url).insert_header((ID_HEADER, id));
        let (status, _, body) = self.send(req, None).await?;
        Self::check(&url, status, &[200], &body)?;
        serde_json::from_slice(&body).map_err(|e| LambdaApiError::Decode {
            url,
            message: e.to_string(),
        })
    }

    /// Reports a failure before the first `next` (`init`) or after it (`exit`).
    pub async fn report_error(
        &self,
        id: &str,
        init: bool,
        error_type: &str,
        message: &str,
    ) -> Result<(), LambdaApiError> {
        let path = if init {
            requests::INIT_ERROR_PATH
        } else {
            requests::EXIT_ERROR_PATH
        };
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .insert_header((ID_HEADER, id))
            .insert_header(("Lambda-Extension-Function-Error-Type", error_type));
        let (status, _, body) = self
            .send(req, Some(requests::error_body(error_type, message)))
            .await?;
        Self::check(&url, status, &[200, 202], &body)
    }
}
