//! What a client claims of a body and what S3 checks: Content-MD5, the flexible checksums (in
//! headers or aws-chunked trailers), the decoded length of a chunked body, and the ETags and
//! checksums of multipart objects (S3 User Guide, "Checking object integrity").

use super::rules;
use base64::Engine;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Result, s3_error};
use std::collections::BTreeMap;

/// The [`Claimed`] checksums of a PutObject or UploadPart input (the fields have the same names).
macro_rules! claimed {
    ($input:ident) => {
        $crate::s3::integrity::Claimed {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
            crc64nvme: $input.checksum_crc64nvme,
            algorithm: $input.checksum_algorithm,
            content_md5: $input.content_md5,
        }
    };
}
pub(super) use claimed;

pub(super) fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checksums the client sent (headers or `aws-chunked` trailers), verified against the body.
pub(super) struct Claimed {
    pub(super) crc32: Option<String>,
    pub(super) crc32c: Option<String>,
    pub(super) sha1: Option<String>,
    pub(super) sha256: Option<String>,
    pub(super) crc64nvme: Option<String>,
    pub(super) algorithm: Option<ChecksumAlgorithm>,
    pub(super) content_md5: Option<String>,
}

impl Claimed {
    /// The algorithms whose checksum the client sent (headers or `aws-chunked` trailers).
    pub(super) fn sent(&self, trailers: Option<&s3s::TrailingHeaders>) -> Vec<&'static str> {
        let in_trailer = |name: &str| {
            trailers.is_some_and(|t| {
                t.read(|h| h.contains_key(format!("x-amz-checksum-{name}").as_str()))
                    .unwrap_or(false)
            })
        };
        [
            ("crc32", self.crc32.is_some()),
            ("crc32c", self.crc32c.is_some()),
            ("crc64nvme", self.crc64nvme.is_some()),
            ("sha1", self.sha1.is_some()),
            ("sha256", self.sha256.is_some()),
        ]
        .into_iter()
        .filter(|(a, header)| *header || in_trailer(a))
        .map(|(a, _)| a)
        .collect()
    }
}

pub(super) fn verify(
    claimed: Claimed,
    trailers: Option<s3s::TrailingHeaders>,
    body: &[u8],
) -> S3Result<BTreeMap<String, String>> {
    let mut c = claimed;
    if let Some(t) = trailers.and_then(|t| t.take()) {
        let get = |name: &str| {
            t.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        c.crc32 = c.crc32.or(get("x-amz-checksum-crc32"));
        c.crc32c = c.crc32c.or(get("x-amz-checksum-crc32c"));
        c.sha1 = c.sha1.or(get("x-amz-checksum-sha1"));
        c.sha256 = c.sha256.or(get("x-amz-checksum-sha256"));
        c.crc64nvme = c.crc64nvme.or(get("x-amz-checksum-crc64nvme"));
    }
    if let Some(md5) = &c.content_md5 {
        let want = base64_decode_hex(md5)
            .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
        if want != md5_hex(body) {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received"
            ));
        }
    }
    let mut hasher = s3s::checksum::ChecksumHasher::default();
    let alg = c
        .algorithm
        .as_ref()
        .map(|a| a.as_str().to_ascii_uppercase());
    if c.crc32.is_some() || alg.as_deref() == Some("CRC32") {
        hasher.crc32 = Some(Default::default());
    }
    if c.crc32c.is_some() || alg.as_deref() == Some("CRC32C") {
        hasher.crc32c = Some(Default::default());
    }
    if c.sha1.is_some() || alg.as_deref() == Some("SHA1") {
        hasher.sha1 = Some(Default::default());
    }
    if c.sha256.is_some() || alg.as_deref() == Some("SHA256") {
        hasher.sha256 = Some(Default::default());
    }
    if c.crc64nvme.is_some() || alg.as_deref() == Some("CRC64NVME") {
        hasher.crc64nvme = Some(Default::default());
    }
    hasher.update(body);
    let got = hasher.finalize();
    let mut out = BTreeMap::new();
    for (name, claimed, computed) in [
        ("crc32", c.crc32, got.checksum_crc32),
        ("crc32c", c.crc32c, got.checksum_crc32c),
        ("sha1", c.sha1, got.checksum_sha1),
        ("sha256", c.sha256, got.checksum_sha256),
        ("crc64nvme", c.crc64nvme, got.checksum_crc64nvme),
    ] {
        match (claimed, computed) {
            (Some(want), Some(have)) if want != have => {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} checksum you specified did not match what we received"
                ));
            }
            (_, Some(have)) => {
                out.insert(name.to_string(), have);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `x-amz-decoded-content-length`, which an `aws-chunked` body must decode to.
pub(super) fn decoded_length_header(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Checksums by lower-case algorithm, from the five optional fields in [`rules::ALGORITHMS`]' order.
pub(super) fn checksum_map(values: [Option<String>; 5]) -> BTreeMap<String, String> {
    rules::ALGORITHMS
        .iter()
        .zip(values)
        .filter_map(|(a, v)| v.map(|v| (a.to_string(), v)))
        .collect()
}

/// S3's multipart ETag: the MD5 of the concatenated binary part MD5s, `-`, the part count.
pub(super) fn multipart_etag<'a>(part_etags: impl Iterator<Item = &'a str>) -> String {
    let mut raw = Vec::new();
    let mut n = 0;
    for h in part_etags {
        n += 1;
        raw.extend(
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0)),
        );
    }
    format!("{}-{n}", md5_hex(&raw))
}

