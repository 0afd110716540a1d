//! Go `net/http` client spans: one per call of `net/http.send`, the function
//! `(*Client).send` calls once per request it sends (each redirect hop is a request of its
//! own) and which hands the request to the client's `RoundTripper`, whatever it is.
//!
//! The span starts at the entry of `net/http.send` (`ireq *Request` in RAX) and ends just
//! after `(*Client).send`'s call to it returns (results: `resp *Response` in RAX,
//! `didTimeout` in RBX, `err error` in RCX and RDI), at the first instruction there that
//! the kernel emulates. See <https://go.dev/src/net/http/client.go> (`func send`).
use crate::event::{EventHeader, Head, Piece, Record};

/// Bytes kept of `Request.Method`.
pub const METHOD_LEN: usize = 16;
/// Bytes kept of `URL.Scheme`.
pub const SCHEME_LEN: usize = 16;
/// Bytes kept of `URL.Host` (host and port).
pub const HOST_LEN: usize = 128;
/// Bytes kept of `URL.Path`.
pub const PATH_LEN: usize = 256;
/// Bytes kept of `URL.RawQuery`.
pub const QUERY_LEN: usize = 128;

/// [`HttpClientHead::link`]: how the parent was found.
/// No server request was in flight: the span starts a trace.
pub const LINK_ROOT: u8 = 0;
/// The call ran on the goroutine that serves a request.
pub const LINK_GOROUTINE: u8 = 1;
/// The call ran on a goroutine started by the goroutine that serves a request
/// (`g.parentGoid`, Go 1.21+).
pub const LINK_PARENT_GOROUTINE: u8 = 2;
/// The request carried the server request's context, or one derived from it (e.g. handed
/// to a worker goroutine).
pub const LINK_CONTEXT: u8 = 3;
/// The call ran on a goroutine further down the tree of goroutines started by the
/// goroutine serving a request, while it was in flight (`--track-goroutines`).
pub const LINK_GOROUTINE_TREE: u8 = 4;
/// How many parents of a request's context are looked at for a server request's one.
pub const CONTEXT_DEPTH: u32 = 8;

/// Start of a client span, kept per goroutine until the call returns, in a slot of the
/// client in-flight array (see `tracer_common::inflight`). `g == 0` marks a free slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientInflight {
    /// `runtime.g` of the calling goroutine; 0 when the slot is free.
    pub g: u64,
    pub pid: u32,
    /// Attach cookie (configuration slot) of the start probe.
    pub config: u32,
    pub start_ns: u64,
    /// The `*http.Request` being sent.
    pub req: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    /// One of the `LINK_*` constants.
    pub link: u8,
    /// The parent's `trace_flags` (`CTX_*` bits of `crate::propagation`).
    pub trace_flags: u8,
    pub _pad: [u8; 6],
    /// The request's header map, when injection is on: this call's key in the index of
    /// calls by header map, where the injection probe finds its span. Else 0.
    pub header: u64,
}
crate::assert_size!(ClientInflight, 80);
crate::assert_slot_head!(ClientInflight, g);

/// Size of [`HttpClientEvent`]'s text: every string at its limit.
pub const TEXT_LEN: usize = METHOD_LEN + SCHEME_LEN + HOST_LEN + PATH_LEN + QUERY_LEN;

/// The fixed part of a finished client span's record; the strings follow in the text, in
/// this order (see [`HttpClientEvent`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpClientHead {
    /// `size` is the record's: this head and the used part of the text.
    pub header: EventHeader,
    pub start_ns: u64,
    pub end_ns: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    /// `Response.StatusCode`, 0 without a response.
    pub status: u64,
    /// The `error` result: its itab (the dynamic type, resolved in user space) and data
    /// pointer; 0 when the call succeeded.
    pub err_itab: u64,
    pub err_data: u64,
    /// One of the `LINK_*` constants.
    pub link: u8,
    /// The parent's `trace_flags` (`CTX_*` bits of `crate::propagation`).
    pub trace_flags: u8,
    pub _pad: [u8; 6],
    pub method: Piece,
    pub scheme: Piece,
    pub host: Piece,
    pub path: Piece,
    pub query: Piece,
}
crate::assert_size!(HttpClientHead, 24 + 2 * 8 + 16 + 8 + 8 + 3 * 8 + 8 + 5 * 8);

// SAFETY: `repr(C)`, integers, byte arrays and pieces without implicit padding (the size
// assertion above adds up every field); 144 bytes.
unsafe impl Head for HttpClientHead {
    fn header_mut(&mut self) -> &mut EventHeader {
        &mut self.header
    }
}

