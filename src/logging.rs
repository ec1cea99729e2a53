//! The extension's own log: slog, one JSON object per line on stdout (Lambda sends stdout to the
//! function's log destination). Never a line per record, never a line from the receive path per
//! request: with the `extension` log type subscribed, our own lines come back to us.

use crate::config::LogLevel;
use slog::{Drain, Logger, o};
use std::sync::Mutex;

/// A logger that writes JSON lines to stdout at `level` and above.
pub fn init(level: LogLevel) -> Logger {
    let level = match level {
        LogLevel::Error => slog::Level::Error,
        LogLevel::Warn => slog::Level::Warning,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Debug => slog::Level::Debug,
    };
    let json = slog_json::Json::new(std::io::stdout())
        .add_key_value(o!(
            "time" => slog::PushFnValue(|_, s| s.emit(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
            "level" => slog::FnValue(|r| r.level().as_short_str()),
            "msg" => slog::PushFnValue(|r, s| s.emit(r.msg())),
        ))
        .build();
    // A mutex, not a logging thread: lines are few, and a thread would cost memory and cold start.
    let drain = Mutex::new(json).map(slog::Fuse).filter_level(level).fuse();
    Logger::root(drain, o!("extension" => env!("CARGO_PKG_NAME")))
}
