//! The maps shared by all probes, and the per-CPU counters of lost events.
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use tracer_common::{
    config::{MAX_CONFIGS, ProbeConfig, WINDOW_BYTES},
    counters::NUM_COUNTERS,
    event::IdState,
    inflight::{Evicted, SLOTS},
    probes::net_http::{
        client::{ClientInflight, HttpClientEvent},
        server::{HttpServerEvent, ServerInflight, SpanLink},
    },
};

/// Size of the ring buffer every probe writes finished events to.
const EVENTS_BYTES: u32 = 8 << 20;

/// Finished events for user space. Submitted without a wake-up; user space drains it on
/// a short timer.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Field offsets per traced binary, indexed by the attach cookie of each uprobe.
#[map]
pub static CONFIGS: Array<ProbeConfig> = Array::with_max_entries(MAX_CONFIGS, 0);

/// Flags of the slot arrays that user space scans when processes exit (`tracer-user`'s
/// `Loader::release_gone`): mappable into its memory, so that a scan reads memory instead
/// of making one system call per slot (Linux 5.5 or later; `array_map_mmap` in
/// <https://github.com/torvalds/linux/blob/v6.12/kernel/bpf/arraymap.c>).
const SCANNED: u32 = BPF_F_MMAPABLE;

/// Server requests whose handler is running, per goroutine (see `crate::slots`).
#[map]
pub static SERVER_INFLIGHT: Array<ServerInflight> = Array::with_max_entries(SLOTS, SCANNED);

/// In-flight server spans by goroutine id (`g.goid`), for client calls on goroutines they
/// start (see `crate::slots`).
#[map]
pub static SERVER_BY_GOID: Array<SpanLink> = Array::with_max_entries(SLOTS, SCANNED);

/// In-flight server spans by their request's context, for client calls whose request
/// carries it or a context derived from it (see `crate::slots`).
#[map]
pub static SERVER_BY_CONTEXT: Array<SpanLink> = Array::with_max_entries(SLOTS, SCANNED);

/// Goroutines started, directly or not, by goroutines serving requests, by goroutine id,
/// with the span they descend from (`--track-goroutines`; see `crate::slots`). Entries are
/// not removed when goroutines exit: they age out, and a link holds only while its server
/// span is in flight.
#[map]
pub static GOROUTINE_TREE: Array<SpanLink> = Array::with_max_entries(SLOTS, 0);

/// Server starts evicted from a full set of `SERVER_INFLIGHT` (see `crate::slots::begin`).
#[map]
pub static SERVER_EVICTED: Array<Evicted> = Array::with_max_entries(SLOTS, 0);

/// Client starts evicted from a full set of `CLIENT_INFLIGHT` (see `crate::slots::begin`).
#[map]
pub static CLIENT_EVICTED: Array<Evicted> = Array::with_max_entries(SLOTS, 0);

/// Client calls in flight, per goroutine (see `crate::slots`).
#[map]
pub static CLIENT_INFLIGHT: Array<ClientInflight> = Array::with_max_entries(SLOTS, SCANNED);

/// Words in one scratch window.
pub const WINDOW_WORDS: usize = WINDOW_BYTES as usize / 8;
/// Scratch windows per CPU: 0 the request (or, at goroutine creation, the new `g`), 1 a
/// map header or table (a client span's URL), 2 a map group.
pub const WINDOWS: u32 = 3;

/// Per-CPU buffers a struct of the target is copied into in one read, so its fields can
/// be picked out without one read each.
#[map]
pub static SCRATCH: PerCpuArray<[u64; WINDOW_WORDS]> = PerCpuArray::with_max_entries(WINDOWS, 0);

/// Per-CPU space where a server span's record is put together before it is copied to
/// [`EVENTS`] at its used size (a reserved record would have to take the largest size).
#[map]
pub static SERVER_RECORD: PerCpuArray<HttpServerEvent> = PerCpuArray::with_max_entries(1, 0);

/// The same for a client span's record.
#[map]
pub static CLIENT_RECORD: PerCpuArray<HttpClientEvent> = PerCpuArray::with_max_entries(1, 0);

/// Per binary (configuration slot): the address of the interned `User-Agent` header key
/// string last seen (Go's textproto interns common header keys), so that later requests
/// recognize the key by its address instead of reading its bytes.
#[map]
pub static USER_AGENT_KEY: Array<u64> = Array::with_max_entries(MAX_CONFIGS, 0);

/// Per-CPU id generator state, seeded by user space.
#[map]
pub static IDS: PerCpuArray<IdState> = PerCpuArray::with_max_entries(1, 0);

/// Counters of lost or incomplete events, indexed by `tracer_common::counters::*`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NUM_COUNTERS, 0);

/// Adds one to counter `index`.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer is to this CPU's slot of a per-CPU array; BPF programs on
        // one CPU do not run concurrently with each other for uprobes.
        unsafe { *counter += 1 };
    }
}

/// Client calls in flight by their request's header map, when injection is on: the
/// injection probe, on the goroutine that writes the request, finds the call's span here
/// (see `crate::slots`). An entry that two calls in flight share is marked and not used.
#[map]
pub static CLIENT_BY_HEADER: Array<SpanLink> = Array::with_max_entries(SLOTS, 0);
