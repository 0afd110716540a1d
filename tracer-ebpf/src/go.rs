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
    counters::{DROP_NO_CONFIG, DROP_READ_FAILED},
    event::{GoroutineKey, STR_READ_FAILED, StrBuf},
};

use crate::maps::{CONFIGS, count};

/// The registers a probe reads, copied once from the context.
pub struct Regs {
    pub rcx: u64,
    pub rdi: u64,
    pub r14: u64,
}

impl Regs {
    #[inline(always)]
    pub fn of(ctx: &ProbeContext) -> Self {
        // SAFETY: `regs` points to the kernel's pt_regs for this probe hit.
        let regs = unsafe { &*ctx.regs };
        Self {
            rcx: regs.rcx,
            rdi: regs.rdi,
            r14: regs.r14,
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

/// The key of the running goroutine: process id and `g.goid`.
#[inline(always)]
pub fn goroutine(regs: &Regs, cfg: &ProbeConfig) -> Option<GoroutineKey> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let goid = read_u64(regs.r14, cfg.g_goid);
    if goid.is_none() {
        count(DROP_READ_FAILED);
    }
    Some(GoroutineKey {
        pid,
        _pad: 0,
        goid: goid?,
    })
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

/// Copies the Go string stored at `base + offset` into `dst`. A field that does not exist
/// leaves an empty string; a failed read sets [`STR_READ_FAILED`].
#[inline(always)]
pub fn read_string<const N: usize>(dst: &mut StrBuf<N>, base: u64, offset: u32) {
    dst.len = 0;
    dst.flags = 0;
    if offset == NO_FIELD {
        return;
    }
    if base == 0 {
        dst.flags = STR_READ_FAILED;
        return;
    }
    // SAFETY: bpf_probe_read_user never faults; a bad address returns an error.
    let header = unsafe { bpf_probe_read_user((base + offset as u64) as *const [u64; 2]) };
    let Ok([ptr, len]) = header else {
        dst.flags = STR_READ_FAILED;
        return;
    };
    dst.len = if len > u32::MAX as u64 {
        u32::MAX
    } else {
        len as u32
    };
    let n = if len > N as u64 { N as u32 } else { len as u32 };
    if n == 0 {
        return;
    }
    // SAFETY: `n <= N`, the size of `dst.buf`; the helper never faults on `ptr`.
    let rc = unsafe {
        generated::bpf_probe_read_user(dst.buf.as_mut_ptr() as *mut c_void, n, ptr as *const c_void)
    };
    if rc < 0 {
        dst.flags = STR_READ_FAILED;
    }
}

/// Fills `out` with random bytes, never all zero (an all-zero W3C id is invalid).
#[inline(always)]
pub fn random_id<const N: usize>(out: &mut [u8; N]) {
    let mut i = 0;
    while i < N {
        // SAFETY: the helper has no preconditions.
        let r = unsafe { generated::bpf_get_prandom_u32() }.to_ne_bytes();
        let mut j = 0;
        while j < 4 && i + j < N {
            out[i + j] = r[j];
            j += 1;
        }
        i += 4;
    }
    out[0] |= 1;
}
