//! Go `net/http` server spans; the wire types and the choice of functions are documented in
//! `tracer_common::probes::net_http::server`.
//!
//! - [`net_http_server_start`] at `net/http.serverHandler.ServeHTTP`: records the start,
//!   the `*Request` (4th integer argument, RDI) and the `*response` (data word of the
//!   `ResponseWriter` interface, RCX) per goroutine, and draws the span's ids.
//! - [`net_http_server_finish`] at `net/http.(*response).finishRequest`: emits the span.
//! - [`net_http_server_unwind`] at `net/http.(*conn).serve.func1` (the deferred closure
//!   that recovers handler panics): emits a span still in flight, as panicked or hijacked.
//! - [`net_http_server_panic`] at `runtime.gopanic`: marks an in-flight request as
//!   panicking; fires only when the program panics.
use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::uprobe, maps::Array, programs::ProbeContext};
use tracer_common::{
    config::ProbeConfig,
    counters::{DROP_UNMATCHED_END, SAMPLED_OUT},
    event::{GoroutineKey, KIND_NET_HTTP_SERVER, Piece},
    probes::net_http::server::{
        END_FINISHED, END_HIJACKED, END_PANICKED, HOST_LEN, HttpServerHead, INFLIGHT_PANICKING,
        METHOD_LEN, PATTERN_LEN, REMOTE_LEN, ServerInflight, SpanLink, TARGET_LEN, TEXT_LEN,
        TRACESTATE_LEN, USER_AGENT_LEN,
    },
    propagation::{KEY_TRACESTATE, KEY_USER_AGENT, RemoteContext},
};

use crate::{
    go::{
        Regs, Window, append, config, event_header, goroutine, new_ids, output, read_bytes,
        read_u64, read_words, zero, zeroed,
    },
    gomap::{self, Matches},
    maps::{
        CONFIGS, SERVER_BY_CONTEXT, SERVER_BY_GOID, SERVER_INFLIGHT, SERVER_RECORD, USER_AGENT_KEY,
        count,
    },
    slots::{self, Slot, keyed_slot},
    tracecontext,
};

#[uprobe]
pub fn net_http_server_start(ctx: ProbeContext) -> u32 {
    let _ = try_start(&ctx);
    0
}

#[uprobe]
pub fn net_http_server_finish(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, End::Finished);
    0
}

#[uprobe]
pub fn net_http_server_unwind(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, End::Unwinding);
    0
}

/// HTTP/2: the response writer's `handlerDone`, after a handler returned.
#[uprobe]
pub fn net_http_server_h2_finish(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, End::H2Finished);
    0
}

/// HTTP/2: the deferred closure of the handler's goroutine, which runs whether the handler
/// returned (then `handlerDone` ends the span) or panicked (then it ends here).
#[uprobe]
pub fn net_http_server_h2_unwind(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, End::H2Unwinding);
    0
}

#[uprobe]
pub fn net_http_server_panic(ctx: ProbeContext) -> u32 {
    let _ = try_mark_panic(&ctx);
    0
}

keyed_slot!(ServerInflight, g);
keyed_slot!(SpanLink, key);

/// What spans linked to a span take from it: its trace id and span id (their parent), its
/// `trace_flags`, and the `tracestate` its trace came with (a Go string `{ptr, len}` of
/// the server request, 0 when none), as recorded in link entries.
#[derive(Clone, Copy)]
pub struct Ids {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u32,
    pub tracestate: [u64; 2],
}

impl Ids {
    #[inline(always)]
    pub fn of_server(span: &ServerInflight) -> Self {
        Self {
            trace_id: span.trace_id,
            span_id: span.span_id,
            trace_flags: span.trace_flags,
            tracestate: span.tracestate,
        }
    }

    #[inline(always)]
    pub fn of_link(entry: &SpanLink) -> Self {
        Self {
            trace_id: entry.trace_id,
            span_id: entry.span_id,
            trace_flags: entry.trace_flags,
            tracestate: entry.tracestate,
        }
    }
}

