//! Decoding of ring-buffer records: a bounds-checked header, then dispatch on the kind id
//! to the probe's event type.
use std::{borrow::Cow, mem::size_of};

use tracer_common::{
    event::{EventHeader, Head, KIND_NET_HTTP_CLIENT, KIND_NET_HTTP_SERVER, Piece, WIRE_VERSION},
    probes::net_http::{
        client::{self, HttpClientHead},
        server::{self, HttpServerHead},
    },
};

/// A decoded kernel event. Its head is borrowed from the ring buffer when the record is
/// aligned (ring buffer records are 8-byte aligned), copied otherwise; its text is always
/// borrowed.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    NetHttpServer(Record<'a, HttpServerHead>),
    NetHttpClient(Record<'a, HttpClientHead>),
}

/// A span's record (`tracer_common::event::Record`): its fixed part, and the used text its
/// strings' pieces point into.
#[derive(Clone, Debug)]
pub struct Record<'a, H: Head> {
    pub head: Cow<'a, H>,
    pub text: &'a [u8],
}

impl<H: Head> Record<'_, H> {
    /// The kept bytes of one of the head's strings.
    pub fn string(&self, piece: &Piece) -> &[u8] {
        piece.bytes(self.text)
    }
}

/// A server span's record.
pub type ServerRecord<'a> = Record<'a, HttpServerHead>;
/// A client span's record.
pub type ClientRecord<'a> = Record<'a, HttpClientHead>;

/// A record that cannot be decoded (a kernel/user version mismatch or a bug): counted,
/// never fatal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than an event header")]
    Short(usize),
    #[error("event layout version {0}, expected {WIRE_VERSION}")]
    Version(u16),
    #[error("unknown event kind {0:#06x}")]
    UnknownKind(u16),
    #[error("event kind {kind:#06x} has {got} bytes, expected {expected}")]
    Size {
        kind: u16,
        got: usize,
        expected: usize,
    },
}

pub(crate) fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; `T` is a plain-old-data wire type (tracer-common)
    // for which every bit pattern is valid; the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// `T` at the start of `bytes` (`None` when they are shorter): borrowed when aligned.
fn borrow<T: Copy>(bytes: &[u8]) -> Option<Cow<'_, T>> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    if bytes.as_ptr().align_offset(align_of::<T>()) == 0 {
        // SAFETY: the length was checked and the pointer is aligned; `T` is a
        // plain-old-data wire type (tracer-common) for which every bit pattern is valid;
        // the borrow keeps the bytes alive.
        return Some(Cow::Borrowed(unsafe { &*bytes.as_ptr().cast::<T>() }));
    }
    read(bytes).map(Cow::Owned)
}

