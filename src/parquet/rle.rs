//! The RLE/bit-packing hybrid (Parquet format, "Encodings", RLE = 3) that definition levels and
//! dictionary indices are written in: a run of eight or more equal values is one RLE run (a varint
//! header `count << 1`, then the value in whole bytes); other values go in bit-packed runs of
//! groups of eight (a varint header `groups << 1 | 1`, then the values packed LSB first).

/// The bits a value up to `max` needs (at least 1: some readers refuse a width of 0).
pub fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()).max(1) as u8
}

/// Appends `values`, each below `1 << width`, to `out`.
pub fn hybrid(values: &[u32], width: u8, out: &mut Vec<u8>) {
    let mut packed_from = 0;
    let mut i = 0;
    while i < values.len() {
        // An RLE run may start only where the pending bit-packed values fill whole groups: a
        // bit-packed run of a length not a multiple of 8 is allowed only at the end.
        if (i - packed_from) % 8 == 0 {
            let run = values[i..].iter().take_while(|v| **v == values[i]).count();
            if run >= 8 {
                bit_packed(&values[packed_from..i], width, out);
                varint((run as u64) << 1, out);
                let bytes = values[i].to_le_bytes();
                out.extend_from_slice(&bytes[..usize::from(width).div_ceil(8)]);
                i += run;
                packed_from = i;
                continue;
            }
        }
        i += 1;
    }
    bit_packed(&values[packed_from..], width, out);
}

/// One bit-packed run of `values`, the last group padded with zeros (the reader knows how many
/// values the page holds).
fn bit_packed(values: &[u32], width: u8, out: &mut Vec<u8>) {
    if values.is_empty() {
        return;
    }
    let groups = values.len().div_ceil(8);
    varint(((groups as u64) << 1) | 1, out);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let padding = std::iter::repeat_n(&0, groups * 8 - values.len());
    for v in values.iter().chain(padding) {
        acc |= u64::from(*v) << bits;
        bits += u32::from(width);
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
}

/// An unsigned LEB128 varint, as both the hybrid's headers and Thrift's compact protocol write them.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_bit_packed_groups_as_the_format_gives_them() {
        // The format's own example: 0..=7 at width 3 is header 0x03, then 0x88 0xc6 0xfa.
        let mut out = Vec::new();
        hybrid(&[0, 1, 2, 3, 4, 5, 6, 7], 3, &mut out);
        assert_eq!(out, [0x03, 0x88, 0xc6, 0xfa]);

        // Ten 1s: one RLE run of 10 (header 20) with the value in one byte.
        let mut out = Vec::new();
        hybrid(&[1; 10], 1, &mut out);
        assert_eq!(out, [20, 1]);

        // Two 1s then fourteen 0s: the run of 0s cannot start at 2, so the first eight values
        // are bit-packed (one group) and the remaining eight 0s are an RLE run.
        let mut out = Vec::new();
        hybrid(
            &[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            1,
            &mut out,
        );
        assert_eq!(out, [0x03, 0b0000_0011, 16, 0]);
        // Two 1s then ten 0s: too few 0s left for a run, so one bit-packed run of two groups,
        // the last padded.
        let mut out = Vec::new();
        hybrid(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1, &mut out);
        assert_eq!(out, [0x05, 0b0000_0011, 0]);

        // Eight 1s then three 2s at width 2: RLE then a padded group.
        let mut out = Vec::new();
        hybrid(&[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2], 2, &mut out);
        assert_eq!(out, [16, 1, 0x03, 0b0010_1010, 0]);

        assert_eq!(
            (bit_width(0), bit_width(1), bit_width(2), bit_width(255)),
            (1, 1, 2, 8)
        );
    }
}
