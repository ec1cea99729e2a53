//! S3's rules at the edges (spec `s3-behaviour.md`), enforced by the endpoint and driven by the
//! official AWS SDK or by hand-made requests where the SDK would not break a rule.

use crate::support::{s3_client as client, s3_code as code};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use lambda_emulator::s3::{Faults, Injected, Refusal, S3Endpoint, Timeouts};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

async fn endpoint() -> (S3Endpoint, aws_sdk_s3::Client) {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    (ep, s3)
}

fn message<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().message().unwrap_or("").into(),
        _ => String::new(),
    }
}

/// Uploads `bodies` as parts 1.. of `id` (with `alg`'s checksum when given); returns each part as
/// Complete would list it, checksum included.
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    bodies: &[Vec<u8>],
    alg: Option<ChecksumAlgorithm>,
) -> Vec<CompletedPart> {
    let mut parts = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let n = i as i32 + 1;
        let r = s3
            .upload_part()
            .bucket("logs")
            .key(key)
            .upload_id(id)
            .part_number(n)
            .set_checksum_algorithm(alg.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .set_checksum_crc32(r.checksum_crc32().map(str::to_string))
                .build(),
        );
    }
    parts
}

fn etags_only(parts: &[CompletedPart]) -> Vec<CompletedPart> {
    parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.part_number().unwrap())
                .e_tag(p.e_tag().unwrap())
                .build()
        })
        .collect()
}

async fn complete(
    s3: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
> {
    s3.complete_multipart_upload()
        .bucket("logs")
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
}

#[tokio::test]
async fn a_crc32_upload_must_list_each_parts_checksum_in_complete() {
    let (ep, s3) = endpoint().await;
    let up = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("big.log")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let bodies = vec![vec![b'a'; 5 * MIB], b"tail\n".to_vec()];
    let parts = upload_parts(&s3, "big.log", id, &bodies, Some(ChecksumAlgorithm::Crc32)).await;
    // What the extension used to send: parts by ETag only.
    let err = complete(&s3, "big.log", id, etags_only(&parts))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");
    assert_eq!(
        message(&err),
        "The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part 1 in the request."
    );
    assert!(
        ep.objects("logs").is_empty(),
        "no object after a refused Complete"
    );
    // The upload survives a refused Complete: the right request then succeeds.
    let done = complete(&s3, "big.log", id, parts).await.unwrap();
    let stored = ep.object("logs", "big.log").unwrap();
    assert_eq!(stored.size, 5 * MIB + 5);
    let composite = stored.checksums["crc32"].clone();
    assert!(
        composite.ends_with("-2"),
        "a composite checksum: {composite}"
    );
    assert_eq!(done.checksum_crc32(), Some(composite.as_str()));
    let refused = ep
        .requests()
        .into_iter()
        .find(|r| r.operation == "CompleteMultipartUpload")
        .unwrap();
    assert_eq!(
        (refused.status, refused.error_code.as_deref()),
        (400, Some("InvalidRequest"))
    );
}

#[tokio::test]
async fn a_full_object_upload_takes_parts_by_etag_and_checks_the_whole_checksum() {
    let (ep, s3) = endpoint().await;
    let bodies = vec![vec![b'z'; 5 * MIB], b"end\n".to_vec()];
    let whole: Vec<u8> = bodies.concat();
    // The same bytes in one PutObject give the whole-object CRC32 to expect.
    s3.put_object()
        .bucket("logs")
        .key("single")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(whole.clone()))
        .send()
        .await
        .unwrap();
    let expected = ep.object("logs", "single").unwrap().checksums["crc32"].clone();
    let create = || {
        s3.create_multipart_upload()
            .bucket("logs")
            .key("full")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .checksum_type(ChecksumType::FullObject)
            .send()
    };
    let id = create().await.unwrap().upload_id().unwrap().to_string();
    let parts = upload_parts(&s3, "full", &id, &bodies, None).await;
    let wrong = s3
        .complete_multipart_upload()
        .bucket("logs")
        .key("full")
        .upload_id(&id)
        .checksum_crc32("AAAAAA==")
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(etags_only(&parts)))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), "BadDigest");
    complete(&s3, "full", &id, etags_only(&parts))
        .await
        .unwrap();
    let stored = ep.object("logs", "full").unwrap();
    assert_eq!(stored.body.as_ref(), whole.as_slice());
    assert_eq!(
        stored.checksums["crc32"], expected,
        "the whole object's CRC32"
    );
}

