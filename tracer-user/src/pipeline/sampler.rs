//! Head sampling: parent-based, trace-id ratio. A trace whose caller sent a sampling
//! decision (the `traceparent` flags, B3 sampling) follows it; any other decision depends
//! only on the trace id, so every process (and every tracer) decides the same for one
//! trace.

/// Keeps a root span's trace when its id falls below `ratio` of the id space.
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    threshold: u64,
    all: bool,
}

impl Sampler {
    /// `ratio` in `[0, 1]`.
    pub fn new(ratio: f64) -> Self {
        let ratio = ratio.clamp(0.0, 1.0);
        Self {
            threshold: (ratio * u64::MAX as f64) as u64,
            all: ratio >= 1.0,
        }
    }

    /// `(all, threshold)`: the rule of [`Self::keep`] for the kernel, which decides the
    /// sampled flag of the `traceparent` it writes.
    pub fn rule(&self) -> (bool, u64) {
        (self.all, self.threshold)
    }

    /// Whether to keep a span of `trace_id` whose caller decided `sampled` (if it did).
    pub fn keep_span(&self, trace_id: &[u8; 16], sampled: Option<bool>) -> bool {
        sampled.unwrap_or_else(|| self.keep(trace_id))
    }

    /// Whether to keep a span of `trace_id` (its last 8 bytes, as W3C recommends for
    /// randomness).
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
        assert!(Sampler::new(1.0).keep(&id));
        assert!(!Sampler::new(0.0).keep(&[0; 16]));
        let half = Sampler::new(0.5);
        let mut low = [0u8; 16];
        low[8] = 0x10;
        assert!(half.keep(&low));
        assert!(!half.keep(&id));
    }

    #[test]
    fn a_callers_decision_wins() {
        let id = [0xff; 16];
        assert!(!Sampler::new(1.0).keep_span(&id, Some(false)));
        assert!(Sampler::new(0.0).keep_span(&id, Some(true)));
        assert!(!Sampler::new(0.0).keep_span(&id, None));
    }
}
