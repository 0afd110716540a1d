//! Process lifecycle events, for the attach modes that follow processes (`--binary`,
//! `--all`): the kernel reports every exec and every process exit on the machine through
//! their own ring buffer, so user space learns of new processes without polling `/proc`.

/// [`ProcessEvent::kind`]: a process replaced its program (`execve`).
pub const PROCESS_EXEC: u32 = 1;
/// [`ProcessEvent::kind`]: a process ended (its main thread exited).
pub const PROCESS_EXIT: u32 = 2;

/// One record of the process ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessEvent {
    /// [`PROCESS_EXEC`] or [`PROCESS_EXIT`].
    pub kind: u32,
    /// The process (kernel tgid).
    pub pid: u32,
    /// When it happened (monotonic clock, as span starts): spans of the process that
    /// started before it and are still in flight are lost with the program that ran them.
    pub time_ns: u64,
}
crate::assert_size!(ProcessEvent, 16);

/// Size of the process ring buffer: 8192 events between two drains.
pub const PROCESS_EVENTS_BYTES: u32 = 128 << 10;
