//! S3's rules at the edges a log shipper hits, one function per rule, each with its reference
//! (`../shared/spec/s3-behaviour.md` collects them). Pure: the store calls these with what it holds,
//! and answers with the error they return, so a client that breaks a rule here breaks it on S3.
//!
//! References: API = Amazon S3 API Reference; UG = Amazon S3 User Guide. "Inferred" marks what the
//! documentation does not state outright and was taken from client libraries' issue trackers.

use s3s::{S3Error, s3_error};
use std::collections::BTreeMap;

/// Every part but the last is at least this (API CompleteMultipartUpload: `EntityTooSmall`,
/// "Your proposed upload is smaller than the minimum allowed object size"; UG Multipart upload
/// limits: 5 MiB).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// API UploadPart and UG Multipart upload limits: part numbers 1 to 10,000.
pub const MAX_PART_NUMBER: i32 = 10_000;
/// UG Multipart upload limits: a part is at most 5 GiB.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// API PutObject: "You can upload objects up to 5 GB in size" in a single operation.
pub const MAX_PUT_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// UG Naming objects: a key is at most 1,024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// UG Working with object metadata: user-defined metadata is at most 2 KB (names and values, UTF-8).
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

/// The checksum algorithms S3 knows, lower case as the store keys them.
pub const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/// How the checksum of a multipart object is made (API CreateMultipartUpload,
/// `x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// The default: a checksum of the parts' checksums; Complete must list every part's checksum.
    Composite,
    /// A checksum of the whole object (CRC32, CRC32C, CRC64NVME only); parts need not carry one.
    FullObject,
}

/// A multipart upload's declared checksum: `x-amz-checksum-algorithm` and `-type` of
/// CreateMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Lower case: `crc32`, …
    pub algorithm: String,
    pub kind: ChecksumType,
}

/// Validates CreateMultipartUpload's checksum headers. API CreateMultipartUpload: `FULL_OBJECT` is
/// supported for CRC32, CRC32C and CRC64NVME only; a type needs an algorithm.
pub fn declared_checksum(
    algorithm: Option<&str>,
    kind: Option<&str>,
) -> Result<Option<Declared>, S3Error> {
    let kind = match kind.map(str::to_ascii_uppercase).as_deref() {
        None | Some("COMPOSITE") => ChecksumType::Composite,
        Some("FULL_OBJECT") => ChecksumType::FullObject,
        Some(other) => {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid: {other}"
            ));
        }
    };
    let Some(algorithm) = algorithm.map(str::to_ascii_lowercase) else {
        return Ok(None);
    };
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        return Err(s3_error!(
            InvalidRequest,
            "Checksum algorithm provided is unsupported: {algorithm}"
        ));
    }
    if kind == ChecksumType::FullObject && !algorithm.starts_with("crc") {
        return Err(s3_error!(
            InvalidRequest,
            "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
            algorithm.to_ascii_uppercase()
        ));
    }
    // The default type of the CRC64NVME algorithm is FULL_OBJECT (API CreateMultipartUpload).
    let kind = if algorithm == "crc64nvme" {
        ChecksumType::FullObject
    } else {
        kind
    };
    Ok(Some(Declared { algorithm, kind }))
}

/// API UploadPart: `partNumber` is 1 to 10,000 (`InvalidArgument`), a part at most 5 GiB
/// (`EntityTooLarge`).
pub fn part_number_and_size(n: i32, size: usize) -> Result<(), S3Error> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    if size > MAX_PART_SIZE {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    Ok(())
}

/// A part sent with another checksum algorithm than the upload declared: 400 `InvalidRequest`
/// "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: crc32c"
/// (inferred from client issue trackers; spec §1).
pub fn part_algorithm(declared: Option<&Declared>, sent: &[&str]) -> Result<(), S3Error> {
    let Some(d) = declared else { return Ok(()) };
    match sent.iter().find(|a| **a != d.algorithm) {
        Some(other) if !sent.contains(&d.algorithm.as_str()) => Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            d.algorithm,
            other
        )),
        _ => Ok(()),
    }
}

/// UG Checking object integrity / spec §2: an `aws-chunked` body must decode to exactly
/// `x-amz-decoded-content-length` bytes, else 400 (`IncompleteBody` when short: API Error codes,
/// "You did not provide the number of bytes specified by the Content-Length HTTP header").
pub fn decoded_length(declared: Option<&str>, actual: usize) -> Result<(), S3Error> {
    let Some(d) = declared else { return Ok(()) };
    let want: usize = d.trim().parse().map_err(|_| {
        s3_error!(
            InvalidArgument,
            "x-amz-decoded-content-length is not a number: {d}"
        )
    })?;
    match actual.cmp(&want) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the x-amz-decoded-content-length header ({want}); got {actual}"
        )),
        std::cmp::Ordering::Greater => Err(s3_error!(
            InvalidRequest,
            "The decoded body ({actual} bytes) is longer than x-amz-decoded-content-length ({want})"
        )),
    }
}

