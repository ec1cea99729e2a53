//! Object keys from a template. Placeholders: `{function}` (lower case), `{version}`, `{env_id}`,
//! `{yyyy}` `{mm}` `{dd}` `{hh}` `{min}` (UTC, from the batch's first record), `{epoch_ms}` (the same
//! instant), `{uuid}` (one per batch, which makes every key unique), `{shard}` (two hex digits of
//! the batch id: 256 values spread uniformly). The default reproduces the Go sample's layout,
//! `{yyyy}-{mm}-{dd}-{env_id}/{function}-{epoch_ms}-{uuid}.log`. Pure: times and ids are passed in.
//!
//! `{shard}` exists for scale: S3 sustains about 3,500 writes per second per partitioned prefix, and
//! a Hive layout puts every environment of a function under one prefix per hour. A shard level
//! after the partition columns (`…/hour={hh}/{shard}/{uuid}.gz`) gives S3 256 prefixes to spread
//! that load over, while Athena's partition projection still maps each partition to
//! `…/hour=${hour}/`: Athena reads every object under a partition's location, sub-prefixes
//! included (Athena User Guide, "Table location in Amazon S3").

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The default layout before its extension (`.log`, `.log.gz`, `.log.zst`, `.parquet`).
pub const DEFAULT_STEM: &str = "{yyyy}-{mm}-{dd}-{env_id}/{function}-{epoch_ms}-{uuid}";
/// S3's limit on a key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest a function name (64) and version or alias (128) can make a key grow.
const LONGEST: [(Part, usize); 11] = [
    (Part::Function, 64),
    (Part::Version, 128),
    (Part::EnvId, 36),
    (Part::Yyyy, 4),
    (Part::Mm, 2),
    (Part::Dd, 2),
    (Part::Hh, 2),
    (Part::Min, 2),
    (Part::EpochMs, 13),
    (Part::Uuid, 36),
    (Part::Shard, 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Function,
    Version,
    EnvId,
    Yyyy,
    Mm,
    Dd,
    Hh,
    Min,
    EpochMs,
    Uuid,
    Shard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Part),
}

/// A validated key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate(Vec<Piece>);

/// What one key is made of.
#[derive(Debug, Clone, Copy)]
pub struct KeyValues<'a> {
    pub function: &'a str,
    pub version: &'a str,
    pub environment_id: Uuid,
    /// The batch's first record.
    pub at: DateTime<Utc>,
    pub batch_id: Uuid,
}

impl KeyTemplate {
    /// The Go sample's layout, ending in `extension` (its `.log`, `.log.gz`, `.parquet`).
    pub fn default_with(extension: &str) -> Self {
        Self::parse(&format!("{DEFAULT_STEM}{extension}")).expect("the default template is valid")
    }

