//! The S3 endpoint, driven by the official AWS SDK (aws-chunked bodies, checksums, SigV4).

use crate::support::{s3_client as client, s3_code as code};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use lambda_emulator::s3::{Faults, Injected, S3Endpoint};
use std::time::{Duration, Instant};

#[tokio::test]
async fn put_get_list_with_headers_metadata_and_checksums() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    s3.head_bucket().bucket("logs").send().await.unwrap();
    let body = b"{\"a\":1}\n{\"b\":2}\n".to_vec();
    s3.put_object()
        .bucket("logs")
        .key("2026/a.ndjson.gz")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-ndjson")
        .content_encoding("gzip")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/logs")
        .storage_class(StorageClass::StandardIa)
        .metadata("record-count", "2")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .send()
        .await
        .unwrap();
    let stored = ep.object("logs", "2026/a.ndjson.gz").unwrap();
    assert_eq!(stored.body.as_ref(), body.as_slice());
    assert_eq!(stored.content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(stored.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(stored.server_side_encryption.as_deref(), Some("aws:kms"));
    assert_eq!(stored.sse_kms_key_id.as_deref(), Some("alias/logs"));
    assert_eq!(stored.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(
        stored.metadata.get("record-count").map(String::as_str),
        Some("2")
    );
    assert!(
        stored.checksums.contains_key("crc32c"),
        "the SDK's checksum was received and verified: {:?}",
        stored.checksums
    );

    let got = s3
        .get_object()
        .bucket("logs")
        .key("2026/a.ndjson.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-ndjson"));
    assert_eq!(
        got.metadata()
            .unwrap()
            .get("record-count")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );
    let list = s3
        .list_objects_v2()
        .bucket("logs")
        .prefix("2026/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        list.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        vec!["2026/a.ndjson.gz"]
    );
    let missing = s3
        .put_object()
        .bucket("nope")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "NoSuchBucket");
}

#[tokio::test]
async fn a_streaming_aws_chunked_body_with_a_trailing_checksum_is_accepted() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.ndjson");
    let body: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
        .collect();
    std::fs::write(&path, &body).unwrap();
    s3.put_object()
        .bucket("logs")
        .key("streamed")
        .body(ByteStream::from_path(&path).await.unwrap())
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let put = ep
        .requests()
        .into_iter()
        .find(|r| r.operation == "PutObject")
        .unwrap();
    assert!(put.aws_chunked, "a file body is sent aws-chunked");
    let stored = ep.object("logs", "streamed").unwrap();
    assert_eq!(stored.body.as_ref(), body.as_slice());
    assert!(
        stored.checksums.contains_key("crc32"),
        "{:?}",
        stored.checksums
    );
}

#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, Some("not-the-secret"), 0);
    let err = s3
        .put_object()
        .bucket("logs")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert!(ep.objects("logs").is_empty());
}

