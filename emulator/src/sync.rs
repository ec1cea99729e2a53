//! Locking shared state (its own module so that the delivery bus, the S3 endpoint and the
//! platform's state, which all use it, do not import one another for it).

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, carrying on after a panic elsewhere: the emulator's state stays usable for the report.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
