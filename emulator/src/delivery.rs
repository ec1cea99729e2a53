//! Delivery of records to subscribers, as Lambda does it (spec §2.3, §3.2, §4).
//!
//! Each subscriber has its own queue in the platform and one delivery task. A batch is sent when
//! `maxItems` or `maxBytes` is reached or `timeoutMs` after its first record, as one POST (or PUT) of
//! a JSON array to `127.0.0.1:<port of the destination URI>`, one request in flight at a time. A
//! failed POST is retried with backoff (or dropped, in [`DeliveryFailure::Drop`] mode); records that
//! do not fit under the queue's memory cap are dropped and reported in `platform.logsDropped`. While
//! the environment is frozen nothing is sent: held records go out after the thaw.

use crate::records::{Category, Event, View};
use crate::settings::DeliveryFailure;
use crate::subscribe::Subscription;
use crate::sync::lock;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Why Lambda drops records for a slow consumer (the documented `platform.logsDropped` reason).
pub const SLOW_CONSUMER_REASON: &str =
    "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.";

/// What a subscriber has seen, for tests and the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubscriberStats {
    pub extension: String,
    pub generation: u32,
    pub api: Option<crate::records::ApiKind>,
    /// Records put in this subscriber's queue (including `platform.logsDropped` notices).
    pub emitted: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub posts: u64,
    pub failed_posts: u64,
    /// The exact JSON text of every record delivered (answered 2xx), in order.
    #[serde(skip)]
    pub delivered_records: Vec<String>,
    /// Milliseconds since the emulator started at which each delivered batch was acknowledged.
    #[serde(skip)]
    pub delivered_at_ms: Vec<f64>,
    /// The exact JSON text of every record dropped (past the memory cap, or a failed batch in drop
    /// mode), in order.
    #[serde(skip)]
    pub dropped_records: Vec<String>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<(String, Instant)>,
    bytes: usize,
    /// Dropped since the last `platform.logsDropped` notice: records, bytes, reason.
    pending_drop: Option<(u64, u64, String)>,
}

pub(crate) struct Subscriber {
    generation: u32,
    sub: Subscription,
    view: View,
    queue: Mutex<Queue>,
    wake: Notify,
    in_flight: std::sync::atomic::AtomicBool,
    stats: Mutex<SubscriberStats>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct BusInner {
    subs: Vec<Arc<Subscriber>>,
    /// Every event since the environment started, replayed to new subscribers until subscriptions
    /// close (spec §3.1 "Init-event replay").
    replay: Option<Vec<(Event, SystemTime)>>,
}

pub(crate) struct Bus {
    inner: Mutex<BusInner>,
    /// When each function line (by its marker) was written, for the fleet's freshness.
    emitted_at: Mutex<std::collections::HashMap<String, Instant>>,
    held: watch::Sender<bool>,
    client: Client<HttpConnector, Full<Bytes>>,
    cap: usize,
    failure: DeliveryFailure,
    backoff: (Duration, Duration),
    started: Instant,
}

impl Bus {
    pub fn new(
        cap: usize,
        failure: DeliveryFailure,
        backoff: (Duration, Duration),
        started: Instant,
    ) -> Self {
        Self {
            inner: Mutex::new(BusInner {
                subs: Vec::new(),
                replay: Some(Vec::new()),
            }),
            emitted_at: Mutex::default(),
            held: watch::channel(false).0,
            client: Client::builder(TokioExecutor::new()).build_http(),
            cap,
            failure,
            backoff,
            started,
        }
    }

    /// Starts a new environment generation: replay starts afresh.
    pub fn begin_init(&self) {
        lock(&self.inner).replay = Some(Vec::new());
    }

    /// Subscriptions are closed: stop keeping events for replay.
    pub fn close_replay(&self) {
        lock(&self.inner).replay = None;
    }

    /// Records an event and queues it, rendered, for every subscriber of its category.
    pub fn emit(&self, event: Event) {
        if let Event::Function(line) = &event
            && let Some(m) = crate::markers::find(&line.message, "").first()
        {
            lock(&self.emitted_at).insert(m.to_string(), Instant::now());
        }
        let now = SystemTime::now();
        let mut inner = lock(&self.inner);
        for s in &inner.subs {
            s.offer(&event, now, self.cap);
        }
        if let Some(r) = inner.replay.as_mut() {
            r.push((event, now));
        }
    }

