//! Indexes of the kernel's per-CPU counters: every event the kernel programs lose or
//! cannot complete is counted under one of these reasons and reported by user space.

/// A ring-buffer reserve failed (the buffer was full): the span is lost.
pub const DROP_RINGBUF_FULL: u32 = 0;
/// A span end was seen with no recorded start (attached mid-request, or the in-flight
/// entry was evicted): the span is lost.
pub const DROP_UNMATCHED_END: u32 = 1;
/// Recording a span start in the in-flight map failed: the span is lost.
pub const DROP_INFLIGHT_FULL: u32 = 2;
/// A probe fired with no configuration for its attach cookie: the event is ignored.
pub const DROP_NO_CONFIG: u32 = 3;
/// Reading the goroutine id or a required pointer from the target failed.
pub const DROP_READ_FAILED: u32 = 4;
/// A start replaced an in-flight start of the same goroutine that never ended.
pub const DROP_START_REPLACED: u32 = 5;
/// Counters below this index count lost spans; the others count spans exported with
/// something missing.
pub const NUM_DROPS: u32 = 6;
/// A header map was larger than the bounded scan reads: header attributes may be missing.
pub const HEADERS_INCOMPLETE: u32 = 6;
/// A `traceparent` was written into an outgoing request.
pub const INJECTED: u32 = 7;
/// An outgoing request already carried `traceparent` (it decides the parent): not written.
pub const INJECT_PRESENT: u32 = 8;
/// An outgoing request's write buffer had no room for the header: not written.
pub const INJECT_NO_ROOM: u32 = 9;
/// An outgoing request was not written to because it was not provably safe or its span
/// was unknown: not a `*bufio.Writer`, a header map shared by requests in flight, a
/// failed read or write.
pub const INJECT_UNSURE: u32 = 10;
/// A process event (exec, exit) found the process ring buffer full: user space then
/// rescans `/proc`.
pub const PROCESS_EVENTS_LOST: u32 = 11;
/// A span of a trace the sampler leaves out: not sent to user space (not lost: unwanted).
pub const SAMPLED_OUT: u32 = 12;
/// An outgoing request's header was recorded but the request never passed the socket
/// program: its connection was not in the socket map yet (opened before its port was
/// watched, and not taken in yet), so it went out without `traceparent`. Counted when the
/// connection's next request (or, after the TTL, any other) takes the record's place,
/// and for the records left at exit.
pub const INJECT_UNSENT: u32 = 13;
/// Number of counters.
pub const NUM_COUNTERS: u32 = 14;

/// Stable names of the counters, indexed by their constant, for summaries and logs.
pub const COUNTER_NAMES: [&str; NUM_COUNTERS as usize] = [
    "ringbuf_full",
    "unmatched_end",
    "inflight_full",
    "no_config",
    "read_failed",
    "start_replaced",
    "headers_incomplete",
    "injected",
    "inject_skipped_present",
    "inject_skipped_no_room",
    "inject_skipped_unsure",
    "process_events_lost",
    "sampled_out_in_kernel",
    "inject_skipped_unsent",
];