/// A record with `header`: its head, then the used part of a text of at most `text_len`
/// bytes, as long as the header says.
fn record<'a, H: Head>(
    header: &EventHeader,
    text_len: usize,
    bytes: &'a [u8],
) -> Result<Record<'a, H>, DecodeError> {
    let head_size = size_of::<H>();
    if bytes.len() < head_size
        || bytes.len() > head_size + text_len
        || header.size as usize != bytes.len()
    {
        return Err(DecodeError::Size {
            kind: header.kind,
            got: bytes.len(),
            expected: head_size + text_len,
        });
    }
    let head = borrow::<H>(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    Ok(Record {
        head,
        text: &bytes[head_size..],
    })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event<'_>, DecodeError> {
    let header: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    if header.version != WIRE_VERSION {
        return Err(DecodeError::Version(header.version));
    }
    match header.kind {
        KIND_NET_HTTP_SERVER => Ok(Event::NetHttpServer(record(
            &header,
            server::TEXT_LEN,
            bytes,
        )?)),
        KIND_NET_HTTP_CLIENT => Ok(Event::NetHttpClient(record(
            &header,
            client::TEXT_LEN,
            bytes,
        )?)),
        kind => Err(DecodeError::UnknownKind(kind)),
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::probes::net_http::{client::HttpClientEvent, server::HttpServerEvent};

    use super::*;

    fn header_bytes(kind: u16, version: u16, total: usize) -> Vec<u8> {
        let header = EventHeader {
            kind,
            version,
            size: total as u32,
            pid: 1,
            tid: 1,
            g: 9,
        };
        let mut bytes = vec![0u8; total.max(size_of::<EventHeader>())];
        // SAFETY: EventHeader is plain old data; the buffer is large enough.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast(), header) };
        bytes.truncate(total);
        bytes
    }

    #[test]
    fn decodes_server_records_of_any_used_size() {
        let mut ev = HttpServerEvent::default();
        let mut at = 0;
        ev.head.host = ev.put(&mut at, 64, b"shop.example:8080");
        for used in [at, server::TEXT_LEN] {
            ev.head.header = EventHeader {
                kind: KIND_NET_HTTP_SERVER,
                version: WIRE_VERSION,
                size: HttpServerEvent::record_size(used) as u32,
                pid: 1,
                tid: 1,
                g: 9,
            };
            let record = ev.record(used);
            let Ok(Event::NetHttpServer(decoded)) = decode(record) else {
                panic!("not decoded")
            };
            assert_eq!(decoded.head.header.g, 9);
            assert_eq!(decoded.text.len(), used);
            assert_eq!(decoded.string(&decoded.head.host), b"shop.example:8080");
            // At an odd address the head is copied; the text is still borrowed.
            let mut odd = vec![0u8; record.len() + 1];
            odd[1..].copy_from_slice(record);
            let Ok(Event::NetHttpServer(decoded)) = decode(&odd[1..]) else {
                panic!("not decoded")
            };
            assert_eq!(decoded.string(&decoded.head.host), b"shop.example:8080");
        }
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[0; 3]).expect_err("short"), DecodeError::Short(3));
        let bytes = header_bytes(KIND_NET_HTTP_SERVER, 99, 64);
        assert_eq!(
            decode(&bytes).expect_err("rejected"),
            DecodeError::Version(99)
        );
        let bytes = header_bytes(0x7777, WIRE_VERSION, 64);
        assert_eq!(
            decode(&bytes).expect_err("rejected"),
            DecodeError::UnknownKind(0x7777)
        );
        // A server record shorter than its head, or longer than the largest.
        let bytes = header_bytes(KIND_NET_HTTP_SERVER, WIRE_VERSION, 100);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Size { got: 100, .. })
        ));
        let largest = size_of::<HttpServerEvent>();
        let bytes = header_bytes(KIND_NET_HTTP_SERVER, WIRE_VERSION, largest + 8);
        assert!(matches!(decode(&bytes), Err(DecodeError::Size { .. })));
        let bytes = header_bytes(KIND_NET_HTTP_CLIENT, WIRE_VERSION, 100);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Size { got: 100, .. })
        ));
        let largest = size_of::<HttpClientEvent>();
        let bytes = header_bytes(KIND_NET_HTTP_CLIENT, WIRE_VERSION, largest + 8);
        assert!(matches!(decode(&bytes), Err(DecodeError::Size { .. })));
        // A size in the header that is not the record's.
        let mut bytes = header_bytes(KIND_NET_HTTP_CLIENT, WIRE_VERSION, 200);
        bytes[4] = 208;
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Size { got: 200, .. })
        ));
    }

    #[test]
    fn decodes_client_records() {
        let mut ev = HttpClientEvent::default();
        let mut at = 0;
        ev.head.method = ev.put(&mut at, client::METHOD_LEN, b"GET");
        ev.head.path = ev.put(&mut at, client::PATH_LEN, b"/inventory/7");
        ev.head.err_itab = 0x7a_5e20;
        ev.head.header = EventHeader {
            kind: KIND_NET_HTTP_CLIENT,
            version: WIRE_VERSION,
            size: HttpClientEvent::record_size(at) as u32,
            pid: 3,
            tid: 3,
            g: 9,
        };
        let Ok(Event::NetHttpClient(decoded)) = decode(ev.record(at)) else {
            panic!("not decoded")
        };
        assert_eq!(decoded.head.err_itab, 0x7a_5e20);
        assert_eq!(decoded.string(&decoded.head.method), b"GET");
        assert_eq!(decoded.string(&decoded.head.path), b"/inventory/7");
        assert_eq!(decoded.string(&decoded.head.host), b"");
    }
}