    pub fn subscribe(self: &Arc<Self>, name: &str, generation: u32, sub: Subscription) {
        let view = View {
            api: sub.api,
            schema: sub.schema.clone(),
        };
        let s = Arc::new(Subscriber {
            generation,
            view,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            in_flight: false.into(),
            stats: Mutex::new(SubscriberStats {
                extension: name.to_string(),
                generation,
                api: Some(sub.api),
                ..Default::default()
            }),
            sub,
            task: Mutex::new(None),
        });
        let mut inner = lock(&self.inner);
        if let Some(r) = inner.replay.as_ref() {
            for (ev, t) in r {
                s.offer(ev, *t, self.cap);
            }
        }
        let task = tokio::spawn(deliver(self.clone(), s.clone()));
        *lock(&s.task) = Some(task);
        inner.subs.push(s);
    }

    /// Freezes (true) or thaws (false) delivery.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Whether delivery is held: the environment is frozen.
    pub fn frozen(&self) -> watch::Receiver<bool> {
        self.held.subscribe()
    }

    /// Waits until every live subscriber's queue is empty and nothing is in flight, or `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let busy = lock(&self.inner).subs.iter().any(|s| {
                lock(&s.task).is_some()
                    && (!lock(&s.queue).items.is_empty()
                        || s.in_flight.load(std::sync::atomic::Ordering::SeqCst))
            });
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops delivering to the subscribers of an environment generation that has ended.
    pub fn end_generation(&self, generation: u32) {
        for s in lock(&self.inner)
            .subs
            .iter()
            .filter(|s| s.generation == generation)
        {
            if let Some(t) = lock(&s.task).take() {
                t.abort();
            }
        }
    }

    /// POSTs `body` as is to the destination of `extension`'s live subscription, as a misbehaving
    /// platform would: for testing how an extension takes malformed or oversized deliveries.
    /// Returns the HTTP status, or `None` when there is no such subscriber or the POST failed.
    pub async fn deliver_raw(&self, extension: &str, body: Bytes) -> Option<u16> {
        let sub = lock(&self.inner)
            .subs
            .iter()
            .rev()
            .find(|s| s.stats_name() == extension && lock(&s.task).is_some())
            .cloned()?;
        let req = http::Request::builder()
            .method(sub.sub.method.clone())
            .uri(format!("http://127.0.0.1:{}{}", sub.sub.port, sub.sub.path))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .ok()?;
        self.client
            .request(req)
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// When each function line was written, by marker.
    pub fn emitted_at(&self) -> std::collections::HashMap<String, Instant> {
        lock(&self.emitted_at).clone()
    }

    pub fn stats(&self) -> Vec<SubscriberStats> {
        lock(&self.inner)
            .subs
            .iter()
            .map(|s| lock(&s.stats).clone())
            .collect()
    }

    fn since_start_ms(&self) -> f64 {
        crate::clock::ms(self.started.elapsed())
    }
}

impl Subscriber {
    fn stats_name(&self) -> String {
        lock(&self.stats).extension.clone()
    }

    fn wants(&self, event: &Event) -> Option<String> {
        let view = &self.view;
        let t = event.type_for(view)?;
        self.sub
            .types
            .contains(&Category::of_type(t))
            .then_some(())?;
        Some(t.to_string())
    }

    /// Queues `event` rendered for this subscriber, or drops it past the memory cap.
    fn offer(&self, event: &Event, time: SystemTime, cap: usize) {
        if self.wants(event).is_none() {
            return;
        }
        let Some(text) = event.render(&self.view, time) else {
            return;
        };
        let mut q = lock(&self.queue);
        let mut stats = lock(&self.stats);
        if q.bytes + text.len() > cap {
            let d = q
                .pending_drop
                .get_or_insert((0, 0, SLOW_CONSUMER_REASON.to_string()));
            d.0 += 1;
            d.1 += text.len() as u64;
            stats.dropped += 1;
            stats.dropped_records.push(text);
            return;
        }
        stats.emitted += 1;
        q.bytes += text.len();
        q.items.push_back((text, Instant::now()));
        drop(q);
        drop(stats);
        self.wake.notify_one();
    }

