//! Where sealed batches go: Amazon S3 through the official SDK. Knows nothing of the actors.
//!
//! One object per batch, its key fixed when the batch was sealed, so that a retry overwrites rather
//! than duplicates. Bodies up to [`MULTIPART_THRESHOLD`] go in one PutObject; larger ones in
//! [`PART_SIZE`] parts, so a failure resends one part, not the whole body. When a write fails with
//! NoSuchBucket and bucket creation is on, the bucket is created in the function's region (with the
//! LocationConstraint S3 requires outside us-east-1) and the write made again: never at init. One
//! call is one attempt: when to try again is the ship policy's decision ([`crate::ship_policy`]).

mod connection;
mod headers;
pub mod tls;

pub use connection::http_client;

use crate::sealed::{BodyFile, SealedObject};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};

pub use crate::sealed::{MULTIPART_THRESHOLD, PART_SIZE};

pub use crate::config::ObjectSettings;

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipError {
    /// Network, timeouts, 5xx: worth retrying soon.
    #[error("{0}")]
    Transient(String),
    /// 503 SlowDown and other throttling: worth retrying, after a longer wait.
    #[error("{0}")]
    Throttled(String),
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// Access denied, KMS denial, a wrong region or credentials: every write is refused until
    /// someone fixes it. `refusal` is decided where S3's answer is read, once.
    #[error("{code}: {message}")]
    Refused {
        refusal: crate::ship_policy::Refusal,
        code: String,
        message: String,
    },
    /// S3 refuses this request itself (a 4xx about the object): retrying will not change it.
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
    /// The SDK cannot build the request (a value no HTTP header can carry): it can never be sent.
    #[error("the request cannot be built: {0}")]
    Unsendable(String),
    /// The body's spill file cannot be read.
    #[error("cannot read the spilled body: {0}")]
    Unreadable(String),
}

/// Error codes that refuse every write, not this one (S3 API Reference, Error codes).
const REFUSALS: [&str; 11] = [
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
];

impl ShipError {
    /// What the failure means for the ship policy: the kind S3's answer was classified into.
    pub fn failure(&self) -> crate::ship_policy::Failure {
        use crate::ship_policy::{Failure, Refusal};
        match self {
            ShipError::Transient(_) => Failure::Transient,
            ShipError::Throttled(_) => Failure::Throttled,
            ShipError::NoSuchBucket => Failure::Refused(Refusal::NoSuchBucket),
            ShipError::Refused { refusal, .. } => Failure::Refused(*refusal),
            ShipError::Rejected { .. } => Failure::Rejected,
            ShipError::Unsendable(_) => Failure::Unsendable,
            ShipError::Unreadable(_) => Failure::Unreadable,
        }
    }

    fn from_sdk<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self {
        let status = e.raw_response().map(|r| r.status().as_u16());
        match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("").to_string();
                let message = se.err().message().unwrap_or("").to_string();
                if code == "NoSuchBucket" {
                    ShipError::NoSuchBucket
                } else if matches!(
                    code.as_str(),
                    "SlowDown" | "Throttling" | "ThrottlingException"
                ) {
                    ShipError::Throttled(format!(
                        "{code} (HTTP {}): {message}",
                        status.unwrap_or(0)
                    ))
                } else if matches!(status, Some(500..=599))
                    || matches!(
                        code.as_str(),
                        "RequestTimeout"
                            | "RequestTimeTooSkewed"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "BadDigest"
                            | "IncompleteBody"
                            | "NoSuchUpload"
                    )
                {
                    // A body damaged or cut on the way, or an upload id gone with a cut Complete:
                    // sending it again is the fix.
                    ShipError::Transient(format!(
                        "{code} (HTTP {}): {message}",
                        status.unwrap_or(0)
                    ))
                } else if REFUSALS.contains(&code.as_str())
                    || code.starts_with("KMS")
                    || matches!(status, Some(401 | 403))
                    || code.is_empty()
                {
                    use crate::ship_policy::Refusal;
                    let refusal = if code.starts_with("KMS") || message.contains("kms:") {
                        Refusal::Kms
                    } else if code == "AccessDenied" {
                        Refusal::AccessDenied
                    } else {
                        Refusal::Other
                    };
                    ShipError::Refused {
                        refusal,
                        code: if code.is_empty() {
                            format!("HTTP {}", status.unwrap_or(0))
                        } else {
                            code
                        },
                        message,
                    }
                } else {
                    ShipError::Rejected { code, message }
                }
            }
            // Nothing was sent: the same request would fail the same way every time.
            SdkError::ConstructionFailure(_) => {
                ShipError::Unsendable(format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))
            }
            // Dispatch failures, timeouts and unreadable answers are the network's doing.
            other => {
                ShipError::Transient(format!("{}", aws_sdk_s3::error::DisplayErrorContext(other)))
            }
        }
    }
}