/// The checksum of an assembled multipart object (UG Checking object integrity, "Using part-level
/// checksums for multipart uploads"): `COMPOSITE` is the algorithm over the concatenated binary
/// part checksums, `-` and the part count; `FULL_OBJECT` is the algorithm over the whole body, and
/// a whole-object checksum sent with Complete must match it (`BadDigest`).
pub(super) fn object_checksum(
    declared: Option<&rules::Declared>,
    parts: &BTreeMap<i32, (bytes::Bytes, rules::StoredPart)>,
    numbers: &[i32],
    body: &[u8],
    sent: &BTreeMap<String, String>,
) -> S3Result<Option<(String, String)>> {
    let Some(d) = declared else {
        return Ok(None);
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = match d.kind {
        rules::ChecksumType::FullObject => {
            let whole = hash(&d.algorithm, body);
            if sent.get(&d.algorithm).is_some_and(|s| *s != whole) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified for the full object did not match what was computed",
                    d.algorithm
                ));
            }
            whole
        }
        rules::ChecksumType::Composite => {
            let mut concat = Vec::new();
            for n in numbers {
                let part = parts[n].1.checksums.get(&d.algorithm);
                concat.extend(part.and_then(|c| b64.decode(c).ok()).unwrap_or_default());
            }
            format!("{}-{}", hash(&d.algorithm, &concat), numbers.len())
        }
    };
    Ok(Some((d.algorithm.clone(), value)))
}

/// The base64 checksum of `data` with `algorithm` (lower case), as S3 reports it.
pub(super) fn hash(algorithm: &str, data: &[u8]) -> String {
    let mut h = s3s::checksum::ChecksumHasher::default();
    match algorithm {
        "crc32" => h.crc32 = Some(Default::default()),
        "crc32c" => h.crc32c = Some(Default::default()),
        "crc64nvme" => h.crc64nvme = Some(Default::default()),
        "sha1" => h.sha1 = Some(Default::default()),
        _ => h.sha256 = Some(Default::default()),
    }
    h.update(data);
    let c = h.finalize();
    [
        c.checksum_crc32,
        c.checksum_crc32c,
        c.checksum_crc64nvme,
        c.checksum_sha1,
        c.checksum_sha256,
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default()
}

pub(super) fn base64_decode_hex(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for ch in s.bytes().filter(|&b| b != b'=') {
        let v = ALPHABET.iter().position(|&a| a == ch)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push_str(&format!("{:02x}", (bits >> n) & 0xff));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_content_md5() {
        // base64 of md5("hello")
        assert_eq!(
            base64_decode_hex("XUFAKrxLKna5cZ2REBfFkg==").unwrap(),
            md5_hex(b"hello")
        );
    }
}
