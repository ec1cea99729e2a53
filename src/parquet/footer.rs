//! The footer, `FileMetaData` (parquet.thrift): the schema, the one row group and its column
//! chunks, the column orders.

use super::chunk::Placed;
use super::*;

const REQUIRED: i32 = 0;
const OPTIONAL: i32 = 1;
// ConvertedType, for readers older than logical types.
const UTF8: i32 = 0;
const TIMESTAMP_MILLIS: i32 = 9;

pub(super) fn file_metadata(chunks: &[Placed], rows: usize, codec: i32) -> Vec<u8> {
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
            // LogicalType TIMESTAMP (8): isAdjustedToUTC = true, unit = MILLIS (1).
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
            // LogicalType STRING (1).
            w.i32(6, UTF8);
            w.begin(10).begin(1).end().end();
        }
    });
    w.i64(3, rows as i64);
    let uncompressed: u64 = chunks.iter().map(|c| c.uncompressed).sum();
    let compressed: u64 = chunks.iter().map(|c| c.compressed).sum();
    w.struct_list(4, 1, |w, _| {
        w.struct_list(1, chunks.len(), |w, i| {
            column_chunk(w, &chunks[i], rows, codec)
        });
        w.i64(2, uncompressed as i64)
            .i64(3, rows as i64)
            .i64(5, MAGIC.len() as i64)
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
    // TypeDefinedOrder for every column: min and max follow the type's own order.
    w.struct_list(7, COLUMNS.len(), |w, _| {
        w.begin(1).end();
    });
    w.end();
    w.out
}

/// A `ColumnChunk` and its `ColumnMetaData`.
fn column_chunk(w: &mut Writer, c: &Placed, rows: usize, codec: i32) {
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
