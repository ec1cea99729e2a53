//! `POST /extension/register` (spec §1.2): the name and feature headers, the events asked for,
//! the RIE's admission rules and their 403 error types, and the answer with the function's facts.

use super::outcome::{ID_HEADER, Outcome, err, ok};
use super::state::{Ext, Shared, State, lock};
use crate::http::{ApiError, json_response, read_body};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

const NAME_HEADER: &str = "lambda-extension-name";
const FEATURE_HEADER: &str = "lambda-extension-accept-feature";
/// Lambda's limit of extensions per function, internal and external together.
const MAX_EXTENSIONS: usize = 10;

pub(super) async fn register(shared: &Arc<Shared>, req: Request<Incoming>) -> Outcome {
    let name = req
        .headers()
        .get(NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let wants_account = req
        .headers()
        .get(FEATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    let who = (!name.is_empty()).then(|| name.clone());
    if name.is_empty() {
        return err(
            ApiError::forbidden("Extension.InvalidExtensionName", "Empty extension name"),
            None,
        );
    }
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return err(e, who),
    };
    let (invoke, shutdown) = match parse_events(&body) {
        Ok(x) => x,
        Err(e) => return err(e, who),
    };
    let s = &shared.settings;
    let id = Uuid::new_v4();
    {
        let mut st = lock(&shared.state);
        let generation = st.generation;
        let external = st.launched.contains(&name);
        if let Err(e) = admit(
            &st,
            &name,
            external,
            (invoke, shutdown),
            s.managed_instances(),
        ) {
            return err(e, who);
        }
        st.exts.push(Ext {
            id,
            name: name.clone(),
            generation,
            external,
            invoke,
            shutdown,
            parked: None,
            queued: Default::default(),
            next_calls: 0,
            last_next_at: None,
            errored: false,
            subscribed: None,
        });
    }
    shared.notify();
    let mut body = json!({
        "functionName": s.function.name,
        "functionVersion": s.function.version,
        "handler": s.function.handler,
    });
    if wants_account {
        body["accountId"] = json!(s.function.account_id);
    }
    let mut r = json_response(StatusCode::OK, &body);
    r.headers_mut().insert(
        ID_HEADER,
        http::HeaderValue::from_str(&id.to_string()).expect("a UUID is a valid header value"),
    );
    ok(r, who)
}

fn parse_events(body: &[u8]) -> Result<(bool, bool), ApiError> {
    let format = |m: String| ApiError::forbidden("InvalidRequestFormat", m);
    if body.is_empty() {
        return Ok((false, false));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format(format!("register body is not JSON: {e}")))?;
    if v.get("configurationKeys").is_some() {
        return Err(format("configurationKeys are deprecated".into()));
    }
    let mut invoke = false;
    let mut shutdown = false;
    match v.get("events") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some("INVOKE") => invoke = true,
                    Some("SHUTDOWN") => shutdown = true,
                    _ => {
                        return Err(ApiError::forbidden(
                            "Extension.InvalidEventType",
                            format!("invalid event type {item}"),
                        ));
                    }
                }
            }
        }
        Some(other) => return Err(format(format!("events must be an array, got {other}"))),
    }
    Ok((invoke, shutdown))
}

/// Whether `name` may register now, for these events (spec §1.2): the RIE's 403 error types.
fn admit(
    st: &State,
    name: &str,
    external: bool,
    (invoke, shutdown): (bool, bool),
    managed_instances: bool,
) -> Result<(), ApiError> {
    let generation = st.generation;
    let forbidden = |t: &str, m: String| Err(ApiError::forbidden(t, m));
    if !st.registration_open {
        return forbidden(
            "Extension.RegistrationClosed",
            "Extension registration closed already".into(),
        );
    }
    let registered = st.exts.iter().filter(|e| e.generation == generation);
    if registered.clone().any(|e| e.name == name) {
        return forbidden(
            "Extension.InvalidExtensionState",
            "Extension is already registered".into(),
        );
    }
    if registered.count() >= MAX_EXTENSIONS {
        return forbidden("Extension.TooManyExtensions", "Too many extensions".into());
    }
    // Internal extensions may not take SHUTDOWN: a name that matches no launched file is internal.
    if shutdown && !external {
        return forbidden(
            "Extension.InvalidEventType",
            format!("{name} is not a launched external extension and cannot register for SHUTDOWN"),
        );
    }
    if invoke && managed_instances {
        return forbidden(
            "Extension.InvalidEventType",
            "INVOKE is not a valid event type on Lambda Managed Instances".into(),
        );
    }
    Ok(())
}
