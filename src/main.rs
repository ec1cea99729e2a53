//! The process: start the extension ([`app::start`], where the wiring is) in an actix System and
//! map the outcome to an exit code. Failures before the first `next` have gone to `init/error`.

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

/// Threads for blocking work: one for encoding, the others for the disk (two cores at most).
const BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    tune_malloc();
    let Ok(runtime_api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!(
            "adaptive-batching-extension: AWS_LAMBDA_RUNTIME_API is not set; this program runs as a Lambda extension"
        );
        return ExitCode::FAILURE;
    };
    // Few blocking threads: file writes, read-backs and encodes queue for them rather than each
    // starting a thread of its own (48 at once in a burst, each with its stack and allocator
    // caches resident).
    let system = System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
            .expect("a current-thread runtime builds: it needs no resources but a thread")
    });
    let name = extension_name();
    let running = match system.block_on(app::start(
        &name,
        &runtime_api,
        &ProcessEnv,
        S3Config::StandardChain,
        None,
    )) {
        Ok(r) => r,
        Err(code) => return ExitCode::from(code),
    };
    let code = system.block_on(running.ended).unwrap_or(1);
    // Exit at once. Dropping the runtime would wait for its blocking pool (a spill being written,
    // a batch being encoded), possibly past the SHUTDOWN deadline; the summary has counted what
    // they held. `_exit`, not `exit`: the stopped System's arbiter threads are ending meanwhile,
    // and `exit` ran the main thread's TLS destructors under them — an arbiter then panicked in
    // its own ("cannot access a Thread Local Storage value during or after destruction") and the
    // process aborted (SIGABRT) after its summary, in CI. Our output is flushed first; nothing
    // else is pending (spills are fsynced before the policy counts them).
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
    // SAFETY: _exit ends the process without running any code of ours or of the libraries.
    unsafe { libc::_exit(code) }
}
