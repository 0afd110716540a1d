//! Trace context carried in HTTP headers: the header keys the kernel looks for in a
//! request's header map, and the parsers of their values, shared by the kernel programs
//! (which must know a request's trace before its handler calls anything) and user space
//! (tests). Formats:
//! - W3C `traceparent`: `{version:2}-{trace-id:32}-{parent-id:16}-{flags:2}`, lowercase hex
//!   (<https://www.w3.org/TR/trace-context/#traceparent-header>); a later version may
//!   append `-...` after the first 55 bytes; version `ff`, all-zero ids and anything else
//!   malformed make the header invalid, and it is then ignored.
//! - B3 single header `b3`: `{trace-id:16|32}-{span-id:16}[-{sampling}[-{parent-id:16}]]`,
//!   or a lone sampling state; sampling is `1`, `0` or `d` (debug, sampled)
//!   (<https://github.com/openzipkin/b3-propagation>).
//! - B3 multiple headers: `X-B3-TraceId` (16 or 32 hex), `X-B3-SpanId` (16 hex),
//!   `X-B3-Sampled` (`1`/`0`, or the legacy `true`/`false`).
//!
//! Every parser works on a fixed-size copy of the value with constant indexes, so the
//! kernel's verifier sees only bounded, straight-line code.

/// Header keys looked for, in Go's canonical form (`textproto.CanonicalMIMEHeaderKey`,
/// which Go applies to every request header key). The index of a key is its `KEY_*`.
pub const HEADER_KEYS: [&[u8]; KEYS] = [
    b"User-Agent",
    b"Traceparent",
    b"Tracestate",
    b"B3",
    b"X-B3-Traceid",
    b"X-B3-Spanid",
    b"X-B3-Sampled",
];
pub const KEYS: usize = 7;
pub const KEY_USER_AGENT: usize = 0;
pub const KEY_TRACEPARENT: usize = 1;
pub const KEY_TRACESTATE: usize = 2;
pub const KEY_B3: usize = 3;
pub const KEY_B3_TRACE_ID: usize = 4;
pub const KEY_B3_SPAN_ID: usize = 5;
pub const KEY_B3_SAMPLED: usize = 6;
/// The longest key.
pub const KEY_MAX_LEN: usize = 12;

