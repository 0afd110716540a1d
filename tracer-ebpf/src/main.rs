//! The tracer's kernel programs: uprobes on Go functions of traced processes.
//!
//! Each probe is a thin `#[uprobe]` function over a `try_*` function in
//! [`probes`]; Go ABI access (arguments, goroutine id) lives in [`go`], maps and counters
//! in [`maps`]. Programs never loop unboundedly, never log on per-event paths, and count
//! every event they lose in [`maps::COUNTERS`].
#![no_std]
#![no_main]

mod go;
mod gomap;
mod maps;
mod probes;
mod sampling;
mod slots;
mod tracecontext;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible licence, required by `bpf_probe_read_user`.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
