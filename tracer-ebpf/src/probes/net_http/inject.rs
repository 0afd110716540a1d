//! `traceparent` injection into outgoing HTTP/1 requests, without writing into the
//! traced program: the header is inserted into the bytes the program sends, as it sends
//! them (an `sk_msg` program on its client sockets). Off with `--read-only`.
//!
//! 1. [`net_http_client_inject`] sits on `net/http.(*Request).write`'s first call to
//!    `net/http.Header.writeSubset` (the request's own headers), on the goroutine that
//!    writes the request (the transport's write loop): the request line, `Host` and
//!    `User-Agent` are in the connection's `*bufio.Writer`, the user's headers come next.
//!    Arguments: the header map in RAX, the `io.Writer` in RBX (itab) and RCX (data). It
//!    records, under the request's TCP connection (the process and its two ports), the line
//!    `Traceparent: 00-{trace}-{span}-{flags}\r\n`, where it goes (`n`, the bytes
//!    buffered so far) and the first bytes buffered (the request line), when all of this
//!    holds, else it counts why not:
//!    - the header map is the one of exactly one client call in flight (its span, the
//!      parent of the next hop, is found by the map: [`register`]);
//!    - the writer is a `*bufio.Writer` (its `io.Writer` itab's `Write` is
//!      `bufio.(*Writer).Write`) with no error and `n <= len(buf)`, writing to a
//!      transport connection that is a `*net.TCPConn` (see `ConnLayout`);
//!    - the request carries no `traceparent` of its own (which then decides the parent).
//! 2. [`tracer_socket_ops`] (cgroup `sock_ops`) puts the TCP connections that traced
//!    processes open to the port of a plain `http` call ([`watch`]) into [`SOCKETS`], so
//!    that
//! 3. [`tracer_send`] (`sk_msg`) sees what they send: a message on a connection with a
//!    recorded header that starts with exactly the recorded bytes is that request, written
//!    from the start of the buffer; the line is inserted at the recorded offset. Anything
//!    else passes unchanged. Keyed by connection, not by thread: the goroutine that
//!    records may send from another thread (Go moves goroutines between threads).
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        BPF_ANY, BPF_F_MMAPABLE, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_TCP_CONNECT_CB,
        sk_action::SK_PASS,
    },
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_get_socket_cookie, bpf_msg_pull_data},
    },
    macros::{map, sk_msg, sock_ops, uprobe},
    maps::{Array, LruHashMap, PerCpuArray, SockHash},
    programs::{ProbeContext, SkMsgContext, SockOpsContext},
};
use tracer_common::{
    config::ProbeConfig,
    counters::{INJECT_NO_ROOM, INJECT_PRESENT, INJECT_UNSENT, INJECT_UNSURE, INJECTED},
    inflight::SLOTS,
    probes::net_http::{
        client::{
            HOST_TAIL, INJECT_PREFIX, PENDING_BYTES, PendingHeader, TRACEPARENT_LINE,
            TRACESTATE_KEY, connection_key, host_port as port_of_tail,
        },
        server::TRACESTATE_LEN,
    },
    propagation::KEY_TRACEPARENT,
};

use crate::{
    go::{Regs, Window, config, read_bytes, read_u64, read_words, zeroed},
    gomap::{self, Matches},
    maps::{CLIENT_BY_HEADER, count},
    probes::net_http::server::{Ids, link_key, write_link},
    slots::{self, Claim, keyed_slot},
};

/// `SpanLink::origin` of an index entry that two calls in flight share: not used.
const SHARED: u64 = 1;
const PREFIX: &[u8; 16] = b"Traceparent: 00-";
const HEX: &[u8; 16] = b"0123456789abcdef";
/// Scratch window for the writer (see `crate::maps::SCRATCH`; the header scan uses 1, 2).
const WRITER_WINDOW: u32 = 0;
/// How long a recorded header waits for its request to be sent.
const PENDING_TTL_NS: u64 = 1_000_000_000;

/// The remote ports whose connections are watched, per process (key: pid << 32 | port):
/// those of the plain `http` calls its traced processes made (see [`watch`]). The least
/// recently used give way.
#[map]
static WATCHED_PORTS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);

