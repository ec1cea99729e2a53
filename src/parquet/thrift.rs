//! Thrift's compact protocol, the part of it Parquet's page headers and footer use: structs of
//! integer, binary, list and struct fields, written in field-id order. Apache Thrift, "Thrift
//! Compact protocol encoding" (doc/specs/thrift-compact-protocol.md): a field header is one byte,
//! the id delta in the high nibble and the type in the low one; integers are zigzag varints; a
//! struct ends with a zero byte; a list header holds its size (below 15) and element type.

/// Compact protocol type codes.
const I32: u8 = 5;
const I64: u8 = 6;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const STRUCT: u8 = 12;
const TRUE: u8 = 1;
const FALSE: u8 = 2;

/// Writes one struct (and those nested in it) into a byte buffer.
#[derive(Default)]
pub struct Writer {
    pub out: Vec<u8>,
    /// The last field id written at each open struct level.
    last: Vec<i16>,
    current: i16,
}

impl Writer {
    fn field(&mut self, id: i16, kind: u8) {
        let delta = id - self.current;
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | kind);
        } else {
            self.out.push(kind);
            self.varint(zigzag(i64::from(id)));
        }
        self.current = id;
    }

    fn varint(&mut self, v: u64) {
        super::rle::varint(v, &mut self.out);
    }

    pub fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.field(id, I32);
        self.varint(zigzag(i64::from(v)));
        self
    }

    pub fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.field(id, I64);
        self.varint(zigzag(v));
        self
    }

    pub fn bool(&mut self, id: i16, v: bool) -> &mut Self {
        // A boolean field carries its value in the header's type nibble.
        self.field(id, if v { TRUE } else { FALSE });
        self
    }

    pub fn binary(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.field(id, BINARY);
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
        self
    }

    /// Opens a struct field; [`Writer::end`] closes it.
    pub fn begin(&mut self, id: i16) -> &mut Self {
        self.field(id, STRUCT);
        self.open();
        self
    }

    fn open(&mut self) {
        self.last.push(self.current);
        self.current = 0;
    }

    /// Closes the innermost open struct (or ends the outermost one).
    pub fn end(&mut self) -> &mut Self {
        self.out.push(0);
        self.current = self.last.pop().unwrap_or(0);
        self
    }

    fn list_header(&mut self, id: i16, len: usize, kind: u8) {
        self.field(id, LIST);
        if len < 15 {
            self.out.push(((len as u8) << 4) | kind);
        } else {
            self.out.push(0xf0 | kind);
            self.varint(len as u64);
        }
    }

    pub fn i32_list(&mut self, id: i16, vs: &[i32]) -> &mut Self {
        self.list_header(id, vs.len(), I32);
        for v in vs {
            self.varint(zigzag(i64::from(*v)));
        }
        self
    }

    pub fn binary_list(&mut self, id: i16, vs: &[&[u8]]) -> &mut Self {
        self.list_header(id, vs.len(), BINARY);
        for v in vs {
            self.varint(v.len() as u64);
            self.out.extend_from_slice(v);
        }
        self
    }

    /// A list of `len` structs, each written by `each(self, index)` between its opening and its
    /// closing (a list's structs have no field header).
    pub fn struct_list(
        &mut self,
        id: i16,
        len: usize,
        mut each: impl FnMut(&mut Self, usize),
    ) -> &mut Self {
        self.list_header(id, len, STRUCT);
        for i in 0..len {
            self.open();
            each(self, i);
            self.end();
        }
        self
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_integers_and_lists_follow_the_compact_protocol() {
        let mut w = Writer::default();
        w.i32(1, 3).i64(2, -1).binary(4, b"ab").bool(5, true);
        w.begin(30).i32(1, 300).end();
        w.i32_list(31, &[1, 2]);
        w.end();
        assert_eq!(
            w.out,
            [
                0x15, 6, // field 1, i32, zigzag(3)
                0x16, 1, // field 2, i64, zigzag(-1)
                0x28, 2, b'a', b'b', // field 4 (delta 2), binary of 2
                0x11, // field 5, true
                0x0c, 60, // field 30: a delta over 15, so the type, then zigzag(30)
                0x15, 0xd8, 0x04, // nested field 1, zigzag(300) = 600 as a varint
                0,    // nested end
                0x19, 0x25, 2, 4, // field 31, a list of 2 i32
                0, // end
            ]
        );
    }
}
