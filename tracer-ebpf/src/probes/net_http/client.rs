//! Go `net/http` client spans; the wire types and the choice of probe points are documented
//! in `tracer_common::probes::net_http::client`.
//!
//! - [`net_http_client_start`] at the entry of `net/http.send`: records the start and the
//!   `*Request` (RAX) per goroutine, and the parent: the server span in flight on the same
//!   goroutine, else the one whose request context the request carries, else the one
//!   whose goroutine started this one (goroutine tree, `g.parentGoid`), else none.
//! - [`runtime_goroutine_created`] (`--track-goroutines`) at goroutine creation: see
//!   <https://go.dev/src/runtime/proc.go> (`newproc`, `runqput`).
//! - [`net_http_client_finish`] right after `(*Client).send`'s call to `send` returns:
//!   emits the span with the response status (`*Response` in RAX) and the error (RCX, RDI).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    config::ProbeConfig,
    counters::{DROP_UNMATCHED_END, SAMPLED_OUT},
    event::{GoroutineKey, KIND_NET_HTTP_CLIENT, Piece},
    probes::net_http::client::{
        CONTEXT_DEPTH, ClientInflight, HOST_LEN, HttpClientHead, LINK_CONTEXT, LINK_GOROUTINE,
        LINK_GOROUTINE_TREE, LINK_PARENT_GOROUTINE, LINK_ROOT, METHOD_LEN, PATH_LEN, QUERY_LEN,
        SCHEME_LEN, TEXT_LEN,
    },
    probes::net_http::server::SpanLink,
};

use crate::{
    go::{
        Regs, Window, config, event_header, goroutine, new_ids, output, read_u64, read_words, zero,
        zeroed,
    },
    maps::{
        CLIENT_BY_HEADER, CLIENT_INFLIGHT, CLIENT_RECORD, CONFIGS, GOROUTINE_TREE,
        SERVER_BY_CONTEXT, SERVER_BY_GOID, SERVER_INFLIGHT, count,
    },
    probes::net_http::{
        inject,
        server::{Ids, link_key, unlink, write_link},
    },
    slots::{self, Slot, keyed_slot},
};

/// Scratch windows (see `crate::maps::SCRATCH`): the request, then its URL.
const REQUEST_WINDOW: u32 = 0;
const URL_WINDOW: u32 = 1;

#[uprobe]
pub fn net_http_client_start(ctx: ProbeContext) -> u32 {
    let _ = try_start(&ctx);
    0
}

#[uprobe]
pub fn net_http_client_finish(ctx: ProbeContext) -> u32 {
    let _ = try_finish(&ctx);
    0
}

/// At `runtime.newproc.func1`'s call to `runtime.runqput(pp, newg, next)`, once per `go`
/// statement, on the system stack: the new goroutine is in RBX, with its id and its
/// creator's (`g.goid`, `g.parentGoid`, Go 1.21+) already set. Attached only with
/// `--track-goroutines`.
#[uprobe]
pub fn runtime_goroutine_created(ctx: ProbeContext) -> u32 {
    let _ = try_goroutine_created(&ctx);
    0
}

fn try_goroutine_created(ctx: &ProbeContext) -> Option<()> {
    let (_, cfg) = config(ctx)?;
    let newg = Regs::of(ctx).rbx;
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let window = cfg.g_goid.max(cfg.g_parent_goid).saturating_add(8);
    let g = Window::read(REQUEST_WINDOW, newg, window)?;
    let (goid, parent) = (g.word(cfg.g_goid)?, g.word(cfg.g_parent_goid)?);
    if goid == 0 || parent == 0 {
        return None;
    }
    // The creator serves a request, or descends from one that does.
    let (ids, origin) = if let Some(server) = slots::find(&SERVER_BY_GOID, &link_key(pid, parent)) {
        (Ids::of_link(server), parent)
    } else if let Some(ancestor) = slots::find(&GOROUTINE_TREE, &link_key(pid, parent)) {
        (Ids::of_link(ancestor), ancestor.origin)
    } else {
        return None;
    };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // Entries are never removed (goroutine exits are not followed): the oldest of a full
    // set is evicted, so each is dated by its goroutine's creation.
    let (entry, _) = slots::claim(&GOROUTINE_TREE, &link_key(pid, goid), now)?;
    write_link(entry, pid, goid, now, ids, origin);
    Some(())
}

/// Where the running goroutine stands in the goroutine tree of server spans.
enum Tree {
    /// Not followed, or the goroutine was not started under a request.
    Unknown,
    /// Started under a request that has ended: no parent (the goroutine outlived it).
    Ended,
    /// Started under this server span, still in flight.
    Under(Ids),
}