/// Ports added to [`WATCHED_PORTS`], counted per CPU: when the sum changes, user space
/// looks for connections the process opened to a new port before it was watched (before
/// the tracer attached, most often) and adds them to [`SOCKETS`] itself.
#[map]
static PORTS_WATCHED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Scratch window for the call's URL (see `crate::maps::SCRATCH`); the client start keeps
/// the request in window 0.
const URL_WINDOW: u32 = 1;
/// The port of a `http` URL without one.
const HTTP_PORT: u64 = 80;

/// Makes sure the connections that `pid` opens to the port of a call whose request's
/// `URL` is `url` are watched, when that URL is plain `http` (at the call's start, before
/// it connects). Only those: every message a watched connection sends passes [`tracer_send`]
/// and the kernel's socket-map send path, so the process's other connections (`https`,
/// whose bytes are ciphertext where no header can go, databases, gRPC) are left alone.
#[inline(always)]
pub fn watch(cfg: &ProbeConfig, pid: u32, url: Option<u64>) {
    let Some(url) = url.and_then(|url| Window::read(URL_WINDOW, url, cfg.url_window)) else {
        return;
    };
    // net/http's transport sends `http` and `https`; of its schemes only `http` is 4
    // bytes long.
    let (Some((_, 4)), Some((host, len))) = (
        url.string_header(cfg.url_scheme),
        url.string_header(cfg.url_host),
    ) else {
        return;
    };
    let key = (u64::from(pid) << 32) | host_port(host, len).unwrap_or(HTTP_PORT);
    // SAFETY: a plain lookup; the value is not kept.
    if unsafe { WATCHED_PORTS.get(key) }.is_none()
        && WATCHED_PORTS.insert(key, 1, 0).is_ok()
        && let Some(added) = PORTS_WATCHED.get_ptr_mut(0)
    {
        // SAFETY: this CPU's slot of a per-CPU array. Should another program on this CPU
        // interleave, an increment is lost: harmless, user space only looks for a change.
        unsafe { *added += 1 };
    }
}

/// The port at the end of a URL's host, from its last [`HOST_TAIL`] bytes (see
/// [`port_of_tail`]); `None` when it names none.
#[inline(always)]
fn host_port(host: u64, len: u64) -> Option<u64> {
    let mut tail = [0u8; HOST_TAIL];
    let n = if len < HOST_TAIL as u64 {
        len
    } else {
        HOST_TAIL as u64
    };
    if n == 0 {
        return None;
    }
    // SAFETY: `tail` holds HOST_TAIL bytes and `n` is at most that.
    if !unsafe { read_bytes::<{ HOST_TAIL as u32 }>(tail.as_mut_ptr(), host + len - n, n) } {
        return None;
    }
    port_of_tail(&tail, n as usize)
}

/// A TCP port the kernel keeps in network order in the high half of a 32-bit field
/// (`bpf_sock_ops.remote_port`, `sk_msg_md.remote_port` on little-endian machines), or in
/// the low half.
#[inline(always)]
fn network_port(raw: u32) -> u64 {
    let port = if raw > 0xffff { raw >> 16 } else { raw };
    u64::from(u16::from_be(port as u16))
}

/// Connections being opened by those processes, by socket cookie.
#[map]
static CONNECTING: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);

/// Their established connections, whose messages [`tracer_send`] sees (by socket cookie).
#[map]
pub static SOCKETS: SockHash<u64> = SockHash::with_max_entries(65536, 0);

/// Headers waiting for their request to be sent, by connection (set-associative slots
/// keyed by the process and `connection_key`).
#[map]
static PENDING: Array<PendingHeader> = Array::with_max_entries(SLOTS, BPF_F_MMAPABLE);

keyed_slot!(PendingHeader, conn);

/// Records the client call with `ids` (its own span) under its request's header map
/// `header`; false when there is no entry. A map another call in flight already
/// registered is marked shared: neither call gets a header.
#[inline(always)]
pub fn register(pid: u32, header: u64, now: u64, ids: Ids) -> bool {
    if header == 0 {
        return false;
    }
    let Some((entry, claim)) = slots::claim(&CLIENT_BY_HEADER, &link_key(pid, header), now) else {
        return false;
    };
    let shared = matches!(claim, Claim::Own) && entry.span_id != ids.span_id;
    write_link(
        entry,
        pid,
        header,
        now,
        ids,
        if shared { SHARED } else { 0 },
    );
    true
}

