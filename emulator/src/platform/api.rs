//! The Runtime API server's extension-facing endpoints: Extensions API 2020-01-01 (register,
//! event/next, init/error, exit/error), Logs API 2020-08-15 and Telemetry API 2022-07-01
//! subscriptions, with the RIE's 403 error types (spec §1.2–1.4, §2.2, §3.1).

use super::outcome::{ID_HEADER, Outcome, err, error_type_of, ok};
use super::state::{ApiCall, Fatal, Shared, lock};
use crate::http::{ApiError, Body, json_response, read_body};
use crate::records::{ApiKind, Event};
use crate::subscribe;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const ERROR_TYPE_HEADER: &str = "lambda-extension-function-error-type";

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let received = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let out = route(&shared, req).await;
    let call = ApiCall {
        received_ms: shared.since_start_ms(received),
        answered_ms: shared.since_start_ms(Instant::now()),
        extension: out.extension,
        method: method.to_string(),
        path,
        status: out.response.status().as_u16(),
        error_type: None,
        event_type: out.event_type,
    };
    let mut call = call;
    if !out.response.status().is_success() {
        // The error type is in the JSON body we built; keep it for the log.
        call.error_type = error_type_of(&out.response);
    }
    lock(&shared.calls).push(call);
    out.response
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Outcome {
    let managed = shared.settings.managed_instances();
    match (req.method().clone(), req.uri().path()) {
        (Method::POST, "/2020-01-01/extension/register") => {
            super::register::register(shared, req).await
        }
        (Method::GET, "/2020-01-01/extension/event/next") => next(shared, req).await,
        (Method::POST, "/2020-01-01/extension/init/error") => report_error(shared, req, true).await,
        (Method::POST, "/2020-01-01/extension/exit/error") => {
            report_error(shared, req, false).await
        }
        // Managed Instances do not mount the Logs API at all (spec §2.1).
        (Method::PUT, "/2020-08-15/logs") if !managed => {
            subscribe(shared, req, ApiKind::Logs).await
        }
        (Method::PUT, "/2022-07-01/telemetry") => subscribe(shared, req, ApiKind::Telemetry).await,
        _ => err(
            ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such endpoint"),
            None,
        ),
    }
}

fn unknown_identifier() -> ApiError {
    ApiError::forbidden(
        "Extension.UnknownExtensionIdentifier",
        "Unknown extension identifier",
    )
}

/// The extension named by the identifier header, or the documented 403.
fn identify(shared: &Shared, req: &Request<Incoming>) -> Result<(Uuid, String), ApiError> {
    let raw = req
        .headers()
        .get(ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::forbidden(
                "Extension.MissingExtensionIdentifier",
                "Missing Lambda-Extension-Identifier header",
            )
        })?;
    let id = Uuid::parse_str(raw).map_err(|_| {
        ApiError::forbidden(
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        )
    })?;
    let st = lock(&shared.state);
    let ext = st
        .exts
        .iter()
        .find(|e| e.id == id && e.generation == st.generation)
        .ok_or_else(|| {
            ApiError::forbidden(
                "Extension.UnknownExtensionIdentifier",
                "Unknown extension identifier",
            )
        })?;
    if ext.errored {
        return Err(ApiError::forbidden(
            "Extension.InvalidExtensionState",
            "the extension reported an error; no further API calls are accepted",
        ));
    }
    Ok((id, ext.name.clone()))
}

