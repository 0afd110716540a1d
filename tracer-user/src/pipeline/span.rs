//! The span model every probe's decoder produces and every exporter consumes.
use compact_str::CompactString;
use smallvec::SmallVec;

/// Span kind, as in OpenTelemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

/// Span status, as in OpenTelemetry (`ok` is never set by instrumentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Unset,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "unset",
            Self::Error => "error",
        }
    }
}

/// An attribute value. Strings of up to 24 bytes live inline and constants are borrowed:
/// most spans need no string allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(CompactString),
    Int(i64),
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Self::Str(CompactString::const_new(s))
    }
}

impl From<CompactString> for Value {
    fn from(s: CompactString) -> Self {
        Self::Str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s.into())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// Attributes held inline: a span's usual dozen or so need no allocation of their own,
/// so spans flow from the reader to the exporters without heap traffic per span (more
/// than [`INLINE_ATTRIBUTES`] spill to the heap).
pub type Attributes = SmallVec<[(&'static str, Value); INLINE_ATTRIBUTES]>;

/// Attributes a span holds without allocating: a server span has 10 to 12 (11 with a
/// `User-Agent`, 12 with the query), a client span 6 to 8.
pub const INLINE_ATTRIBUTES: usize = 12;

/// One finished span. Times are kernel monotonic nanoseconds until the enricher converts
/// them to UNIX time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// The W3C `tracestate` that came with the trace (from a caller), if any.
    pub trace_state: Option<CompactString>,
    pub name: CompactString,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: Status,
    /// In the order they are exported.
    pub attributes: Attributes,
    /// Process the span comes from (its resource).
    pub pid: u32,
    /// `runtime.g` address of the goroutine that ran it (for debugging).
    pub goroutine: u64,
}

impl Span {
    /// The value of attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// An id in lowercase hex, without allocating: `N` is twice the id's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    pub fn new(bytes: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'0'; N];
        for (i, &b) in bytes.iter().take(N / 2).enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The digits, as bytes (no UTF-8 check: what an encoder writes out).
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> std::fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `pieces` one after the other, in one allocation at most (none when short enough to
/// be held inline): span names and URLs are built per span, not through the formatter.
pub fn joined(pieces: &[&str]) -> CompactString {
    let mut out = CompactString::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        out.push_str(piece);
    }
    out
}

/// Splits `host:port`, `[v6]:port`, or a bare host into host and optional port.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some((host, after)) = s.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(split_host_port("127.0.0.1:8080"), ("127.0.0.1", Some(8080)));
        assert_eq!(split_host_port("[::1]:443"), ("::1", Some(443)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("host:notaport"), ("host:notaport", None));
    }

    #[test]
    fn hex_ids() {
        assert_eq!(
            Hex::<8>::new(&[0x00, 0xf0, 0x67, 0xaa]).as_str(),
            "00f067aa"
        );
    }
}