/// Sets the headers every object is written with on a PutObject or CreateMultipartUpload builder
/// (the two have the same setters): content type and encoding, encryption, storage class, user
/// metadata, and a CRC32 checksum S3 verifies.
macro_rules! object_headers {
    ($req:expr, $sink:expr, $obj:expr) => {{
        let o = &$sink.objects;
        $req.content_type(
            $obj.meta
                .content_type
                .as_deref()
                .unwrap_or(crate::encode::CONTENT_TYPE),
        )
        .set_content_encoding($obj.meta.content_encoding.clone())
        .set_server_side_encryption(
            o.sse
                .as_deref()
                .map(aws_sdk_s3::types::ServerSideEncryption::from),
        )
        .set_ssekms_key_id(o.sse_kms_key_id.clone())
        .set_storage_class(
            o.storage_class
                .as_deref()
                .map(aws_sdk_s3::types::StorageClass::from),
        )
        .set_metadata(Some($sink.metadata($obj)))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
    }};
}

/// The outcome of shipping one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    pub attempts: u32,
}

/// The S3 client and where it writes.
#[derive(Clone)]
pub struct S3Sink {
    conn: connection::PendingConnection,
    force_path_style: bool,
    bucket: String,
    create_bucket: bool,
    objects: ObjectSettings,
}

impl S3Sink {
    /// A sink whose client the SDK's standard chain builds on a thread of its own: returns at once
    /// (see `connection::load_on_thread`). `ca_bundle` is the checked content of `AWS_CA_BUNDLE`.
    pub fn from_env(
        bucket: &str,
        force_path_style: bool,
        create_bucket: bool,
        ca_bundle: Option<&[u8]>,
    ) -> Self {
        Self::build(
            connection::load_on_thread(force_path_style, ca_bundle),
            bucket,
            force_path_style,
            create_bucket,
        )
    }

    /// Builds the client from an SDK configuration (tests build one by hand).
    pub fn new(
        shared: &aws_config::SdkConfig,
        bucket: &str,
        force_path_style: bool,
        create_bucket: bool,
    ) -> Self {
        Self::build(
            connection::ready(shared, force_path_style),
            bucket,
            force_path_style,
            create_bucket,
        )
    }

    fn build(
        conn: connection::PendingConnection,
        bucket: &str,
        force_path_style: bool,
        create_bucket: bool,
    ) -> Self {
        Self {
            conn,
            force_path_style,
            bucket: bucket.to_string(),
            create_bucket,
            objects: ObjectSettings::default(),
        }
    }

    async fn client(&self) -> aws_sdk_s3::Client {
        self.conn.clone().await.client
    }

    /// How objects are written (encryption, storage class, metadata).
    pub fn with_objects(mut self, objects: ObjectSettings) -> Self {
        self.objects = objects;
        self
    }

    /// The user metadata of `obj`: what it holds and who wrote it ([`headers::metadata`]).
    fn metadata(&self, obj: &SealedObject) -> std::collections::HashMap<String, String> {
        headers::metadata(
            obj,
            &self.objects.function_name,
            &self.objects.function_version,
        )
    }

    /// A new client with a new connection pool: connections from before a snapshot are stale.
    pub fn reconnect(&mut self) {
        self.conn = connection::reconnect(self.conn.clone(), self.force_path_style);
    }

