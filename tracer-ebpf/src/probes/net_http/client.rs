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
    counters::{DROP_INFLIGHT_FULL, DROP_RINGBUF_FULL, DROP_START_REPLACED, DROP_UNMATCHED_END},
    event::{EventHeader, GoroutineKey, KIND_NET_HTTP_CLIENT, WIRE_VERSION},
    probes::net_http::client::{
        CONTEXT_DEPTH, ClientInflight, HttpClientEvent, LINK_CONTEXT, LINK_GOROUTINE,
        LINK_GOROUTINE_TREE, LINK_PARENT_GOROUTINE, LINK_ROOT,
    },
    probes::net_http::server::SpanLink,
};

use crate::{
    go::{Regs, Window, config, goroutine, new_ids, read_u64, read_words, string_failed},
    maps::{
        CLIENT_INFLIGHT, CONFIGS, EVENTS, GOROUTINE_TREE, SERVER_BY_CONTEXT, SERVER_BY_GOID,
        SERVER_INFLIGHT, count,
    },
    probes::net_http::server::{link_key, write_link},
    slots::{self, Claim, Slot},
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
    // SAFETY: pt_regs of this probe hit.
    let newg = unsafe { (*ctx.regs).rbx };
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let window = cfg.g_goid.max(cfg.g_parent_goid).saturating_add(8);
    let g = Window::read(REQUEST_WINDOW, newg, window)?;
    let (goid, parent) = (g.word(cfg.g_goid)?, g.word(cfg.g_parent_goid)?);
    if goid == 0 || parent == 0 {
        return None;
    }
    // The creator serves a request, or descends from one that does.
    let (ids, origin) = if let Some(server) = slots::find(&SERVER_BY_GOID, &link_key(pid, parent)) {
        ((server.trace_id, server.span_id), parent)
    } else if let Some(ancestor) = slots::find(&GOROUTINE_TREE, &link_key(pid, parent)) {
        ((ancestor.trace_id, ancestor.span_id), ancestor.origin)
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
    Under([u8; 16], [u8; 8]),
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
        Some(server) if server.span_id == entry.span_id => {
            Tree::Under(entry.trace_id, entry.span_id)
        }
        _ => Tree::Ended,
    }
}

impl Slot for ClientInflight {
    fn owner(&self) -> (u32, u64) {
        (self.pid, self.g)
    }
    fn started(&self) -> u64 {
        self.start_ns
    }
    fn release(&mut self) {
        self.g = 0;
    }
}

fn try_start(ctx: &ProbeContext) -> Option<()> {
    let (slot_config, cfg) = config(ctx)?;
    let regs = Regs::of(ctx);
    let key = goroutine(&regs)?;
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some((slot, claim)) = slots::claim(&CLIENT_INFLIGHT, &key, now) else {
        count(DROP_INFLIGHT_FULL);
        return None;
    };
    match claim {
        // The same call seen again (a probe on the stack check fires again after the stack
        // grew): keep the first start.
        Claim::Own if slot.req == regs.rax => return Some(()),
        Claim::Own | Claim::Evicted => count(DROP_START_REPLACED),
        Claim::Free => {}
    }
    slot.pid = key.pid;
    slot.config = slot_config;
    slot.start_ns = now;
    slot.req = regs.rax;
    new_ids(&mut slot.trace_id, &mut slot.span_id)?;
    slot.parent_span_id = [0; 8];
    slot.link = LINK_ROOT;
    if let Some(server) = slots::find(&SERVER_INFLIGHT, &key) {
        slot.trace_id = server.trace_id;
        slot.parent_span_id = server.span_id;
        slot.link = LINK_GOROUTINE;
    } else if let Some(found) = by_context(cfg, key.pid, regs.rax) {
        slot.trace_id = found.trace_id;
        slot.parent_span_id = found.span_id;
        slot.link = LINK_CONTEXT;
    } else {
        match goroutine_tree(cfg, key.pid, regs.r14) {
            Tree::Under(trace_id, span_id) => {
                slot.trace_id = trace_id;
                slot.parent_span_id = span_id;
                slot.link = LINK_GOROUTINE_TREE;
            }
            // The tree knows better than the creator's id, whose goroutine may be
            // serving a later request by now.
            Tree::Ended => {}
            Tree::Unknown => {
                if let Some(parent) = read_u64(regs.r14, cfg.g_parent_goid)
                    && parent != 0
                    && let Some(found) = slots::find(&SERVER_BY_GOID, &link_key(key.pid, parent))
                {
                    slot.trace_id = found.trace_id;
                    slot.parent_span_id = found.span_id;
                    slot.link = LINK_PARENT_GOROUTINE;
                }
            }
        }
    }
    slot._pad = [0; 7];
    // Written last: the slot belongs to this goroutine from here on.
    slot.g = key.g;
    Some(())
}

