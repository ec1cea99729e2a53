//! The writer's own rules. That its files are Parquet is for readers we did not write to say:
//! tests/parquet.rs reads them with pyarrow, DuckDB and the `parquet` crate.
use super::*;

fn record(text: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"time":"2026-12-08T01:02:03Z","type":"function","record":"{text}"}}"#
    ))
}

#[test]
fn a_page_over_the_formats_limit_is_an_error_naming_the_column() {
    // The message page: its levels (4 + 2 bytes), then the value's length (4) and bytes (300).
    let records = [record(&"x".repeat(300))];
    assert_eq!(
        encode_within(&records, Compression::None, 200),
        Err(EncodeError::TooLarge {
            column: "message",
            bytes: 310,
            limit: 200
        })
    );
    assert!(encode_within(&records, Compression::None, 400).is_ok());
}

#[test]
fn pages_hold_about_a_page_of_records_and_at_least_one() {
    let big = Bytes::from(vec![b'x'; PAGE_RECORD_BYTES - 10]);
    let small = Bytes::from_static(b"{}");
    let records = [small.clone(), big.clone(), small.clone(), big.clone(), big];
    assert_eq!(page_ranges(&records), [0..3, 3..4, 4..5]);
    assert_eq!(page_ranges(&[small.clone(), small]), vec![(0..2)]);
    // No records: one empty page per column, so every column chunk has a data page.
    assert_eq!(page_ranges(&[]), vec![(0..0)]);
    let empty = encode(&[], Compression::Zstd(3)).unwrap();
    assert!(empty.starts_with(MAGIC) && empty.ends_with(MAGIC));
}

#[test]
fn the_repetitive_columns_are_dictionaries_and_time_has_its_range() {
    let records: Vec<Bytes> = (0..100).map(|i| record(&format!("line {i}"))).collect();
    let rows: Vec<Row<'_>> = records.iter().map(|r| Row::of(r)).collect();
    let page = Page {
        rows: &rows,
        records: &records,
    };
    let mut pages = Pages::new(Compression::Zstd(3), usize::MAX).unwrap();
    let mut out = Vec::new();
    let mut placed = |column| {
        let mut c = ColumnChunk::new(column);
        c.add_page(&page, &mut pages).unwrap();
        c.add_page(&page, &mut pages).unwrap();
        c.finish(&mut out, &mut pages).unwrap()
    };
    let kind = placed(Column::Type);
    assert_eq!(kind.encodings, [PLAIN, RLE, RLE_DICTIONARY]);
    assert_eq!(kind.dictionary_offset, Some(0));
    // No record states a level: no dictionary, two pages of nulls.
    let level = placed(Column::Level);
    assert_eq!(level.encodings, [PLAIN, RLE]);
    assert_eq!(level.dictionary_offset, None);
    let time = placed(Column::Time);
    assert_eq!(
        time.time_stats,
        Some((1_796_691_723_000, 1_796_691_723_000, 0))
    );
    assert_eq!(placed(Column::Record).encodings, [PLAIN]);
    // The file is small against its records: type is one entry, message compresses.
    let file = encode(&records, Compression::Zstd(3)).unwrap();
    let raw: usize = records.iter().map(Bytes::len).sum();
    assert!(file.len() < raw / 2, "{} of {raw}", file.len());
}
