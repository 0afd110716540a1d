//! Access to a Go program's state from a uprobe on amd64 with the register ABI
//! (Go >= 1.17): integer arguments in RAX, RBX, RCX, RDI, RSI, R8-R11 and the current
//! goroutine's `g` in R14 (<https://go.dev/s/regabi>). Memory of the target is read with
//! `bpf_probe_read_user`; Go strings are a `{ptr, len}` pair.
use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{self, bpf_get_attach_cookie},
    },
    programs::ProbeContext,
};
use tracer_common::{
    config::{NO_FIELD, ProbeConfig},
    counters::{DROP_NO_CONFIG, DROP_READ_FAILED, DROP_RINGBUF_FULL},
    event::{EventHeader, GoroutineKey, Head, Piece, Record, WIRE_VERSION, mix64},
};

use crate::maps::{CONFIGS, EVENTS, IDS, SCRATCH, WINDOW_WORDS, count};

/// The registers a probe reads, copied once from the context.
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdi: u64,
    pub r14: u64,
    pub rip: u64,
}

impl Regs {
    #[inline(always)]
    pub fn of(ctx: &ProbeContext) -> Self {
        // SAFETY: `regs` points to the kernel's pt_regs for this probe hit.
        let regs = unsafe { &*ctx.regs };
        Self {
            rax: regs.rax,
            rbx: regs.rbx,
            rcx: regs.rcx,
            rdi: regs.rdi,
            r14: regs.r14,
            rip: regs.rip,
        }
    }
}

/// The configuration slot and configuration this uprobe was attached with.
#[inline(always)]
pub fn config(ctx: &ProbeContext) -> Option<(u32, &'static ProbeConfig)> {
    // SAFETY: the helper only reads the attach cookie of the running program.
    let slot = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    match CONFIGS.get(slot) {
        Some(cfg) if cfg.g_goid != NO_FIELD => Some((slot, cfg)),
        _ => {
            count(DROP_NO_CONFIG);
            None
        }
    }
}

/// The key of the running goroutine: process id and `runtime.g` address (R14).
#[inline(always)]
pub fn goroutine(regs: &Regs) -> Option<GoroutineKey> {
    if regs.r14 == 0 {
        count(DROP_READ_FAILED);
        return None;
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    Some(GoroutineKey {
        pid,
        _pad: 0,
        g: regs.r14,
    })
}

/// The flags a finished event is submitted with: no wake-up (user space drains the buffer
/// on a timer), or a wake-up per event when the configuration asks for other tracers' way.
#[inline(always)]
pub fn submit_flags(cfg: &ProbeConfig) -> u64 {
    if cfg.wake_up != 0 {
        aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64
    } else {
        aya_ebpf::bindings::BPF_RB_NO_WAKEUP as u64
    }
}

/// The header of a ring-buffer event of type `T` (`kind`) finished on goroutine `key`.
#[inline(always)]
pub fn event_header<T>(kind: u16, key: &GoroutineKey) -> EventHeader {
    EventHeader {
        kind,
        version: WIRE_VERSION,
        size: core::mem::size_of::<T>() as u32,
        pid: key.pid,
        tid: bpf_get_current_pid_tgid() as u32,
        g: key.g,
    }
}

/// Copies a record built in a per-CPU array to the ring buffer: its head and the first
/// `used` bytes of its text; counts it lost when the ring buffer is full.
#[inline(always)]
pub fn output<H: Head, const N: usize>(ev: &mut Record<H, N>, used: u32, cfg: &ProbeConfig) {
    // Never true (see `append`); it bounds the copy for the verifier.
    if used as usize > N {
        return;
    }
    ev.head.header_mut().size = Record::<H, N>::record_size(used as usize) as u32;
    if EVENTS
        .output::<[u8]>(ev.record(used as usize), submit_flags(cfg))
        .is_err()
    {
        count(DROP_RINGBUF_FULL);
    }
}

/// Reads the 8-byte word at `base + offset` in the target; `None` when the field does
/// not exist in this binary or the read fails.
#[inline(always)]
pub fn read_u64(base: u64, offset: u32) -> Option<u64> {
    if offset == NO_FIELD || base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_user never faults; a bad address returns an error.
    unsafe { bpf_probe_read_user((base + offset as u64) as *const u64) }.ok()
}

/// Reads the two 8-byte words at `base` in the target (a string or interface header) with
/// one read; `None` when `base` is nil or the read fails.
#[inline(always)]
pub fn read_words(base: u64) -> Option<[u64; 2]> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_user never faults; a bad address returns an error.
    unsafe { bpf_probe_read_user(base as *const [u64; 2]) }.ok()
}

