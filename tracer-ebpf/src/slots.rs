//! Per-goroutine state in set-associative array slots (layout and rationale in
//! `tracer_common::inflight`): no helper call and no lock per access, unlike a hash map.
use aya_ebpf::maps::Array;
use tracer_common::{
    counters::{DROP_INFLIGHT_FULL, DROP_START_REPLACED},
    event::GoroutineKey,
    inflight::{Evicted, TTL_NS, WAYS, set_of},
};

use crate::maps::count;

/// State that can live in a slot: it records its owner and start time.
pub trait Slot: 'static {
    /// `(pid, g)` of the owner; `g == 0` for a free slot.
    fn owner(&self) -> (u32, u64);
    /// Monotonic start time.
    fn started(&self) -> u64;
    /// Marks the slot free.
    fn release(&mut self);
}

/// Implements [`Slot`] for a state type with `pid` and `start_ns` fields whose owner key is
/// the field `$key` (0 when the slot is free).
macro_rules! keyed_slot {
    ($ty:ty, $key:ident) => {
        impl $crate::slots::Slot for $ty {
            fn owner(&self) -> (u32, u64) {
                (self.pid, self.$key)
            }
            fn started(&self) -> u64 {
                self.start_ns
            }
            fn release(&mut self) {
                self.$key = 0;
            }
        }
    };
}
pub(crate) use keyed_slot;

keyed_slot!(Evicted, g);

/// A slot for a span that starts now on goroutine `key`, with the loss counted when there
/// is none or when it replaces a start that never ended. `None` as well when
/// `is_repeat` says the slot already holds this very call (a probe on the stack check
/// fires again after the stack grew): the first start is kept.
///
/// A start evicted from a full set is counted here (`start_replaced`) and remembered in
/// `evicted`, so that its end, when it comes, is not counted again (see [`was_evicted`]):
/// every lost span counts once.
#[inline(always)]
pub fn begin<T: Slot>(
    slots: &Array<T>,
    evicted: &Array<Evicted>,
    key: &GoroutineKey,
    now: u64,
    is_repeat: impl Fn(&T) -> bool,
) -> Option<&'static mut T> {
    let Some((slot, claim)) = claim(slots, key, now) else {
        count(DROP_INFLIGHT_FULL);
        return None;
    };
    match claim {
        Claim::Own if is_repeat(slot) => return None,
        Claim::Own => count(DROP_START_REPLACED),
        Claim::Evicted => {
            count(DROP_START_REPLACED);
            let (pid, g) = slot.owner();
            let owner = GoroutineKey { pid, _pad: 0, g };
            if let Some((tomb, _)) = self::claim(evicted, &owner, now) {
                tomb.pid = pid;
                tomb.g = g;
                tomb.start_ns = now;
            }
        }
        Claim::Free => {}
    }
    Some(slot)
}

/// For an end that found no start: whether its start was evicted (and counted then);
/// forgets it. `false`: the start was never seen (the tracer attached mid-request).
#[inline(always)]
pub fn was_evicted(evicted: &Array<Evicted>, key: &GoroutineKey) -> bool {
    match find(evicted, key) {
        Some(tomb) => {
            tomb.release();
            true
        }
        None => false,
    }
}

/// The slot holding `key`'s state.
#[inline(always)]
pub fn find<T: Slot>(slots: &Array<T>, key: &GoroutineKey) -> Option<&'static mut T> {
    let base = set_of(key.pid, key.g);
    for way in 0..WAYS {
        let slot = slots.get_ptr_mut(base + way)?;
        // SAFETY: array slots stay valid while the program runs; a goroutine runs on one
        // thread at a time, so only its own probes touch its slot.
        let slot = unsafe { &mut *slot };
        if slot.owner() == (key.pid, key.g) {
            return Some(slot);
        }
    }
    None
}

/// How a slot was obtained for a new start.
pub enum Claim {
    /// `key` already had this slot (a probe fired twice, or an end was missed).
    Own,
    /// The slot was free or expired.
    Free,
    /// Every slot of the set was busy: the oldest start was evicted (and is lost).
    Evicted,
}

/// A slot for a new start of `key` at `now`.
#[inline(always)]
pub fn claim<T: Slot>(
    slots: &Array<T>,
    key: &GoroutineKey,
    now: u64,
) -> Option<(&'static mut T, Claim)> {
    let base = set_of(key.pid, key.g);
    let mut free = None;
    let mut oldest: Option<(u32, u64)> = None;
    for way in 0..WAYS {
        let slot = slots.get_ptr_mut(base + way)?;
        // SAFETY: as in `find`.
        let slot = unsafe { &*slot };
        let (pid, g) = slot.owner();
        if (pid, g) == (key.pid, key.g) {
            return Some((get(slots, base + way)?, Claim::Own));
        }
        let started = slot.started();
        if free.is_none() && (g == 0 || now.saturating_sub(started) > TTL_NS) {
            free = Some(way);
        }
        if oldest.is_none_or(|(_, t)| started < t) {
            oldest = Some((way, started));
        }
    }
    match (free, oldest) {
        (Some(way), _) => Some((get(slots, base + way)?, Claim::Free)),
        (None, Some((way, _))) => Some((get(slots, base + way)?, Claim::Evicted)),
        (None, None) => None,
    }
}

#[inline(always)]
fn get<T: Slot>(slots: &Array<T>, index: u32) -> Option<&'static mut T> {
    // SAFETY: as in `find`.
    slots.get_ptr_mut(index).map(|slot| unsafe { &mut *slot })
}
