//! A minimal Lambda extension for the emulator's own tests: std and serde_json only, raw HTTP/1.1.
//! It does what its `TINY_*` variables say and writes everything it sees, one JSON object per line,
//! to the file `TINY_JOURNAL`, so a test can assert what an extension really observed.
//!
//! Variables: `TINY_API` telemetry|logs|none, `TINY_SCHEMA` (or `omit`), `TINY_BUFFERING`
//! "items,bytes,timeoutMs", `TINY_EVENTS` "INVOKE,SHUTDOWN", `TINY_NAME` (register under another
//! name), `TINY_ACCEPT_FEATURE`, `TINY_LISTENER_FAIL` N (answer 500 to the first N deliveries),
//! `TINY_LISTENER_DELAY_MS`, `TINY_INIT_ERROR` type, `TINY_EXIT_BEFORE_REGISTER`,
//! `TINY_CRASH_AFTER_INVOKES` N, `TINY_SLOW_NEXT_MS`, `TINY_HANG_ON_SHUTDOWN`,
//! `TINY_SHUTDOWN_WAIT_MS` (default 150), `TINY_SUBSCRIBE_TWICE`, `TINY_SUBSCRIBE_BOTH`,
//! `TINY_SLEEP_BEFORE_NEXT_MS` (at init), `TINY_QUIET_DELIVERIES` (accept without journaling),
//! `TINY_SAY` (`|`-separated lines printed to stdout after subscribing).

mod probes;

use probes::{probe_after_register, probe_before_register};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Journal(Mutex<std::fs::File>);

impl Journal {
    fn write(&self, mut v: Value) {
        v["t_ms"] = json!(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        );
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{v}");
        let _ = f.flush();
    }
}

/// This extension's file name (what it registers under unless `TINY_NAME` says otherwise).
fn own_name() -> String {
    std::env::args()
        .next()
        .map(|a| a.rsplit('/').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// `TINY_X@<own name>` overrides `TINY_X`, so one environment can give extensions different roles.
fn var(name: &str) -> Option<String> {
    std::env::var(format!("{name}@{}", own_name()))
        .ok()
        .or_else(|| std::env::var(name).ok())
        .filter(|v| !v.is_empty())
}

fn num(name: &str, default: u64) -> u64 {
    var(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An HTTP answer: status, lower-cased headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request with `Connection: close`.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, hs, raw[split + 4..].to_vec()))
}

fn header(hs: &[(String, String)], name: &str) -> Option<String> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn body_json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| json!(String::from_utf8_lossy(b)))
}

/// Serves deliveries: journals each body and answers 200 (or 500 for the first `fail` ones).
fn listen(journal: Arc<Journal>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let fail = Arc::new(AtomicU64::new(num("TINY_LISTENER_FAIL", 0)));
    let delay = Duration::from_millis(num("TINY_LISTENER_DELAY_MS", 0));
    let active = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let journal = journal.clone();
            let fail = fail.clone();
            let active = active.clone();
            std::thread::spawn(move || serve_one(stream, &journal, &fail, delay, &active));
        }
    });
    port
}