/// A struct of the target copied into a per-CPU scratch buffer with one read; fields
/// (8-byte aligned, as every Go pointer, int and string header is) are picked out of it.
pub struct Window {
    words: &'static [u64; WINDOW_WORDS],
    len: u32,
}

impl Window {
    /// Copies `len` bytes at `base` into scratch buffer `slot`. `None` when `base` is nil,
    /// `len` is 0 or the read fails.
    #[inline(always)]
    pub fn read(slot: u32, base: u64, len: u32) -> Option<Self> {
        if base == 0 || len == 0 {
            return None;
        }
        let len = if len > (WINDOW_WORDS * 8) as u32 {
            (WINDOW_WORDS * 8) as u32
        } else {
            len
        };
        let words = SCRATCH.get_ptr_mut(slot)?;
        // SAFETY: `words` is this CPU's scratch buffer of WINDOW_WORDS * 8 bytes and
        // `len` is at most that; the helper never faults on `base`.
        let rc = unsafe {
            generated::bpf_probe_read_user(words as *mut c_void, len, base as *const c_void)
        };
        if rc < 0 {
            return None;
        }
        // SAFETY: the buffer lives as long as the map; only this program uses it on this
        // CPU while it runs.
        Some(Self {
            words: unsafe { &*words },
            len,
        })
    }

    /// The 8-byte word at byte `offset`; `None` for a field that does not exist or lies
    /// outside what was read.
    #[inline(always)]
    pub fn word(&self, offset: u32) -> Option<u64> {
        if offset == NO_FIELD || offset + 8 > self.len {
            return None;
        }
        // Offsets are 8-byte aligned (user space checks); the mask keeps the index provably
        // inside the buffer for the verifier.
        Some(self.words[(offset >> 3) as usize & (WINDOW_WORDS - 1)])
    }

    /// The Go string header `{ptr, len}` at byte `offset`.
    #[inline(always)]
    pub fn string_header(&self, offset: u32) -> Option<(u64, u64)> {
        if offset == NO_FIELD {
            return None;
        }
        Some((self.word(offset)?, self.word(offset + 8)?))
    }

    /// Appends the Go string whose header is at byte `offset` to a record's text, as
    /// [`append`] does; a field this Go version lacks (`NO_FIELD`) is an empty string.
    ///
    /// # Safety
    /// As [`append`].
    #[inline(always)]
    pub unsafe fn append<const KEEP: u32, const TEXT: u32>(
        &self,
        offset: u32,
        text: *mut u8,
        at: u32,
        piece: &mut Piece,
    ) -> u32 {
        if offset == NO_FIELD {
            *piece = Piece {
                len: 0,
                at: at as u16,
                kept: 0,
            };
            return at;
        }
        match self.string_header(offset) {
            // SAFETY: as the caller's.
            Some((ptr, len)) => unsafe { append::<KEEP, TEXT>(text, at, piece, ptr, len) },
            None => {
                *piece = Piece::FAILED;
                at
            }
        }
    }
}

/// Appends the Go string `{ptr, len}` (at most `KEEP` bytes) to a record's text of `TEXT`
/// bytes at `at`, writes its piece and returns where the used text now ends.
///
/// # Safety
/// `text` points to `TEXT` writable bytes.
#[inline(always)]
pub unsafe fn append<const KEEP: u32, const TEXT: u32>(
    text: *mut u8,
    at: u32,
    piece: &mut Piece,
    ptr: u64,
    len: u64,
) -> u32 {
    // Never true, as a record's text has room for each string at its limit; the check
    // shows the verifier that the copy stays inside the text.
    if at > TEXT - KEEP {
        *piece = Piece::FAILED;
        return at;
    }
    let n = if len > KEEP as u64 { KEEP } else { len as u32 };
    *piece = Piece {
        len: if len > u32::MAX as u64 {
            u32::MAX
        } else {
            len as u32
        },
        at: at as u16,
        kept: n as u16,
    };
    if n == 0 {
        return at;
    }
    // SAFETY: `at + n <= TEXT` (checked above), inside the caller's text.
    let rc = unsafe {
        generated::bpf_probe_read_user(
            text.wrapping_add(at as usize) as *mut c_void,
            n,
            ptr as *const c_void,
        )
    };
    if rc < 0 {
        *piece = Piece::FAILED;
        return at;
    }
    at + n
}

