//! Multipart uploads (S3 API reference: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload): parts kept per upload, checked against the
//! checksum the upload declared, assembled in the listed order with S3's part rules.

use super::integrity::{
    checksum_map, claimed, decoded_length_header, md5_hex, multipart_etag, object_checksum, verify,
};
use super::rules;
use super::store::{Store, StoredObject, Upload, collect, meta};
use crate::sync::lock;
use bytes::{Bytes, BytesMut};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::time::SystemTime;

impl Store {
    pub(super) async fn create_upload(
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

    pub(super) async fn put_part(
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

    pub(super) async fn complete_upload(
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

    pub(super) async fn abort_upload(
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
