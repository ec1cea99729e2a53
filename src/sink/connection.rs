//! Building the S3 client: off the init path, and again after a SnapStart restore.

use super::tls;
use aws_smithy_http_client::tls::TrustStore;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// The S3 client and the configuration it was built from (kept to rebuild it with new connections
/// after a SnapStart restore).
#[derive(Clone)]
pub(super) struct Connection {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) shared: aws_config::SdkConfig,
    /// The roots a rebuilt client trusts.
    trust: TrustStore,
}

/// A connection that may still be being built: every upload awaits it.
pub(super) type PendingConnection = Shared<BoxFuture<'static, Connection>>;

/// Builds the client from the SDK's standard chain (`AWS_REGION`, the Lambda credentials,
/// `AWS_ENDPOINT_URL_S3`) on a thread of its own, and returns at once: the chain and the client
/// cost about 2.3 ms of CPU, which would otherwise be most of the cold start, and nothing needs the
/// client before the first upload. Makes no network call and reads no certificate store:
/// `ca_bundle` is the checked content of `AWS_CA_BUNDLE`.
pub(super) fn load_on_thread(
    force_path_style: bool,
    ca_bundle: Option<&[u8]>,
) -> PendingConnection {
    let ca_bundle = ca_bundle.map(<[u8]>::to_vec);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let load = move || {
        let ca_bundle = ca_bundle.clone();
        async move {
            let trust = tls::trust_store(ca_bundle.as_deref());
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(http_client(&trust))
                .load()
                .await;
            Connection {
                client: client(&shared, force_path_style, None),
                shared,
                trust,
            }
        }
    };
    let on_thread = load.clone();
    let spawned = std::thread::Builder::new()
        .name("s3-client".into())
        .spawn(move || {
            // Timers and I/O too: without AWS_REGION (off Lambda) the region chain asks IMDS,
            // with a timeout.
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = tx.send(rt.block_on(on_thread()));
            }
        });
    let conn = async move {
        match (spawned, rx.await) {
            (Ok(_), Ok(conn)) => conn,
            // No thread, or it failed: build it here.
            _ => load().await,
        }
    };
    conn.boxed().shared()
}

/// A connection built now from a given configuration (tests build one by hand).
pub(super) fn ready(shared: &aws_config::SdkConfig, force_path_style: bool) -> PendingConnection {
    let conn = Connection {
        client: client(shared, force_path_style, None),
        shared: shared.clone(),
        trust: tls::trust_store(None),
    };
    futures::future::ready(conn).boxed().shared()
}

/// The connection `old` becomes with a new connection pool: connections from before a snapshot
/// are stale.
pub(super) fn reconnect(old: PendingConnection, force_path_style: bool) -> PendingConnection {
    async move {
        let Connection { shared, trust, .. } = old.await;
        Connection {
            client: client(&shared, force_path_style, Some(http_client(&trust))),
            shared,
            trust,
        }
    }
    .boxed()
    .shared()
}

fn client(
    shared: &aws_config::SdkConfig,
    force_path_style: bool,
    http: Option<aws_sdk_s3::config::SharedHttpClient>,
) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(force_path_style)
        // Our own retry loop owns the policy (deadline-bounded, batch kept on failure).
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    if let Some(http) = http {
        conf = conf.http_client(http);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// Pooled connections idle longer than this are not reused. S3 closes idle keep-alive connections
/// after about 20 s (undocumented); a connection older than that, kept across a freeze, would fail
/// its next request. The pool's clock is the monotonic one, which runs while the environment is
/// frozen, so a long freeze expires every pooled connection.
pub const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The HTTP client for S3: hyper with rustls (ring), HTTPS to AWS checked against `trust` (see
/// [`tls`]), plain HTTP to a local endpoint.
pub fn http_client(trust: &TrustStore) -> aws_sdk_s3::config::SharedHttpClient {
    let tls = aws_smithy_http_client::tls::TlsContext::builder()
        .with_trust_store(trust.clone())
        .build()
        // Building a context only moves its parts; the SDK reports no error from it.
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls)
        .build_https()
}