/// The running goroutine's place in the goroutine tree (`--track-goroutines`).
#[inline(always)]
fn goroutine_tree(cfg: &ProbeConfig, pid: u32, g: u64) -> Tree {
    if cfg.track_goroutines == 0 {
        return Tree::Unknown;
    }
    let Some(entry) =
        read_u64(g, cfg.g_goid).and_then(|goid| slots::find(&GOROUTINE_TREE, &link_key(pid, goid)))
    else {
        return Tree::Unknown;
    };
    // The serving goroutine may serve a later request by now: the span must be the same.
    match slots::find(&SERVER_BY_GOID, &link_key(pid, entry.origin)) {
        Some(server) if server.span_id == entry.span_id => Tree::Under(Ids::of_link(entry)),
        _ => Tree::Ended,
    }
}

keyed_slot!(ClientInflight, g);

fn try_start(ctx: &ProbeContext) -> Option<()> {
    let (slot_config, cfg) = config(ctx)?;
    let regs = Regs::of(ctx);
    let key = goroutine(&regs)?;
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let evicted = &crate::maps::CLIENT_EVICTED;
    let slot = slots::begin(&CLIENT_INFLIGHT, evicted, &key, now, |slot| {
        slot.req == regs.rax
    })?;
    slot.pid = key.pid;
    slot.config = slot_config;
    slot.start_ns = now;
    slot.req = regs.rax;
    new_ids(&mut slot.trace_id, &mut slot.span_id)?;
    (slot.parent_span_id, slot.link, slot.trace_flags) = ([0; 8], LINK_ROOT, 0);
    // With injection on, the request's words this start needs (its URL, header map and
    // context) come from one read of the request; without, only the context may be
    // needed, and only when the goroutine serves no request.
    let request = if cfg.inject != 0 {
        Window::read(REQUEST_WINDOW, regs.rax, cfg.req_window)
    } else {
        None
    };
    let mut tracestate = core::mem::MaybeUninit::uninit();
    // SAFETY: all zero is no `tracestate`.
    let tracestate: &mut [u64; 2] = unsafe { zeroed(&mut tracestate) };
    if let Some((ids, link)) = parent(cfg, &key, regs.rax, request.as_ref(), regs.r14) {
        (slot.trace_id, slot.parent_span_id, slot.link) = (ids.trace_id, ids.span_id, link);
        slot.trace_flags = ids.trace_flags as u8;
        *tracestate = ids.tracestate;
    }
    // SAFETY: a field of the slot (see `zero`).
    unsafe { zero(&raw mut slot._pad) };
    slot.header = 0;
    if cfg.inject != 0 {
        let word = |offset| request.as_ref().and_then(|req| req.word(offset));
        inject::watch(cfg, key.pid, word(cfg.req_url));
        // Where the goroutine that writes the request will find this call's span.
        let ids = Ids {
            trace_id: slot.trace_id,
            span_id: slot.span_id,
            trace_flags: u32::from(slot.trace_flags),
            tracestate: *tracestate,
        };
        if let Some(header) = word(cfg.req_header)
            && inject::register(key.pid, header, now, ids)
        {
            slot.header = header;
        }
    }
    // Written last: the slot belongs to this goroutine from here on.
    slot.g = key.g;
    Some(())
}

/// The server span in flight that a call starting now on goroutine `key` (`runtime.g`
/// `g`) with the request at `req` (`request`: its window, when read) belongs to, and how
/// it was found (`LINK_*`), in the order of the README: the same goroutine, the request's
/// context, the goroutine tree, the goroutine's creator.
#[inline(always)]
fn parent(
    cfg: &ProbeConfig,
    key: &GoroutineKey,
    req: u64,
    request: Option<&Window>,
    g: u64,
) -> Option<(Ids, u8)> {
    if let Some(server) = slots::find(&SERVER_INFLIGHT, key) {
        return Some((Ids::of_server(server), LINK_GOROUTINE));
    }
    // The context's data word (`ctx` is an interface: itab, then data).
    let context = match request {
        Some(request) => request.word(cfg.req_ctx.saturating_add(8)),
        None => read_u64(req, cfg.req_ctx.saturating_add(8)),
    };
    if let Some(found) = context.and_then(|context| by_context(key.pid, context)) {
        return Some((Ids::of_link(found), LINK_CONTEXT));
    }
    match goroutine_tree(cfg, key.pid, g) {
        Tree::Under(ids) => return Some((ids, LINK_GOROUTINE_TREE)),
        // The tree knows better than the creator's id, whose goroutine may be serving a
        // later request by now.
        Tree::Ended => return None,
        Tree::Unknown => {}
    }
    let creator = read_u64(g, cfg.g_parent_goid).filter(|&goid| goid != 0)?;
    let found = slots::find(&SERVER_BY_GOID, &link_key(key.pid, creator))?;
    Some((Ids::of_link(found), LINK_PARENT_GOROUTINE))
}

