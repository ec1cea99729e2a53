//! Reading what an extension wrote: object bodies decoded (plain, gzip, zstd: by
//! `Content-Encoding`, else by their magic bytes; Parquet by its magic, see [`super::parquet`]),
//! and each line checked to be a Lambda record
//! (`{"time": string, "type": string, "record": …}`), as Athena's JSON SerDe will read it.

use std::io::Read;

/// What one object holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The NDJSON text (empty when it could not be decoded).
    pub text: String,
    /// Non-empty lines.
    pub lines: usize,
    /// Lines that are not a JSON object with a string `time`, a string `type` and a `record`.
    pub bad_lines: usize,
    /// Why the object is not NDJSON of records (the first problem), if it is not.
    pub problem: Option<String>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Decodes `body` and checks its lines (a Parquet object's `record` column, one line per row).
pub fn decode(body: &[u8], content_encoding: Option<&str>) -> Decoded {
    let raw = if super::parquet::is_parquet(body) {
        super::parquet::records(body)
    } else {
        inflate(body, content_encoding)
    };
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            return Decoded {
                problem: Some(e),
                ..Decoded::default()
            };
        }
    };
    let text = match String::from_utf8(raw) {
        Ok(t) => t,
        Err(_) => {
            return Decoded {
                problem: Some("the body is not UTF-8".into()),
                ..Decoded::default()
            };
        }
    };
    let mut d = Decoded::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        d.lines += 1;
        if let Err(why) = check_record(line) {
            d.bad_lines += 1;
            d.problem
                .get_or_insert_with(|| format!("line {}: {why}", i + 1));
        }
    }
    d.text = text;
    d
}

fn inflate(body: &[u8], content_encoding: Option<&str>) -> Result<Vec<u8>, String> {
    let enc = content_encoding.map(str::to_ascii_lowercase);
    let mut out = Vec::new();
    if enc.as_deref() == Some("gzip") || (enc.is_none() && body.starts_with(&GZIP_MAGIC)) {
        flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
    } else if enc.as_deref() == Some("zstd") || (enc.is_none() && body.starts_with(&ZSTD_MAGIC)) {
        out = zstd::stream::decode_all(body).map_err(|e| format!("not valid zstd: {e}"))?;
    } else {
        out = body.to_vec();
    }
    Ok(out)
}

/// One NDJSON line must be a Lambda record.
fn check_record(line: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    for field in ["time", "type"] {
        if !obj.get(field).is_some_and(serde_json::Value::is_string) {
            return Err(format!("no string \"{field}\""));
        }
    }
    if !obj.contains_key("record") {
        return Err("no \"record\"".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GOOD: &str = "{\"time\":\"t\",\"type\":\"function\",\"record\":\"a\"}\n{\"time\":\"t\",\"type\":\"platform.report\",\"record\":{}}\n";

    #[test]
    fn plain_gzip_and_zstd_bodies_are_read_and_checked() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(GOOD.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::stream::encode_all(GOOD.as_bytes(), 3).unwrap();
        for (body, enc) in [
            (GOOD.as_bytes().to_vec(), None),
            (gz.clone(), Some("gzip")),
            (gz, None),
            (zs.clone(), Some("zstd")),
            (zs, None),
        ] {
            let d = decode(&body, enc);
            assert_eq!((d.lines, d.bad_lines, d.problem), (2, 0, None), "{enc:?}");
            assert_eq!(d.text, GOOD);
        }
    }

    #[test]
    fn lines_that_are_not_records_and_undecodable_bodies_are_named() {
        // The Go sample's objects: concatenated arrays.
        let d = decode(b"[[{\"time\":\"t\"}]][[{\"x\":1}]]", None);
        assert_eq!(d.bad_lines, 1);
        assert!(d.problem.unwrap().starts_with("line 1: not JSON"));
        let d = decode(b"[{\"time\":\"t\"}]\n", None);
        assert_eq!(d.problem.as_deref(), Some("line 1: not a JSON object"));
        let d = decode(b"{\"time\":\"t\",\"type\":\"f\"}\n42\n", None);
        assert_eq!(d.bad_lines, 2);
        assert_eq!(d.problem.as_deref(), Some("line 1: no \"record\""));
        let d = decode(&[0x1f, 0x8b, 0, 1, 2], None);
        assert!(d.problem.unwrap().starts_with("not valid gzip"));
    }
}
