//! Go `net/http` server spans.
//!
//! The span starts at the entry of `net/http.serverHandler.ServeHTTP` (the start is kept in
//! an in-flight map keyed by goroutine) and ends at the entry of
//! `net/http.(*response).finishRequest`, which `(*conn).serve` calls right after the
//! handler returns; or, when the handler panicked or hijacked the connection, at the entry
//! of the deferred closure of `(*conn).serve`. The kernel emits one [`HttpServerEvent`] per
//! finished span. See <https://go.dev/src/net/http/server.go> (`func (c *conn) serve`).
use crate::event::{EventHeader, Head, Piece, Record};

/// Bytes kept of `Request.Method`.
pub const METHOD_LEN: usize = 16;
/// Bytes kept of the path (`url.path`).
pub const PATH_LEN: usize = 256;
/// Bytes kept of the query (`url.query`, only with `--capture-query`).
pub const QUERY_LEN: usize = 128;
/// Bytes kept of `Request.Host`.
pub const HOST_LEN: usize = 128;
/// Bytes kept of `Request.RemoteAddr`.
pub const REMOTE_LEN: usize = 64;
/// Bytes kept of `Request.Pattern`.
pub const PATTERN_LEN: usize = 128;
/// Bytes kept of the `User-Agent` header.
pub const USER_AGENT_LEN: usize = 128;
/// Bytes of `tracestate` kept (the W3C limit is 512; longer values are cut and marked).
pub const TRACESTATE_LEN: usize = 256;

/// Bytes of the request target (`Request.RequestURI`) kept: room for a path of
/// [`PATH_LEN`] bytes, its `?` and a query of [`QUERY_LEN`] bytes.
pub const TARGET_LEN: usize = PATH_LEN + 1 + QUERY_LEN;

/// Size of the text of an [`HttpServerEvent`]: every string at its limit, plus the space between
/// method and target when both are copied with one read (a multiple of 8).
pub const TEXT_LEN: usize = (METHOD_LEN
    + 1
    + TARGET_LEN
    + HOST_LEN
    + REMOTE_LEN
    + PATTERN_LEN
    + USER_AGENT_LEN
    + TRACESTATE_LEN)
    .next_multiple_of(8);

/// How a server span ended.
pub const END_FINISHED: u8 = 0;
/// The connection's serve loop unwound while the request was in flight and no panic was
/// seen: the handler hijacked the connection.
pub const END_HIJACKED: u8 = 1;
/// The handler panicked and the panic was not recovered inside it.
pub const END_PANICKED: u8 = 2;

/// [`ServerInflight::flags`] bit: `runtime.gopanic` ran on the goroutine while the request
/// was in flight.
pub const INFLIGHT_PANICKING: u32 = 1;

/// Start of a server span, kept per goroutine until the span ends, in a slot of the
/// in-flight array (see `tracer_common::inflight`). `g == 0` marks a free slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerInflight {
    /// `runtime.g` of the goroutine running the handler; 0 when the slot is free.
    pub g: u64,
    /// Process of that goroutine.
    pub pid: u32,
    /// Attach cookie (configuration slot) of the start probe.
    pub config: u32,
    /// `bpf_ktime_get_ns` at handler entry.
    pub start_ns: u64,
    /// The `*http.Request` passed to the handler.
    pub req: u64,
    /// The `*http.response` behind the handler's `ResponseWriter`.
    pub resp: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    /// `INFLIGHT_*` bits.
    pub flags: u32,
    /// `CTX_*` bits (`crate::propagation`) of the trace context the request carried: the
    /// caller's sampling decision, and where the trace and parent came from.
    pub trace_flags: u32,
    /// `g.goid` of the goroutine, when goroutine links are on (else 0): the key of this
    /// span in the goroutine-id index.
    pub goid: u64,
    /// The request's context (the data word of `Request.ctx`, a per-request
    /// `*context.cancelCtx`), when links are on (else 0): the key of this span in the
    /// context index.
    pub context: u64,
    /// The Go string `{ptr, len}` of the first `User-Agent` value (0 when absent), copied
    /// when the span ends: the request holds it until then.
    pub user_agent: [u64; 2],
    /// The same for `tracestate`, kept only with a valid `traceparent`.
    pub tracestate: [u64; 2],
}
crate::assert_size!(ServerInflight, 128);
crate::assert_slot_head!(ServerInflight, g);

/// An in-flight server span as found by a key: the id of its goroutine (`g.goid`), for
/// client calls made on goroutines it started (`g.parentGoid`), or its request's context,
/// for client calls whose request carries that context or one derived from it. Kept in a
/// set-associative array like the in-flight slots; `key == 0` marks a free entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanLink {
    pub key: u64,
    pub pid: u32,
    pub _pad: u32,
    pub start_ns: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The span's `trace_flags` (see [`ServerInflight::trace_flags`]), inherited by calls.
    pub trace_flags: u32,
    pub _pad2: u32,
    /// In the goroutine tree (keyed by a goroutine id): the id of the goroutine serving
    /// the request, whose span must still be in flight for the link to hold. Else 0.
    pub origin: u64,
    /// The `tracestate` the span's trace came with: a Go string `{ptr, len}` of the
    /// server request (see [`ServerInflight::tracestate`]), `[0, 0]` when none.
    pub tracestate: [u64; 2],
}
crate::assert_size!(SpanLink, 80);
crate::assert_slot_head!(SpanLink, key);

/// The fixed part of a finished server span's record; the strings follow in the text
/// (see [`HttpServerEvent`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpServerHead {
    /// `size` is the record's: this head and the used part of the text.
    pub header: EventHeader,
    pub start_ns: u64,
    pub end_ns: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    /// `response.status` at the end, 0 when the handler wrote nothing.
    pub status: u64,
    pub proto_major: u16,
    pub proto_minor: u16,
    /// Non-zero when `Request.TLS` was set.
    pub tls: u8,
    /// One of the `END_*` constants.
    pub end_reason: u8,
    /// `CTX_*` bits of the trace context the request carried (`crate::propagation`).
    pub trace_flags: u8,
    pub _pad: u8,
    /// `Request.Method` and `Request.RequestURI` (e.g. `GET` and `/users/42?a=1`; user
    /// space takes `url.path` and `url.query` from the target). `net/http` cuts both out of
    /// the request line without copying (`parseRequestLine`), so they usually sit in the
    /// process one after the other, a space apart: the kernel then copies them with one
    /// read, the method at 0 and the target after the space.
    pub method: Piece,
    pub target: Piece,
    pub host: Piece,
    pub remote_addr: Piece,
    pub pattern: Piece,
    /// First value of the `User-Agent` header (empty when absent).
    pub user_agent: Piece,
    /// The `tracestate` that came with a valid `traceparent` (empty otherwise).
    pub tracestate: Piece,
}
crate::assert_size!(HttpServerHead, 24 + 2 * 8 + 16 + 8 + 8 + 8 + 8 + 7 * 8);

// SAFETY: `repr(C)`, integers, byte arrays and pieces without implicit padding (the size
// assertion above adds up every field); 144 bytes.
unsafe impl Head for HttpServerHead {
    fn header_mut(&mut self) -> &mut EventHeader {
        &mut self.header
    }
}

/// One finished server span as the kernel builds it (see [`Record`]). A record of a
/// typical request is a fifth of the whole, so the ring buffer holds five times as many
/// spans as with fixed-size records.
pub type HttpServerEvent = Record<HttpServerHead, TEXT_LEN>;
crate::assert_size!(
    HttpServerEvent,
    core::mem::size_of::<HttpServerHead>() + TEXT_LEN
);
