//! The fleet's progress line, every few seconds on stderr: simulated time, environments alive and
//! ended, PUT/s, SlowDown so far, lines lost so far.

use crate::s3::S3Endpoint;
use crate::s3::operation_class::classify;
use crate::verdict;
use std::collections::HashMap;
use std::time::Instant;

/// What a progress line has counted so far: S3 requests and objects already read.
#[derive(Default)]
pub(super) struct Progress {
    requests: usize,
    puts: usize,
    slowdowns: usize,
    at: Option<Instant>,
    /// Markers found in S3, by object key and ETag (an object is read once).
    found: HashMap<String, (String, Vec<String>)>,
}

impl Progress {
    /// `t=…s environments alive … ended … PUT/s … SlowDown … (… %) lines lost so far …`: lost
    /// counts `ended_lines`, the lines of the `ended` environments (their last ship is done) not found in S3.
    pub(super) fn line<'a>(
        &mut self,
        bucket: &str,
        s3: &S3Endpoint,
        began: Instant,
        started: usize,
        ended: usize,
        ended_lines: impl Iterator<Item = &'a String>,
    ) -> String {
        let now = Instant::now();
        let requests = s3.requests();
        let (mut puts, mut slowdowns) = (0, 0);
        for r in &requests[self.requests.min(requests.len())..] {
            if classify(&r.operation).object_put() {
                puts += 1;
                if r.error_code.as_deref() == Some("SlowDown") {
                    slowdowns += 1;
                }
            }
        }
        self.requests = requests.len();
        let since = self
            .at
            .map_or(now.duration_since(began), |a| now.duration_since(a));
        self.at = Some(now);
        self.puts += puts;
        self.slowdowns += slowdowns;
        for o in s3.objects(bucket) {
            if self
                .found
                .get(&o.key)
                .is_some_and(|(etag, _)| *etag == o.etag)
            {
                continue;
            }
            let text = verdict::objects::decode(&o.body, o.content_encoding.as_deref()).text;
            let markers = crate::markers::find(&text, "")
                .into_iter()
                .map(str::to_string)
                .collect();
            self.found.insert(o.key.clone(), (o.etag.clone(), markers));
        }
        let in_s3: std::collections::HashSet<&str> = self
            .found
            .values()
            .flat_map(|(_, m)| m.iter().map(String::as_str))
            .collect();
        let lost = ended_lines
            .flat_map(|l| crate::markers::find(l, ""))
            .filter(|m| !in_s3.contains(m))
            .count();
        format!(
            "lambda-emulator fleet: t={:.0}s environments alive {} ended {}; PUT/s {:.1}; SlowDown {} ({:.1} % of {} PUTs); lines lost so far {lost}",
            now.duration_since(began).as_secs_f64(),
            started.saturating_sub(ended),
            ended,
            puts as f64 / since.as_secs_f64().max(0.001),
            self.slowdowns,
            100.0 * self.slowdowns as f64 / self.puts.max(1) as f64,
            self.puts,
        )
    }
}
