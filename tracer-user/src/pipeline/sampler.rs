//! Head sampling: trace-id ratio, parent-based by default. A trace whose caller sent a
//! sampling decision (the `traceparent` flags, B3 sampling) follows it when the sampler
//! is parent-based; any other decision depends only on the trace id, so every process
//! (and every tracer) decides the same for one trace. The kernel applies the rule
//! (`tracer-ebpf/src/sampling.rs`, configured by [`Sampler::rule`]): unsampled spans
//! never reach user space. [`Sampler::keep_span`] states the same rule here, for tests.
use tracer_common::config::{SAMPLE_ALL, SAMPLE_IGNORE_CALLER};

/// Keeps a root span's trace when its id falls below `ratio` of the id space.
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    threshold: u64,
    all: bool,
    parent_based: bool,
}

impl Sampler {
    /// `ratio` in `[0, 1]`; `parent_based`: a caller's decision wins.
    pub fn new(ratio: f64, parent_based: bool) -> Self {
        let ratio = ratio.clamp(0.0, 1.0);
        Self {
            threshold: (ratio * u64::MAX as f64) as u64,
            all: ratio >= 1.0,
            parent_based,
        }
    }

    /// `(SAMPLE_* bits, threshold)`: the rule of [`Self::keep_span`] for the kernel,
    /// which decides the sampled flag of the `traceparent` it writes.
    pub fn rule(&self) -> (u32, u64) {
        let mut bits = 0;
        if self.all {
            bits |= SAMPLE_ALL;
        }
        if !self.parent_based {
            bits |= SAMPLE_IGNORE_CALLER;
        }
        (bits, self.threshold)
    }

    /// Whether to keep a span of `trace_id` whose caller decided `sampled` (if it did).
    #[cfg(test)]
    pub fn keep_span(&self, trace_id: &[u8; 16], sampled: Option<bool>) -> bool {
        match sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.keep(trace_id),
        }
    }

    /// Whether to keep a span of `trace_id` (its last 8 bytes, as W3C recommends for
    /// randomness).
    #[cfg(test)]
    pub fn keep(&self, trace_id: &[u8; 16]) -> bool {
        if self.all {
            return true;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        u64::from_be_bytes(low) < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_bounds() {
        let id = [0xff; 16];
        assert!(Sampler::new(1.0, true).keep(&id));
        assert!(!Sampler::new(0.0, true).keep(&[0; 16]));
        let half = Sampler::new(0.5, true);
        let mut low = [0u8; 16];
        low[8] = 0x10;
        assert!(half.keep(&low));
        assert!(!half.keep(&id));
    }

    #[test]
    fn a_callers_decision_wins() {
        let id = [0xff; 16];
        assert!(!Sampler::new(1.0, true).keep_span(&id, Some(false)));
        assert!(Sampler::new(0.0, true).keep_span(&id, Some(true)));
        assert!(!Sampler::new(0.0, true).keep_span(&id, None));
    }

    #[test]
    fn not_parent_based_ignores_the_caller() {
        let id = [0xff; 16];
        assert!(Sampler::new(1.0, false).keep_span(&id, Some(false)));
        assert!(!Sampler::new(0.0, false).keep_span(&id, Some(true)));
        assert_eq!(
            Sampler::new(1.0, false).rule().0,
            SAMPLE_ALL | SAMPLE_IGNORE_CALLER
        );
        assert_eq!(Sampler::new(0.5, true).rule().0, 0);
    }
}
