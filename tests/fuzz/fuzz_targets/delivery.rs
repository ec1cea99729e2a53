//! Any body Lambda (or anything else) may POST to the listener: parsing never panics, and every
//! record it yields is one syntactically valid JSON value: a record sliced from the body without
//! change, or an element that is not a record wrapped as `{"time","type":"extension.malformed",
//! "record":<the element as received>}`. (Syntax, not `Value`: JSON allows numbers like 2E424 that
//! no f64 holds; such an element is shipped exactly as received, which is right. The first run of
//! this target found that case.)
#![no_main]

use adaptive_batching_extension::lambda::records::parse_delivery;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(delivery) = parse_delivery(&body, chrono::Utc::now()) {
        assert!(delivery.malformed_elements <= delivery.records.len());
        for r in &delivery.records {
            assert!(serde_json::from_slice::<Box<serde_json::value::RawValue>>(&r.raw).is_ok());
            let inside = r.raw.as_ptr() as usize >= body.as_ptr() as usize
                && (r.raw.as_ptr() as usize) < body.as_ptr() as usize + body.len().max(1);
            if inside {
                let start = r.raw.as_ptr() as usize - body.as_ptr() as usize;
                assert_eq!(&body[start..start + r.raw.len()], &r.raw[..]);
            } else {
                assert!(r.raw.starts_with(br#"{"time":""#) && r.raw.windows(20).any(|w| w == br#""extension.malformed"#));
            }
        }
    }
});
