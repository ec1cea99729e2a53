use super::*;

/// Writes an example file for a reader outside this crate (`ABE_PARQUET_OUT`).
#[test]
fn example_for_outside_readers() {
    let Ok(path) = std::env::var("ABE_PARQUET_OUT") else {
        return;
    };
    let id = "8f5f7ab5-2c3e-4f1d-9a6b-0123456789ab";
    let mut records = Vec::new();
    for i in 0..3000 {
        records.push(Bytes::from(format!(r#"{{"time":"2026-12-08T01:02:{:02}.{:03}Z","type":"function","record":"2026-12-08T01:02:03.456Z\t{id}\tINFO\tline {i}\n"}}"#, i % 60, i % 1000)));
        if i % 10 == 0 {
            records.push(Bytes::from(format!(r#"{{"time":"2026-12-08T01:02:03.456Z","type":"platform.report","record":{{"requestId":"{id}","metrics":{{"durationMs":{i}.5}}}}}}"#)));
        }
    }
    records.push(Bytes::from_static(b"[1,2]"));
    let body = encode(&records, Compression::Zstd(3)).unwrap();
    std::fs::write(path, body).unwrap();
}