/// One finished client span as the kernel builds it (see [`Record`]).
pub type HttpClientEvent = Record<HttpClientHead, TEXT_LEN>;
crate::assert_size!(
    HttpClientEvent,
    core::mem::size_of::<HttpClientHead>() + TEXT_LEN
);

/// Bytes of the request's start compared before a `traceparent` is inserted (the request
/// line of the shortest request, `GET / HTTP/1.1\r\nHost: `, is longer).
pub const INJECT_PREFIX: usize = 24;
/// `Traceparent: 00-{32 hex}-{16 hex}-{2 hex}\r\n`.
pub const TRACEPARENT_LINE: usize = 70;
/// `Tracestate: ` before a forwarded `tracestate`.
pub const TRACESTATE_KEY: &[u8; 12] = b"Tracestate: ";
/// Room for the header lines inserted into one request: `traceparent`, then the
/// `tracestate` its trace came with (at most `server::TRACESTATE_LEN` bytes), each with
/// CRLF.
pub const PENDING_BYTES: usize =
    (TRACEPARENT_LINE + TRACESTATE_KEY.len() + super::server::TRACESTATE_LEN + 2)
        .next_multiple_of(8);

/// Header lines waiting for their request to be sent on one TCP connection.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingHeader {
    /// The connection, [`connection_key`] of its ports; 0 when the entry is free.
    pub conn: u64,
    /// The recording process.
    pub pid: u32,
    pub _pad: u32,
    /// When the header was recorded.
    pub start_ns: u64,
    /// The lines: `len` bytes.
    pub bytes: [u8; PENDING_BYTES],
    pub len: u32,
    /// Where the lines go: the bytes buffered before the request's own headers.
    pub at: u32,
    /// The first bytes of the request as buffered.
    pub prefix: [u8; INJECT_PREFIX],
}
crate::assert_size!(
    PendingHeader,
    8 + 8 + 8 + PENDING_BYTES + 4 + 4 + INJECT_PREFIX
);
crate::assert_slot_head!(PendingHeader, conn);

/// The key of a TCP connection of one process: its local and remote ports (never 0).
#[inline(always)]
pub const fn connection_key(local_port: u64, remote_port: u64) -> u64 {
    (1 << 32) | ((local_port & 0xffff) << 16) | (remote_port & 0xffff)
}

/// How many bytes at the end of a URL's host [`host_port`] looks at.
pub const HOST_TAIL: usize = 8;

/// The port at the end of a URL's host (`name:port`, `[v6]:port`) from its last `n`
/// bytes, `tail[..n]` (`n <= HOST_TAIL`); `None` when it names none (then the scheme's
/// default applies).
#[inline(always)]
pub fn host_port(tail: &[u8; HOST_TAIL], n: usize) -> Option<u64> {
    let (mut port, mut scale) = (0u64, 1u64);
    for i in 0..HOST_TAIL {
        if i >= n {
            return None;
        }
        // From the end; the mask keeps the index provably inside for the verifier.
        let byte = tail[(n - 1 - i) & (HOST_TAIL - 1)];
        match byte {
            b'0'..=b'9' if i < 5 => {
                port += u64::from(byte - b'0') * scale;
                scale *= 10;
            }
            b':' if i > 0 && port <= 0xffff => return Some(port),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`host_port`] of `host`, given its last [`HOST_TAIL`] bytes as the probe reads them.
    fn port(host: &str) -> Option<u64> {
        let bytes = host.as_bytes();
        let n = bytes.len().min(HOST_TAIL);
        let mut tail = [0u8; HOST_TAIL];
        tail[..n].copy_from_slice(&bytes[bytes.len() - n..]);
        host_port(&tail, n)
    }

    #[test]
    fn ports_at_the_end_of_hosts() {
        assert_eq!(port("127.0.0.1:8080"), Some(8080));
        assert_eq!(port("a:1"), Some(1));
        assert_eq!(port("backend.svc.cluster.local:65535"), Some(65535));
        assert_eq!(port("[::1]:443"), Some(443));
        assert_eq!(port("[fe80::1%25eth0]:80"), Some(80));
    }

    #[test]
    fn hosts_without_a_port() {
        for host in [
            "",
            "example.com",
            "a",
            "80",
            "h:",
            "[::1]",
            "[2001:db8::1]",
            "h:65536",
            "h:123456",
            "12345678",
        ] {
            assert_eq!(port(host), None, "{host:?}");
        }
    }
}