/// UG Naming objects (1,024 bytes, `KeyTooLongError`); UG object metadata (2 KB of user metadata,
/// `MetadataTooLarge`); API PutObject (5 GB, `EntityTooLarge`).
pub fn object_limits(
    key: &str,
    metadata: &BTreeMap<String, String>,
    size: Option<usize>,
) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    let meta: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if meta > MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size"
        ));
    }
    if size.is_some_and(|s| s > MAX_PUT_SIZE) {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    Ok(())
}

/// A part the upload holds.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub size: usize,
    /// Hex MD5 of the part, unquoted.
    pub etag: String,
    /// Base64 checksums by lower-case algorithm (sent or computed).
    pub checksums: BTreeMap<String, String>,
}

/// A part as CompleteMultipartUpload lists it.
#[derive(Debug, Clone, Default)]
pub struct ListedPart {
    pub number: Option<i32>,
    pub etag: Option<String>,
    /// Base64 checksums by lower-case algorithm.
    pub checksums: BTreeMap<String, String>,
}

/// CompleteMultipartUpload's rules, in the order S3 applies them; returns the part numbers to
/// assemble. API CompleteMultipartUpload, Errors:
/// * no part listed: `MalformedXML` ("The XML you provided was not well-formed");
/// * part numbers not ascending: `InvalidPartOrder` ("The list of parts was not in ascending order");
/// * a part not uploaded, or with another ETag: `InvalidPart` ("One or more of the specified parts
///   could not be found…");
/// * with a declared algorithm and the `COMPOSITE` type, each part's checksum must be listed:
///   `InvalidRequest` "The upload was created using a crc32 checksum. The complete request must
///   include the checksum for each part. It was missing for part 1 in the request." (a listed
///   checksum that differs from the part's is `InvalidPart`, inferred);
/// * every part but the last at least 5 MiB: `EntityTooSmall`.
pub fn complete(
    declared: Option<&Declared>,
    parts: &BTreeMap<i32, StoredPart>,
    listed: &[ListedPart],
) -> Result<Vec<i32>, S3Error> {
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let mut numbers = Vec::with_capacity(listed.len());
    for p in listed {
        let n = p.number.ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        if numbers.last().is_some_and(|prev| *prev >= n) {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        numbers.push(n);
    }
    let invalid_part = || {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    for p in listed {
        let n = p.number.unwrap_or_default();
        let stored = parts.get(&n).ok_or_else(invalid_part)?;
        let etag = p.etag.as_deref().map(|e| e.trim_matches('"'));
        if etag != Some(stored.etag.as_str()) {
            return Err(invalid_part());
        }
        if let Some(d) = declared.filter(|d| d.kind == ChecksumType::Composite) {
            match p.checksums.get(&d.algorithm) {
                None => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request.",
                        d.algorithm
                    ));
                }
                Some(listed) if stored.checksums.get(&d.algorithm) != Some(listed) => {
                    return Err(invalid_part());
                }
                Some(_) => {}
            }
        }
    }
    for n in &numbers[..numbers.len() - 1] {
        if parts[n].size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
    }
    Ok(numbers)
}

