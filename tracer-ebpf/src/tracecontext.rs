//! Extraction of the trace context a request carries (W3C `traceparent`, B3), from the
//! header values a [`crate::gomap::scan`] found. The parsers are
//! `tracer_common::propagation`'s; here their input is read from the target.
use tracer_common::propagation::{
    CTX_W3C, KEY_B3, KEY_B3_SAMPLED, KEY_B3_SPAN_ID, KEY_B3_TRACE_ID, KEY_TRACEPARENT,
    RemoteContext, VALUE_BYTES, parse_b3, parse_b3_sampled, parse_b3_span_id, parse_b3_trace_id,
    parse_traceparent,
};

use crate::{
    go::{Aligned, read_words, zero, zeroed},
    gomap::Matches,
};

/// Writes to `out` the trace context of a request whose header map scan found `m`: a valid
/// `traceparent` first, else a valid `b3`, else valid `X-B3-*` headers; all zero (a root
/// span, sampled locally) when none is valid. A lone `b3: 0` only says not to sample.
#[inline(always)]
pub fn extract(m: &Matches, out: &mut RemoteContext) {
    let keys = 1 << KEY_TRACEPARENT | 1 << KEY_B3 | 1 << KEY_B3_TRACE_ID;
    // SAFETY: `out` is a valid context; all zero is none.
    let clear = |out: &mut RemoteContext| unsafe { zero(out) };
    clear(out);
    if m.found & keys == 0 {
        return;
    }
    if parse(m, KEY_TRACEPARENT, out) && out.is_parent() {
        return;
    }
    clear(out);
    if parse(m, KEY_B3, out) {
        return;
    }
    clear(out);
    if parse(m, KEY_B3_TRACE_ID, out) && parse(m, KEY_B3_SPAN_ID, out) {
        // An invalid sampling header leaves the decision to us.
        let mut sampled = *out;
        if parse(m, KEY_B3_SAMPLED, &mut sampled) {
            *out = sampled;
        }
        if out.is_parent() {
            return;
        }
    }
    clear(out);
}

/// Whether `out` holds a W3C context (its `tracestate` is then kept).
#[inline(always)]
pub fn is_w3c(ctx: &RemoteContext) -> bool {
    ctx.flags & CTX_W3C != 0
}

/// Parses the first value of header `key` (a `KEY_*`) into `out`; false when absent,
/// unreadable or invalid.
#[inline(always)]
fn parse(m: &Matches, key: usize, out: &mut RemoteContext) -> bool {
    if m.found & (1 << key) == 0 {
        return false;
    }
    let Some([ptr, len]) = read_words(m.values[key & 7]) else {
        return false;
    };
    tracer_parse_value(key as u64, ptr, len, out as *mut RemoteContext) != 0
}

/// Reads the header value `{ptr, len}` of the target (its first [`VALUE_BYTES`]) and
/// parses it as header `key` (a `KEY_*`) into `out`; 1 when valid. A global function: the
/// verifier checks the parsers once, on their own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_parse_value(key: u64, ptr: u64, len: u64, out: *mut RemoteContext) -> u64 {
    if out.is_null() || ptr == 0 || len == 0 {
        return 0;
    }
    // SAFETY: `out` is non-null and points to the caller's `RemoteContext`.
    let out = unsafe { &mut *out };
    let mut v = core::mem::MaybeUninit::<Aligned<VALUE_BYTES>>::uninit();
    // SAFETY: zero bytes are a valid byte array.
    let v = &mut unsafe { zeroed(&mut v) }.0;
    let n = if len > VALUE_BYTES as u64 {
        VALUE_BYTES as u32
    } else {
        len as u32
    };
    // SAFETY: `n <= VALUE_BYTES` bytes of `v` are written; the helper never faults on `ptr`.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            v.as_mut_ptr() as *mut core::ffi::c_void,
            n,
            ptr as *const core::ffi::c_void,
        )
    };
    if rc < 0 {
        return 0;
    }
    let ok = match key as usize {
        KEY_TRACEPARENT => parse_traceparent(v, len, out),
        KEY_B3 => parse_b3(v, len, out),
        KEY_B3_TRACE_ID => parse_b3_trace_id(v, len, out),
        KEY_B3_SPAN_ID => parse_b3_span_id(v, len, out),
        KEY_B3_SAMPLED => parse_b3_sampled(v, len, out),
        _ => false,
    };
    u64::from(ok)
}