    pub fn parse(template: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                None => {
                    if rest.contains('}') {
                        return Err(format!("has a '}}' without its '{{' in {rest:?}"));
                    }
                    pieces.push(Piece::Text(rest.to_string()));
                    break;
                }
                Some(i) => {
                    if rest[..i].contains('}') {
                        return Err(format!("has a '}}' without its '{{' in {:?}", &rest[..i]));
                    }
                    if i > 0 {
                        pieces.push(Piece::Text(rest[..i].to_string()));
                    }
                    let end = rest[i..]
                        .find('}')
                        .ok_or_else(|| format!("has an unclosed '{{' in {:?}", &rest[i..]))?
                        + i;
                    let name = &rest[i + 1..end];
                    let part = match name {
                        "function" => Part::Function,
                        "version" => Part::Version,
                        "env_id" => Part::EnvId,
                        "yyyy" => Part::Yyyy,
                        "mm" => Part::Mm,
                        "dd" => Part::Dd,
                        "hh" => Part::Hh,
                        "min" => Part::Min,
                        "epoch_ms" => Part::EpochMs,
                        "uuid" => Part::Uuid,
                        "shard" => Part::Shard,
                        other => {
                            return Err(format!(
                                "has an unknown placeholder {{{other}}}; known: {{function}} {{version}} {{env_id}} {{yyyy}} {{mm}} {{dd}} {{hh}} {{min}} {{epoch_ms}} {{uuid}} {{shard}}"
                            ));
                        }
                    };
                    pieces.push(Piece::Value(part));
                    rest = &rest[end + 1..];
                }
            }
        }
        if !pieces.contains(&Piece::Value(Part::Uuid)) {
            return Err("has no {uuid}: without it two batches could get the same key and overwrite each other".into());
        }
        if pieces
            .first()
            .is_some_and(|p| matches!(p, Piece::Text(t) if t.starts_with('/')))
        {
            return Err("starts with '/': S3 keys do not".into());
        }
        let longest: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Value(v) => LONGEST.iter().find(|(p, _)| p == v).map_or(0, |(_, n)| *n),
            })
            .sum();
        if longest > MAX_KEY_BYTES {
            return Err(format!(
                "can make keys of {longest} bytes, more than S3's {MAX_KEY_BYTES}"
            ));
        }
        Ok(Self(pieces))
    }

    pub fn render(&self, v: &KeyValues<'_>) -> String {
        let mut key = String::with_capacity(128);
        for p in &self.0 {
            match p {
                Piece::Text(t) => key.push_str(t),
                Piece::Value(Part::Function) => key.push_str(&v.function.to_lowercase()),
                Piece::Value(Part::Version) => key.push_str(v.version),
                Piece::Value(Part::EnvId) => key.push_str(&v.environment_id.to_string()),
                Piece::Value(Part::Yyyy) => key.push_str(&v.at.format("%Y").to_string()),
                Piece::Value(Part::Mm) => key.push_str(&v.at.format("%m").to_string()),
                Piece::Value(Part::Dd) => key.push_str(&v.at.format("%d").to_string()),
                Piece::Value(Part::Hh) => key.push_str(&v.at.format("%H").to_string()),
                Piece::Value(Part::Min) => key.push_str(&v.at.format("%M").to_string()),
                Piece::Value(Part::EpochMs) => key.push_str(&v.at.timestamp_millis().to_string()),
                Piece::Value(Part::Uuid) => key.push_str(&v.batch_id.to_string()),
                // The batch id's last byte: v4 and v8 ids are random there.
                Piece::Value(Part::Shard) => {
                    key.push_str(&format!("{:02x}", v.batch_id.as_bytes()[15]))
                }
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> KeyValues<'static> {
        KeyValues {
            function: "Demo-Fn",
            version: "$LATEST",
            environment_id: Uuid::parse_str("2f9935c2-1111-4222-8333-444444444444").unwrap(),
            at: DateTime::from_timestamp_millis(1_795_807_110_456).unwrap(),
            batch_id: Uuid::parse_str("52f63032-aaaa-4bbb-8ccc-dddddddddddd").unwrap(),
        }
    }

    #[test]
    fn the_samples_layout_with_fixed_time_and_ids() {
        assert_eq!(
            KeyTemplate::default_with(".log").render(&values()),
            "2026-11-27-2f9935c2-1111-4222-8333-444444444444/demo-fn-1795807110456-52f63032-aaaa-4bbb-8ccc-dddddddddddd.log"
        );
        assert!(
            KeyTemplate::default_with(".log.gz")
                .render(&values())
                .ends_with(".log.gz")
        );
    }

    #[test]
    fn a_hive_layout() {
        let t = KeyTemplate::parse(
            "logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{min}-{uuid}.ndjson.gz",
        )
        .unwrap();
        assert_eq!(
            t.render(&values()),
            "logs/function=demo-fn/dt=2026-11-27/hour=19/18-52f63032-aaaa-4bbb-8ccc-dddddddddddd.ndjson.gz"
        );
    }

    #[test]
    fn a_sharded_hive_layout_spreads_keys_under_one_partition() {
        let t = KeyTemplate::parse(
            "logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{shard}/{uuid}.ndjson.gz",
        )
        .unwrap();
        assert_eq!(
            t.render(&values()),
            "logs/function=demo-fn/dt=2026-11-27/hour=19/dd/52f63032-aaaa-4bbb-8ccc-dddddddddddd.ndjson.gz"
        );
        let shard = |batch_id: Uuid| {
            let v = KeyValues {
                batch_id,
                ..values()
            };
            t.render(&v).split('/').nth(4).unwrap().to_string()
        };
        // The last byte of the id: each of its values is its own shard.
        let all: std::collections::BTreeSet<String> =
            (0..=255u128).map(|b| shard(Uuid::from_u128(b))).collect();
        assert_eq!(all.len(), 256);
        // Random (v4) ids spread evenly: 25,600 of them, 100 per shard on average; a shard with
        // fewer than 40 or more than 160 is 6 standard deviations off.
        let mut counts = std::collections::HashMap::new();
        for _ in 0..25_600 {
            *counts.entry(shard(Uuid::new_v4())).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 256);
        assert!(
            counts.values().all(|n| (40..=160).contains(n)),
            "{counts:?}"
        );
    }

    #[test]
    fn invalid_templates_say_why() {
        assert!(
            KeyTemplate::parse("logs/{fn}/{uuid}")
                .unwrap_err()
                .contains("unknown placeholder {fn}")
        );
        assert!(
            KeyTemplate::parse("logs/{yyyy}/{epoch_ms}.log")
                .unwrap_err()
                .contains("no {uuid}")
        );
        assert!(
            KeyTemplate::parse("logs/{uuid")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            KeyTemplate::parse("logs/uuid}")
                .unwrap_err()
                .contains("without its")
        );
        assert!(
            KeyTemplate::parse("/logs/{uuid}")
                .unwrap_err()
                .contains("starts with '/'")
        );
        assert!(
            KeyTemplate::parse(&format!("{}/{{uuid}}", "x".repeat(1000)))
                .unwrap_err()
                .contains("more than S3's 1024")
        );
    }
}