#[uprobe]
pub fn net_http_client_inject(ctx: ProbeContext) -> u32 {
    let _ = try_inject(&ctx);
    0
}

/// The page size: load biases are multiples of it.
const PAGE: u64 = 4096;

fn try_inject(ctx: &ProbeContext) -> Option<()> {
    let (_, cfg) = config(ctx)?;
    if cfg.inject == 0 || cfg.bufio_write == 0 {
        return None;
    }
    let regs = Regs::of(ctx);
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    let Some(entry) = slots::find(&CLIENT_BY_HEADER, &link_key(pid, regs.rax)) else {
        // Not sent through net/http.send (no client span), or a header map replaced
        // after the call started (e.g. credentials from the URL): nothing to name.
        count(INJECT_UNSURE);
        return None;
    };
    if entry.origin == SHARED {
        count(INJECT_UNSURE);
        return None;
    }
    let ids = Ids::of_link(entry);
    // The writer's dynamic type, by its itab's first method (itab: inter, type, hash,
    // fun[0] at 24).
    let fun = first_method(regs.rbx);
    let bias = if cfg.inject_site == 0 {
        0
    } else {
        regs.rip.wrapping_sub(cfg.inject_site) & !(PAGE - 1)
    };
    if regs.rbx == 0 || regs.rcx == 0 || fun != Some(cfg.bufio_write.wrapping_add(bias)) {
        count(INJECT_UNSURE);
        return None;
    }
    let mut found = core::mem::MaybeUninit::uninit();
    // SAFETY: all zero is nothing found.
    let found: &mut Matches = unsafe { zeroed(&mut found) };
    gomap::scan(&cfg.header_map, regs.rax, 0, found);
    if found.found & (1 << KEY_TRACEPARENT) != 0 {
        count(INJECT_PRESENT);
        return None;
    }
    let Some(writer) = Window::read(WRITER_WINDOW, regs.rcx, cfg.bufio_window) else {
        count(INJECT_UNSURE);
        return None;
    };
    let (Some(err), Some(buf), Some(len), Some(n)) = (
        writer.word(cfg.bufio_err),
        writer.word(cfg.bufio_buf),
        writer.word(cfg.bufio_buf.saturating_add(8)),
        writer.word(cfg.bufio_n),
    ) else {
        count(INJECT_UNSURE);
        return None;
    };
    // The request line and at least `Host: ` must be buffered, from the buffer's start.
    if err != 0 || buf == 0 || n > len || n < INJECT_PREFIX as u64 {
        count(INJECT_NO_ROOM);
        return None;
    }
    let wr = (
        writer.word(cfg.conn.writer_wr),
        writer.word(cfg.conn.writer_wr.saturating_add(8)),
    );
    let Some(conn) = (match wr {
        (Some(itab), Some(data)) => connection(cfg, [itab, data], bias),
        _ => None,
    }) else {
        count(INJECT_UNSURE);
        return None;
    };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let key = link_key(pid, conn);
    let (pending, claim) = slots::claim(&PENDING, &key, now)?;
    match claim {
        // Another connection's header, never sent.
        Claim::Evicted => count(INJECT_UNSURE),
        // A header no request carried out (this connection's last one, or another's
        // expired): its connection did not pass the socket program when it was sent.
        _ if pending.conn != 0 => count(INJECT_UNSENT),
        _ => {}
    }
    pending.conn = 0;
    // SAFETY: the prefix buffer holds INJECT_PREFIX bytes.
    if !unsafe {
        read_bytes::<{ INJECT_PREFIX as u32 }>(
            pending.prefix.as_mut_ptr(),
            buf,
            INJECT_PREFIX as u64,
        )
    } {
        count(INJECT_UNSURE);
        return None;
    }
    traceparent_line(&mut pending.bytes, &ids, sampled(cfg, &ids));
    pending.len = TRACEPARENT_LINE as u32 + tracestate_line(&mut pending.bytes, &ids);
    pending.at = n as u32;
    pending.start_ns = now;
    pending.pid = pid;
    pending._pad = 0;
    // Written last: the entry is whole.
    pending.conn = conn;
    Some(())
}