#[tokio::test]
async fn part_size_order_etag_and_aborted_uploads_are_refused() {
    let (ep, s3) = endpoint().await;
    let id = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let parts = upload_parts(
        &s3,
        "k",
        &id,
        &[b"small-1".to_vec(), b"small-2".to_vec()],
        None,
    )
    .await;
    let c = |parts: Vec<CompletedPart>| {
        let s3 = s3.clone();
        let id = id.clone();
        async move { code(&complete(&s3, "k", &id, parts).await.unwrap_err()) }
    };
    assert_eq!(c(parts.clone()).await, "EntityTooSmall");
    assert_eq!(
        c(vec![parts[1].clone(), parts[0].clone()]).await,
        "InvalidPartOrder"
    );
    let wrong_etag = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    assert_eq!(c(vec![wrong_etag]).await, "InvalidPart");
    let missing = CompletedPart::builder()
        .part_number(3)
        .e_tag(parts[0].e_tag().unwrap())
        .build();
    assert_eq!(c(vec![missing]).await, "InvalidPart");
    // A single small part is the last part: allowed.
    complete(&s3, "k", &id, vec![parts[0].clone()])
        .await
        .unwrap();
    assert_eq!(ep.object("logs", "k").unwrap().body.as_ref(), b"small-1");
    // Completed: the upload id is gone.
    assert_eq!(
        code(&complete(&s3, "k", &id, parts.clone()).await.unwrap_err()),
        "NoSuchUpload"
    );

    let id = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("aborted")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let parts = upload_parts(&s3, "aborted", &id, &[b"x".to_vec()], None).await;
    s3.abort_multipart_upload()
        .bucket("logs")
        .key("aborted")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let part = s3
        .upload_part()
        .bucket("logs")
        .key("aborted")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&part), "NoSuchUpload");
    assert_eq!(
        code(&complete(&s3, "aborted", &id, parts).await.unwrap_err()),
        "NoSuchUpload"
    );
    assert!(ep.object("logs", "aborted").is_none());
}

#[tokio::test]
async fn a_checksum_that_does_not_match_or_another_algorithm_than_declared_is_refused() {
    let (ep, s3) = endpoint().await;
    let bad = s3
        .put_object()
        .bucket("logs")
        .key("k")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "BadDigest");
    assert!(ep.object("logs", "k").is_none());
    let id = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("m")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let part = |alg: ChecksumAlgorithm, wrong: bool| {
        let mut req = s3
            .upload_part()
            .bucket("logs")
            .key("m")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"part"));
        req = if wrong {
            req.checksum_crc32("AAAAAA==")
        } else {
            req.checksum_algorithm(alg)
        };
        req.send()
    };
    assert_eq!(
        code(&part(ChecksumAlgorithm::Crc32, true).await.unwrap_err()),
        "BadDigest"
    );
    let other = part(ChecksumAlgorithm::Crc32C, false).await.unwrap_err();
    assert_eq!(code(&other), "InvalidRequest");
    assert_eq!(
        message(&other),
        "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: crc32c"
    );
    part(ChecksumAlgorithm::Crc32, false).await.unwrap();
}