/// Copies `len` bytes (at most `LIMIT`) at `ptr` in the target to `dst`; false when the
/// read fails. `len == 0` reads nothing.
///
/// # Safety
/// `dst` must be valid for `LIMIT` bytes of writes.
#[inline(always)]
pub unsafe fn read_bytes<const LIMIT: u32>(dst: *mut u8, ptr: u64, len: u64) -> bool {
    let n = if len > LIMIT as u64 {
        LIMIT
    } else {
        len as u32
    };
    if n == 0 {
        return true;
    }
    // SAFETY: `n <= LIMIT` bytes of `dst` are writable (caller); the helper never faults
    // on `ptr`.
    unsafe { generated::bpf_probe_read_user(dst as *mut c_void, n, ptr as *const c_void) >= 0 }
}

/// Zeroes `*dst` with one store per word of `T`'s alignment (8, 4 or 1 bytes). The BPF
/// target compiles zeroing of more than a few bytes (a `Default`, an array literal, fields
/// written in a row) into a call of `memset`, a loop of one-byte stores that costs a probe
/// hundreds of instructions; volatile stores are neither merged nor turned into that call.
///
/// # Safety
/// `dst` must be valid for writes of a `T` and aligned for it.
#[inline(always)]
pub unsafe fn zero<T>(dst: *mut T) {
    let (size, align) = (core::mem::size_of::<T>(), core::mem::align_of::<T>());
    if align == 8 {
        let words = dst.cast::<u64>();
        for i in 0..size / 8 {
            // SAFETY: inside `*dst`, aligned (caller).
            unsafe { words.add(i).write_volatile(0) };
        }
    } else if align == 4 {
        let words = dst.cast::<u32>();
        for i in 0..size / 4 {
            // SAFETY: as above.
            unsafe { words.add(i).write_volatile(0) };
        }
    } else {
        let bytes = dst.cast::<u8>();
        for i in 0..size {
            // SAFETY: as above.
            unsafe { bytes.add(i).write_volatile(0) };
        }
    }
}

/// `place` zeroed where it is, as [`zero`] does (a value returned by value would be
/// zeroed elsewhere and copied, and the compiler turns that back into `memset`).
///
/// # Safety
/// All zero bytes must be a valid `T`.
#[inline(always)]
pub unsafe fn zeroed<T>(place: &mut core::mem::MaybeUninit<T>) -> &mut T {
    // SAFETY: `place` is valid and aligned for a `T`; zero bytes are a valid `T` (caller).
    unsafe {
        zero(place.as_mut_ptr());
        place.assume_init_mut()
    }
}

/// `N` bytes aligned to 8, so that [`zeroed`] clears them a word at a time.
#[repr(C, align(8))]
pub struct Aligned<const N: usize>(pub [u8; N]);

/// Draws a new trace id and span id (see `tracer_common::event::IdState`); never all zero.
#[inline(always)]
pub fn new_ids(trace_id: &mut [u8; 16], span_id: &mut [u8; 8]) -> Option<()> {
    let state = IDS.get_ptr_mut(0)?;
    // SAFETY: this CPU's entry; uprobe programs on one CPU do not run concurrently.
    let state = unsafe { &mut *state };
    state.counter = state.counter.wrapping_add(1);
    let n = state.counter;
    let high = mix64(n ^ state.seeds[0]);
    let low = mix64(n ^ state.seeds[1]) | u64::from(high == 0);
    let span = mix64(n ^ state.seeds[2]);
    trace_id[..8].copy_from_slice(&high.to_be_bytes());
    trace_id[8..].copy_from_slice(&low.to_be_bytes());
    *span_id = (span | u64::from(span == 0)).to_be_bytes();
    Some(())
}
