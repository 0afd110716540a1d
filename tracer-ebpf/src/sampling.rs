//! Head sampling in the kernel, by the user-space sampler's rule
//! (`tracer-user/src/pipeline/sampler.rs`): a span of an unsampled trace is counted and
//! never reaches the ring buffer, and the `traceparent` written into outgoing requests
//! carries the same decision.
use tracer_common::{
    config::{ProbeConfig, SAMPLE_ALL, SAMPLE_IGNORE_CALLER},
    propagation::{CTX_DECIDED, CTX_SAMPLED},
};

/// The decision for trace `trace_id` whose caller's context flags are `trace_flags`:
/// the caller's (unless the sampler is not parent-based), else the last 8 bytes of the
/// trace id, big-endian, against the ratio's threshold.
#[inline(always)]
pub fn sampled(cfg: &ProbeConfig, trace_id: &[u8; 16], trace_flags: u32) -> bool {
    if cfg.sampling & SAMPLE_IGNORE_CALLER == 0 && trace_flags & CTX_DECIDED != 0 {
        return trace_flags & CTX_SAMPLED != 0;
    }
    if cfg.sampling & SAMPLE_ALL != 0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    u64::from_be_bytes(low) < cfg.sample_below
}
