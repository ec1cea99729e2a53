//! Records → a Parquet file: one row group, one row per record, six columns. Written here rather
//! than with the `parquet` crate, whose writer would add several times the 1.5 MB budget
//! to the layer binary; what this writes is checked by readers we did not write (the `parquet`
//! crate in the emulator's verdict, pyarrow and DuckDB in the tests). Pure.
//!
//! The layout (Apache Parquet format, "File Format"): `PAR1`, each column's pages one column after
//! another, the footer (`FileMetaData` in Thrift's compact protocol), its length, `PAR1`. Pages are
//! data page v1, each holding the rows of about [`PAGE_RECORD_BYTES`] of records; the repetitive
//! columns (`type`, `request_id`, `level`) are dictionary-encoded, the others plain; `time` has
//! min/max statistics so an engine skips a file outside its time range.

mod rle;
mod row;
mod thrift;

use crate::encode::Compression;
use bytes::Bytes;
use row::Row;
use std::collections::HashMap;
use std::io::Write;
use thrift::Writer;

/// The Content-Type of a Parquet object (registered with IANA in 2024).
pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Records per data page, by their bytes: pages of about 1 MiB are what readers are tuned for
/// (the format's recommended page size is 8 KiB to 1 MiB; pyarrow's default is 1 MiB).
pub const PAGE_RECORD_BYTES: usize = 1024 * 1024;

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
pub(crate) fn encode_within(
    records: &[Bytes],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, EncodeError> {
    let rows: Vec<Row<'_>> = records.iter().map(|r| Row::of(r)).collect();
    let pages = page_ranges(records);
    let size: usize = records.iter().map(Bytes::len).sum();
    let mut file = File {
        out: Vec::with_capacity(size / 3 + 4096),
        raw: Vec::new(),
        compression,
        limit,
    };
    file.out.extend_from_slice(MAGIC);
    let mut chunks = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        let values = Values {
            column,
            rows: &rows,
            records,
        };
        chunks.push(file.column(&values, &pages)?);
    }
    let footer = footer(&chunks, records.len(), codec(compression));
    file.out.extend_from_slice(&footer);
    file.out
        .extend_from_slice(&(footer.len() as u32).to_le_bytes());
    file.out.extend_from_slice(MAGIC);
    Ok(file.out)
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

// Parquet's codes (parquet.thrift): physical types, encodings, codecs, page types.
const INT64: i32 = 2;
const BYTE_ARRAY: i32 = 6;
const PLAIN: i32 = 0;
const RLE: i32 = 3;
const RLE_DICTIONARY: i32 = 8;
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;
const REQUIRED: i32 = 0;
const OPTIONAL: i32 = 1;
const UTF8: i32 = 0;
const TIMESTAMP_MILLIS: i32 = 9;

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

/// One column's values, read from the rows.
struct Values<'r, 'a> {
    column: Column,
    rows: &'r [Row<'a>],
    records: &'r [Bytes],
}

impl Values<'_, '_> {
    fn text(&self, i: usize) -> Option<&[u8]> {
        let row = &self.rows[i];
        let text = match self.column {
            Column::Time => return None,
            Column::Type => &row.kind,
            Column::RequestId => &row.request_id,
            Column::Level => &row.level,
            Column::Message => &row.message,
            Column::Record => return Some(&self.records[i]),
        };
        text.as_deref().map(str::as_bytes)
    }

    fn present(&self, i: usize) -> bool {
        match self.column {
            Column::Time => self.rows[i].time.is_some(),
            _ => self.text(i).is_some(),
        }
    }
}

/// Where a column's pages went and what they hold: its `ColumnMetaData`.
struct Chunk {
    column: Column,
    dictionary_offset: Option<u64>,
    data_offset: u64,
    uncompressed: u64,
    compressed: u64,
    encodings: Vec<i32>,
    /// `time`'s minimum, maximum and nulls.
    time_stats: Option<(i64, i64, u64)>,
}

struct File {
    out: Vec<u8>,
    /// A page before compression (reused from page to page).
    raw: Vec<u8>,
    compression: Compression,
    limit: usize,
}

