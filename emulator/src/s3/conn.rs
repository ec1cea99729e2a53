//! S3's time limits on a connection (spec §3): a request body that stops arriving is given up
//! after the socket timeout (400 RequestTimeout, "Idle connections will be closed"), and a
//! keep-alive connection that carries nothing for the idle time is closed. These are what an
//! upload meets after its environment was frozen in the middle of it, and what a pooled
//! connection meets after a long freeze.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// When a connection last moved a byte, and how many requests it is serving.
pub(super) struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` of the last byte read or written.
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// Marks a request in progress until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.touch();
        RequestGuard(self.clone())
    }
}

pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that notes every byte it moves in its [`Activity`].
pub(super) struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Tracked {
    pub fn new(inner: TcpStream) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        });
        (
            Self {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `connection` until it ends, closing it once it has been idle (no request, no byte) for
/// `idle`.
pub(super) async fn close_when_idle<C>(connection: C, activity: &Activity, idle: Duration)
where
    C: std::future::Future + GracefulClose,
{
    let mut connection = std::pin::pin!(connection);
    let check = (idle / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = tokio::time::sleep(check), if !closing => {
                if activity.requests.load(Ordering::SeqCst) == 0 && activity.idle_for() >= idle {
                    // An idle keep-alive connection is closed at once; hyper then ends it.
                    connection.as_mut().close();
                    closing = true;
                }
            }
        }
    }
}

/// A connection that can be asked to close once idle.
pub(super) trait GracefulClose {
    fn close(self: Pin<&mut Self>);
}

impl<I, S> GracefulClose for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Why a body could not be read.
pub(super) enum BodyError {
    /// Nothing arrived for the socket timeout; holds the bytes received until then.
    Stalled(usize),
    /// The client went away.
    Gone(String),
}

/// Reads a whole request body, giving up when no byte arrives for `socket_timeout`.
pub(super) async fn read_body(
    mut body: hyper::body::Incoming,
    socket_timeout: Duration,
) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(socket_timeout, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled(buf.len())),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => return Err(BodyError::Gone(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}