/// The [`connection_key`] of the TCP connection a transport's writer writes to, from its
/// `wr` interface value (`itab`, `data`); `bias` is the process's load bias. See
/// `ConnLayout`.
#[inline(always)]
fn connection(cfg: &ProbeConfig, [itab, data]: [u64; 2], bias: u64) -> Option<u64> {
    let layout = &cfg.conn;
    // A `persistConnWriter` is one pointer, its `*persistConn`: the value's data word.
    if first_method(itab)? != layout.pconn_write.wrapping_add(bias) {
        return None;
    }
    let [itab, tcp] = read_words(data.wrapping_add(u64::from(layout.pconn_conn)))?;
    if first_method(itab)? != layout.tcp_close.wrapping_add(bias) {
        return None;
    }
    let fd = read_u64(tcp, layout.conn_fd)?;
    let [_, local] = read_words(fd.wrapping_add(u64::from(layout.fd_laddr)))?;
    let [_, remote] = read_words(fd.wrapping_add(u64::from(layout.fd_raddr)))?;
    Some(connection_key(
        read_u64(local, layout.addr_port)?,
        read_u64(remote, layout.addr_port)?,
    ))
}

/// The first method of an itab (`inter`, `type`, `hash`, then `fun[0]` at 24).
#[inline(always)]
fn first_method(itab: u64) -> Option<u64> {
    read_words(itab.wrapping_add(16)).map(|[_, fun]| fun)
}

/// Appends `Tracestate: {value}\r\n` after the `traceparent` line in `bytes` when the
/// trace came with a `tracestate` that fits and is printable ASCII (it is read from the
/// server request that brought it); returns the bytes added (0: none).
#[inline(never)]
fn tracestate_line(bytes: &mut [u8; PENDING_BYTES], ids: &Ids) -> u32 {
    const AT: usize = TRACEPARENT_LINE + TRACESTATE_KEY.len();
    let [ptr, len] = ids.tracestate;
    if ptr == 0 || len == 0 || len > TRACESTATE_LEN as u64 {
        return 0;
    }
    // SAFETY: `AT + TRACESTATE_LEN + 2 <= PENDING_BYTES` bytes of `bytes` are writable.
    if !unsafe {
        read_bytes::<{ TRACESTATE_LEN as u32 }>(bytes.as_mut_ptr().wrapping_add(AT), ptr, len)
    } {
        return 0;
    }
    for i in 0..TRACESTATE_LEN {
        if i as u64 >= len {
            break;
        }
        if !(0x20..=0x7e).contains(&bytes[AT + i]) {
            return 0;
        }
    }
    bytes[TRACEPARENT_LINE..AT].copy_from_slice(TRACESTATE_KEY);
    let end = AT + (len as usize & 0x1ff);
    match bytes.get_mut(end..end + 2) {
        Some(crlf) => crlf.copy_from_slice(b"\r\n"),
        None => return 0,
    }
    (TRACESTATE_KEY.len() + len as usize + 2) as u32
}

/// The trace's sampling decision (see [`crate::sampling`]).
#[inline(always)]
fn sampled(cfg: &ProbeConfig, ids: &Ids) -> bool {
    crate::sampling::sampled(cfg, &ids.trace_id, ids.trace_flags)
}

/// `Traceparent: 00-{trace id}-{span id}-{01|00}\r\n`.
#[inline(always)]
fn traceparent_line(line: &mut [u8; PENDING_BYTES], ids: &Ids, sampled: bool) {
    line[..16].copy_from_slice(PREFIX);
    for i in 0..16 {
        line[16 + 2 * i] = HEX[(ids.trace_id[i] >> 4) as usize & 15];
        line[17 + 2 * i] = HEX[(ids.trace_id[i] & 15) as usize];
    }
    line[48] = b'-';
    for i in 0..8 {
        line[49 + 2 * i] = HEX[(ids.span_id[i] >> 4) as usize & 15];
        line[50 + 2 * i] = HEX[(ids.span_id[i] & 15) as usize];
    }
    line[65] = b'-';
    line[66] = b'0';
    line[67] = if sampled { b'1' } else { b'0' };
    line[68] = b'\r';
    line[69] = b'\n';
}