    fn note_failed_batch(&self, batch: Vec<String>, bytes: u64, reason: String) {
        let records = batch.len() as u64;
        let mut q = lock(&self.queue);
        let d = q.pending_drop.get_or_insert((0, 0, reason));
        d.0 += records;
        d.1 += bytes;
        let mut stats = lock(&self.stats);
        stats.dropped += records;
        stats.dropped_records.extend(batch);
    }

    /// Takes the next batch: up to `maxItems` records, until `maxBytes` is reached, at least one record,
    /// preceded by a `platform.logsDropped` notice when records were dropped since the last one.
    fn take_batch(&self) -> Vec<String> {
        let mut q = lock(&self.queue);
        let mut batch = Vec::new();
        if let Some((records, bytes, reason)) = q.pending_drop.take() {
            let ev = Event::LogsDropped {
                records,
                bytes,
                reason,
            };
            if self.wants(&ev).is_some()
                && let Some(text) = ev.render(&self.view, SystemTime::now())
            {
                lock(&self.stats).emitted += 1;
                batch.push(text);
            }
        }
        let mut size = 0;
        // Records are added while the batch is under `maxBytes`, so the one that crosses it goes
        // too: a body reaches up to `maxBytes` plus one record (spec §2.3, "expect bodies up to
        // 2 × maxBytes + metadata").
        while q.items.front().is_some() {
            if !batch.is_empty()
                && (batch.len() >= self.sub.buffering.max_items
                    || size >= self.sub.buffering.max_bytes)
            {
                break;
            }
            let (text, _) = q.items.pop_front().expect("front was Some");
            size += text.len();
            q.bytes -= text.len();
            batch.push(text);
        }
        batch
    }

    /// When the current batch is due: full, or `timeoutMs` after its first record.
    fn due(&self) -> Option<Result<(), Instant>> {
        let q = lock(&self.queue);
        let Some((_, first)) = q.items.front() else {
            // A drop notice alone is due at once.
            return q.pending_drop.is_some().then_some(Ok(()));
        };
        let b = &self.sub.buffering;
        if q.items.len() >= b.max_items || q.bytes >= b.max_bytes {
            return Some(Ok(()));
        }
        let at = *first + b.timeout;
        Some(if Instant::now() >= at {
            Ok(())
        } else {
            Err(at)
        })
    }
}

async fn deliver(bus: Arc<Bus>, s: Arc<Subscriber>) {
    let mut held = bus.held.subscribe();
    let uri: http::Uri = format!("http://127.0.0.1:{}{}", s.sub.port, s.sub.path)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1/"));
    loop {
        // Wait until a batch is due.
        loop {
            let notified = s.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match s.due() {
                Some(Ok(())) => break,
                Some(Err(at)) => {
                    let _ = tokio::time::timeout_at(at.into(), notified).await;
                }
                None => notified.await,
            }
        }
        // Frozen: nothing leaves the platform until the thaw.
        let _ = held.wait_for(|h| !*h).await;
        s.in_flight.store(true, std::sync::atomic::Ordering::SeqCst);
        let batch = s.take_batch();
        if batch.is_empty() {
            s.in_flight
                .store(false, std::sync::atomic::Ordering::SeqCst);
            continue;
        }
        let n = batch.len() as u64;
        let body = Bytes::from(format!("[{}]", batch.join(",")));
        let mut backoff = bus.backoff.0;
        loop {
            let _ = held.wait_for(|h| !*h).await;
            let req = http::Request::builder()
                .method(s.sub.method.clone())
                .uri(uri.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("a request of a valid URI and method");
            lock(&s.stats).posts += 1;
            let result = match bus.client.request(req).await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("listener answered {}", r.status())),
                Err(e) => Err(format!("{e}")),
            };
            match result {
                Ok(()) => {
                    let mut st = lock(&s.stats);
                    st.delivered += n;
                    st.delivered_at_ms.push(bus.since_start_ms());
                    st.delivered_records.extend(batch);
                    break;
                }
                Err(e) => {
                    lock(&s.stats).failed_posts += 1;
                    match bus.failure {
                        DeliveryFailure::Retry => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(bus.backoff.1);
                        }
                        DeliveryFailure::Drop => {
                            s.note_failed_batch(
                                batch,
                                body.len() as u64,
                                format!("could not send events: {e}"),
                            );
                            break;
                        }
                    }
                }
            }
        }
        s.in_flight
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
