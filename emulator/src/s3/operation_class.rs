//! S3 operations by what they cost and what limits them: the one classifier behind the endpoint's
//! faults and per-prefix write rate, the verdict's PUT count and the fleet's PUT/s.

/// What an S3 operation is, for S3's pricing and its request-rate limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Class {
    /// Billed in the PUT, COPY, POST, LIST request class (S3 pricing, "Requests & data
    /// retrievals"; GET and DELETE/abort are other classes).
    pub billed_as_put: bool,
    /// Writes to an object key: what refusals and the per-prefix write rate apply to (S3 "Best
    /// practices design patterns: optimizing Amazon S3 performance": 3,500
    /// PUT/COPY/POST/DELETE requests per second per prefix).
    pub writes_object: bool,
    /// Carries object data (a whole object or a part).
    pub uploads: bool,
}

impl Class {
    /// An object write billed as a PUT: what an extension's PUTs per GB and PUT/s count.
    pub fn object_put(self) -> bool {
        self.billed_as_put && self.writes_object
    }
}

/// The class of the operation named as in the S3 API reference (`PutObject`, `UploadPart`, ...).
pub fn classify(operation: &str) -> Class {
    let (billed_as_put, writes_object, uploads) = match operation {
        "PutObject" | "UploadPart" => (true, true, true),
        "CreateMultipartUpload" | "CompleteMultipartUpload" => (true, true, false),
        "AbortMultipartUpload" => (false, true, false),
        "CreateBucket" | "ListObjects" | "ListObjectsV2" => (true, false, false),
        _ => (false, false, false),
    };
    Class {
        billed_as_put,
        writes_object,
        uploads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_puts_and_uploads_are_told_apart() {
        assert!(classify("UploadPart").object_put() && classify("UploadPart").uploads);
        let complete = classify("CompleteMultipartUpload");
        assert!(complete.object_put() && !complete.uploads);
        let abort = classify("AbortMultipartUpload");
        assert!(
            abort.writes_object && !abort.billed_as_put,
            "an abort is free but rate-limited"
        );
        let list = classify("ListObjectsV2");
        assert!(list.billed_as_put && !list.writes_object);
        assert_eq!(classify("GetObject"), Class::default());
    }
}