/// A PUT with an `aws-chunked` body (unsigned chunks, a CRC32 trailer), signed with SigV4 as the
/// SDK signs it, whose `x-amz-decoded-content-length` says `declared`.
async fn aws_chunked_put(ep: &S3Endpoint, data: &[u8], declared: usize) -> (u16, String) {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    let mut crc = s3s::checksum::ChecksumHasher {
        crc32: Some(Default::default()),
        ..Default::default()
    };
    crc.update(data);
    let crc = crc.finalize().checksum_crc32.unwrap();
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    let uri = format!("{}/logs/chunked", ep.url());
    let host = ep.addr().to_string();
    let declared = declared.to_string();
    let length = body.len().to_string();
    let headers = [
        ("host", host.as_str()),
        ("content-encoding", "aws-chunked"),
        ("content-length", length.as_str()),
        ("x-amz-decoded-content-length", declared.as_str()),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ];
    let c = ep.credentials();
    let identity = aws_credential_types::Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(c.session_token.clone()),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(ep.region())
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "PUT",
        &uri,
        headers.iter().copied(),
        SignableBody::StreamingUnsignedPayloadTrailer,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder().method("PUT").uri(&uri);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let mut req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    instructions.apply_to_request_http1x(&mut req);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let text = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test]
async fn an_aws_chunked_body_must_decode_to_its_declared_length() {
    let (ep, _) = endpoint().await;
    let (status, body) = aws_chunked_put(&ep, b"twelve bytes", 12).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ep.object("logs", "chunked").unwrap().body.as_ref(),
        b"twelve bytes"
    );
    assert!(
        ep.object("logs", "chunked")
            .unwrap()
            .checksums
            .contains_key("crc32")
    );
    let (status, body) = aws_chunked_put(&ep, b"short", 12).await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>IncompleteBody</Code>"), "{body}");
    let (status, body) = aws_chunked_put(&ep, b"far too long a body", 12).await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
    assert_eq!(
        ep.object("logs", "chunked").unwrap().body.as_ref(),
        b"twelve bytes"
    );
}

#[tokio::test]
async fn a_body_that_stalls_gets_request_timeout_and_its_connection_is_closed() {
    let ep = S3Endpoint::start_with(
        "us-east-1",
        Timeouts {
            socket: Duration::from_millis(300),
            idle: Duration::from_secs(20),
        },
    )
    .await
    .unwrap();
    ep.create_bucket("logs");
    let mut tcp = tokio::net::TcpStream::connect(ep.addr()).await.unwrap();
    // Headers promise 100 bytes; 10 come, then nothing (a client frozen mid-upload).
    tcp.write_all(b"PUT /logs/k HTTP/1.1\r\nhost: s3\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    // The answer, then the end of the connection: read until EOF.
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the endpoint answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(sent.elapsed() >= Duration::from_millis(300));
    let r = &ep.requests()[0];
    assert_eq!(
        (r.status, r.body_bytes, r.error_code.as_deref()),
        (400, 10, Some("RequestTimeout"))
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_time() {
    let ep = S3Endpoint::start_with(
        "us-east-1",
        Timeouts {
            socket: Duration::from_secs(20),
            idle: Duration::from_millis(400),
        },
    )
    .await
    .unwrap();
    ep.create_bucket("logs");
    let s3 = client(&ep, None, 0);
    // The SDK's pooled connection outlives the idle time: the next request opens a new one.
    let put = |k: &'static str| {
        s3.put_object()
            .bucket("logs")
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
    };
    put("a").await.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(ep.addr()).await.unwrap();
    tcp.write_all(b"HEAD /logs HTTP/1.1\r\nhost: s3\r\n\r\n")
        .await
        .unwrap();
    let opened = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 "),
        "answered first"
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(400),
        "not before the idle time"
    );
    put("b").await.unwrap();
    assert_eq!(ep.writes().len(), 2);
}

#[tokio::test]
async fn refusals_are_403_for_the_next_writes_or_a_window_and_kms_names_the_permission() {
    let (ep, s3) = endpoint().await;
    let put = |k: &'static str| {
        s3.put_object()
            .bucket("logs")
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
    };
    ep.faults(|f| f.refuse_next_writes = 2);
    let denied = put("a").await.unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    assert_eq!(denied.raw_response().unwrap().status().as_u16(), 403);
    // A multipart upload is refused at its first request.
    let mpu = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("m")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&mpu), "AccessDenied");
    put("a").await.unwrap();
    ep.faults(|f| {
        f.refusal = Refusal::Kms;
        f.refuse_next_writes = 1;
    });
    let kms = put("b").await.unwrap_err();
    assert_eq!(code(&kms), "AccessDenied");
    assert!(
        message(&kms).contains("kms:GenerateDataKey"),
        "{}",
        message(&kms)
    );
    put("b").await.unwrap();
    ep.faults(|f| {
        f.refusal = Refusal::AccessDenied;
        f.refuse_window = Some((Duration::ZERO, Duration::from_secs(3600)));
    });
    assert_eq!(code(&put("c").await.unwrap_err()), "AccessDenied");
    // Reads are not refused.
    s3.head_bucket().bucket("logs").send().await.unwrap();
    let kinds: Vec<Option<Injected>> = ep.requests().iter().map(|r| r.injected).collect();
    assert_eq!(
        kinds,
        vec![
            Some(Injected::AccessDenied),
            Some(Injected::AccessDenied),
            None,
            Some(Injected::KmsDenied),
            None,
            Some(Injected::AccessDenied),
            None
        ]
    );
}

