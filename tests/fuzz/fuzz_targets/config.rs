//! Any environment: configuration parsing never panics, and what it accepts is within its rules.
#![no_main]

use adaptive_batching_extension::config::*;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

const VARS: [&str; 16] = [
    ENV_S3_BUCKET, ENV_SHIP_RATE_BYTES, ENV_SHIP_RATE_INVOKES, ENV_SHIP_RATE_MILLISECONDS, ENV_LOG_TYPES,
    ENV_LISTENER_PORT, ENV_S3_FORCE_PATH_STYLE, ENV_CREATE_BUCKET, ENV_LOG_LEVEL, ENV_API, ENV_BUFFER_MAX_ITEMS,
    ENV_BUFFER_MAX_BYTES, ENV_BUFFER_TIMEOUT_MS, ENV_MAX_BUFFER_BYTES, ENV_SPILL_MAX_BYTES, ENV_INITIALIZATION_TYPE,
];

fuzz_target!(|data: &[u8]| {
    // Each line is one variable's value, in the order of VARS; an empty line leaves it unset.
    let text = String::from_utf8_lossy(data);
    let env: HashMap<String, String> = VARS
        .iter()
        .zip(text.split('\n'))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(p) = Config::from_env(&env) {
        let c = p.config;
        assert!(c.intake.thresholds.bytes.get() <= MAX_SHIP_RATE_BYTES);
        assert!(c.subscription.port != 0 && c.subscription.port != RESERVED_PORT);
        assert!(!c.subscription.types.is_empty());
        let [items, bytes, timeout] = BUFFER_RANGES;
        assert!((items.0..=items.1).contains(&c.subscription.buffering.max_items));
        assert!((bytes.0..=bytes.1).contains(&c.subscription.buffering.max_bytes));
        assert!((timeout.0..=timeout.1).contains(&c.subscription.buffering.timeout_ms));
        assert!(BucketName::parse(c.s3.bucket.as_str()).is_ok());
    }
});
