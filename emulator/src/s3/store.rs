//! An in-memory S3 backend behind the `s3s` protocol layer (which parses requests, decodes
//! `aws-chunked` bodies and verifies SigV4). Objects keep the headers an extension sets — content
//! type and encoding, server-side encryption, storage class, user metadata, checksums — so tests can
//! assert them, and every successful write is kept in a history.

use super::integrity::{claimed, decoded_length_header, md5_hex, verify};
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

pub(super) struct Upload {
    pub(super) template: StoredObject,
    /// The checksum CreateMultipartUpload declared (algorithm and type).
    pub(super) declared: Option<rules::Declared>,
    pub(super) parts: BTreeMap<i32, (Bytes, rules::StoredPart)>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub buckets: BTreeMap<String, BTreeMap<String, StoredObject>>,
    pub(super) uploads: HashMap<String, Upload>,
    pub writes: Vec<WriteRecord>,
}

#[derive(Clone)]
pub(crate) struct Store {
    pub inner: Arc<Mutex<Inner>>,
    pub(super) region: String,
    pub(super) started: Instant,
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

    pub(super) fn commit(&self, obj: StoredObject) {
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

    pub(super) fn lookup(&self, bucket: &str, key: &str) -> S3Result<StoredObject> {
        self.require_bucket(bucket)?;
        lock(&self.inner)
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchKey))
    }

    pub(super) fn require_bucket(&self, bucket: &str) -> S3Result<()> {
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

pub(super) async fn collect(body: Option<StreamingBlob>) -> S3Result<Bytes> {
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

pub(super) fn meta(m: Option<Metadata>) -> BTreeMap<String, String> {
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
        self.create_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.put_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_upload(req).await
    }
}
