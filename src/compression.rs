//! How object bodies (NDJSON) or pages (Parquet) are compressed: a leaf both encoders and the
//! configuration name. Pure.

/// How object bodies are compressed. The bytes threshold still counts uncompressed record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// The Go sample's plain `.log` objects.
    None,
    /// gzip at a level from 1 (fastest) to 9 (smallest).
    Gzip(u32),
    /// zstd at a level from 1 to 19.
    Zstd(i32),
}

impl Compression {
    /// Appended to the default key layout's `.log`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip(_) => ".gz",
            Compression::Zstd(_) => ".zst",
        }
    }

    /// The object's `Content-Encoding`.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip(_) => Some("gzip"),
            Compression::Zstd(_) => Some("zstd"),
        }
    }
}
