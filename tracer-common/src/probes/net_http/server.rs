//! Go `net/http` server spans.
//!
//! The span starts at the entry of `net/http.serverHandler.ServeHTTP` (the start is kept in
//! an in-flight map keyed by goroutine) and ends at the entry of
//! `net/http.(*response).finishRequest`, which `(*conn).serve` calls right after the
//! handler returns; or, when the handler panicked or hijacked the connection, at the entry
//! of the deferred closure of `(*conn).serve`. The kernel emits one [`HttpServerEvent`] per
//! finished span. See <https://go.dev/src/net/http/server.go> (`func (c *conn) serve`).
use crate::event::{EventHeader, StrBuf};

/// Bytes kept of `Request.Method`.
pub const METHOD_LEN: usize = 16;
/// Bytes kept of `URL.Path`.
pub const PATH_LEN: usize = 256;
/// Bytes kept of `URL.RawQuery` (only with `--capture-query`).
pub const QUERY_LEN: usize = 128;
/// Bytes kept of `Request.Host`.
pub const HOST_LEN: usize = 128;
/// Bytes kept of `Request.RemoteAddr`.
pub const REMOTE_LEN: usize = 64;
/// Bytes kept of `Request.Pattern`.
pub const PATTERN_LEN: usize = 128;
/// Bytes kept of the `User-Agent` header.
pub const USER_AGENT_LEN: usize = 128;

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
    pub _pad: u32,
}
crate::assert_size!(ServerInflight, 80);

/// One finished server span.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HttpServerEvent {
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
    pub _pad: [u8; 2],
    pub method: StrBuf<METHOD_LEN>,
    pub path: StrBuf<PATH_LEN>,
    pub query: StrBuf<QUERY_LEN>,
    pub host: StrBuf<HOST_LEN>,
    pub remote_addr: StrBuf<REMOTE_LEN>,
    pub pattern: StrBuf<PATTERN_LEN>,
    /// First value of the `User-Agent` header (empty when absent).
    pub user_agent: StrBuf<USER_AGENT_LEN>,
}
// Header, times, ids, status, protocol and flags; then each string's length and flags.
const FIXED: usize = 24 + 2 * 8 + 16 + 8 + 8 + 8 + 8;
const STRINGS: usize = 7;
crate::assert_size!(
    HttpServerEvent,
    FIXED
        + STRINGS * 8
        + METHOD_LEN
        + PATH_LEN
        + QUERY_LEN
        + HOST_LEN
        + REMOTE_LEN
        + PATTERN_LEN
        + USER_AGENT_LEN
);
