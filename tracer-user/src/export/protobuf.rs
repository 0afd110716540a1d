//! The protobuf wire format (<https://protobuf.dev/programming-guides/encoding/>), written
//! straight into a byte buffer: what the OTLP exporter encodes its requests with, instead
//! of building message structs first. Fields follow proto3 as prost writes them: a scalar,
//! string or bytes field at its default value is left out; a message field (and a oneof
//! member) is written whenever it is set, even empty.

/// Wire types.
pub const VARINT: u32 = 0;
pub const I64: u32 = 1;
pub const LEN: u32 = 2;
pub const I32: u32 = 5;

/// Appends `v` as a varint.
#[inline]
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of `v` as a varint: 1 to 10.
#[inline]
pub const fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the key of field `field` of wire type `wire`.
#[inline]
pub fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

/// Bytes of the key of field `field`.
#[inline]
pub const fn key_len(field: u32) -> usize {
    varint_len((field as u64) << 3)
}

/// Bytes of a length-delimited field `field` whose content is `len` bytes long, key and
/// length included.
#[inline]
pub const fn len_field_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

/// Appends `bytes` as field `field`, always (a oneof member).
#[inline]
pub fn bytes_always(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `bytes` as field `field` unless empty.
#[inline]
pub fn bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_always(out, field, bytes);
    }
}

/// Appends `s` as field `field` unless empty.
#[inline]
pub fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// Appends a `uint64`, `uint32` or enum field unless 0.
#[inline]
pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

/// Appends an `int64` field, always (a oneof member): two's complement, so a negative
/// value takes 10 bytes.
#[inline]
pub fn int64_always(out: &mut Vec<u8>, field: u32, v: i64) {
    key(out, field, VARINT);
    varint(out, v as u64);
}

/// Appends a `fixed64` field unless 0.
#[inline]
pub fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a `fixed32` field unless 0.
#[inline]
pub fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(out, field, I32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A message field being written, whose length is not known before its content is:
/// [`Nested::begin`] leaves room for the length, [`Nested::end`] fills it in. The length
/// is always the shortest varint, as any encoder writes it: when the room left was not
/// the right size, the content is moved once to fit.
#[must_use = "a message field is finished by `end`"]
#[derive(Debug)]
pub struct Nested {
    /// Where the length goes.
    at: usize,
    /// Bytes left for it.
    room: usize,
}

impl Nested {
    /// Starts message field `field`, leaving `room` bytes (1 to 10) for its length: the
    /// length of the expected content saves the move.
    #[inline]
    pub fn begin(out: &mut Vec<u8>, field: u32, room: usize) -> Self {
        key(out, field, LEN);
        let at = out.len();
        out.resize(at + room, 0);
        Self { at, room }
    }

    /// Ends the field: everything appended to `out` since [`Nested::begin`] is its
    /// content.
    #[inline]
    pub fn end(self, out: &mut Vec<u8>) {
        let start = self.at + self.room;
        let len = out.len() - start;
        let width = varint_len(len as u64);
        if width != self.room {
            let end = out.len();
            if width > self.room {
                out.resize(end + width - self.room, 0);
            }
            out.copy_within(start..end, self.at + width);
            out.truncate(self.at + width + len);
        }
        let mut v = len as u64;
        for byte in &mut out[self.at..self.at + width] {
            *byte = (v as u8) | 0x80;
            v >>= 7;
        }
        out[self.at + width - 1] &= 0x7f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (v, expected) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, expected, "{v}");
            assert_eq!(varint_len(v), expected.len(), "{v}");
        }
        assert_eq!(key_len(15), 1);
        assert_eq!(key_len(16), 2);
    }

    #[test]
    fn proto3_defaults_are_left_out() {
        let mut out = Vec::new();
        string(&mut out, 1, "");
        uint(&mut out, 2, 0);
        fixed64(&mut out, 3, 0);
        fixed32(&mut out, 4, 0);
        bytes(&mut out, 5, &[]);
        assert!(out.is_empty());
        bytes_always(&mut out, 1, &[]);
        int64_always(&mut out, 3, 0);
        assert_eq!(out, [0x0a, 0x00, 0x18, 0x00]);
        out.clear();
        int64_always(&mut out, 3, -1);
        assert_eq!(out.len(), 11);
    }

    /// Whatever room was left, the length comes out as the shortest varint in front of
    /// the content.
    #[test]
    fn nested_lengths_fit() {
        for room in 1..=4 {
            for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
                let mut out = vec![0xee];
                let nested = Nested::begin(&mut out, 2, room);
                out.extend((0..len).map(|i| i as u8));
                nested.end(&mut out);
                let mut expected = vec![0xee, 0x12];
                varint(&mut expected, len as u64);
                expected.extend((0..len).map(|i| i as u8));
                assert_eq!(out, expected, "room {room}, length {len}");
            }
        }
    }
}
