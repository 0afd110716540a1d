//! Decoding of ring-buffer records: a bounds-checked header, then dispatch on the kind id
//! to the probe's event type.
use std::{borrow::Cow, mem::size_of};

use tracer_common::{
    event::{EventHeader, KIND_NET_HTTP_CLIENT, KIND_NET_HTTP_SERVER, WIRE_VERSION},
    probes::net_http::{client::HttpClientEvent, server::HttpServerEvent},
};

/// A decoded kernel event, borrowed from the ring buffer when the record is aligned (ring
/// buffer records are 8-byte aligned), copied otherwise.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "an event lives on the stack for one record; the copy happens only for an unaligned record"
)]
pub enum Event<'a> {
    NetHttpServer(Cow<'a, HttpServerEvent>),
    NetHttpClient(Cow<'a, HttpClientEvent>),
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
    if bytes.as_ptr().align_offset(align_of::<T>()) == 0 {
        // SAFETY: the length was checked and the pointer is aligned; `T` is a
        // plain-old-data wire type (tracer-common) for which every bit pattern is valid;
        // the borrow keeps the bytes alive.
        return Ok(Cow::Borrowed(unsafe { &*bytes.as_ptr().cast::<T>() }));
    }
    read(bytes).map(Cow::Owned).ok_or(wrong_size)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event<'_>, DecodeError> {
    let header: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    if header.version != WIRE_VERSION {
        return Err(DecodeError::Version(header.version));
    }
    match header.kind {
        KIND_NET_HTTP_SERVER => Ok(Event::NetHttpServer(view(header.kind, bytes)?)),
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
    fn decodes_server_event() {
        let bytes = header_bytes(
            KIND_NET_HTTP_SERVER,
            WIRE_VERSION,
            size_of::<HttpServerEvent>(),
        );
        let Ok(Event::NetHttpServer(ev)) = decode(&bytes) else {
            panic!("not decoded")
        };
        assert_eq!(ev.header.g, 9);
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
        let bytes = header_bytes(KIND_NET_HTTP_SERVER, WIRE_VERSION, 100);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Size { got: 100, .. })
        ));
    }
}