fn serve_one(
    stream: TcpStream,
    journal: &Journal,
    fail: &AtomicU64,
    delay: Duration,
    active: &AtomicU64,
) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // How many deliveries are being handled at once, this one included.
        let concurrent = active.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(delay);
        let failing = fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if var("TINY_QUIET_DELIVERIES").is_none() {
            journal.write(json!({"kind": "delivery", "method": request_line.split_whitespace().next(), "concurrent": concurrent,
                "answered": if failing {500} else {200}, "body": body_json(&body)}));
        }
        active.fetch_sub(1, Ordering::SeqCst);
        let status = if failing {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        if stream
            .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

fn main() {
    let journal = Arc::new(open_journal());
    let api = var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let env: serde_json::Map<String, Value> =
        std::env::vars().map(|(k, v)| (k, json!(v))).collect();
    journal.write(json!({"kind": "start", "env": env}));
    if var("TINY_EXIT_BEFORE_REGISTER").is_some() {
        std::process::exit(3);
    }
    let port = listen(journal.clone());

    std::thread::sleep(Duration::from_millis(num(
        "TINY_SLEEP_BEFORE_REGISTER_MS",
        0,
    )));
    if var("TINY_PROBE").is_some() {
        probe_before_register(&api, &journal);
    }
    let (name, id) = register(&api, &journal);
    let tiny = Tiny {
        api,
        journal,
        id,
        port,
    };
    if var("TINY_PROBE").is_some() {
        probe_after_register(&tiny.api, &tiny.journal, &name, &tiny.id);
    }
    if let Some(t) = var("TINY_INIT_ERROR") {
        tiny.init_error(&t);
    }
    let api_kind = var("TINY_API").unwrap_or_else(|| "telemetry".into());
    if api_kind != "none" {
        tiny.subscribe(&api_kind);
        if var("TINY_SUBSCRIBE_TWICE").is_some() {
            tiny.subscribe(&api_kind);
        }
        if var("TINY_SUBSCRIBE_BOTH").is_some() {
            tiny.subscribe(if api_kind == "logs" {
                "telemetry"
            } else {
                "logs"
            });
        }
    }
    // Lines for stdout, `|`-separated: they come back as `extension` records.
    if let Some(say) = var("TINY_SAY") {
        for line in say.split('|') {
            println!("{line}");
        }
    }
    std::thread::sleep(Duration::from_millis(num("TINY_SLEEP_BEFORE_NEXT_MS", 0)));
    tiny.run()
}

fn open_journal() -> Journal {
    Journal(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                var("TINY_JOURNAL_DIR")
                    .map(|d| format!("{d}/{}.jsonl", own_name()))
                    .unwrap_or_else(|| "/dev/null".into()),
            )
            .expect("open TINY_JOURNAL"),
    ))
}