/// The in-flight server span whose request's context is `context` (the data word of a
/// request's `ctx`), or one of its first [`CONTEXT_DEPTH`] parents. Every context type of
/// the standard library that has a parent embeds it first
/// (<https://go.dev/src/context/context.go>: `cancelCtx`, `timerCtx`, `valueCtx`,
/// `withoutCancelCtx`, `afterFuncCtx`): its data word is the parent's. The root contexts
/// (`context.Background()`, `TODO()`) have no fields: their data word points to the
/// runtime's zero-valued `zerobase`, where the walk reads a nil itab and stops. A context
/// of another type ends the walk with a failed read, a nil word or a lookup that finds
/// nothing; entries exist only while their server span is in flight, so a goroutine that
/// outlives its request starts traces of its own.
#[inline(always)]
fn by_context(pid: u32, mut context: u64) -> Option<&'static mut SpanLink> {
    for _ in 0..CONTEXT_DEPTH {
        if context == 0 {
            return None;
        }
        if let Some(found) = slots::find(&SERVER_BY_CONTEXT, &link_key(pid, context)) {
            return Some(found);
        }
        let [itab, data] = read_words(context)?;
        if itab == 0 {
            return None;
        }
        context = data;
    }
    None
}

fn try_finish(ctx: &ProbeContext) -> Option<()> {
    config(ctx)?;
    let regs = Regs::of(ctx);
    let key = goroutine(&regs)?;
    let Some(slot) = slots::find(&CLIENT_INFLIGHT, &key) else {
        if !slots::was_evicted(&crate::maps::CLIENT_EVICTED, &key) {
            count(DROP_UNMATCHED_END);
        }
        return None;
    };
    let start = *slot;
    slot.release();
    unlink(&CLIENT_BY_HEADER, key.pid, start.header, &start.span_id);
    let cfg = CONFIGS.get(start.config)?;
    if !crate::sampling::sampled(cfg, &start.trace_id, u32::from(start.trace_flags)) {
        count(SAMPLED_OUT);
        return Some(());
    }
    // `send`'s results: the response, then the error's itab and data.
    emit(&key, &start, cfg, regs.rax, regs.rcx, regs.rdi);
    Some(())
}

fn emit(
    key: &GoroutineKey,
    start: &ClientInflight,
    cfg: &ProbeConfig,
    response: u64,
    err_itab: u64,
    err_data: u64,
) {
    let Some(ev) = CLIENT_RECORD.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's record space, used from here to the copy below; every byte copied
    // is written first (the head whole, the text up to its used size).
    let ev = unsafe { &mut *ev };
    let head = &mut ev.head;
    head.header = event_header::<HttpClientHead>(KIND_NET_HTTP_CLIENT, key);
    head.start_ns = start.start_ns;
    // SAFETY: the helper has no preconditions.
    head.end_ns = unsafe { bpf_ktime_get_ns() };
    head.trace_id = start.trace_id;
    head.span_id = start.span_id;
    head.parent_span_id = start.parent_span_id;
    head.link = start.link;
    head.trace_flags = start.trace_flags;
    // SAFETY: a field of the record (see `zero`).
    unsafe { zero(&raw mut head._pad) };
    head.err_itab = err_itab;
    head.err_data = err_data;
    head.status = if response != 0 && err_itab == 0 {
        read_u64(response, cfg.resp_status_code).unwrap_or(0)
    } else {
        0
    };
    const TEXT: u32 = TEXT_LEN as u32;
    let text = ev.text.as_mut_ptr();
    // SAFETY (every append below): `text` is the record's text of TEXT_LEN bytes, which
    // has room for each string at its limit, in this order.
    let at = match Window::read(REQUEST_WINDOW, start.req, cfg.req_window) {
        Some(req) => unsafe {
            let at = req.append::<{ METHOD_LEN as u32 }, TEXT>(
                cfg.req_method,
                text,
                0,
                &mut head.method,
            );
            let url = req.word(cfg.req_url).unwrap_or(0);
            match Window::read(URL_WINDOW, url, cfg.url_window) {
                Some(url) => {
                    let at = url.append::<{ SCHEME_LEN as u32 }, TEXT>(
                        cfg.url_scheme,
                        text,
                        at,
                        &mut head.scheme,
                    );
                    let at = url.append::<{ HOST_LEN as u32 }, TEXT>(
                        cfg.url_host,
                        text,
                        at,
                        &mut head.host,
                    );
                    let at = url.append::<{ PATH_LEN as u32 }, TEXT>(
                        cfg.url_path,
                        text,
                        at,
                        &mut head.path,
                    );
                    url.append::<{ QUERY_LEN as u32 }, TEXT>(
                        cfg.url_raw_query,
                        text,
                        at,
                        &mut head.query,
                    )
                }
                None => {
                    head.scheme = Piece::FAILED;
                    head.host = Piece::FAILED;
                    head.path = Piece::FAILED;
                    head.query = Piece::FAILED;
                    at
                }
            }
        },
        None => {
            head.method = Piece::FAILED;
            head.scheme = Piece::FAILED;
            head.host = Piece::FAILED;
            head.path = Piece::FAILED;
            head.query = Piece::FAILED;
            0
        }
    };
    output(ev, at, cfg);
}
