//! LogReceiver: the HTTP listener Lambda delivers records to. It answers quickly, keeps each record's
//! exact bytes, and forwards them to BatchActor with `send().await` so that a full mailbox pushes
//! back on Lambda rather than dropping. A body that is not a JSON array is answered 200 (so Lambda
//! does not redeliver it forever) and counted; a body over [`MAX_BODY`] is answered 413 and counted;
//! records that arrive after the final batch was shipped are answered 503 (refused, not dropped).
//! It logs nothing per request: at most one line a second about malformed input, with the count.

use super::messages::IngestRecords;
use crate::lambda::records::parse_delivery;
use crate::stats::{Counters, Throttle};
use actix::Recipient;
use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};
use bytes::BytesMut;
use futures::StreamExt;
use slog::{Logger, warn};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lambda sends at most `2 × maxBytes` (2 MiB) plus metadata; anything near this is not Lambda.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The host Lambda delivers to; it resolves only inside Lambda.
pub const SANDBOX_HOST: &str = "sandbox.localdomain";

pub struct ReceiverState {
    batch: Recipient<IngestRecords>,
    counters: Arc<Counters>,
    log: Logger,
    throttle: Mutex<Throttle>,
}

impl ReceiverState {
    pub fn new(batch: Recipient<IngestRecords>, counters: Arc<Counters>, log: Logger) -> Self {
        Self {
            batch,
            counters,
            log,
            throttle: Mutex::default(),
        }
    }

    /// Counts `n` bad deliveries or elements in `counter` and logs at most once a second.
    fn bad_input(&self, counter: &std::sync::atomic::AtomicU64, n: u64, what: &str) {
        Counters::add(counter, n);
        let due = self
            .throttle
            .lock()
            .map(|mut t| t.note(n, Instant::now(), Duration::from_secs(1)))
            .unwrap_or(None);
        if let Some(count) = due {
            warn!(self.log, "malformed deliveries from Lambda; answered 200 so they are not redelivered";
                "count_since_last_report" => count, "latest" => what);
        }
    }
}

/// The address to listen on: what `sandbox.localdomain` resolves to inside Lambda, else 127.0.0.1.
/// Never all interfaces.
pub fn listen_address(port: u16) -> SocketAddr {
    let ip = resolve_sandbox().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, port)
}

fn resolve_sandbox() -> Option<IpAddr> {
    // Resolution runs on a thread bounded to 300 ms: off Lambda a DNS lookup could hang init.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ip = (SANDBOX_HOST, 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip());
        let _ = tx.send(ip);
    });
    rx.recv_timeout(Duration::from_millis(300)).ok().flatten()
}

/// Binds the listener socket (before registering, so a taken port is an init error).
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen_address(port))
}

/// Serves deliveries on `listener` until the returned server is stopped.
pub fn serve(listener: TcpListener, state: ReceiverState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::route().to(receive))
    })
    // One worker: deliveries come one at a time per subscriber.
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)?
    .run())
}

async fn receive(
    req: actix_web::HttpRequest,
    state: web::Data<ReceiverState>,
    mut payload: web::Payload,
) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST && req.method() != actix_web::http::Method::PUT
    {
        return HttpResponse::MethodNotAllowed().finish();
    }
    // Sized from Content-Length: records are kept as slices of this buffer until their batch is
    // encoded, so a buffer grown by doubling would hold up to twice their bytes in memory.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = BytesMut::with_capacity(declared.min(MAX_BODY));
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        if body.len() + chunk.len() > MAX_BODY {
            state.bad_input(
                &state.counters.oversized,
                1,
                "a body over 8 MiB (answered 413)",
            );
            return HttpResponse::PayloadTooLarge().finish();
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let delivery = match parse_delivery(&body, chrono::Utc::now()) {
        Ok(d) => d,
        Err(e) => {
            state.bad_input(&state.counters.malformed, 1, &e.to_string());
            return HttpResponse::Ok().finish();
        }
    };
    if delivery.malformed_elements > 0 {
        state.bad_input(
            &state.counters.malformed,
            delivery.malformed_elements as u64,
            "array elements that are not {type,...} records (wrapped as extension.malformed records and shipped)",
        );
    }
    if delivery.records.is_empty() {
        return HttpResponse::Ok().finish();
    }
    match state
        .batch
        .send(IngestRecords {
            records: delivery.records,
        })
        .await
    {
        Ok(Ok(())) => HttpResponse::Ok().finish(),
        // After the final batch, or shutting down: not a 200, so Lambda counts the records
        // undelivered instead of believing them shipped.
        Ok(Err(_)) | Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}
