//! Decoding of ring-buffer records: a bounds-checked header, then dispatch on the kind id
//! to the probe's event type.
use std::{borrow::Cow, mem::size_of};

use tracer_common::{
    event::{EventHeader, KIND_NET_HTTP_CLIENT, KIND_NET_HTTP_SERVER, WIRE_VERSION},
    probes::net_http::{
        client::HttpClientEvent,
        server::{HttpServerEvent, HttpServerHead},
    },
};

/// A decoded kernel event, borrowed from the ring buffer when the record is aligned (ring
/// buffer records are 8-byte aligned; a server record's text is always borrowed), copied
/// otherwise.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "an event lives on the stack for one record; the copy happens only for an unaligned record"
)]
pub enum Event<'a> {
    NetHttpServer(ServerRecord<'a>),
    NetHttpClient(Cow<'a, HttpClientEvent>),
}

/// A server span's record: its fixed part, and the text its strings' pieces point into.
#[derive(Clone, Debug)]
pub struct ServerRecord<'a> {
    pub head: Cow<'a, HttpServerHead>,
    pub text: &'a [u8],
}

impl ServerRecord<'_> {
    /// The kept bytes of one of the head's strings.
    pub fn string(&self, piece: &tracer_common::event::Piece) -> &[u8] {
        piece.bytes(self.text)
    }
}

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

fn view<T: Copy>(kind: u16, bytes: &[u8]) -> Result<Cow<'_, T>, DecodeError> {
    let expected = size_of::<T>();
    let wrong_size = DecodeError::Size {
        kind,
        got: bytes.len(),
        expected,
    };
    if bytes.len() != expected {
        return Err(wrong_size);
    }
    borrow(bytes).ok_or(wrong_size)
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

/// A server record: its head, then the used part of its text (at most the whole text).
fn server(bytes: &[u8]) -> Result<ServerRecord<'_>, DecodeError> {
    let head_size = size_of::<HttpServerHead>();
    let header: Option<EventHeader> = read(bytes);
    if bytes.len() < head_size
        || bytes.len() > size_of::<HttpServerEvent>()
        || header.is_none_or(|header| header.size as usize != bytes.len())
    {
        return Err(DecodeError::Size {
            kind: KIND_NET_HTTP_SERVER,
            got: bytes.len(),
            expected: size_of::<HttpServerEvent>(),
        });
    }
    let head = borrow::<HttpServerHead>(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    Ok(ServerRecord {
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
        KIND_NET_HTTP_SERVER => Ok(Event::NetHttpServer(server(bytes)?)),
        KIND_NET_HTTP_CLIENT => Ok(Event::NetHttpClient(view(header.kind, bytes)?)),
        kind => Err(DecodeError::UnknownKind(kind)),
    }
}

#[cfg(test)]
mod tests {
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
        for used in [at, tracer_common::probes::net_http::server::TEXT_LEN] {
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
    }
}