fn try_start(ctx: &ProbeContext) -> Option<()> {
    let (slot_config, cfg) = config(ctx)?;
    let regs = Regs::of(ctx);
    let key = goroutine(&regs)?;
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let evicted = &crate::maps::SERVER_EVICTED;
    let slot = slots::begin(&SERVER_INFLIGHT, evicted, &key, now, |slot| {
        slot.req == regs.rdi
    })?;
    if slot.g != 0 {
        // A start that never ended (replaced, evicted or expired): its link entries go too,
        // or a later context or goroutine at the same key would find a span never exported.
        unlink(&SERVER_BY_GOID, slot.pid, slot.goid, &slot.span_id);
        unlink(&SERVER_BY_CONTEXT, slot.pid, slot.context, &slot.span_id);
    }
    slot.pid = key.pid;
    slot.config = slot_config;
    slot.start_ns = now;
    slot.req = regs.rdi;
    slot.resp = regs.rcx;
    new_ids(&mut slot.trace_id, &mut slot.span_id)?;
    // SAFETY: fields of the slot (one store per word: see `zero`).
    unsafe {
        zero(&raw mut slot.parent_span_id);
        zero(&raw mut slot.flags);
        zero(&raw mut slot.goid);
        zero(&raw mut slot.context);
        zero(&raw mut slot.user_agent);
        zero(&raw mut slot.tracestate);
    }
    // The request's headers, read now: the trace context decides the span's trace before
    // the handler calls anything.
    let request = Window::read(0, regs.rdi, cfg.req_window);
    let headers = request
        .as_ref()
        .and_then(|req| req.word(cfg.req_header))
        .unwrap_or(0);
    let mut remote = core::mem::MaybeUninit::uninit();
    // SAFETY: all zero is no context.
    let remote: &mut RemoteContext = unsafe { zeroed(&mut remote) };
    headers_of(cfg, slot_config, headers, slot, remote);
    if remote.is_parent() {
        slot.trace_id = remote.trace_id;
        slot.parent_span_id = remote.span_id;
    }
    slot.trace_flags = remote.flags;
    if cfg.link_goroutines != 0 {
        let ids = Ids::of_server(slot);
        if let Some(goid) = read_u64(regs.r14, cfg.g_goid)
            && link(&SERVER_BY_GOID, key.pid, goid, now, ids)
        {
            slot.goid = goid;
        }
        // The data word of the `Request.ctx` interface.
        if let Some(context) = request
            .as_ref()
            .and_then(|req| req.word(cfg.req_ctx.saturating_add(8)))
            && link(&SERVER_BY_CONTEXT, key.pid, context, now, ids)
        {
            slot.context = context;
        }
    }
    // Written last: the slot belongs to this goroutine from here on.
    slot.g = key.g;
    Some(())
}

/// Scans the request's header map `headers` once: records where the user agent (and, with
/// a W3C context, `tracestate`) is in `slot`, and writes the trace context the request
/// carries to `remote`.
#[inline(always)]
fn headers_of(
    cfg: &ProbeConfig,
    config_slot: u32,
    headers: u64,
    slot: &mut ServerInflight,
    remote: &mut RemoteContext,
) {
    let mut found = core::mem::MaybeUninit::uninit();
    // SAFETY: all zero is nothing found.
    let found: &mut Matches = unsafe { zeroed(&mut found) };
    let cache = USER_AGENT_KEY.get_ptr_mut(config_slot);
    // SAFETY: an array slot of this binary; a stale or racing value only costs a read.
    let known = cache.map_or(0, |c| unsafe { *c });
    gomap::scan(&cfg.header_map, headers, known, found);
    if found.found & (1 << KEY_USER_AGENT) != 0 {
        if let Some(cache) = cache
            && found.user_agent_key != known
        {
            // SAFETY: as above.
            unsafe { *cache = found.user_agent_key };
        }
        if let Some(header) = read_words(found.values[KEY_USER_AGENT & 7]) {
            slot.user_agent = header;
        }
    }
    tracecontext::extract(found, remote);
    if tracecontext::is_w3c(remote)
        && found.found & (1 << KEY_TRACESTATE) != 0
        && let Some(header) = read_words(found.values[KEY_TRACESTATE & 7])
    {
        slot.tracestate = header;
    }
}

/// The key of `key` (a goroutine id or a context address) in a link index (the slot
/// functions take goroutine keys).
#[inline(always)]
pub fn link_key(pid: u32, key: u64) -> GoroutineKey {
    GoroutineKey {
        pid,
        _pad: 0,
        g: key,
    }
}

/// Records the span with `ids` under `key` in `index`; false when `key` is 0 or there is
/// no slot. An entry of another span (evicted, or never ended) is simply replaced: it only
/// served parent links.
#[inline(always)]
pub fn link(index: &Array<SpanLink>, pid: u32, key: u64, now: u64, ids: Ids) -> bool {
    if key == 0 {
        return false;
    }
    let Some((entry, _)) = slots::claim(index, &link_key(pid, key), now) else {
        return false;
    };
    write_link(entry, pid, key, now, ids, 0);
    true
}

