//! Where per-goroutine state lives in the kernel: an array of slots, set-associative by a
//! hash of (process, goroutine). Array slots are reached without a map helper call or a
//! lock, which a hash map's update and delete need on every request; a slot holds its own
//! key, a full set evicts its oldest entry (counted), and a slot older than the TTL is
//! free again, so a handler that never returns cannot hold a slot for ever.

/// Slots in one set.
pub const WAYS: u32 = 4;
/// Sets (a power of two).
pub const SETS: u32 = 16384;
/// Slots in all.
pub const SLOTS: u32 = WAYS * SETS;
/// A slot whose span started longer ago than this is free again.
pub const TTL_NS: u64 = 600 * 1_000_000_000;

/// The words every slot type starts with, which user space reads to tell whose a slot is
/// and frees a slot by (zeroing `key`, as the kernel does): the key (`runtime.g`, a
/// goroutine id or a context address; 0 for a free slot, written last when a slot is
/// taken), the process and the start time. Each slot type asserts it starts this way
/// ([`assert_slot_head`](crate::assert_slot_head)).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotHead {
    pub key: u64,
    pub pid: u32,
    pub _pad: u32,
    pub start_ns: u64,
}
crate::assert_size!(SlotHead, 24);

/// Asserts at compile time that slot type `$ty` starts with a [`SlotHead`] whose key is
/// its field `$key`.
#[macro_export]
macro_rules! assert_slot_head {
    ($ty:ty, $key:ident) => {
        const _: () = {
            use core::mem::offset_of;
            use $crate::inflight::SlotHead;
            assert!(offset_of!($ty, $key) == offset_of!(SlotHead, key));
            assert!(offset_of!($ty, pid) == offset_of!(SlotHead, pid));
            assert!(offset_of!($ty, start_ns) == offset_of!(SlotHead, start_ns));
        };
    };
}

/// A start evicted from a full set, remembered (in a slot array of its own, for
/// [`TTL_NS`]) so that its end, which finds no start, is not counted lost a second time:
/// the eviction counted it already.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// The evicted start's goroutine (0: a free slot).
    pub g: u64,
    /// Its process.
    pub pid: u32,
    pub _pad: u32,
    /// When it was evicted (monotonic).
    pub start_ns: u64,
}
crate::assert_size!(Evicted, 24);
crate::assert_slot_head!(Evicted, g);

/// First slot of the set of key `g` of process `pid`: a goroutine's `runtime.g` address,
/// or, in the link indexes, a goroutine id (small consecutive numbers) or a context's
/// address. The multiplication carries every bit of the key into the high half, which
/// picks the set.
#[inline(always)]
pub fn set_of(pid: u32, g: u64) -> u32 {
    let h =
        g.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(pid).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    (((h >> 32) as u32) & (SETS - 1)) * WAYS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_spread_goroutines_and_processes() {
        assert_eq!(set_of(1, 1) % WAYS, 0);
        assert!(set_of(1, 1) < SLOTS);
        assert_ne!(set_of(1, 35), set_of(2, 35));
        let mut seen = [0u32; SETS as usize];
        // runtime.g structs are a few hundred bytes apart in the heap.
        for i in 1..=SETS as u64 {
            seen[(set_of(4242, 0xc000_000000 + i * 448) / WAYS) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n <= 8), "uneven spread");
        // Goroutine ids are consecutive small numbers: 4 ways per set must hold runs of
        // them (a handler's fan-out goroutines).
        let mut seen = [0u32; SETS as usize];
        for goid in 1..=4 * SETS as u64 {
            seen[(set_of(4242, goid) / WAYS) as usize] += 1;
        }
        assert!(
            seen.iter().all(|&n| n <= 16),
            "uneven spread of goroutine ids"
        );
        for goid in 1000..1064u64 {
            let ways = (1000..1064u64)
                .filter(|&other| set_of(4242, other) == set_of(4242, goid))
                .count();
            assert!(ways <= 2, "goroutine ids {goid}.. crowd one set");
        }
    }
}
