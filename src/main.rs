//! Wiring only: start the extension ([`app::start`]) in an actix System and map the outcome to an
//! exit code. Failures before the first `next` have gone to `init/error`.

#![deny(clippy::unwrap_used)]

use actix::System;
use adaptive_batching_extension::app::{self, S3Config};
use adaptive_batching_extension::config::ProcessEnv;
use std::process::ExitCode;

/// The name Lambda knows us by: our file name in /opt/extensions.
fn extension_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_string())
}

fn main() -> ExitCode {
    let Ok(runtime_api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!(
            "adaptive-batching-extension: AWS_LAMBDA_RUNTIME_API is not set; this program runs as a Lambda extension"
        );
        return ExitCode::FAILURE;
    };
    let system = System::new();
    let name = extension_name();
    if let Err(code) = system.block_on(app::start(
        &name,
        &runtime_api,
        &ProcessEnv,
        S3Config::StandardChain,
        None,
    )) {
        return ExitCode::from(code);
    }
    match system.run_with_code() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(_) => ExitCode::FAILURE,
    }
}