#[tokio::test]
async fn create_bucket_follows_the_region_rule() {
    let ep = S3Endpoint::start("eu-west-1").await.unwrap();
    let s3 = client(&ep, None, 0);
    let err = s3
        .create_bucket()
        .bucket("new-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "IllegalLocationConstraintException");
    let cfg = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    s3.create_bucket()
        .bucket("new-bucket")
        .create_bucket_configuration(cfg)
        .send()
        .await
        .unwrap();
    assert!(ep.bucket_exists("new-bucket"));
}

#[tokio::test]
async fn multipart_upload_assembles_the_parts() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    let up = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("big.log")
        .content_type("application/x-ndjson")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part1 = vec![b'a'; 5 * 1024 * 1024];
    let part2 = b"tail\n".to_vec();
    let mut parts = Vec::new();
    for (n, data) in [(1, part1.clone()), (2, part2.clone())] {
        let r = s3
            .upload_part()
            .bucket("logs")
            .key("big.log")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("logs")
        .key("big.log")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stored = ep.object("logs", "big.log").unwrap();
    assert_eq!(stored.size, part1.len() + part2.len());
    assert!(stored.body.ends_with(b"tail\n") && stored.multipart);
    assert!(stored.etag.ends_with("-2"));
    assert_eq!(stored.content_type.as_deref(), Some("application/x-ndjson"));
}

#[tokio::test]
async fn injected_faults_fail_throttle_reset_and_delay() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    let put = |key: &'static str| {
        s3.put_object()
            .bucket("logs")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
    };

    ep.set_faults(Faults {
        fail_next_puts: 2,
        ..Faults::default()
    });
    assert_eq!(code(&put("a").await.unwrap_err()), "InternalError");
    assert_eq!(code(&put("a").await.unwrap_err()), "InternalError");
    put("a").await.unwrap();

    ep.set_faults(Faults {
        slowdown_every: Some(2),
        ..Faults::default()
    });
    // The endpoint counts writes over its life: this is the 4th, then the 5th.
    assert_eq!(code(&put("b").await.unwrap_err()), "SlowDown");
    put("b").await.unwrap();

    ep.set_faults(Faults {
        reset_next_puts: 1,
        ..Faults::default()
    });
    let reset = put("c").await.unwrap_err();
    assert!(
        matches!(
            reset,
            aws_sdk_s3::error::SdkError::DispatchFailure(_)
                | aws_sdk_s3::error::SdkError::ResponseError(_)
        ),
        "{reset:?}"
    );

    ep.set_faults(Faults {
        outage_now: true,
        ..Faults::default()
    });
    // A HEAD answer has no body to carry the code: the status says it.
    let head = s3.head_bucket().bucket("logs").send().await.unwrap_err();
    assert_eq!(head.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(code(&put("d").await.unwrap_err()), "ServiceUnavailable");

    ep.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let t = Instant::now();
    put("e").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));

    let injected: Vec<Option<Injected>> = ep
        .requests()
        .iter()
        .filter(|r| r.operation == "PutObject")
        .map(|r| r.injected)
        .collect();
    assert_eq!(
        injected,
        vec![
            Some(Injected::InternalError),
            Some(Injected::InternalError),
            None,
            Some(Injected::SlowDown),
            None,
            Some(Injected::ConnectionReset),
            Some(Injected::Outage),
            None
        ]
    );
    assert_eq!(
        ep.writes()
            .iter()
            .map(|w| w.key.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b", "e"]
    );
}

/// A lost reply: S3 stored the object, the client saw its connection close with no answer.
#[tokio::test]
async fn a_lost_reply_stores_the_object_and_answers_nothing() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    ep.set_faults(Faults {
        lose_reply_every: Some(2),
        slowdown_every: Some(4),
        ..Faults::default()
    });
    let mut outcomes = Vec::new();
    for key in ["a", "b", "c", "d"] {
        let r = s3
            .put_object()
            .bucket("logs")
            .key(key)
            .body(ByteStream::from_static(b"x\n"))
            .send()
            .await;
        outcomes.push(match r {
            Ok(_) => "ok".to_string(),
            Err(aws_sdk_s3::error::SdkError::DispatchFailure(_))
            | Err(aws_sdk_s3::error::SdkError::ResponseError(_)) => "no answer".to_string(),
            Err(e) => code(&e),
        });
    }
    // The 4th write is throttled first: SlowDown takes it before the lost reply would.
    assert_eq!(outcomes, ["ok", "no answer", "ok", "SlowDown"]);
    let stored: Vec<String> = ep.writes().iter().map(|w| w.key.clone()).collect();
    assert_eq!(stored, ["a", "b", "c"], "b is stored though nobody heard");
    let injected: Vec<Option<Injected>> = ep.requests().iter().map(|r| r.injected).collect();
    assert_eq!(
        injected,
        [
            None,
            Some(Injected::ReplyLost),
            None,
            Some(Injected::SlowDown)
        ]
    );
}

#[tokio::test]
async fn the_sdk_retries_through_transient_faults() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    ep.set_faults(Faults {
        fail_next_puts: 2,
        ..Faults::default()
    });
    let s3 = client(&ep, None, 3);
    s3.put_object()
        .bucket("logs")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(ep.object("logs", "k").unwrap().body.as_ref(), b"hello");
    assert_eq!(
        ep.requests()
            .iter()
            .filter(|r| r.operation == "PutObject")
            .count(),
        3
    );
}
