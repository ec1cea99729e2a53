//! What an endpoint answers, with what the call log needs: the response, the extension that called
//! and the error type Lambda's answer named. A leaf under the endpoints (`api.rs`, `register.rs`).

use crate::http::{ApiError, Body};
use http::Response;

pub(super) const ID_HEADER: &str = "lambda-extension-identifier";

/// The answer plus what the call log needs to know.
pub(super) struct Outcome {
    pub(super) response: Response<Body>,
    pub(super) extension: Option<String>,
    pub(super) event_type: Option<String>,
}

#[derive(Clone)]
struct ErrorTypeTag(String);

pub(super) fn error_type_of(r: &Response<Body>) -> Option<String> {
    r.extensions().get::<ErrorTypeTag>().map(|t| t.0.clone())
}

pub(super) fn err(e: ApiError, extension: Option<String>) -> Outcome {
    let mut response = e.response();
    response
        .extensions_mut()
        .insert(ErrorTypeTag(e.error_type.clone()));
    Outcome {
        response,
        extension,
        event_type: None,
    }
}

pub(super) fn ok(response: Response<Body>, extension: Option<String>) -> Outcome {
    Outcome {
        response,
        extension,
        event_type: None,
    }
}
