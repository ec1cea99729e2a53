//! Progress lines on stderr for runs longer than a few seconds: what S3 has taken so far. The
//! fleet adds its environments and lines lost ([`crate::fleet`]); a single run prints this alone.

use crate::s3::S3Endpoint;
use crate::s3::operation_class::classify;
use std::time::{Duration, Instant};

/// How often a progress line is printed.
pub const EVERY: Duration = Duration::from_secs(5);

/// Object PUTs and SlowDown answers counted so far, read from S3's request log as it grows.
#[derive(Default)]
pub struct PutTally {
    requests: usize,
    pub puts: usize,
    pub slowdowns: usize,
    at: Option<Instant>,
}

impl PutTally {
    /// Counts the requests since the last call; returns the PUTs per second since then (or since
    /// `began`, the first time).
    pub fn count(&mut self, s3: &S3Endpoint, began: Instant) -> f64 {
        let now = Instant::now();
        let requests = s3.requests();
        let mut puts = 0;
        for r in &requests[self.requests.min(requests.len())..] {
            if classify(&r.operation).object_put() {
                puts += 1;
                if r.error_code.as_deref() == Some("SlowDown") {
                    self.slowdowns += 1;
                }
            }
        }
        self.requests = requests.len();
        let since = now.duration_since(self.at.unwrap_or(began));
        self.at = Some(now);
        self.puts += puts;
        puts as f64 / since.as_secs_f64().max(0.001)
    }

    /// `PUT/s …; SlowDown … (… % of … PUTs)`.
    pub fn describe(&self, puts_per_s: f64) -> String {
        format!(
            "PUT/s {puts_per_s:.1}; SlowDown {} ({:.1} % of {} PUTs)",
            self.slowdowns,
            100.0 * self.slowdowns as f64 / self.puts.max(1) as f64,
            self.puts
        )
    }
}

/// Prints a line every [`EVERY`] about a single run on `buckets` until the returned task is
/// aborted: time, PUT/s, SlowDown so far, objects in S3.
pub fn spawn_for_run(s3: S3Endpoint, buckets: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let began = Instant::now();
        let mut tally = PutTally::default();
        loop {
            tokio::time::sleep(EVERY).await;
            let rate = tally.count(&s3, began);
            let objects: usize = buckets.iter().map(|b| s3.objects(b).len()).sum();
            eprintln!(
                "lambda-emulator run: t={:.0}s; {}; objects {objects}",
                began.elapsed().as_secs_f64(),
                tally.describe(rate)
            );
        }
    })
}