/// Fills a link index entry. Other CPUs read these entries (a goroutine's calls look up
/// the spans of other goroutines): the key goes first to 0, so that no lookup matches a
/// half-written entry, and is written last.
#[inline(always)]
pub fn write_link(entry: &mut SpanLink, pid: u32, key: u64, now: u64, ids: Ids, origin: u64) {
    entry.key = 0;
    entry.pid = pid;
    entry.start_ns = now;
    entry.trace_id = ids.trace_id;
    entry.span_id = ids.span_id;
    entry.trace_flags = ids.trace_flags;
    entry._pad2 = 0;
    entry.tracestate = ids.tracestate;
    entry.origin = origin;
    entry.key = key;
}

/// Removes the entry of `key` from `index` if it is still the one of span `span_id` (a
/// later span may have taken the key over).
#[inline(always)]
pub fn unlink(index: &Array<SpanLink>, pid: u32, key: u64, span_id: &[u8; 8]) {
    if key != 0
        && let Some(entry) = slots::find(index, &link_key(pid, key))
        && entry.span_id == *span_id
    {
        entry.release();
    }
}

fn try_mark_panic(ctx: &ProbeContext) -> Option<()> {
    config(ctx)?;
    let key = goroutine(&Regs::of(ctx))?;
    let slot = slots::find(&SERVER_INFLIGHT, &key)?;
    slot.flags |= INFLIGHT_PANICKING;
    Some(())
}

/// Where a server span ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// HTTP/1 `finishRequest`: the handler returned.
    Finished,
    /// HTTP/1 serve loop's deferred closure, where no span in flight is the normal case
    /// (the connection closed after its last request finished); one in flight panicked or
    /// hijacked the connection.
    Unwinding,
    /// HTTP/2 `handlerDone`: the handler returned.
    H2Finished,
    /// HTTP/2 handler goroutine's deferred closure: ends only a panicked span.
    H2Unwinding,
}

/// Ends the span in flight on this goroutine.
fn try_end(ctx: &ProbeContext, end: End) -> Option<()> {
    config(ctx)?;
    let key = goroutine(&Regs::of(ctx))?;
    let Some(slot) = slots::find(&SERVER_INFLIGHT, &key) else {
        if matches!(end, End::Finished | End::H2Finished)
            && !slots::was_evicted(&crate::maps::SERVER_EVICTED, &key)
        {
            count(DROP_UNMATCHED_END);
        }
        return None;
    };
    if end == End::H2Unwinding && slot.flags & INFLIGHT_PANICKING == 0 {
        // The handler returned: handlerDone, called from this closure, ends it.
        return None;
    }
    let unwinding = matches!(end, End::Unwinding | End::H2Unwinding);
    let start = *slot;
    slot.release();
    unlink(&SERVER_BY_GOID, key.pid, start.goid, &start.span_id);
    unlink(&SERVER_BY_CONTEXT, key.pid, start.context, &start.span_id);
    let end_reason = match (unwinding, start.flags & INFLIGHT_PANICKING != 0) {
        (false, _) => END_FINISHED,
        (true, true) => END_PANICKED,
        (true, false) => END_HIJACKED,
    };
    // The start probe's configuration describes the request and response objects.
    let cfg = CONFIGS.get(start.config)?;
    if !crate::sampling::sampled(cfg, &start.trace_id, start.trace_flags) {
        count(SAMPLED_OUT);
        return Some(());
    }
    let h2 = matches!(end, End::H2Finished | End::H2Unwinding);
    emit(&key, &start, cfg, end_reason, h2);
    Some(())
}

