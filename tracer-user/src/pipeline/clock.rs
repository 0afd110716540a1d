//! Kernel time to wall-clock time. The kernel programs stamp events with
//! `bpf_ktime_get_ns` (CLOCK_MONOTONIC); the offset to CLOCK_REALTIME is measured once at
//! start.

/// Converts monotonic nanoseconds to UNIX nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Realtime minus monotonic, in nanoseconds.
    offset: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    /// Measures the offset, taking the sample with the tightest bracketing of a few.
    pub fn measure() -> Self {
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..5 {
            let before = now(libc::CLOCK_MONOTONIC);
            let real = now(libc::CLOCK_REALTIME);
            let after = now(libc::CLOCK_MONOTONIC);
            let width = after - before;
            let offset = real - (before + width / 2);
            if best.is_none_or(|(w, _)| width < w) {
                best = Some((width, offset));
            }
        }
        Self {
            offset: best.map_or(0, |(_, offset)| offset),
        }
    }

    /// A clock with a known offset (tests).
    pub const fn with_offset(offset: i128) -> Self {
        Self { offset }
    }

    /// UNIX nanoseconds of monotonic time `ns`.
    pub fn to_unix(self, ns: u64) -> u64 {
        (i128::from(ns) + self.offset).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The current monotonic time in nanoseconds.
    pub fn monotonic_now() -> u64 {
        now(libc::CLOCK_MONOTONIC) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_wall_clock() {
        let clock = Clock::measure();
        let unix = clock.to_unix(Clock::monotonic_now());
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_nanos() as u64;
        assert!(unix.abs_diff(wall) < 50_000_000, "{unix} vs {wall}");
        assert_eq!(Clock::with_offset(10).to_unix(5), 15);
    }
}