impl File {
    fn column(
        &mut self,
        v: &Values<'_, '_>,
        pages: &[std::ops::Range<usize>],
    ) -> Result<Chunk, EncodeError> {
        let mut chunk = Chunk {
            column: v.column,
            dictionary_offset: None,
            data_offset: 0,
            uncompressed: 0,
            compressed: 0,
            encodings: vec![PLAIN],
            time_stats: None,
        };
        if v.column.optional() {
            chunk.encodings.push(RLE);
        }
        let dictionary = if v.column.dictionary() {
            Dictionary::of(v)
        } else {
            None
        };
        if let Some(d) = &dictionary {
            chunk.dictionary_offset = Some(self.out.len() as u64);
            chunk.encodings.push(RLE_DICTIONARY);
            self.raw.clear();
            for entry in &d.entries {
                plain_bytes(entry, &mut self.raw);
            }
            self.page(&mut chunk, DICTIONARY_PAGE, |h| {
                h.begin(7)
                    .i32(1, d.entries.len() as i32)
                    .i32(2, PLAIN)
                    .end();
            })?;
        }
        chunk.data_offset = self.out.len() as u64;
        for range in pages {
            self.raw.clear();
            if v.column.optional() {
                levels(v, range.clone(), &mut self.raw);
            }
            let encoding = match &dictionary {
                Some(d) => {
                    d.indices(range.clone(), &mut self.raw);
                    RLE_DICTIONARY
                }
                None if v.column == Column::Time => {
                    for t in v.rows[range.clone()].iter().filter_map(|r| r.time) {
                        self.raw.extend_from_slice(&t.to_le_bytes());
                    }
                    PLAIN
                }
                None => {
                    for i in range.clone() {
                        if let Some(text) = v.text(i) {
                            plain_bytes(text, &mut self.raw);
                        }
                    }
                    PLAIN
                }
            };
            let rows = range.len() as i32;
            self.page(&mut chunk, DATA_PAGE, |h| {
                h.begin(5)
                    .i32(1, rows)
                    .i32(2, encoding)
                    .i32(3, RLE)
                    .i32(4, RLE)
                    .end();
            })?;
        }
        if v.column == Column::Time {
            let times = v.rows.iter().filter_map(|r| r.time);
            let nulls = v.rows.iter().filter(|r| r.time.is_none()).count() as u64;
            if let (Some(min), Some(max)) = (times.clone().min(), times.max()) {
                chunk.time_stats = Some((min, max, nulls));
            }
        }
        Ok(chunk)
    }

