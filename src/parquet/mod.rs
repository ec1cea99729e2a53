//! Records → a Parquet file: one row group, one row per record, six columns. Written here, for
//! the six columns need only a small part of the format (the whole writer adds 56,560 bytes to the
//! layer's binary); what it writes is checked by readers we did not write (the `parquet` crate in
//! the emulator's verdict, pyarrow and DuckDB in the tests). Pure.
//!
//! The layout (Apache Parquet format, "File Format"): `PAR1`, each column's pages one column after
//! another, the footer (`FileMetaData` in Thrift's compact protocol), its length, `PAR1`. Pages are
//! data page v1, each holding the rows of about [`PAGE_RECORD_BYTES`] of records; the repetitive
//! columns (`type`, `request_id`, `level`) are dictionary-encoded, the others plain; `time` has
//! min/max statistics so an engine skips a file outside its time range.

mod chunk;
mod footer;
mod rle;
mod row;
mod thrift;

use crate::compression::Compression;
use bytes::Bytes;
use chunk::ColumnChunk;
use row::Row;
use std::io::Write;
use thrift::Writer;

/// The Content-Type of a Parquet object (registered with IANA in 2024).
pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Records per data page, by their bytes. Encoding holds one page of rows, and zstd's window
/// covers one page: on the formats bench's 4 MiB batch, pages of 256 KiB made the smallest file
/// (377,341 bytes; 380,502 at 1 MiB, 389,931 at 128 KiB) and the peak RSS grew by 3.4 MiB
/// instead of 5.1 at 1 MiB. The format recommends 8 KiB to 1 MiB.
pub const PAGE_RECORD_BYTES: usize = 256 * 1024;

const MAGIC: &[u8] = b"PAR1";

/// Why a batch could not be written as Parquet (it then goes as NDJSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a page of column {column} would be {bytes} bytes, over Parquet's limit of {limit}")]
    TooLarge {
        column: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("compressing a page of column {column} failed: {reason}")]
    Compression {
        column: &'static str,
        reason: String,
    },
}

/// The Parquet file of `records`, its pages compressed as `compression` says.
pub fn encode(records: &[Bytes], compression: Compression) -> Result<Vec<u8>, EncodeError> {
    encode_within(records, compression, i32::MAX as usize)
}

/// [`encode`], with the largest page allowed (sizes are `i32` in the format; tests lower it).
///
/// One page of rows at a time: its records are read into rows, each column's page is written
/// and compressed into that column's buffer, and the rows are dropped. So besides the records,
/// encoding holds one page of rows and the compressed file (twice, while the columns' buffers
/// are laid out one after another).
pub(crate) fn encode_within(
    records: &[Bytes],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut pages = Pages::new(compression, limit)?;
    let mut chunks = COLUMNS.map(ColumnChunk::new);
    for range in page_ranges(records) {
        let rows: Vec<Row<'_>> = records[range.clone()].iter().map(|r| Row::of(r)).collect();
        let page = Page {
            rows: &rows,
            records: &records[range],
        };
        for chunk in &mut chunks {
            chunk.add_page(&page, &mut pages)?;
        }
    }
    let size: usize = chunks.iter().map(ColumnChunk::size).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + size + 4096);
    out.extend_from_slice(MAGIC);
    let mut placed = Vec::with_capacity(COLUMNS.len());
    for chunk in chunks {
        placed.push(chunk.finish(&mut out, &mut pages)?);
    }
    let footer = footer::file_metadata(&placed, records.len(), codec(compression));
    out.extend_from_slice(&footer);
    out.extend_from_slice(&(footer.len() as u32).to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Rows in pages: consecutive rows whose records hold up to [`PAGE_RECORD_BYTES`] (at least one);
/// no records, one empty page.
fn page_ranges(records: &[Bytes]) -> Vec<std::ops::Range<usize>> {
    let mut pages = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        if i > start && bytes + r.len() > PAGE_RECORD_BYTES {
            pages.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += r.len();
    }
    if start < records.len() || records.is_empty() {
        pages.push(start..records.len());
    }
    pages
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Time,
    Type,
    RequestId,
    Level,
    Message,
    Record,
}

const COLUMNS: [Column; 6] = [
    Column::Time,
    Column::Type,
    Column::RequestId,
    Column::Level,
    Column::Message,
    Column::Record,
];

// Parquet's codes (parquet.thrift): physical types, encodings, page types.
const INT64: i32 = 2;
const BYTE_ARRAY: i32 = 6;
const PLAIN: i32 = 0;
const RLE: i32 = 3;
const RLE_DICTIONARY: i32 = 8;
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Time => "time",
            Column::Type => "type",
            Column::RequestId => "request_id",
            Column::Level => "level",
            Column::Message => "message",
            Column::Record => "record",
        }
    }

    fn physical(self) -> i32 {
        if self == Column::Time {
            INT64
        } else {
            BYTE_ARRAY
        }
    }

    /// Every row has a record; the other columns are null where a record does not say.
    fn optional(self) -> bool {
        self != Column::Record
    }

    /// Few distinct values, repeated: a dictionary makes each a small index.
    fn dictionary(self) -> bool {
        matches!(self, Column::Type | Column::RequestId | Column::Level)
    }
}

