//! Process lifecycle (see `tracer_common::process`): raw tracepoints on every exec and
//! every exit, loaded only by the attach modes that follow processes. Raw tracepoints
//! are attached by name, with no tracefs.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::RingBuf,
    programs::RawTracePointContext,
};
use tracer_common::{
    counters::PROCESS_EVENTS_LOST,
    process::{PROCESS_EVENTS_BYTES, PROCESS_EXEC, PROCESS_EXIT, ProcessEvent},
};

use crate::maps::count;

/// Exec and exit events for user space.
#[map]
pub static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(PROCESS_EVENTS_BYTES, 0);

/// A process replaced its program: the current task is the process, running the new one.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn tracer_process_exec(_ctx: RawTracePointContext) -> i32 {
    send(PROCESS_EXEC, (bpf_get_current_pid_tgid() >> 32) as u32);
    0
}

/// A task exited: reported when it is a process's main thread.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn tracer_process_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let (pid, tid) = ((id >> 32) as u32, id as u32);
    if pid == tid {
        send(PROCESS_EXIT, pid);
    }
    0
}

#[inline(always)]
fn send(kind: u32, pid: u32) {
    // SAFETY: the helper has no preconditions.
    let time_ns = unsafe { bpf_ktime_get_ns() };
    if PROCESS_EVENTS
        .output::<ProcessEvent>(ProcessEvent { kind, pid, time_ns }, 0)
        .is_err()
    {
        count(PROCESS_EVENTS_LOST);
    }
}