/// A key's bytes as two little-endian words, zero-padded: keys compare as two words.
pub const fn key_words(key: &[u8]) -> [u64; 2] {
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < key.len() && i < 16 {
        words[i / 8] |= (key[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    words
}

const fn all_key_words() -> [[u64; 2]; KEYS] {
    let mut all = [[0u64; 2]; KEYS];
    let mut i = 0;
    while i < KEYS {
        all[i] = key_words(HEADER_KEYS[i]);
        i += 1;
    }
    all
}

/// [`key_words`] of each of [`HEADER_KEYS`].
pub const KEY_WORDS: [[u64; 2]; KEYS] = all_key_words();

/// Whether some key has `len` bytes: only keys of these lengths are read and compared.
#[inline(always)]
pub fn is_key_len(len: u64) -> bool {
    matches!(len, 2 | 10 | 11 | 12)
}

/// The `KEY_*` index of the key of `len` bytes whose bytes are `words` (see
/// [`key_words`]), or `None`.
#[inline(always)]
pub fn classify(len: u64, words: [u64; 2]) -> Option<usize> {
    let mut i = 0;
    while i < KEYS {
        if HEADER_KEYS[i].len() as u64 == len && KEY_WORDS[i] == words {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Bytes of a header value the parsers look at: a `traceparent` of a later version may be
/// longer, and only its first 56 bytes matter.
pub const VALUE_BYTES: usize = 72;

/// [`RemoteContext::flags`]: the trace id is set.
pub const CTX_TRACE_ID: u32 = 1;
/// [`RemoteContext::flags`]: the parent span id is set.
pub const CTX_SPAN_ID: u32 = 2;
/// [`RemoteContext::flags`]: the caller decided to sample (valid with [`CTX_DECIDED`]).
pub const CTX_SAMPLED: u32 = 4;
/// [`RemoteContext::flags`]: the caller made a sampling decision.
pub const CTX_DECIDED: u32 = 8;
/// [`RemoteContext::flags`]: the context came from `traceparent` (so `tracestate` belongs
/// to it).
pub const CTX_W3C: u32 = 16;
/// [`RemoteContext::flags`]: the context came from B3 headers.
pub const CTX_B3: u32 = 32;

/// A trace context as read from a request's headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteContext {
    pub trace_id: [u8; 16],
    /// The caller's span: the parent of the server span.
    pub span_id: [u8; 8],
    /// `CTX_*` bits.
    pub flags: u32,
    pub _pad: u32,
}
crate::assert_size!(RemoteContext, 32);

impl RemoteContext {
    /// Both ids are known: the span has a remote parent.
    pub fn is_parent(&self) -> bool {
        self.flags & (CTX_TRACE_ID | CTX_SPAN_ID) == CTX_TRACE_ID | CTX_SPAN_ID
    }
}

/// Value of a lowercase hex digit, or 16 for anything else.
#[inline(always)]
fn nibble(c: u8) -> u32 {
    let digit = u32::from(c).wrapping_sub(u32::from(b'0'));
    let lower = u32::from(c).wrapping_sub(u32::from(b'a'));
    if digit < 10 {
        digit
    } else if lower < 6 {
        lower + 10
    } else {
        16
    }
}

/// Decodes the `2 * N` hex digits at `AT` of `v` into `out`; false when one is not a
/// lowercase hex digit or all `N` bytes are zero.
#[inline(always)]
fn hex<const AT: usize, const N: usize>(v: &[u8; VALUE_BYTES], out: &mut [u8]) -> bool {
    let mut bad = 0u32;
    let mut any = 0u8;
    let mut i = 0;
    while i < N {
        let high = nibble(v[AT + 2 * i]);
        let low = nibble(v[AT + 2 * i + 1]);
        bad |= (high | low) & 16;
        let byte = ((high << 4) | (low & 15)) as u8;
        out[i] = byte;
        any |= byte;
        i += 1;
    }
    bad == 0 && any != 0
}

/// Parses a `traceparent` value (`v` holds its first bytes, `len` is its whole length).
#[inline(always)]
pub fn parse_traceparent(v: &[u8; VALUE_BYTES], len: u64, out: &mut RemoteContext) -> bool {
    if len < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return false;
    }
    let mut version = [0u8; 1];
    let mut flags = [0u8; 1];
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    // Version 00 may be all zero; the flags byte too.
    let version_ok = hex::<0, 1>(v, &mut version) || (v[0] == b'0' && v[1] == b'0');
    let flags_ok = hex::<53, 1>(v, &mut flags) || (v[53] == b'0' && v[54] == b'0');
    if !version_ok
        || !flags_ok
        || version[0] == 0xff
        || !hex::<3, 16>(v, &mut trace_id)
        || !hex::<36, 8>(v, &mut span_id)
    {
        return false;
    }
    // Version 00 is exactly 55 bytes; a later one may go on after a dash.
    if len > 55 && (version[0] == 0 || v[55] != b'-') {
        return false;
    }
    out.trace_id = trace_id;
    out.span_id = span_id;
    out.flags = CTX_TRACE_ID | CTX_SPAN_ID | CTX_DECIDED | CTX_W3C;
    if flags[0] & 1 != 0 {
        out.flags |= CTX_SAMPLED;
    }
    true
}

/// A B3 sampling state (`1`, `0`, `d`; with `legacy`, also `true` and `false`) at byte
/// `AT` of `v`, `len` bytes long: the `CTX_*` bits it sets, or `None` when invalid.
#[inline(always)]
fn b3_sampling<const AT: usize>(v: &[u8; VALUE_BYTES], len: u64, legacy: bool) -> Option<u32> {
    match (len, v[AT]) {
        (1, b'1') | (1, b'd') => Some(CTX_DECIDED | CTX_SAMPLED),
        (1, b'0') => Some(CTX_DECIDED),
        (4, b't') if legacy && v[AT + 1] == b'r' && v[AT + 2] == b'u' && v[AT + 3] == b'e' => {
            Some(CTX_DECIDED | CTX_SAMPLED)
        }
        (5, b'f')
            if legacy
                && v[AT + 1] == b'a'
                && v[AT + 2] == b'l'
                && v[AT + 3] == b's'
                && v[AT + 4] == b'e' =>
        {
            Some(CTX_DECIDED)
        }
        _ => None,
    }
}

/// What may follow the span id of a `b3` value `len` bytes long, at byte `REST`: nothing,
/// or `-{sampling}` (at `SAMPLING = REST + 1`) optionally followed by `-{parent-id:16}`
/// (its dash at `DASH = REST + 2`). The `CTX_*` bits of the sampling state, or `None`.
#[inline(always)]
fn b3_tail<const REST: usize, const SAMPLING: usize, const DASH: usize>(
    v: &[u8; VALUE_BYTES],
    len: u64,
) -> Option<u32> {
    let rest = REST as u64;
    if len == rest {
        return Some(0);
    }
    if v[REST] != b'-' || len < rest + 2 {
        return None;
    }
    let tail = len - rest - 1;
    if tail > 1 && (tail != 18 || v[DASH] != b'-') {
        return None;
    }
    b3_sampling::<SAMPLING>(v, 1, false)
}

/// Parses a `b3` single-header value.
#[inline(always)]
pub fn parse_b3(v: &[u8; VALUE_BYTES], len: u64, out: &mut RemoteContext) -> bool {
    if len == 1 {
        // A lone sampling decision: no parent, only whether to sample.
        return match b3_sampling::<0>(v, 1, false) {
            Some(flags) => {
                out.flags = flags | CTX_B3;
                true
            }
            None => false,
        };
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    // The trace id is 32 or 16 hex digits; a 16-digit (64-bit) one fills the low half.
    let sampling = if len >= 49 && v[32] == b'-' {
        if !hex::<0, 16>(v, &mut trace_id) || !hex::<33, 8>(v, &mut span_id) {
            return false;
        }
        b3_tail::<49, 50, 51>(v, len)
    } else if len >= 33 && v[16] == b'-' {
        if !hex::<0, 8>(v, &mut trace_id[8..]) || !hex::<17, 8>(v, &mut span_id) {
            return false;
        }
        b3_tail::<33, 34, 35>(v, len)
    } else {
        return false;
    };
    let Some(sampling) = sampling else {
        return false;
    };
    out.trace_id = trace_id;
    out.span_id = span_id;
    out.flags = CTX_TRACE_ID | CTX_SPAN_ID | CTX_B3 | sampling;
    true
}

/// Parses an `X-B3-TraceId` value into `out`'s trace id.
#[inline(always)]
pub fn parse_b3_trace_id(v: &[u8; VALUE_BYTES], len: u64, out: &mut RemoteContext) -> bool {
    let mut trace_id = [0u8; 16];
    let ok = match len {
        32 => hex::<0, 16>(v, &mut trace_id),
        16 => hex::<0, 8>(v, &mut trace_id[8..]),
        _ => false,
    };
    if ok {
        out.trace_id = trace_id;
        out.flags |= CTX_TRACE_ID | CTX_B3;
    }
    ok
}

/// Parses an `X-B3-SpanId` value into `out`'s parent span id.
#[inline(always)]
pub fn parse_b3_span_id(v: &[u8; VALUE_BYTES], len: u64, out: &mut RemoteContext) -> bool {
    let mut span_id = [0u8; 8];
    let ok = len == 16 && hex::<0, 8>(v, &mut span_id);
    if ok {
        out.span_id = span_id;
        out.flags |= CTX_SPAN_ID | CTX_B3;
    }
    ok
}

/// Parses an `X-B3-Sampled` value into `out`'s sampling decision.
#[inline(always)]
pub fn parse_b3_sampled(v: &[u8; VALUE_BYTES], len: u64, out: &mut RemoteContext) -> bool {
    match b3_sampling::<0>(v, len, true) {
        Some(bits) => {
            out.flags |= bits;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> ([u8; VALUE_BYTES], u64) {
        let mut v = [0u8; VALUE_BYTES];
        let n = s.len().min(VALUE_BYTES);
        v[..n].copy_from_slice(&s.as_bytes()[..n]);
        (v, s.len() as u64)
    }

    fn traceparent(s: &str) -> Option<RemoteContext> {
        let (v, len) = value(s);
        let mut out = RemoteContext::default();
        parse_traceparent(&v, len, &mut out).then_some(out)
    }

    fn b3(s: &str) -> Option<RemoteContext> {
        let (v, len) = value(s);
        let mut out = RemoteContext::default();
        parse_b3(&v, len, &mut out).then_some(out)
    }

    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    #[test]
    fn keys_are_classified_by_length_and_bytes() {
        for (i, key) in HEADER_KEYS.iter().enumerate() {
            assert!(key.len() <= KEY_MAX_LEN);
            assert!(is_key_len(key.len() as u64), "{i}");
            assert_eq!(classify(key.len() as u64, key_words(key)), Some(i));
        }
        assert_eq!(classify(10, key_words(b"Connection")), None);
        assert_eq!(classify(11, key_words(b"traceparent")), None);
    }

    #[test]
    fn valid_traceparents() {
        let ctx =
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(ctx.trace_id, TRACE);
        assert_eq!(ctx.span_id, SPAN);
        assert!(ctx.is_parent());
        assert_eq!(ctx.flags & CTX_SAMPLED, CTX_SAMPLED);
        let unsampled =
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").expect("valid");
        assert_eq!(unsampled.flags & (CTX_SAMPLED | CTX_DECIDED), CTX_DECIDED);
        // A later version with more fields.
        let later =
            traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever")
                .expect("valid");
        assert_eq!(later.trace_id, TRACE);
        assert!(traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09").is_some());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn b3_single_headers() {
        let full = b3("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1").expect("valid");
        assert_eq!((full.trace_id, full.span_id), (TRACE, SPAN));
        assert_eq!(
            full.flags & (CTX_SAMPLED | CTX_DECIDED),
            CTX_SAMPLED | CTX_DECIDED
        );
        let short = b3("a3ce929d0e0e4736-00f067aa0ba902b7").expect("valid");
        assert_eq!(&short.trace_id[8..], &TRACE[8..]);
        assert_eq!(short.trace_id[..8], [0; 8]);
        assert_eq!(short.flags & CTX_DECIDED, 0);
        let with_parent =
            b3("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-05e3ac9a4f6e3b90")
                .expect("valid");
        assert!(with_parent.is_parent());
        assert_eq!(with_parent.flags & CTX_SAMPLED, CTX_SAMPLED);
        let deny = b3("0").expect("valid");
        assert!(!deny.is_parent());
        assert_eq!(deny.flags & (CTX_SAMPLED | CTX_DECIDED), CTX_DECIDED);
        for bad in [
            "",
            "x",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-2",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7",
            "00000000000000000000000000000000-00f067aa0ba902b7",
        ] {
            assert_eq!(b3(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn b3_multiple_headers() {
        let mut ctx = RemoteContext::default();
        let (t, tl) = value("4bf92f3577b34da6a3ce929d0e0e4736");
        let (s, sl) = value("00f067aa0ba902b7");
        let (d, dl) = value("true");
        assert!(parse_b3_trace_id(&t, tl, &mut ctx));
        assert!(parse_b3_span_id(&s, sl, &mut ctx));
        assert!(parse_b3_sampled(&d, dl, &mut ctx));
        assert!(ctx.is_parent());
        assert_eq!((ctx.trace_id, ctx.span_id), (TRACE, SPAN));
        assert_eq!(ctx.flags & CTX_SAMPLED, CTX_SAMPLED);
        let (bad, bl) = value("00f067aa0ba902b");
        assert!(!parse_b3_span_id(&bad, bl, &mut RemoteContext::default()));
        let (no, nl) = value("yes");
        assert!(!parse_b3_sampled(&no, nl, &mut RemoteContext::default()));
    }
}