    /// One attempt at writing `obj` (its body in memory, or streamed from `file`): a PutObject, or
    /// a multipart upload above [`MULTIPART_THRESHOLD`]. The ship policy owns every retry of the
    /// whole object.
    async fn put_once(
        &self,
        obj: &SealedObject,
        file: Option<&BodyFile>,
        requests: &mut u32,
    ) -> Result<(), ShipError> {
        let len = body_len(obj, file);
        if len <= MULTIPART_THRESHOLD as u64 {
            let body = body_range(obj, file, 0, len).await?;
            *requests += 1;
            let req = self
                .client()
                .await
                .put_object()
                .bucket(&self.bucket)
                .key(&obj.key);
            // A body from a file carries the CRC32 read with it (the SDK would otherwise send it
            // aws-chunked, with a trailer); one in memory gets the SDK's.
            object_headers!(req, self, obj)
                .set_checksum_crc32(file.map(|f| headers::crc32_value_base64(f.crc32)))
                .body(body)
                .customize()
                // UNSIGNED-PAYLOAD: the body's integrity is the CRC32 S3 verifies (and TLS), so
                // the SHA-256 of every body that SigV4 would add buys nothing but CPU.
                .disable_payload_signing()
                .send()
                .await
                .map(|_| ())
                .map_err(ShipError::from_sdk)
        } else {
            self.put_multipart(obj, file, requests).await
        }
    }

