//! One column's chunk: its data pages, written page by page as the rows come, and its dictionary,
//! written in front of them when the file is laid out.

use super::*;
use crate::hash::BuildFnv1a;
use std::collections::HashMap;

pub(super) struct ColumnChunk {
    column: Column,
    /// The data pages so far, each after its header, compressed.
    data: Vec<u8>,
    /// Rows per data page, in order.
    page_rows: Vec<usize>,
    dictionary: Option<Dictionary>,
    /// Bytes of the data pages, headers included.
    uncompressed: u64,
    compressed: u64,
    /// `time`'s minimum and maximum so far, and its nulls.
    time_range: Option<(i64, i64)>,
    nulls: u64,
}

/// A column chunk laid out in the file: what its `ColumnMetaData` says.
pub(super) struct Placed {
    pub column: Column,
    pub dictionary_offset: Option<u64>,
    pub data_offset: u64,
    pub uncompressed: u64,
    pub compressed: u64,
    pub encodings: Vec<i32>,
    /// `time`'s minimum, maximum and nulls.
    pub time_stats: Option<(i64, i64, u64)>,
}

/// A column's distinct values in the order first seen. Values are copied: they outlive the page
/// of rows they came from. The columns that have one hold few, short values.
#[derive(Default)]
struct Dictionary {
    index: HashMap<Box<[u8]>, u32, BuildFnv1a>,
    entries: Vec<Box<[u8]>>,
}

impl Dictionary {
    fn index_of(&mut self, v: &[u8]) -> u32 {
        if let Some(i) = self.index.get(v) {
            return *i;
        }
        let i = self.entries.len() as u32;
        self.entries.push(v.into());
        self.index.insert(v.into(), i);
        i
    }
}

impl ColumnChunk {
    pub fn new(column: Column) -> Self {
        Self {
            column,
            data: Vec::new(),
            page_rows: Vec::new(),
            dictionary: column.dictionary().then(Dictionary::default),
            uncompressed: 0,
            compressed: 0,
            time_range: None,
            nulls: 0,
        }
    }

    /// Bytes it will take in the file, but for its dictionary page.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Writes the column's data page of `page`.
    pub fn add_page(&mut self, page: &Page<'_, '_>, pages: &mut Pages) -> Result<(), EncodeError> {
        let column = self.column;
        let n = page.rows.len();
        pages.raw.clear();
        if column.optional() {
            levels((0..n).map(|i| page.present(column, i)), &mut pages.raw);
        }
        let encoding = if let Some(d) = &mut self.dictionary {
            let indices: Vec<u32> = (0..n)
                .filter_map(|i| page.text(column, i))
                .map(|v| d.index_of(v))
                .collect();
            // Each page states its own width: enough for the dictionary as it is now.
            let width = rle::bit_width((d.entries.len() as u32).saturating_sub(1));
            pages.raw.push(width);
            rle::hybrid(&indices, width, &mut pages.raw);
            RLE_DICTIONARY
        } else if column == Column::Time {
            self.nulls += page.rows.iter().filter(|r| r.time.is_none()).count() as u64;
            for t in page.rows.iter().filter_map(|r| r.time) {
                pages.raw.extend_from_slice(&t.to_le_bytes());
                self.time_range = Some(match self.time_range {
                    Some((min, max)) => (min.min(t), max.max(t)),
                    None => (t, t),
                });
            }
            PLAIN
        } else {
            for i in 0..n {
                if let Some(v) = page.text(column, i) {
                    plain_bytes(v, &mut pages.raw);
                }
            }
            PLAIN
        };
        self.data_page(n, encoding, pages)
    }

    fn data_page(
        &mut self,
        rows: usize,
        encoding: i32,
        pages: &mut Pages,
    ) -> Result<(), EncodeError> {
        let (u, c) = pages.seal(
            self.column,
            DATA_PAGE,
            |h| {
                h.begin(5)
                    .i32(1, rows as i32)
                    .i32(2, encoding)
                    .i32(3, RLE)
                    .i32(4, RLE)
                    .end();
            },
            &mut self.data,
        )?;
        self.page_rows.push(rows);
        self.uncompressed += u;
        self.compressed += c;
        Ok(())
    }

    /// Lays the chunk out at the end of `out`: its dictionary page, then its data pages.
    pub fn finish(mut self, out: &mut Vec<u8>, pages: &mut Pages) -> Result<Placed, EncodeError> {
        let mut encodings = vec![PLAIN];
        if self.column.optional() {
            encodings.push(RLE);
        }
        let mut dictionary_offset = None;
        let mut uncompressed = self.uncompressed;
        let mut compressed = self.compressed;
        match self.dictionary.take() {
            // A column with no value at all has no dictionary (an empty dictionary page trips
            // some readers): its pages are written again, as nulls in the plain encoding.
            Some(d) if d.entries.is_empty() => {
                let page_rows = std::mem::take(&mut self.page_rows);
                (self.data, self.uncompressed, self.compressed) = (Vec::new(), 0, 0);
                for rows in page_rows {
                    pages.raw.clear();
                    levels(std::iter::repeat_n(false, rows), &mut pages.raw);
                    self.data_page(rows, PLAIN, pages)?;
                }
                (uncompressed, compressed) = (self.uncompressed, self.compressed);
            }
            Some(d) => {
                dictionary_offset = Some(out.len() as u64);
                encodings.push(RLE_DICTIONARY);
                pages.raw.clear();
                for entry in &d.entries {
                    plain_bytes(entry, &mut pages.raw);
                }
                let entries = d.entries.len() as i32;
                let (u, c) = pages.seal(
                    self.column,
                    DICTIONARY_PAGE,
                    |h| {
                        h.begin(7).i32(1, entries).i32(2, PLAIN).end();
                    },
                    out,
                )?;
                uncompressed += u;
                compressed += c;
            }
            None => {}
        }
        let data_offset = out.len() as u64;
        out.extend_from_slice(&self.data);
        Ok(Placed {
            column: self.column,
            dictionary_offset,
            data_offset,
            uncompressed,
            compressed,
            encodings,
            time_stats: self.time_range.map(|(min, max)| (min, max, self.nulls)),
        })
    }
}

/// Definition levels (1: a value, 0: null), length-prefixed as data page v1 has them.
fn levels(present: impl Iterator<Item = bool>, out: &mut Vec<u8>) {
    let levels: Vec<u32> = present.map(u32::from).collect();
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