/// Puts the TCP connections that traced processes open to a watched port ([`watch`])
/// into [`SOCKETS`]: noted at `connect()` (in the process), added once established.
#[sock_ops]
pub fn tracer_socket_ops(ctx: SockOpsContext) -> u32 {
    let op = ctx.op();
    if op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
        return 1;
    }
    // SAFETY: the helper reads the context's socket.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.ops as *mut c_void) };
    if op == BPF_SOCK_OPS_TCP_CONNECT_CB {
        let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let key = (u64::from(pid) << 32) | network_port(ctx.remote_port());
        // SAFETY: a plain lookup; the value is not kept.
        if unsafe { WATCHED_PORTS.get(key) }.is_some() {
            let _ = CONNECTING.insert(cookie, pid, 0);
        }
    } else if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
        // SAFETY: as above.
        if unsafe { CONNECTING.get(cookie) }.is_some() {
            let _ = CONNECTING.remove(cookie);
            let mut key = cookie;
            // SAFETY: `ops` is this program's context.
            let _ = SOCKETS.update(&mut key, unsafe { &mut *ctx.ops }, u64::from(BPF_ANY));
        }
    }
    1
}

/// Inserts the recorded header into the request sent on its connection, when the
/// message is that request (see the module's documentation). Always lets the message
/// through.
#[sk_msg]
pub fn tracer_send(ctx: SkMsgContext) -> u32 {
    let _ = try_send(&ctx);
    SK_PASS
}

fn try_send(ctx: &SkMsgContext) -> Option<()> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: `msg` is this program's context.
    let md = unsafe { &*ctx.msg };
    // The local port in host order; the remote one in network order.
    let conn = connection_key(u64::from(md.local_port), network_port(md.remote_port));
    let entry = slots::find(&PENDING, &link_key(pid, conn))?;
    // Used once, whatever follows.
    entry.conn = 0;
    let pending = *entry;
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.saturating_sub(pending.start_ns) > PENDING_TTL_NS {
        count(INJECT_UNSURE);
        return None;
    }
    let at = pending.at;
    if ctx.size() < at || at < INJECT_PREFIX as u32 {
        count(INJECT_UNSURE);
        return None;
    }
    // The message must start with the recorded bytes.
    // SAFETY: the helper only makes the first bytes directly readable.
    if unsafe { bpf_msg_pull_data(ctx.msg, 0, INJECT_PREFIX as u32, 0) } != 0 {
        count(INJECT_UNSURE);
        return None;
    }
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + INJECT_PREFIX > end {
        count(INJECT_UNSURE);
        return None;
    }
    // SAFETY: `data..data + INJECT_PREFIX` was checked against `data_end` just above.
    let head = unsafe { &*(data as *const [u8; INJECT_PREFIX]) };
    if *head != pending.prefix {
        count(INJECT_UNSURE);
        return None;
    }
    let len = pending.len;
    if !(TRACEPARENT_LINE as u32..=PENDING_BYTES as u32).contains(&len) {
        count(INJECT_UNSURE);
        return None;
    }
    if ctx.push_data(at, len, 0).is_err() {
        count(INJECT_UNSURE);
        return None;
    }
    // The push splits the message's buffer in three (before, the new bytes, after), and
    // the kernel hands TCP each piece on its own: with TCP_NODELAY (Go's default) that
    // is three segments, three receive wake-ups downstream. Joining the pieces (one copy
    // of what the request wrote so far) sends it whole; the second pull then only points
    // at the new bytes. On failure the new bytes, not written yet, are taken out again.
    let joined = (at + len + 1).min(ctx.size());
    // SAFETY: as above, for the inserted bytes.
    if unsafe { bpf_msg_pull_data(ctx.msg, 0, joined, 0) } != 0
        || unsafe { bpf_msg_pull_data(ctx.msg, at, at + len, 0) } != 0
    {
        let _ = ctx.pop_data(at, len, 0);
        count(INJECT_UNSURE);
        return None;
    }
    let (data, end) = (ctx.data(), ctx.data_end());
    for i in 0..PENDING_BYTES {
        if i as u32 >= len || data + i + 1 > end {
            break;
        }
        // SAFETY: `data + i` is below `data_end`, checked just above.
        unsafe { *((data + i) as *mut u8) = pending.bytes[i] };
    }
    count(INJECTED);
    Some(())
}