    /// A multipart upload that S3 accepts: CreateMultipartUpload declares CRC32 (COMPOSITE), each
    /// part carries its CRC32, and CompleteMultipartUpload lists every part's ETag **and** CRC32
    /// (S3 API Reference, CompleteMultipartUpload: without them S3 answers 400 InvalidRequest). A
    /// failed part fails the attempt: the upload is aborted, so its parts do not linger (billed)
    /// until a lifecycle rule removes them, and the ship policy decides when the object goes again
    /// (its backoff and pacing know S3's state; a wait here would hide it from them).
    async fn put_multipart(
        &self,
        obj: &SealedObject,
        file: Option<&BodyFile>,
        requests: &mut u32,
    ) -> Result<(), ShipError> {
        let client = self.client().await;
        *requests += 1;
        let req = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&obj.key);
        let up = object_headers!(req, self, obj)
            .send()
            .await
            .map_err(ShipError::from_sdk)?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let result = async {
            let parts = self.upload_parts(&client, obj, file, &id, requests).await?;
            *requests += 1;
            client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&obj.key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(ShipError::from_sdk)
        }
        .await;
        if result.is_err() {
            // Best effort: an abandoned upload costs storage until a lifecycle rule removes it.
            *requests += 1;
            let _ = client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&obj.key)
                .upload_id(&id)
                .send()
                .await;
        }
        result.map(|_| ())
    }

    /// Every part of upload `id`, each with its CRC32; the parts as Complete lists them.
    async fn upload_parts(
        &self,
        client: &aws_sdk_s3::Client,
        obj: &SealedObject,
        file: Option<&BodyFile>,
        id: &str,
        requests: &mut u32,
    ) -> Result<Vec<CompletedPart>, ShipError> {
        let len = body_len(obj, file);
        let mut parts = Vec::new();
        for (i, start) in (0..len).step_by(PART_SIZE).enumerate() {
            let n = i as i32 + 1;
            let part_len = (len - start).min(PART_SIZE as u64);
            let crc = part_crc32(obj, file, i, start, part_len)?;
            *requests += 1;
            let body = body_range(obj, file, start, part_len).await?;
            let r = client
                .upload_part()
                .bucket(&self.bucket)
                .key(&obj.key)
                .upload_id(id)
                .part_number(n)
                .checksum_crc32(headers::crc32_value_base64(crc))
                .body(body)
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(ShipError::from_sdk)?;
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(r.e_tag().map(str::to_string))
                    .checksum_crc32(headers::crc32_value_base64(crc))
                    .build(),
            );
        }
        Ok(parts)
    }

    async fn create_bucket(&self) -> Result<(), ShipError> {
        let conn = self.conn.clone().await;
        let mut req = conn.client.create_bucket().bucket(&self.bucket);
        let region = conn.shared.region().map(|r| r.to_string());
        if let Some(region) = region.as_deref().filter(|r| *r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => match ShipError::from_sdk(e) {
                ShipError::Refused { code, .. } | ShipError::Rejected { code, .. }
                    if code == "BucketAlreadyOwnedByYou" =>
                {
                    Ok(())
                }
                other => Err(other),
            },
        }
    }

    /// One attempt at writing `obj`, and the S3 requests it took (what S3 bills). When the bucket
    /// is missing and creation is on, the bucket is created in the function's region and the write
    /// made again, within the same attempt.
    pub async fn put(
        &self,
        obj: &SealedObject,
        file: Option<&BodyFile>,
    ) -> (u32, Result<(), ShipError>) {
        let mut requests = 0;
        let result = match self.put_once(obj, file, &mut requests).await {
            Err(ShipError::NoSuchBucket) if self.create_bucket => {
                requests += 1;
                match self.create_bucket().await {
                    Ok(()) => self.put_once(obj, file, &mut requests).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        (requests, result)
    }
}

/// The CRC32 of part `i` (`part_len` bytes from `start`): computed here, not the one S3 echoes, as
/// some S3-compatible stores echo none and S3 refuses a COMPOSITE upload's Complete without each
/// part's. A spill file holds its parts' CRC32s when it was cut at the same part size.
fn part_crc32(
    obj: &SealedObject,
    file: Option<&BodyFile>,
    i: usize,
    start: u64,
    part_len: u64,
) -> Result<u32, ShipError> {
    match file {
        Some(f) if f.part_size == PART_SIZE as u64 => f.part_crc32.get(i).copied(),
        Some(_) => None,
        None => Some(crc32fast::hash(
            &obj.body[start as usize..(start + part_len) as usize],
        )),
    }
    .ok_or_else(|| ShipError::Unreadable("no CRC32 for a part".into()))
}

/// The bytes of `obj`'s body: in memory, or in `file`.
pub fn body_len(obj: &SealedObject, file: Option<&BodyFile>) -> u64 {
    file.map_or(obj.body.len() as u64, |f| f.len)
}

/// `len` bytes of the body from `start`: a slice of the body in memory, or a stream of that range
/// of its file (read as the request goes, through a small buffer).
async fn body_range(
    obj: &SealedObject,
    file: Option<&BodyFile>,
    start: u64,
    len: u64,
) -> Result<ByteStream, ShipError> {
    match file {
        None => Ok(ByteStream::from(
            obj.body.slice(start as usize..(start + len) as usize),
        )),
        Some(f) => ByteStream::read_from()
            .path(&f.path)
            .offset(f.offset + start)
            .length(aws_sdk_s3::primitives::Length::Exact(len))
            .build()
            .await
            .map_err(|e| ShipError::Unreadable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship_policy::Failure;
    use aws_sdk_s3::operation::put_object::PutObjectError;

    #[test]
    fn a_request_the_sdk_cannot_build_is_unsendable_not_a_network_failure() {
        let e: SdkError<PutObjectError, aws_sdk_s3::config::http::HttpResponse> =
            SdkError::construction_failure("invalid header value");
        let shipped = ShipError::from_sdk(e);
        assert!(matches!(shipped, ShipError::Unsendable(_)), "{shipped:?}");
        assert_eq!(shipped.failure(), Failure::Unsendable);
    }

    /// A service error as S3 answers it: the status and the `<Code>` and `<Message>` of its body.
    fn answered(status: u16, code: &str, message: &str) -> ShipError {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::primitives::SdkBody;
        let err =
            PutObjectError::generic(ErrorMetadata::builder().code(code).message(message).build());
        let raw = HttpResponse::new(status.try_into().expect("a status"), SdkBody::empty());
        ShipError::from_sdk(SdkError::service_error(err, raw))
    }

    #[test]
    fn s3_answers_are_classified_once_into_the_policys_failure_kinds() {
        use crate::ship_policy::Refusal;
        for (status, code, message, failure) in [
            (
                503,
                "SlowDown",
                "Please reduce your request rate.",
                Failure::Throttled,
            ),
            (500, "InternalError", "", Failure::Transient),
            (400, "BadDigest", "", Failure::Transient),
            (
                404,
                "NoSuchBucket",
                "",
                Failure::Refused(Refusal::NoSuchBucket),
            ),
            (
                403,
                "AccessDenied",
                "denied",
                Failure::Refused(Refusal::AccessDenied),
            ),
            (
                400,
                "KMS.DisabledException",
                "",
                Failure::Refused(Refusal::Kms),
            ),
            (
                403,
                "AccessDenied",
                "not authorized to perform: kms:GenerateDataKey",
                Failure::Refused(Refusal::Kms),
            ),
            (400, "ExpiredToken", "", Failure::Refused(Refusal::Other)),
            (400, "InvalidArgument", "", Failure::Rejected),
        ] {
            assert_eq!(
                answered(status, code, message).failure(),
                failure,
                "{code} {message}"
            );
        }
    }
}