fn emit(key: &GoroutineKey, start: &ServerInflight, cfg: &ProbeConfig, end_reason: u8, h2: bool) {
    let Some(ev) = SERVER_RECORD.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's record space, used from here to the copy below; every byte copied
    // is written first (the head whole, the text up to its used size).
    let ev = unsafe { &mut *ev };
    let head = &mut ev.head;
    head.header = event_header::<HttpServerHead>(KIND_NET_HTTP_SERVER, key);
    head.start_ns = start.start_ns;
    // SAFETY: the helper has no preconditions.
    head.end_ns = unsafe { bpf_ktime_get_ns() };
    head.trace_id = start.trace_id;
    head.span_id = start.span_id;
    head.parent_span_id = start.parent_span_id;
    head.end_reason = end_reason;
    head._pad = 0;
    head.status = if h2 {
        // The writer holds a pointer to its state, which holds the status.
        read_u64(start.resp, cfg.h2_rws)
            .and_then(|state| read_u64(state, cfg.h2_status))
            .unwrap_or(0)
    } else {
        read_u64(start.resp, cfg.resp_status).unwrap_or(0)
    };
    head.trace_flags = start.trace_flags as u8;

    const TEXT: u32 = TEXT_LEN as u32;
    let text = ev.text.as_mut_ptr();
    // SAFETY (every append below): `text` is the record's text of TEXT_LEN bytes.
    let mut at = match Window::read(0, start.req, cfg.req_window) {
        Some(req) => unsafe {
            head.proto_major = req.word(cfg.req_proto_major).unwrap_or(0) as u16;
            head.proto_minor = req.word(cfg.req_proto_minor).unwrap_or(0) as u16;
            head.tls = (req.word(cfg.req_tls).unwrap_or(0) != 0) as u8;
            let at = request_line(
                head,
                text,
                req.string_header(cfg.req_method),
                req.string_header(cfg.req_request_uri),
            );
            let at =
                req.append::<{ HOST_LEN as u32 }, TEXT>(cfg.req_host, text, at, &mut head.host);
            let at = req.append::<{ REMOTE_LEN as u32 }, TEXT>(
                cfg.req_remote_addr,
                text,
                at,
                &mut head.remote_addr,
            );
            req.append::<{ PATTERN_LEN as u32 }, TEXT>(cfg.req_pattern, text, at, &mut head.pattern)
        },
        None => {
            head.proto_major = 0;
            head.proto_minor = 0;
            head.tls = 0;
            head.method = Piece::FAILED;
            head.target = Piece::FAILED;
            head.host = Piece::FAILED;
            head.remote_addr = Piece::FAILED;
            head.pattern = Piece::FAILED;
            0
        }
    };
    // Found by the start's header scan; the request holds them until it ends.
    let [ptr, len] = start.user_agent;
    at = unsafe {
        append::<{ USER_AGENT_LEN as u32 }, TEXT>(text, at, &mut head.user_agent, ptr, len)
    };
    let [ptr, len] = start.tracestate;
    at = unsafe {
        append::<{ TRACESTATE_LEN as u32 }, TEXT>(text, at, &mut head.tracestate, ptr, len)
    };
    output(ev, at, cfg);
}

/// Appends the method and the target (`None`: their headers were not readable) to the
/// text, which they start: with one read when the target follows the method in the
/// process, see [`HttpServerHead::method`]. Returns where the used text ends.
///
/// # Safety
/// `text` is a record's text of [`TEXT_LEN`] bytes.
#[inline(always)]
unsafe fn request_line(
    head: &mut HttpServerHead,
    text: *mut u8,
    method: Option<(u64, u64)>,
    target: Option<(u64, u64)>,
) -> u32 {
    const TEXT: u32 = TEXT_LEN as u32;
    if let (Some((m, m_len)), Some((t, t_len))) = (method, target)
        && m != 0
        && m_len > 0
        && m_len <= METHOD_LEN as u64
        && t == m + m_len + 1
    {
        let kept = if t_len > TARGET_LEN as u64 {
            TARGET_LEN as u64
        } else {
            t_len
        };
        const LINE: u32 = (METHOD_LEN + 1 + TARGET_LEN) as u32;
        // SAFETY: `m_len + 1 + kept <= LINE <= TEXT_LEN`.
        if !unsafe { read_bytes::<LINE>(text, m, m_len + 1 + kept) } {
            head.method = Piece::FAILED;
            head.target = Piece::FAILED;
            return 0;
        }
        head.method = Piece {
            len: m_len as u32,
            at: 0,
            kept: m_len as u16,
        };
        head.target = Piece {
            len: t_len.min(u64::from(u32::MAX)) as u32,
            at: (m_len + 1) as u16,
            kept: kept as u16,
        };
        return (m_len + 1 + kept) as u32;
    }
    let at = match method {
        // SAFETY: as the caller's.
        Some((m, len)) => unsafe {
            append::<{ METHOD_LEN as u32 }, TEXT>(text, 0, &mut head.method, m, len)
        },
        None => {
            head.method = Piece::FAILED;
            0
        }
    };
    match target {
        // SAFETY: as the caller's.
        Some((t, len)) => unsafe {
            append::<{ TARGET_LEN as u32 }, TEXT>(text, at, &mut head.target, t, len)
        },
        None => {
            head.target = Piece::FAILED;
            at
        }
    }
}