#[tokio::test]
async fn a_prefix_over_its_request_rate_is_throttled_and_other_prefixes_are_not() {
    let (ep, s3) = endpoint().await;
    ep.set_faults(Faults {
        prefix_write_rate: Some(2.0),
        ..Faults::default()
    });
    let mut hot = Vec::new();
    for i in 0..12 {
        let r = s3
            .put_object()
            .bucket("logs")
            .key(format!("hot/{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        hot.push(r.map_err(|e| code(&e)));
    }
    let throttled = hot
        .iter()
        .filter(|r| *r == &Err("SlowDown".to_string()))
        .count();
    assert!(throttled >= 5, "{hot:?}");
    assert!(
        hot[..2].iter().all(Result::is_ok),
        "a second's burst passes: {hot:?}"
    );
    s3.put_object()
        .bucket("logs")
        .key("cold/1")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ep.requests()
            .iter()
            .filter(|r| r.injected == Some(Injected::PrefixSlowDown))
            .count(),
        throttled
    );
}

/// A store that does not echo part checksums (the `omit_part_checksums` fault, as some
/// S3-compatible stores answer): UploadPart's answer carries no `x-amz-checksum-crc32`, the part is
/// still stored with its verified checksum, and a Complete that lists the checksums the client
/// computed itself is accepted.
#[tokio::test]
async fn a_store_that_does_not_echo_part_checksums_still_takes_the_clients_own() {
    let (ep, s3) = endpoint().await;
    ep.set_faults(Faults {
        omit_part_checksums: true,
        ..Faults::default()
    });
    let up = s3
        .create_multipart_upload()
        .bucket("logs")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let bodies = vec![vec![b'a'; 5 * MIB], vec![b'b'; 10]];
    let echoed = upload_parts(&s3, "k", id, &bodies, Some(ChecksumAlgorithm::Crc32)).await;
    assert!(
        echoed.iter().all(|p| p.checksum_crc32().is_none()),
        "no checksum echoed"
    );
    let refused = complete(&s3, "k", id, echoed.clone()).await.unwrap_err();
    assert_eq!(code(&refused), "InvalidRequest");
    let own: Vec<CompletedPart> = echoed
        .iter()
        .zip(&bodies)
        .map(|(p, body)| {
            let crc = crc32fast::hash(body).to_be_bytes();
            CompletedPart::builder()
                .part_number(p.part_number().unwrap())
                .e_tag(p.e_tag().unwrap())
                .checksum_crc32(aws_smithy_types::base64::encode(crc))
                .build()
        })
        .collect();
    complete(&s3, "k", id, own).await.unwrap();
    assert_eq!(ep.object("logs", "k").unwrap().size, 5 * MIB + 10);
}