async fn next(shared: &Arc<Shared>, req: Request<Incoming>) -> Outcome {
    let (id, name) = match identify(shared, &req) {
        Ok(x) => x,
        Err(e) => return err(e, None),
    };
    let now = Instant::now();
    let rx = {
        let mut st = lock(&shared.state);
        let generation = st.generation;
        if let Some(p) = st
            .procs
            .iter_mut()
            .find(|p| p.generation == generation && p.name == name)
        {
            p.first_next_at.get_or_insert(now);
        }
        let Some(ext) = st.exts.iter_mut().find(|e| e.id == id) else {
            return err(unknown_identifier(), Some(name));
        };
        ext.next_calls += 1;
        ext.last_next_at = Some(now);
        let (tx, rx) = tokio::sync::oneshot::channel();
        match ext.queued.pop_front() {
            Some(ev) => {
                let _ = tx.send(ev);
            }
            None => ext.parked = Some(tx),
        }
        rx
    };
    shared.notify();
    match rx.await {
        Ok(event) => {
            let event_type = serde_json::from_slice::<Value>(&event).ok().and_then(|v| {
                v.get("eventType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            let mut r = Response::new(http_body_util::Full::new(event));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                "lambda-extension-event-identifier",
                http::HeaderValue::from_str(&Uuid::new_v4().to_string())
                    .expect("a UUID is a valid header value"),
            );
            Outcome {
                response: r,
                extension: Some(name),
                event_type,
            }
        }
        // The environment went away under the pending call: Lambda's "exit promptly" answer.
        Err(_) => err(
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Extension.ContainerError",
                "environment reset",
            ),
            Some(name),
        ),
    }
}

async fn report_error(shared: &Arc<Shared>, req: Request<Incoming>, init: bool) -> Outcome {
    let (id, name) = match identify(shared, &req) {
        Ok(x) => x,
        Err(e) => return err(e, None),
    };
    let Some(error_type) = req
        .headers()
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return err(
            ApiError::forbidden(
                "Extension.MissingHeader",
                "Missing Lambda-Extension-Function-Error-Type header",
            ),
            Some(name),
        );
    };
    let body = read_body(req.into_body()).await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("errorMessage")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    {
        let mut st = lock(&shared.state);
        if let Some(ext) = st.exts.iter_mut().find(|e| e.id == id) {
            ext.errored = true;
        }
        st.fail(Fatal {
            extension: name.clone(),
            error_type: if init {
                "Extension.InitError"
            } else {
                "Extension.ExitError"
            }
            .into(),
            extension_error_type: Some(error_type),
            message,
        });
    }
    shared.notify();
    ok(
        json_response(StatusCode::ACCEPTED, &json!({"status": "OK"})),
        Some(name),
    )
}

async fn subscribe(shared: &Arc<Shared>, req: Request<Incoming>, api: ApiKind) -> Outcome {
    let (id, name) = match identify(shared, &req) {
        Ok(x) => x,
        Err(e) => return err(e, None),
    };
    if !lock(&shared.state).subscriptions_open {
        let (t, m) = match api {
            ApiKind::Logs => ("Logs.SubscriptionClosed", "Logs API subscription is closed"),
            ApiKind::Telemetry => (
                "Telemetry.SubscriptionClosed",
                "Telemetry API subscription is closed",
            ),
        };
        return err(ApiError::forbidden(t, m), Some(name));
    }
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return err(e, Some(name)),
    };
    let sub = match subscribe::validate(api, shared.settings.managed_instances(), &body) {
        Ok(s) => s,
        Err(e) => return err(e, Some(name)),
    };
    let (generation, already) = {
        let mut st = lock(&shared.state);
        let generation = st.generation;
        let Some(ext) = st.exts.iter_mut().find(|e| e.id == id) else {
            return err(unknown_identifier(), Some(name));
        };
        match ext.subscribed {
            Some(prev) if prev != api => {
                return err(
                    ApiError::bad_request(
                        match api {
                            ApiKind::Logs => "Logs.ValidationError",
                            ApiKind::Telemetry => "ValidationError",
                        },
                        format!(
                            "{name} is already subscribed to the {prev:?} API; the Logs API and the Telemetry API are mutually exclusive"
                        ),
                    ),
                    Some(name),
                );
            }
            Some(_) => (generation, true),
            None => {
                ext.subscribed = Some(api);
                (generation, false)
            }
        }
    };
    let types: Vec<String> = sub
        .types
        .iter()
        .map(|c| format!("{c:?}").to_lowercase())
        .collect();
    if !already {
        shared.bus.subscribe(&name, generation, sub);
    }
    // Subscribing again is idempotent; Lambda reports it as "Already subscribed".
    let state = if already {
        "Already subscribed"
    } else {
        "Subscribed"
    };
    shared.bus.emit(Event::Subscription {
        api,
        name: name.clone(),
        state,
        types,
    });
    ok(json_response(StatusCode::OK, &json!("OK")), Some(name))
}
