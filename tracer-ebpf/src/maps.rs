//! The maps shared by all probes, and the per-CPU counters of lost events.
use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    config::{MAX_CONFIGS, ProbeConfig},
    counters::NUM_COUNTERS,
    event::GoroutineKey,
    probes::net_http::server::ServerInflight,
};

/// Size of the ring buffer every probe writes finished events to.
const EVENTS_BYTES: u32 = 8 << 20;
/// In-flight server requests tracked at once; the least recently used are evicted (a
/// handler that never returns must not fill the map for ever).
const SERVER_INFLIGHT_ENTRIES: u32 = 16384;

/// Finished events for user space. Submitted without a wake-up; user space drains it on
/// a short timer.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Field offsets per traced binary, indexed by the attach cookie of each uprobe.
#[map]
pub static CONFIGS: Array<ProbeConfig> = Array::with_max_entries(MAX_CONFIGS, 0);

/// Server requests whose handler is running, per goroutine.
#[map]
pub static SERVER_INFLIGHT: LruHashMap<GoroutineKey, ServerInflight> =
    LruHashMap::with_max_entries(SERVER_INFLIGHT_ENTRIES, 0);

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