/// One page's rows and the records they were read from.
struct Page<'p, 'a> {
    rows: &'p [Row<'a>],
    records: &'p [Bytes],
}

impl Page<'_, '_> {
    /// Row `i`'s value of a text column.
    fn text(&self, column: Column, i: usize) -> Option<&[u8]> {
        let row = &self.rows[i];
        let text = match column {
            Column::Time => return None,
            Column::Type => &row.kind,
            Column::RequestId => &row.request_id,
            Column::Level => &row.level,
            Column::Message => &row.message,
            Column::Record => return Some(&self.records[i]),
        };
        text.as_deref().map(str::as_bytes)
    }

    fn present(&self, column: Column, i: usize) -> bool {
        match column {
            Column::Time => self.rows[i].time.is_some(),
            _ => self.text(column, i).is_some(),
        }
    }
}

/// Where pages are made: the page being written, before compression (reused from page to page),
/// and the compressor (one zstd context for the whole file).
struct Pages {
    raw: Vec<u8>,
    compressor: Compressor,
    limit: usize,
}

enum Compressor {
    None,
    Gzip(u32),
    Zstd(Box<zstd::bulk::Compressor<'static>>),
}

impl Pages {
    fn new(compression: Compression, limit: usize) -> Result<Self, EncodeError> {
        let compressor = match compression {
            Compression::None => Compressor::None,
            Compression::Gzip(level) => Compressor::Gzip(level),
            Compression::Zstd(level) => Compressor::Zstd(Box::new(
                zstd::bulk::Compressor::new(level).map_err(|e| EncodeError::Compression {
                    column: "any",
                    reason: e.to_string(),
                })?,
            )),
        };
        Ok(Self {
            raw: Vec::new(),
            compressor,
            limit,
        })
    }

    /// Compresses the page in `raw` and appends it, after its `PageHeader`, to `into`; `header`
    /// writes the page-type-specific part of the header. Returns the bytes it takes
    /// uncompressed and compressed, header included.
    fn seal(
        &mut self,
        column: Column,
        kind: i32,
        header: impl FnOnce(&mut Writer),
        into: &mut Vec<u8>,
    ) -> Result<(u64, u64), EncodeError> {
        let name = column.name();
        let compressed = self.compress().map_err(|e| EncodeError::Compression {
            column: name,
            reason: e.to_string(),
        })?;
        for bytes in [self.raw.len(), compressed.len()] {
            if bytes > self.limit {
                return Err(EncodeError::TooLarge {
                    column: name,
                    bytes,
                    limit: self.limit,
                });
            }
        }
        let mut h = Writer::default();
        h.i32(1, kind)
            .i32(2, self.raw.len() as i32)
            .i32(3, compressed.len() as i32);
        header(&mut h);
        h.end();
        into.extend_from_slice(&h.out);
        into.extend_from_slice(&compressed);
        Ok((
            (h.out.len() + self.raw.len()) as u64,
            (h.out.len() + compressed.len()) as u64,
        ))
    }

    /// The page compressed with Parquet's codec of the same name (GZIP is RFC 1952 gzip).
    fn compress(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.compressor {
            Compressor::None => Ok(self.raw.clone()),
            Compressor::Gzip(level) => {
                let mut z = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.raw.len() / 4),
                    flate2::Compression::new(*level),
                );
                z.write_all(&self.raw)?;
                z.finish()
            }
            Compressor::Zstd(z) => z.compress(&self.raw),
        }
    }
}

/// Parquet's codec numbers (parquet.thrift, `CompressionCodec`).
fn codec(compression: Compression) -> i32 {
    match compression {
        Compression::None => 0,
        Compression::Gzip(_) => 2,
        Compression::Zstd(_) => 6,
    }
}

#[cfg(test)]
mod tests;