    /// Compresses the page in `raw` and appends it with its header; `header` writes the
    /// page-type-specific part of the `PageHeader`.
    fn page(
        &mut self,
        chunk: &mut Chunk,
        kind: i32,
        header: impl FnOnce(&mut Writer),
    ) -> Result<(), EncodeError> {
        let column = chunk.column.name();
        let compressed =
            compress(&self.raw, self.compression).map_err(|e| EncodeError::Compression {
                column,
                reason: e.to_string(),
            })?;
        for bytes in [self.raw.len(), compressed.len()] {
            if bytes > self.limit {
                return Err(EncodeError::TooLarge {
                    column,
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
        chunk.uncompressed += (h.out.len() + self.raw.len()) as u64;
        chunk.compressed += (h.out.len() + compressed.len()) as u64;
        self.out.extend_from_slice(&h.out);
        self.out.extend_from_slice(&compressed);
        Ok(())
    }
}

/// A column's distinct values in the order first seen, and each row's index among them.
struct Dictionary<'v> {
    entries: Vec<&'v [u8]>,
    /// Per row: its value's index, or `None` for null.
    rows: Vec<Option<u32>>,
}

impl<'v> Dictionary<'v> {
    /// `None` when the column has no value at all (an empty dictionary page trips some readers).
    fn of(v: &'v Values<'_, '_>) -> Option<Self> {
        let mut seen: HashMap<&[u8], u32> = HashMap::new();
        let mut entries = Vec::new();
        let rows = (0..v.rows.len())
            .map(|i| {
                v.text(i).map(|t| {
                    *seen.entry(t).or_insert_with(|| {
                        entries.push(t);
                        (entries.len() - 1) as u32
                    })
                })
            })
            .collect();
        (!entries.is_empty()).then_some(Self { entries, rows })
    }

    /// A data page's values: the bit width, then the non-null rows' indices.
    fn indices(&self, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        let width = rle::bit_width(self.entries.len() as u32 - 1);
        out.push(width);
        let indices: Vec<u32> = self.rows[range].iter().flatten().copied().collect();
        rle::hybrid(&indices, width, out);
    }
}

/// Definition levels (1: a value, 0: null), length-prefixed as data page v1 has them.
fn levels(v: &Values<'_, '_>, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let levels: Vec<u32> = range.map(|i| u32::from(v.present(i))).collect();
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    rle::hybrid(&levels, 1, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A BYTE_ARRAY value in the PLAIN encoding: its length (4 bytes, little-endian), its bytes.
fn plain_bytes(v: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

/// A page compressed with Parquet's codec of the same name (GZIP is RFC 1952 gzip).
fn compress(raw: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip(level) => {
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::new(level),
            );
            z.write_all(raw)?;
            z.finish()
        }
        Compression::Zstd(level) => zstd::bulk::compress(raw, level),
    }
}

fn codec(compression: Compression) -> i32 {
    match compression {
        Compression::None => 0,
        Compression::Gzip(_) => 2,
        Compression::Zstd(_) => 6,
    }
}

/// The `FileMetaData`: the schema, the one row group and its column chunks, the column orders.
fn footer(chunks: &[Chunk], rows: usize, codec: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i32(1, 1);
    w.struct_list(2, COLUMNS.len() + 1, |w, i| {
        let Some(column) = i.checked_sub(1).map(|c| COLUMNS[c]) else {
            w.binary(4, b"schema").i32(5, COLUMNS.len() as i32);
            return;
        };
        w.i32(1, column.physical())
            .i32(
                3,
                if column.optional() {
                    OPTIONAL
                } else {
                    REQUIRED
                },
            )
            .binary(4, column.name().as_bytes());
        if column == Column::Time {
            // TIMESTAMP(isAdjustedToUTC = true, unit = MILLIS), and its converted type for
            // readers older than logical types.
            w.i32(6, TIMESTAMP_MILLIS);
            w.begin(10)
                .begin(8)
                .bool(1, true)
                .begin(2)
                .begin(1)
                .end()
                .end()
                .end()
                .end();
        } else {
            w.i32(6, UTF8);
            w.begin(10).begin(1).end().end();
        }
    });
    w.i64(3, rows as i64);
    let start = MAGIC.len() as i64;
    let uncompressed: u64 = chunks.iter().map(|c| c.uncompressed).sum();
    let compressed: u64 = chunks.iter().map(|c| c.compressed).sum();
    w.struct_list(4, 1, |w, _| {
        w.struct_list(1, chunks.len(), |w, i| {
            column_chunk(w, &chunks[i], rows, codec)
        });
        w.i64(2, uncompressed as i64)
            .i64(3, rows as i64)
            .i64(5, start)
            .i64(6, compressed as i64);
    });
    w.binary(
        6,
        concat!(
            "adaptive-batching-extension version ",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    // TypeDefinedOrder for every column: its min and max follow the type's own order.
    w.struct_list(7, COLUMNS.len(), |w, _| {
        w.begin(1).end();
    });
    w.end();
    w.out
}

fn column_chunk(w: &mut Writer, c: &Chunk, rows: usize, codec: i32) {
    let first = c.dictionary_offset.unwrap_or(c.data_offset);
    w.i64(2, first as i64).begin(3);
    w.i32(1, c.column.physical())
        .i32_list(2, &c.encodings)
        .binary_list(3, &[c.column.name().as_bytes()])
        .i32(4, codec)
        .i64(5, rows as i64)
        .i64(6, c.uncompressed as i64)
        .i64(7, c.compressed as i64)
        .i64(9, c.data_offset as i64);
    if let Some(d) = c.dictionary_offset {
        w.i64(11, d as i64);
    }
    if let Some((min, max, nulls)) = c.time_stats {
        // The deprecated min/max (1, 2) too: signed INT64 orders the same either way, and older
        // readers know only those.
        w.begin(12)
            .binary(1, &max.to_le_bytes())
            .binary(2, &min.to_le_bytes())
            .i64(3, nulls as i64)
            .binary(5, &max.to_le_bytes())
            .binary(6, &min.to_le_bytes())
            .end();
    }
    w.end();
}

#[cfg(test)]
mod tests;