/// Registers for `TINY_EVENTS` under `TINY_NAME` (or the file name): the name and the identifier.
fn register(api: &str, journal: &Journal) -> (String, String) {
    let name = var("TINY_NAME").unwrap_or_else(own_name);
    let events: Vec<String> = var("TINY_EVENTS")
        .unwrap_or_else(|| "INVOKE,SHUTDOWN".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut reg_headers = vec![
        ("Lambda-Extension-Name", name.clone()),
        ("Content-Type", "application/json".to_string()),
    ];
    if let Some(f) = var("TINY_ACCEPT_FEATURE") {
        reg_headers.push(("Lambda-Extension-Accept-Feature", f));
    }
    let (status, hs, body) = http(
        api,
        "POST",
        "/2020-01-01/extension/register",
        &reg_headers,
        json!({"events": events}).to_string().as_bytes(),
    )
    .expect("register");
    journal.write(json!({"kind": "register", "status": status, "body": body_json(&body), "identifier": header(&hs, "lambda-extension-identifier")}));
    let Some(id) = header(&hs, "lambda-extension-identifier") else {
        std::process::exit(4);
    };
    (name, id)
}

/// A registered extension: where the API is, its journal, identifier and listener port.
struct Tiny {
    api: String,
    journal: Arc<Journal>,
    id: String,
    port: u16,
}

impl Tiny {
    fn idh(&self) -> Vec<(&'static str, String)> {
        vec![("Lambda-Extension-Identifier", self.id.clone())]
    }

    /// Reports `t` through `init/error`, and exits.
    fn init_error(&self, t: &str) -> ! {
        let mut h = self.idh();
        h.push(("Lambda-Extension-Function-Error-Type", t.to_string()));
        let (status, _, body) = http(
            &self.api,
            "POST",
            "/2020-01-01/extension/init/error",
            &h,
            json!({"errorMessage": "tiny: asked to fail", "errorType": t})
                .to_string()
                .as_bytes(),
        )
        .expect("init/error");
        self.journal
            .write(json!({"kind": "init-error", "status": status, "body": body_json(&body)}));
        std::process::exit(1);
    }

    /// Subscribes to the Logs (`logs`) or Telemetry API, as the `TINY_*` variables say.
    fn subscribe(&self, which: &str) {
        let (path, default_schema) = match which {
            "logs" => ("/2020-08-15/logs", "2021-03-18"),
            _ => ("/2022-07-01/telemetry", "2022-12-13"),
        };
        let buffering: Vec<u64> = var("TINY_BUFFERING")
            .unwrap_or_else(|| "1000,262144,25".into())
            .split(',')
            .filter_map(|n| n.parse().ok())
            .collect();
        let mut req = json!({
            "types": ["platform", "function", "extension"],
            "buffering": {"maxItems": buffering.first(), "maxBytes": buffering.get(1), "timeoutMs": buffering.get(2)},
            "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{}/telemetry", self.port)},
        });
        match var("TINY_SCHEMA").as_deref() {
            Some("omit") => {}
            Some(s) => req["schemaVersion"] = json!(s),
            None => req["schemaVersion"] = json!(default_schema),
        }
        if let Some(types) = var("TINY_TYPES") {
            req["types"] = serde_json::from_str(&types).unwrap_or(json!([]));
        }
        let mut h = self.idh();
        h.push(("Content-Type", "application/json".into()));
        let (status, _, body) =
            http(&self.api, "PUT", path, &h, req.to_string().as_bytes()).expect("subscribe");
        self.journal.write(
            json!({"kind": "subscribe", "api": which, "status": status, "body": body_json(&body)}),
        );
    }

    /// `next` until SHUTDOWN, doing at each INVOKE what the variables say.
    fn run(&self) -> ! {
        let mut invokes = 0u64;
        loop {
            self.journal.write(json!({"kind": "next-call"}));
            let (status, _, body) = match http(
                &self.api,
                "GET",
                "/2020-01-01/extension/event/next",
                &self.idh(),
                b"",
            ) {
                Ok(r) => r,
                Err(e) => {
                    self.journal
                        .write(json!({"kind": "next-error", "error": e.to_string()}));
                    std::process::exit(5);
                }
            };
            let event = body_json(&body);
            self.journal
                .write(json!({"kind": "event", "status": status, "body": event}));
            if status != 200 {
                std::process::exit(6);
            }
            match event["eventType"].as_str() {
                Some("INVOKE") => {
                    invokes += 1;
                    if var("TINY_EXIT_ERROR_AFTER_INVOKES")
                        .is_some_and(|n| n.parse() == Ok(invokes))
                    {
                        let mut h = self.idh();
                        h.push((
                            "Lambda-Extension-Function-Error-Type",
                            "Extension.TinyFailure".into(),
                        ));
                        let (status, _, body) = http(
                            &self.api,
                            "POST",
                            "/2020-01-01/extension/exit/error",
                            &h,
                            b"{}",
                        )
                        .expect("exit/error");
                        self.journal.write(
                        json!({"kind": "exit-error", "status": status, "body": body_json(&body)}),
                    );
                        std::process::exit(1);
                    }
                    if var("TINY_CRASH_AFTER_INVOKES").is_some_and(|n| n.parse() == Ok(invokes)) {
                        self.journal.write(json!({"kind": "crash"}));
                        std::process::exit(0);
                    }
                    std::thread::sleep(Duration::from_millis(num("TINY_SLOW_NEXT_MS", 0)));
                }
                Some("SHUTDOWN") => {
                    if var("TINY_HANG_ON_SHUTDOWN").is_some() {
                        loop {
                            std::thread::sleep(Duration::from_secs(60));
                        }
                    }
                    // Give Lambda the time to deliver what it still held.
                    std::thread::sleep(Duration::from_millis(num("TINY_SHUTDOWN_WAIT_MS", 150)));
                    self.journal.write(json!({"kind": "exit"}));
                    std::process::exit(0);
                }
                _ => {}
            }
        }
    }
}
