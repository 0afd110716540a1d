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
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    config::ProbeConfig,
    counters::{DROP_INFLIGHT_FULL, DROP_RINGBUF_FULL, DROP_START_REPLACED, DROP_UNMATCHED_END},
    event::{EventHeader, GoroutineKey, KIND_NET_HTTP_SERVER, WIRE_VERSION},
    probes::net_http::server::{
        END_FINISHED, END_HIJACKED, END_PANICKED, HttpServerEvent, INFLIGHT_PANICKING,
        ServerInflight,
    },
};

use crate::{
    go::{Regs, config, goroutine, random_id, read_string, read_u64},
    maps::{CONFIGS, EVENTS, SERVER_INFLIGHT, count},
};

#[uprobe]
pub fn net_http_server_start(ctx: ProbeContext) -> u32 {
    let _ = try_start(&ctx);
    0
}

#[uprobe]
pub fn net_http_server_finish(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, false);
    0
}

#[uprobe]
pub fn net_http_server_unwind(ctx: ProbeContext) -> u32 {
    let _ = try_end(&ctx, true);
    0
}

#[uprobe]
pub fn net_http_server_panic(ctx: ProbeContext) -> u32 {
    let _ = try_mark_panic(&ctx);
    0
}

fn try_start(ctx: &ProbeContext) -> Option<()> {
    let (slot, cfg) = config(ctx)?;
    let regs = Regs::of(ctx);
    let key = goroutine(&regs, cfg)?;
    if let Some(previous) = SERVER_INFLIGHT.get_ptr(key) {
        // SAFETY: map values stay valid while the program runs.
        if unsafe { (*previous).req } == regs.rdi {
            // The same call seen again (a probe on the stack check fires again after the
            // stack grew): keep the first start.
            return Some(());
        }
        count(DROP_START_REPLACED);
    }
    let mut start = ServerInflight {
        // SAFETY: the helper has no preconditions.
        start_ns: unsafe { bpf_ktime_get_ns() },
        req: regs.rdi,
        resp: regs.rcx,
        config: slot,
        ..ServerInflight::default()
    };
    random_id(&mut start.trace_id);
    random_id(&mut start.span_id);
    if SERVER_INFLIGHT.insert(key, start, 0).is_err() {
        count(DROP_INFLIGHT_FULL);
    }
    Some(())
}

fn try_mark_panic(ctx: &ProbeContext) -> Option<()> {
    let (_, cfg) = config(ctx)?;
    let key = goroutine(&Regs::of(ctx), cfg)?;
    let start = SERVER_INFLIGHT.get_ptr_mut(key)?;
    // SAFETY: map values stay valid while the program runs; only this goroutine's
    // probes touch this entry, and a goroutine runs on one thread at a time.
    unsafe { (*start).flags |= INFLIGHT_PANICKING };
    Some(())
}

/// Ends the span in flight on this goroutine. `unwinding`: called from the serve loop's
/// deferred closure, where no span in flight is the normal case (the connection closed
/// after its last request finished).
fn try_end(ctx: &ProbeContext, unwinding: bool) -> Option<()> {
    let (_, cfg) = config(ctx)?;
    let key = goroutine(&Regs::of(ctx), cfg)?;
    let Some(start) = SERVER_INFLIGHT.get_ptr(key) else {
        if !unwinding {
            count(DROP_UNMATCHED_END);
        }
        return None;
    };
    // SAFETY: map values stay valid while the program runs.
    let start = unsafe { *start };
    let _ = SERVER_INFLIGHT.remove(key);
    let end_reason = match (unwinding, start.flags & INFLIGHT_PANICKING != 0) {
        (false, _) => END_FINISHED,
        (true, true) => END_PANICKED,
        (true, false) => END_HIJACKED,
    };
    // The start probe's configuration describes the request and response objects.
    let cfg = CONFIGS.get(start.config)?;
    emit(&key, &start, cfg, end_reason);
    Some(())
}

fn emit(key: &GoroutineKey, start: &ServerInflight, cfg: &ProbeConfig, end_reason: u8) {
    let Some(mut entry) = EVENTS.reserve::<HttpServerEvent>(0) else {
        count(DROP_RINGBUF_FULL);
        return;
    };
    // SAFETY: the reserved record is exclusively ours until submitted; every field user
    // space reads is written below (string bytes beyond their copied length are not read).
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = EventHeader {
        kind: KIND_NET_HTTP_SERVER,
        version: WIRE_VERSION,
        size: core::mem::size_of::<HttpServerEvent>() as u32,
        pid: key.pid,
        tid: bpf_get_current_pid_tgid() as u32,
        goid: key.goid,
    };
    ev.start_ns = start.start_ns;
    // SAFETY: the helper has no preconditions.
    ev.end_ns = unsafe { bpf_ktime_get_ns() };
    ev.trace_id = start.trace_id;
    ev.span_id = start.span_id;
    ev.parent_span_id = start.parent_span_id;
    ev.end_reason = end_reason;
    ev._pad = [0; 2];
    ev.status = read_u64(start.resp, cfg.resp_status).unwrap_or(0);

    let req = start.req;
    ev.proto_major = read_u64(req, cfg.req_proto_major).unwrap_or(0) as u16;
    ev.proto_minor = read_u64(req, cfg.req_proto_minor).unwrap_or(0) as u16;
    ev.tls = (read_u64(req, cfg.req_tls).unwrap_or(0) != 0) as u8;
    read_string(&mut ev.method, req, cfg.req_method);
    read_string(&mut ev.host, req, cfg.req_host);
    read_string(&mut ev.remote_addr, req, cfg.req_remote_addr);
    read_string(&mut ev.pattern, req, cfg.req_pattern);
    let url = read_u64(req, cfg.req_url).unwrap_or(0);
    read_string(&mut ev.path, url, cfg.url_path);
    if cfg.capture_query != 0 {
        read_string(&mut ev.query, url, cfg.url_raw_query);
    } else {
        ev.query.len = 0;
        ev.query.flags = 0;
    }
    // Submitted without waking the reader: user space drains the buffer on a timer.
    entry.submit(aya_ebpf::bindings::BPF_RB_NO_WAKEUP as u64);
}