/// The in-flight server span whose request's context is the context of the request at
/// `req`, or one of its first [`CONTEXT_DEPTH`] parents. Every context type of the standard
/// library that has a parent embeds it first (<https://go.dev/src/context/context.go>:
/// `cancelCtx`, `timerCtx`, `valueCtx`,
/// `withoutCancelCtx`, `afterFuncCtx`): its data word is the parent's. The root contexts
/// (`context.Background()`, `TODO()`) have no fields: their data word points to the
/// runtime's zero-valued `zerobase`, where the walk reads a nil itab and stops. A context
/// of another type ends the walk with a failed read, a nil word or a lookup that finds
/// nothing; entries exist only while their server span is in flight, so a goroutine that
/// outlives its request starts traces of its own.
#[inline(always)]
fn by_context(cfg: &ProbeConfig, pid: u32, req: u64) -> Option<&'static mut SpanLink> {
    let mut context = read_u64(req, cfg.req_ctx.saturating_add(8))?;
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
        count(DROP_UNMATCHED_END);
        return None;
    };
    let start = *slot;
    slot.release();
    // SAFETY: pt_regs of this probe hit; RBX..RDI hold `send`'s results here.
    let (response, err_itab, err_data) = unsafe {
        let raw = &*ctx.regs;
        (raw.rax, raw.rcx, raw.rdi)
    };
    let cfg = CONFIGS.get(start.config)?;
    emit(&key, &start, cfg, response, err_itab, err_data);
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
    let Some(mut entry) = EVENTS.reserve::<HttpClientEvent>(0) else {
        count(DROP_RINGBUF_FULL);
        return;
    };
    // SAFETY: the reserved record is exclusively ours until submitted; every field user
    // space reads is written below (string bytes beyond their copied length are not read).
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = EventHeader {
        kind: KIND_NET_HTTP_CLIENT,
        version: WIRE_VERSION,
        size: core::mem::size_of::<HttpClientEvent>() as u32,
        pid: key.pid,
        tid: bpf_get_current_pid_tgid() as u32,
        g: key.g,
    };
    ev.start_ns = start.start_ns;
    // SAFETY: the helper has no preconditions.
    ev.end_ns = unsafe { bpf_ktime_get_ns() };
    ev.trace_id = start.trace_id;
    ev.span_id = start.span_id;
    ev.parent_span_id = start.parent_span_id;
    ev.link = start.link;
    ev._pad = [0; 7];
    ev.err_itab = err_itab;
    ev.err_data = err_data;
    ev.status = if response != 0 && err_itab == 0 {
        read_u64(response, cfg.resp_status_code).unwrap_or(0)
    } else {
        0
    };
    match Window::read(REQUEST_WINDOW, start.req, cfg.req_window) {
        Some(req) => {
            req.string(&mut ev.method, cfg.req_method);
            let url = req.word(cfg.req_url).unwrap_or(0);
            match Window::read(URL_WINDOW, url, cfg.url_window) {
                Some(url) => {
                    url.string(&mut ev.scheme, cfg.url_scheme);
                    url.string(&mut ev.host, cfg.url_host);
                    url.string(&mut ev.path, cfg.url_path);
                    url.string(&mut ev.query, cfg.url_raw_query);
                }
                None => {
                    string_failed(&mut ev.scheme);
                    string_failed(&mut ev.host);
                    string_failed(&mut ev.path);
                    string_failed(&mut ev.query);
                }
            }
        }
        None => {
            string_failed(&mut ev.method);
            string_failed(&mut ev.scheme);
            string_failed(&mut ev.host);
            string_failed(&mut ev.path);
            string_failed(&mut ev.query);
        }
    }
    entry.submit(aya_ebpf::bindings::BPF_RB_NO_WAKEUP as u64);
}
