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

/// glibc's malloc with one arena. Each of our threads (main, the listener's worker and acceptor,
/// the S3 client's builder) would otherwise get an arena of its own that keeps its free pages: peak
/// RSS in the end-to-end benchmark falls by 0.1 MiB (steady) to 0.6 MiB (bursts). They rarely
/// allocate at the same time, so the shared lock costs nothing measurable. (A fixed, low mmap
/// threshold saved another 0.5-1 MiB in bursts but cost 15 % more CPU: compressor state would be
/// mapped and unmapped at every batch. mimalloc doubled the peak RSS.)
#[cfg(target_env = "gnu")]
fn tune_malloc() {
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(target_env = "gnu"))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
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
