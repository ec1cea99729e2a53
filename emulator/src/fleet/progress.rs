//! The fleet's progress line, every few seconds on stderr: simulated time, environments alive and
//! ended, PUT/s, SlowDown so far, lines lost so far.

use crate::progress::PutTally;
use crate::s3::S3Endpoint;
use crate::verdict;
use std::collections::HashMap;
use std::time::Instant;

/// What a progress line has counted so far: S3 requests and objects already read.
#[derive(Default)]
pub(super) struct Progress {
    puts: PutTally,
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
        let puts_per_s = self.puts.count(s3, began);
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
            "lambda-emulator fleet: t={:.0}s environments alive {} ended {}; {}; lines lost so far {lost}",
            began.elapsed().as_secs_f64(),
            started.saturating_sub(ended),
            ended,
            self.puts.describe(puts_per_s),
        )
    }
}
