//! An in-memory S3 backend behind the `s3s` protocol layer (which parses requests, decodes
//! `aws-chunked` bodies and verifies SigV4). Objects keep the headers an extension sets — content
//! type and encoding, server-side encryption, storage class, user metadata, checksums — so tests can
//! assert them, and every successful write is kept in a history.

use super::integrity::{
    Claimed, checksum_map, decoded_length_header, md5_hex, multipart_etag, object_checksum, verify,
};
use super::rules;
use crate::sync::lock;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// An object as stored, with the headers it was written with.
#[derive(Debug, Clone, Serialize)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    #[serde(skip)]
    pub body: Bytes,
    pub size: usize,
    pub etag: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Verified checksums by algorithm (`crc32`, `crc32c`, `sha1`, `sha256`, `crc64nvme`), base64.
    pub checksums: BTreeMap<String, String>,
    pub multipart: bool,
    #[serde(skip)]
    pub last_modified: SystemTime,
}

/// One successful write (PutObject or CompleteMultipartUpload).
#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub size: usize,
    /// Milliseconds since the endpoint started.
    pub at_ms: f64,
}

struct Upload {
    template: StoredObject,
    /// The checksum CreateMultipartUpload declared (algorithm and type).
    declared: Option<rules::Declared>,
    parts: BTreeMap<i32, (Bytes, rules::StoredPart)>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub buckets: BTreeMap<String, BTreeMap<String, StoredObject>>,
    uploads: HashMap<String, Upload>,
    pub writes: Vec<WriteRecord>,
}

#[derive(Clone)]
pub(crate) struct Store {
    pub inner: Arc<Mutex<Inner>>,
    region: String,
    started: Instant,
}

impl Store {
    pub fn new(region: &str, started: Instant) -> Self {
        Self {
            inner: Default::default(),
            region: region.to_string(),
            started,
        }
    }

    pub fn create_bucket(&self, name: &str) {
        lock(&self.inner)
            .buckets
            .entry(name.to_string())
            .or_default();
    }

    fn commit(&self, obj: StoredObject) {
        let mut inner = lock(&self.inner);
        inner.writes.push(WriteRecord {
            bucket: obj.bucket.clone(),
            key: obj.key.clone(),
            etag: obj.etag.clone(),
            size: obj.size,
            at_ms: crate::clock::ms(self.started.elapsed()),
        });
        if let Some(b) = inner.buckets.get_mut(&obj.bucket) {
            b.insert(obj.key.clone(), obj);
        }
    }

    fn lookup(&self, bucket: &str, key: &str) -> S3Result<StoredObject> {
        self.require_bucket(bucket)?;
        lock(&self.inner)
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchKey))
    }

    fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        if lock(&self.inner).buckets.contains_key(bucket) {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            ))
        }
    }
}

