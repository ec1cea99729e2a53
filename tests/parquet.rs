//! Issue 22: Parquet objects, read back by readers that share no code with the extension's writer
//! (pyarrow and DuckDB, from PyPI, through `tests/parquet/read.py`; the emulator's verdict reads
//! them with the `parquet` crate), every row compared with the record Lambda delivered. What each
//! column should hold is worked out here from the delivered record, by the README's rules.

use crate::support::*;
use adaptive_batching_extension::encode::Compression;
use adaptive_batching_extension::parquet;
use bytes::Bytes;
use lambda_emulator::Script;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const FORMAT: &str = "ADAPTIVE_BATCHING_EXTENSION_FORMAT";
const REQUEST: &str = "8f5f7ab5-2c3e-4f1d-9a6b-0123456789ab";

/// A Python with pyarrow and DuckDB: the machine's if it has both, else a venv under the target
/// directory, made once from `tests/parquet/requirements.txt`.
fn python() -> PathBuf {
    static READY: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = ready.as_ref() {
        return p.clone();
    }
    let has_readers = |python: &Path| {
        Command::new(python)
            .args(["-c", "import pyarrow, duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut python = PathBuf::from("python3");
    if !has_readers(&python) {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parquet-readers");
        python = venv.join("bin/python3");
        if !has_readers(&python) {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 is needed for the Parquet reader tests");
            assert!(made.success(), "python3 -m venv {}", venv.display());
            let requirements =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parquet/requirements.txt");
            let installed = Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(requirements)
                .status()
                .unwrap();
            assert!(installed.success(), "pip install of pyarrow and duckdb");
        }
    }
    *ready = Some(python.clone());
    python
}

/// What pyarrow and DuckDB read from `files`: their schemas, and the rows of every file in order.
fn read_back(files: &[PathBuf]) -> (Value, Vec<Value>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parquet/read.py");
    let out = Command::new(python())
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let schemas = lines.next().expect("the schemas line")["schemas"].clone();
    (schemas, lines.collect())
}

/// The schema both readers must see.
fn assert_schema(schemas: &Value) {
    assert_eq!(
        schemas["pyarrow"],
        json!({
            "time": ["timestamp[ms, tz=UTC]", true],
            "type": ["string", true],
            "request_id": ["string", true],
            "level": ["string", true],
            "message": ["string", true],
            "record": ["string", false],
        })
    );
    assert_eq!(
        schemas["duckdb"],
        json!({
            "time": "TIMESTAMP WITH TIME ZONE",
            "type": "VARCHAR",
            "request_id": "VARCHAR",
            "level": "VARCHAR",
            "message": "VARCHAR",
            "record": "VARCHAR",
        })
    );
}

/// The row the README says a record makes: `time` in milliseconds, `type`, the record's own
/// `requestId`, `level` and `message` (a text line is its own message, and states a request id
/// and level only in the runtimes' tab-separated format), and the record itself.
fn expected_row(raw: &str) -> Value {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let time = v["time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    let (mut request_id, mut level, mut message) = (None, None, None);
    match &v["record"] {
        Value::String(text) => {
            message = Some(text.clone());
            if text.contains('\t') {
                for field in text.split('\t').take(3) {
                    let word = field.trim_matches(|c| c == '[' || c == ']');
                    if field.len() == 36 && uuid::Uuid::parse_str(field).is_ok() {
                        request_id = Some(field.to_string());
                    } else if [
                        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
                    ]
                    .contains(&word)
                    {
                        level = Some(word.to_string());
                    }
                }
            }
        }
        Value::Object(r) => {
            request_id = r
                .get("requestId")
                .and_then(Value::as_str)
                .map(str::to_string);
            level = r.get("level").and_then(Value::as_str).map(str::to_string);
            message = r.get("message").map(|m| match m {
                Value::String(s) => s.clone(),
                // Not a string: its JSON text, as it appears in the record.
                other => raw_json_of(raw, other),
            });
        }
        _ => {}
    }
    json!({
        "time": time,
        "type": v["type"].as_str(),
        "request_id": request_id,
        "level": level,
        "message": message,
        "record": raw,
    })
}

/// The exact text of `value` inside `raw` (the records here write it compactly).
fn raw_json_of(raw: &str, value: &Value) -> String {
    let text = value.to_string();
    assert!(raw.contains(&text), "{raw}");
    text
}

/// Writes `bodies` to files for the readers.
fn files(dir: &Path, bodies: &[Bytes]) -> Vec<PathBuf> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let path = dir.join(format!("{i:04}.parquet"));
            std::fs::write(&path, b).unwrap();
            path
        })
        .collect()
}

async fn run_with_parquet(json_logs: bool) {
    let l = layer();
    let texts = [
        "order placed".to_string(),
        format!("\t{REQUEST}\tERROR\tpayment failed"),
        "quote \" backslash \\ tab\t and é ✓".to_string(),
    ];
    let mut emu = l
        .function()
        .env(FORMAT, "parquet")
        .with(|f| f.line_texts = texts.to_vec())
        .with(|f| f.json_logs = Some(json_logs))
        .start()
        .await
        .unwrap();
    emu.run(&Script {
        invocations: 24,
        invoke: script(6, 150, 5),
        gap: Duration::from_millis(2),
        late_lines: 0,
        stragglers: 0,
        concurrency: 1,
    })
    .await;
    let objects = emu.s3().objects(BUCKET);
    assert!(objects.len() > 1);
    for o in &objects {
        assert!(o.key.ends_with(".parquet"), "{}", o.key);
        assert_eq!(
            o.content_type.as_deref(),
            Some("application/vnd.apache.parquet")
        );
        assert_eq!(o.content_encoding, None);
    }
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Bytes> = objects.iter().map(|o| o.body.clone()).collect();
    let (schemas, rows) = read_back(&files(dir.path(), &bodies));
    assert_schema(&schemas);

    let delivered = delivered_records(&emu);
    let mut want: Vec<String> = delivered
        .iter()
        .map(|r| expected_row(r).to_string())
        .collect();
    let mut got: Vec<String> = rows.iter().map(Value::to_string).collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // The columns were worth reading: every function line, text or JSON, stated its request and
    // its level (the runtimes' INFO; the ERROR inside a message is not the line's level).
    let function: Vec<&Value> = rows.iter().filter(|r| r["type"] == "function").collect();
    assert_eq!(function.len(), 24 * 6);
    assert!(
        function
            .iter()
            .all(|r| r["level"] == "INFO" && r["request_id"].is_string())
    );
    let reports = rows.iter().filter(|r| r["type"] == "platform.report");
    assert_eq!(reports.filter(|r| r["request_id"].is_string()).count(), 24);

    let s = summary(&emu);
    assert_eq!(
        (s["accounted"].clone(), s["lost"].clone()),
        (json!(true), json!(0)),
        "{s}"
    );
    assert_eq!(s["parquet_fallbacks"], 0);
}

#[tokio::test]
async fn pyarrow_and_duckdb_read_every_record_of_plain_text_lines() {
    run_with_parquet(false).await;
}

#[tokio::test]
async fn pyarrow_and_duckdb_read_every_record_of_json_lines() {
    run_with_parquet(true).await;
}

/// Records of shapes Lambda does not send, a line near Lambda's 256 KiB limit, repaired UTF-8,
/// batches of several pages, each codec: every record comes back exactly, through all three
/// readers.
#[test]
fn records_of_unexpected_shapes_land_whole_in_the_record_column() {
    let long = "x".repeat(250 * 1024);
    let mut records: Vec<String> = vec![
        r#"[1,2,3]"#.into(),
        r#""just a string""#.into(),
        r#"{"time":"not a time","type":"function","record":"a"}"#.into(),
        r#"{"time":"2026-12-08T01:02:03.004+02:00","type":"extension","record":{"message":{"nested":[1,{"a":null}]},"level":7}}"#.into(),
        format!(r#"{{"time":"2026-12-08T01:02:03Z","type":"function","record":"{long}"}}"#),
        r#"{"time":"2026-12-08T01:02:03Z","type":"extension.malformed","record":"repaired \ufffd here"}"#.into(),
        r#"{"time":"2026-12-08T01:02:03Z","type":"function","record":"\u00e9\ud83d\ude00 escaped"}"#.into(),
        r#"{"time":"2026-12-08T01:02:03.999999Z","type":"platform.start","record":{"requestId":"r-1","version":"$LATEST"}}"#.into(),
    ];
    // Enough to fill several 1 MiB pages.
    for i in 0..12_000 {
        records.push(format!(
            r#"{{"time":"2026-12-08T01:{:02}:03.{:03}Z","type":"function","record":"{}\t{REQUEST}\tINFO\tline {i}"}}"#,
            i % 60,
            i % 1000,
            "2026-12-08T01:02:03.456Z"
        ));
    }
    let bytes: Vec<Bytes> = records.iter().map(|r| Bytes::from(r.clone())).collect();
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Bytes> = [
        Compression::Zstd(3),
        Compression::Gzip(6),
        Compression::None,
    ]
    .into_iter()
    .map(|c| Bytes::from(parquet::encode(&bytes, c).unwrap()))
    .collect();
    for body in &bodies {
        // (The verdict names the records that are not Lambda's shape; here they are meant.)
        let d = lambda_emulator::verdict::objects::decode(body, None);
        assert_eq!(d.bad_lines, 2);
        let lines: Vec<&str> = d.text.lines().collect();
        assert_eq!(
            lines,
            records.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
    let (schemas, rows) = read_back(&files(dir.path(), &bodies));
    assert_schema(&schemas);
    assert_eq!(rows.len(), 3 * records.len());
    for (i, row) in rows.iter().enumerate() {
        let raw = &records[i % records.len()];
        assert_eq!(row, &expected_row(raw), "{raw}");
    }
    // The odd ones: nothing but the record where nothing else can be read.
    assert_eq!(rows[0]["type"], Value::Null);
    assert_eq!(rows[2]["time"], Value::Null);
    assert_eq!(rows[3]["message"], r#"{"nested":[1,{"a":null}]}"#);
    assert_eq!(rows[3]["level"], Value::Null);
    assert_eq!(rows[3]["time"], 1_796_684_523_004_i64);
    assert_eq!(rows[6]["message"], "é😀 escaped");
    assert_eq!(rows[7]["time"], 1_796_691_723_999_i64);
}

/// Columns with no value at all in a batch (no record states a level or a request id, or is even
/// an object): written as plain nulls, without a dictionary, and read as nulls by every reader.
#[test]
fn a_batch_whose_columns_are_all_null_reads_back_as_nulls() {
    let records = ["[1]", "2", r#""three""#, r#"{"record":"no time, no type"}"#];
    let bytes: Vec<Bytes> = records.iter().map(|r| Bytes::from(r.to_string())).collect();
    let body = Bytes::from(parquet::encode(&bytes, Compression::Zstd(3)).unwrap());
    let d = lambda_emulator::verdict::objects::decode(&body, None);
    assert_eq!(d.text.lines().collect::<Vec<_>>(), records);
    let dir = tempfile::tempdir().unwrap();
    let (schemas, rows) = read_back(&files(dir.path(), &[body]));
    assert_schema(&schemas);
    let want: Vec<Value> = records.iter().map(|r| expected_row(r)).collect();
    assert_eq!(rows, want);
    assert!(
        rows.iter()
            .all(|r| r["level"].is_null() && r["request_id"].is_null() && r["type"].is_null())
    );
    assert_eq!(rows[3]["message"], "no time, no type");
}