/// The code of an error, for tests and logs.
pub fn code(e: &S3Error) -> &str {
    e.code().as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(size: usize, etag: &str, crc: Option<&str>) -> StoredPart {
        StoredPart {
            size,
            etag: etag.into(),
            checksums: crc
                .map(|c| BTreeMap::from([("crc32".to_string(), c.to_string())]))
                .unwrap_or_default(),
        }
    }

    fn listed(n: i32, etag: &str, crc: Option<&str>) -> ListedPart {
        ListedPart {
            number: Some(n),
            etag: Some(format!("\"{etag}\"")),
            checksums: crc
                .map(|c| BTreeMap::from([("crc32".to_string(), c.to_string())]))
                .unwrap_or_default(),
        }
    }

    fn crc32_composite() -> Declared {
        Declared {
            algorithm: "crc32".into(),
            kind: ChecksumType::Composite,
        }
    }

    #[test]
    fn a_composite_upload_needs_every_parts_checksum_in_complete() {
        let parts = BTreeMap::from([
            (1, part(MIN_PART_SIZE, "a", Some("AAAA"))),
            (2, part(10, "b", Some("BBBB"))),
        ]);
        let d = crc32_composite();
        let e = complete(
            Some(&d),
            &parts,
            &[listed(1, "a", None), listed(2, "b", None)],
        )
        .unwrap_err();
        assert_eq!(code(&e), "InvalidRequest");
        assert_eq!(
            e.message(),
            Some(
                "The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part 1 in the request."
            )
        );
        assert_eq!(
            complete(
                Some(&d),
                &parts,
                &[listed(1, "a", Some("AAAA")), listed(2, "b", Some("BBBB"))]
            )
            .unwrap(),
            vec![1, 2]
        );
        let wrong = complete(
            Some(&d),
            &parts,
            &[listed(1, "a", Some("AAAA")), listed(2, "b", Some("XXXX"))],
        )
        .unwrap_err();
        assert_eq!(code(&wrong), "InvalidPart");
        // FULL_OBJECT: parts are listed by ETag alone.
        let full = Declared {
            kind: ChecksumType::FullObject,
            ..d
        };
        assert!(
            complete(
                Some(&full),
                &parts,
                &[listed(1, "a", None), listed(2, "b", None)]
            )
            .is_ok()
        );
        // No declared algorithm: ETags suffice.
        assert!(complete(None, &parts, &[listed(1, "a", None), listed(2, "b", None)]).is_ok());
    }

    #[test]
    fn order_existence_etag_and_size_rules() {
        let parts = BTreeMap::from([
            (1, part(MIN_PART_SIZE - 1, "a", None)),
            (2, part(MIN_PART_SIZE, "b", None)),
            (3, part(1, "c", None)),
        ]);
        let c = |l: &[ListedPart]| code(&complete(None, &parts, l).unwrap_err()).to_string();
        assert_eq!(c(&[]), "MalformedXML");
        assert_eq!(
            c(&[listed(2, "b", None), listed(1, "a", None)]),
            "InvalidPartOrder"
        );
        assert_eq!(
            c(&[listed(2, "b", None), listed(2, "b", None)]),
            "InvalidPartOrder"
        );
        assert_eq!(
            c(&[listed(2, "b", None), listed(4, "d", None)]),
            "InvalidPart"
        );
        assert_eq!(c(&[listed(2, "x", None)]), "InvalidPart");
        assert_eq!(
            c(&[listed(1, "a", None), listed(3, "c", None)]),
            "EntityTooSmall"
        );
        // The last part may be small; a gap in the numbers is allowed.
        assert_eq!(
            complete(None, &parts, &[listed(2, "b", None), listed(3, "c", None)]).unwrap(),
            vec![2, 3]
        );
        assert_eq!(
            complete(None, &parts, &[listed(1, "a", None)]).unwrap(),
            vec![1]
        );
    }

    #[test]
    fn declared_checksums_and_part_algorithms() {
        assert_eq!(declared_checksum(None, None).unwrap(), None);
        assert_eq!(
            declared_checksum(Some("CRC32"), None).unwrap(),
            Some(crc32_composite())
        );
        assert_eq!(
            declared_checksum(Some("CRC64NVME"), None)
                .unwrap()
                .unwrap()
                .kind,
            ChecksumType::FullObject
        );
        assert_eq!(
            code(&declared_checksum(Some("SHA256"), Some("FULL_OBJECT")).unwrap_err()),
            "InvalidRequest"
        );
        let d = crc32_composite();
        assert!(part_algorithm(Some(&d), &["crc32"]).is_ok());
        assert!(part_algorithm(Some(&d), &[]).is_ok());
        let e = part_algorithm(Some(&d), &["crc32c"]).unwrap_err();
        assert_eq!(
            e.message(),
            Some(
                "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: crc32c"
            )
        );
        assert!(part_algorithm(None, &["sha1"]).is_ok());
    }

    #[test]
    fn lengths_and_limits() {
        assert!(decoded_length(None, 5).is_ok());
        assert!(decoded_length(Some("5"), 5).is_ok());
        assert_eq!(
            code(&decoded_length(Some("6"), 5).unwrap_err()),
            "IncompleteBody"
        );
        assert_eq!(
            code(&decoded_length(Some("4"), 5).unwrap_err()),
            "InvalidRequest"
        );
        assert!(part_number_and_size(10_000, 1).is_ok());
        assert_eq!(
            code(&part_number_and_size(0, 1).unwrap_err()),
            "InvalidArgument"
        );
        assert_eq!(
            code(&part_number_and_size(10_001, 1).unwrap_err()),
            "InvalidArgument"
        );
        let none = BTreeMap::new();
        assert!(object_limits(&"k".repeat(1024), &none, Some(1)).is_ok());
        assert_eq!(
            code(&object_limits(&"k".repeat(1025), &none, None).unwrap_err()),
            "KeyTooLongError"
        );
        let big = BTreeMap::from([("m".to_string(), "v".repeat(2048))]);
        assert_eq!(
            code(&object_limits("k", &big, None).unwrap_err()),
            "MetadataTooLarge"
        );
    }
}