async fn collect(body: Option<StreamingBlob>) -> S3Result<Bytes> {
    let Some(body) = body else {
        return Ok(Bytes::new());
    };
    let mut buf = BytesMut::new();
    let mut stream = body;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| s3_error!(IncompleteBody, "could not read the body: {e}"))?
    {
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The [`Claimed`] checksums of a PutObject or UploadPart input (the fields have the same names).
macro_rules! claimed {
    ($input:ident) => {
        Claimed {
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

/// A GetObject or HeadObject output describing `obj` (the fields have the same names).
macro_rules! described {
    ($ty:ident, $obj:expr, $($extra:tt)*) => {{
        let obj: StoredObject = $obj;
        $ty {
            content_length: Some(obj.size as i64),
            content_type: obj.content_type,
            content_encoding: obj.content_encoding,
            e_tag: Some(ETag::Strong(obj.etag)),
            last_modified: Some(ts(obj.last_modified)),
            metadata: Some(obj.metadata.into_iter().collect()),
            server_side_encryption: obj.server_side_encryption.map(ServerSideEncryption::from),
            ssekms_key_id: obj.sse_kms_key_id,
            storage_class: obj.storage_class.map(StorageClass::from),
            $($extra)*
            ..Default::default()
        }
    }};
}

fn meta(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

#[async_trait::async_trait]
impl S3 for Store {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        let constraint = input
            .create_bucket_configuration
            .and_then(|c| c.location_constraint)
            .map(|l| l.as_str().to_string());
        // As in S3: outside us-east-1 a bucket must be created with a matching LocationConstraint.
        let expected = (self.region != "us-east-1").then(|| self.region.clone());
        if constraint != expected {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {:?} location constraint is incompatible for the region specific endpoint this request was sent to ({}).",
                constraint.unwrap_or_default(),
                self.region
            ));
        }
        let mut inner = lock(&self.inner);
        if inner.buckets.contains_key(&input.bucket) {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        inner.buckets.insert(input.bucket.clone(), BTreeMap::new());
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailers = req.trailing_headers;
        let decoded = decoded_length_header(&req.headers);
        let input = req.input;
        self.require_bucket(&input.bucket)?;
        let body = collect(input.body).await?;
        rules::decoded_length(decoded.as_deref(), body.len())?;
        let metadata = meta(input.metadata.clone());
        rules::object_limits(&input.key, &metadata, Some(body.len()))?;
        let checksums = verify(claimed!(input), trailers, &body)?;
        let etag = md5_hex(&body);
        let obj = StoredObject {
            bucket: input.bucket,
            key: input.key,
            size: body.len(),
            body,
            etag: etag.clone(),
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            server_side_encryption: input.server_side_encryption.map(|s| s.as_str().to_string()),
            sse_kms_key_id: input.ssekms_key_id.clone(),
            storage_class: input.storage_class.map(|s| s.as_str().to_string()),
            metadata,
            checksums: checksums.clone(),
            multipart: false,
            last_modified: SystemTime::now(),
        };
        let output = PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            server_side_encryption: obj
                .server_side_encryption
                .clone()
                .map(ServerSideEncryption::from),
            ssekms_key_id: obj.sse_kms_key_id.clone(),
            checksum_crc32: checksums.get("crc32").cloned(),
            checksum_crc32c: checksums.get("crc32c").cloned(),
            checksum_sha1: checksums.get("sha1").cloned(),
            checksum_sha256: checksums.get("sha256").cloned(),
            checksum_crc64nvme: checksums.get("crc64nvme").cloned(),
            ..Default::default()
        };
        self.commit(obj);
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let obj = self.lookup(&req.input.bucket, &req.input.key)?;
        let body = Some(StreamingBlob::from(s3s::Body::from(obj.body.clone())));
        Ok(S3Response::new(described!(GetObjectOutput, obj, body,)))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let obj = self.lookup(&req.input.bucket, &req.input.key)?;
        Ok(S3Response::new(described!(HeadObjectOutput, obj,)))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        self.require_bucket(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let after = input
            .continuation_token
            .clone()
            .or(input.start_after.clone())
            .unwrap_or_default();
        let inner = lock(&self.inner);
        let all: Vec<&StoredObject> = inner.buckets[&input.bucket]
            .values()
            .filter(|o| o.key.starts_with(&prefix) && o.key.as_str() > after.as_str())
            .collect();
        let page: Vec<Object> = all
            .iter()
            .take(max)
            .map(|o| Object {
                key: Some(o.key.clone()),
                size: Some(o.size as i64),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(ts(o.last_modified)),
                storage_class: Some(ObjectStorageClass::from(
                    o.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
                )),
                ..Default::default()
            })
            .collect();
        let truncated = all.len() > max;
        let next = truncated
            .then(|| page.last().and_then(|o| o.key.clone()))
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            max_keys: Some(max as i32),
            key_count: Some(page.len() as i32),
            continuation_token: input.continuation_token,
            is_truncated: Some(truncated),
            next_continuation_token: next,
            contents: Some(page),
            start_after: input.start_after,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket)?;
        let declared = rules::declared_checksum(
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
            input.checksum_type.as_ref().map(|t| t.as_str()),
        )?;
        let metadata = meta(input.metadata);
        rules::object_limits(&input.key, &metadata, None)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let template = StoredObject {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            body: Bytes::new(),
            size: 0,
            etag: String::new(),
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            server_side_encryption: input.server_side_encryption.map(|s| s.as_str().to_string()),
            sse_kms_key_id: input.ssekms_key_id,
            storage_class: input.storage_class.map(|s| s.as_str().to_string()),
            metadata,
            checksums: BTreeMap::new(),
            multipart: true,
            last_modified: SystemTime::now(),
        };
        lock(&self.inner).uploads.insert(
            id.clone(),
            Upload {
                template,
                declared: declared.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: declared
                .as_ref()
                .map(|d| ChecksumAlgorithm::from(d.algorithm.to_ascii_uppercase())),
            checksum_type: declared.as_ref().map(|d| {
                ChecksumType::from(
                    match d.kind {
                        rules::ChecksumType::Composite => ChecksumType::COMPOSITE,
                        rules::ChecksumType::FullObject => ChecksumType::FULL_OBJECT,
                    }
                    .to_string(),
                )
            }),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailers = req.trailing_headers;
        let decoded = decoded_length_header(&req.headers);
        let input = req.input;
        // API UploadPart: a part of an unknown or aborted upload is NoSuchUpload (404).
        let declared = lock(&self.inner)
            .uploads
            .get(&input.upload_id)
            .map(|u| u.declared.clone())
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        let body = collect(input.body).await?;
        rules::decoded_length(decoded.as_deref(), body.len())?;
        rules::part_number_and_size(input.part_number, body.len())?;
        let part_number = input.part_number;
        let mut claimed = claimed!(input);
        let sent = claimed.sent(trailers.as_ref());
        rules::part_algorithm(declared.as_ref(), &sent)?;
        if let Some(d) = &declared
            && claimed.algorithm.is_none()
        {
            // S3 computes the declared checksum of a part that carries none (inferred).
            claimed.algorithm = Some(ChecksumAlgorithm::from(d.algorithm.to_ascii_uppercase()));
        }
        let checksums = verify(claimed, trailers, &body)?;
        let etag = md5_hex(&body);
        let stored = rules::StoredPart {
            size: body.len(),
            etag: etag.clone(),
            checksums: checksums.clone(),
        };
        let mut inner = lock(&self.inner);
        let up = inner
            .uploads
            .get_mut(&input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        up.parts.insert(part_number, (body, stored));
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: checksums.get("crc32").cloned(),
            checksum_crc32c: checksums.get("crc32c").cloned(),
            checksum_crc64nvme: checksums.get("crc64nvme").cloned(),
            checksum_sha1: checksums.get("sha1").cloned(),
            checksum_sha256: checksums.get("sha256").cloned(),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed: Vec<rules::ListedPart> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| rules::ListedPart {
                number: p.part_number,
                etag: p.e_tag.map(|e| e.value().to_string()),
                checksums: checksum_map([
                    p.checksum_crc32,
                    p.checksum_crc32c,
                    p.checksum_crc64nvme,
                    p.checksum_sha1,
                    p.checksum_sha256,
                ]),
            })
            .collect();
        let whole = checksum_map([
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        ]);
        // A failed Complete leaves the upload as it was (the client may correct and retry); only
        // success or an abort ends it (API CompleteMultipartUpload, AbortMultipartUpload).
        let (obj, checksum) = {
            let inner = lock(&self.inner);
            let up = inner
                .uploads
                .get(&input.upload_id)
                .ok_or_else(|| s3_error!(NoSuchUpload))?;
            let sizes: BTreeMap<i32, rules::StoredPart> =
                up.parts.iter().map(|(n, (_, p))| (*n, p.clone())).collect();
            let numbers = rules::complete(up.declared.as_ref(), &sizes, &listed)?;
            let mut body = BytesMut::new();
            for n in &numbers {
                body.extend_from_slice(&up.parts[n].0);
            }
            let body = body.freeze();
            let checksum =
                object_checksum(up.declared.as_ref(), &up.parts, &numbers, &body, &whole)?;
            let mut obj = up.template.clone();
            obj.etag = multipart_etag(numbers.iter().map(|n| up.parts[n].1.etag.as_str()));
            obj.size = body.len();
            obj.body = body;
            obj.last_modified = SystemTime::now();
            if let Some((alg, value)) = &checksum {
                obj.checksums.insert(alg.clone(), value.clone());
            }
            (obj, checksum)
        };
        lock(&self.inner).uploads.remove(&input.upload_id);
        let (bucket, key, etag) = (obj.bucket.clone(), obj.key.clone(), obj.etag.clone());
        self.commit(obj);
        let get = |alg: &str| {
            checksum
                .as_ref()
                .filter(|(a, _)| a == alg)
                .map(|(_, v)| v.clone())
        };
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: get("crc32"),
            checksum_crc32c: get("crc32c"),
            checksum_crc64nvme: get("crc64nvme"),
            checksum_sha1: get("sha1"),
            checksum_sha256: get("sha256"),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        lock(&self.inner)
            .uploads
            .remove(&req.input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}
