//! Loader: a kernel array of slots (see `tracer_common::inflight`) scanned through memory
//! mappings, so that a scan of every slot (`Loader::release_gone`, `Loader::inflight`)
//! reads memory instead of making one `bpf()` call per slot.
//!
//! The array must be created with `BPF_F_MMAPABLE` (`tracer-ebpf/src/maps.rs`). The
//! kernel lays its values out back to back from the start of the mapping, each rounded up
//! to 8 bytes (`elem_size` in `array_map_alloc`, and `array_map_mmap`:
//! <https://github.com/torvalds/linux/blob/v6.12/kernel/bpf/arraymap.c>), and maps every
//! page of a mapping at once. A scan maps one window of about 1 MiB at a time and unmaps
//! it before the next, so the tracer's resident memory grows by a window during a scan,
//! not by the arrays (23 MiB). Probes on other CPUs write the slots meanwhile, so every
//! word is read or written here as one atomic access.
use std::{
    mem::offset_of,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use tracer_common::inflight::SlotHead;

/// `BPF_F_MMAPABLE` of the kernel's `include/uapi/linux/bpf.h`: the map's values can be
/// mapped into memory.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Errors mapping an array.
#[derive(Debug, thiserror::Error)]
pub enum MapSlotsError {
    #[error("the map was not created mappable (flags {flags:#x})")]
    NotMappable { flags: u32 },
    #[error("its values ({value_size} bytes) are smaller than a slot's head")]
    TooSmall { value_size: u32 },
    #[error("mmap failed")]
    Mmap(#[source] std::io::Error),
}

/// About how many bytes of an array one scan maps at a time.
const WINDOW_BYTES: usize = 1 << 20;

/// The values of one array map of slots, scanned a window at a time.
#[derive(Debug)]
pub struct MappedSlots {
    fd: OwnedFd,
    /// Bytes from one slot to the next.
    stride: usize,
    slots: u32,
    /// Bytes mapped at a time: whole pages and whole slots.
    window: usize,
}

impl MappedSlots {
    /// The `slots` values (of `value_size` bytes each) of the array map `fd`, created
    /// with `flags`.
    pub fn map(
        fd: BorrowedFd<'_>,
        flags: u32,
        value_size: u32,
        slots: u32,
    ) -> Result<Self, MapSlotsError> {
        if flags & BPF_F_MMAPABLE == 0 {
            return Err(MapSlotsError::NotMappable { flags });
        }
        let fd = fd.try_clone_to_owned().map_err(MapSlotsError::Mmap)?;
        Self::new(fd, value_size, slots)
    }

    /// `slots` of `value_size` bytes in the file `fd`, from its start.
    fn new(fd: OwnedFd, value_size: u32, slots: u32) -> Result<Self, MapSlotsError> {
        if (value_size as usize) < size_of::<SlotHead>() {
            return Err(MapSlotsError::TooSmall { value_size });
        }
        let stride = (value_size as usize).next_multiple_of(8);
        // The smallest run of whole pages that holds whole slots, repeated to a window.
        let page = page_size();
        let unit = stride / gcd(stride, page) * page;
        let window = unit * (WINDOW_BYTES / unit).max(1);
        Ok(Self {
            fd,
            stride,
            slots,
            window,
        })
    }

    /// Visits every taken slot (key not 0) with its index and head, as they are when it is
    /// read, and frees those `lost` says are lost, by zeroing the key as the kernel does;
    /// returns how many it freed.
    ///
    /// A slot is freed only if its key is still the one `lost` was shown: a probe that
    /// took the slot over in between and already wrote its key keeps it, and one that has
    /// not written it yet (the key is written last) writes it over the zero. A start is
    /// lost (and counted, `unmatched_end`) only if a probe of another process writes the
    /// very same key value into this slot between the read and the write, a few
    /// nanoseconds apart.
    pub fn scan(&self, mut lost: impl FnMut(u32, &SlotHead) -> bool) -> Result<u64, MapSlotsError> {
        let per_window = self.window / self.stride;
        let mut released = 0;
        let mut first = 0usize;
        while first < self.slots as usize {
            let count = per_window.min(self.slots as usize - first);
            let len = (count * self.stride).next_multiple_of(page_size());
            let view = View::map(&self.fd, first * self.stride, len)?;
            for i in 0..count {
                let at = i * self.stride;
                let head = view.head(at);
                if head.key != 0
                    && lost((first + i) as u32, &head)
                    && view
                        .u64_at(at + offset_of!(SlotHead, key))
                        .compare_exchange(head.key, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    released += 1;
                }
            }
            first += count;
        }
        Ok(released)
    }
}

/// One window of an array, mapped read-write; unmapped on drop.
struct View {
    base: NonNull<u8>,
    len: usize,
}

impl View {
    /// Maps `len` bytes of `fd` from `offset` (both whole pages).
    fn map(fd: &OwnedFd, offset: usize, len: usize) -> Result<Self, MapSlotsError> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| MapSlotsError::Mmap(std::io::Error::other("offset out of range")))?;
        // SAFETY: a new mapping at an address the kernel picks, of no Rust object; the
        // kernel checks that the map may be mapped and that the range lies within its
        // values.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MapSlotsError::Mmap(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| {
            MapSlotsError::Mmap(std::io::Error::other("mmap returned a null address"))
        })?;
        Ok(Self { base, len })
    }

    /// The head of the slot at byte `at`: the key first, then the rest, which a probe
    /// writes before the key.
    fn head(&self, at: usize) -> SlotHead {
        let key = self.u64_at(at + offset_of!(SlotHead, key));
        let key = key.load(Ordering::Acquire);
        let pid = self.u32_at(at + offset_of!(SlotHead, pid));
        let start_ns = self.u64_at(at + offset_of!(SlotHead, start_ns));
        SlotHead {
            key,
            pid: pid.load(Ordering::Relaxed),
            _pad: 0,
            start_ns: start_ns.load(Ordering::Relaxed),
        }
    }

    /// The 8-byte word at byte `at` (a multiple of 8 in the mapping).
    fn u64_at(&self, at: usize) -> &AtomicU64 {
        assert!(
            at.is_multiple_of(8) && at + 8 <= self.len,
            "word {at} out of range"
        );
        // SAFETY: in the mapping, 8-aligned (the mapping starts on a page); it lives as
        // long as `self`, and is only ever accessed atomically here.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(at).cast()) }
    }

    /// The 4-byte word at byte `at` (a multiple of 4 in the mapping).
    fn u32_at(&self, at: usize) -> &AtomicU32 {
        assert!(
            at.is_multiple_of(4) && at + 4 <= self.len,
            "word {at} out of range"
        );
        // SAFETY: as in `u64_at`.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(at).cast()) }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of this length; every reference into it
        // borrows `self`, so none is left.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

#[cfg(test)]
mod tests {
    use std::os::fd::FromRawFd as _;

    use super::*;

    /// Slots in a memory file, standing in for a kernel array, and a view of all of them
    /// to write them as probes do.
    fn in_memory(value_size: u32, slots: u32) -> (MappedSlots, View) {
        // SAFETY: a plain system call with a valid name.
        let fd = unsafe { libc::memfd_create(c"slots".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create");
        // SAFETY: a new descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stride = (value_size as usize).next_multiple_of(8);
        let len = (stride * slots as usize).next_multiple_of(page_size());
        // SAFETY: the descriptor is a memory file.
        assert_eq!(
            unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) },
            0
        );
        let all = View::map(&fd, 0, len).expect("map all");
        (MappedSlots::new(fd, value_size, slots).expect("slots"), all)
    }

    /// Writes slot `index` as a probe does: the key last.
    fn write(all: &View, stride: usize, index: u32, key: u64, pid: u32, start_ns: u64) {
        let at = index as usize * stride;
        all.u32_at(at + offset_of!(SlotHead, pid))
            .store(pid, Ordering::Relaxed);
        all.u64_at(at + offset_of!(SlotHead, start_ns))
            .store(start_ns, Ordering::Relaxed);
        all.u64_at(at + offset_of!(SlotHead, key))
            .store(key, Ordering::Release);
    }

    fn taken(slots: &MappedSlots) -> Vec<(u32, SlotHead)> {
        let mut taken = Vec::new();
        slots
            .scan(|index, head| {
                taken.push((index, *head));
                false
            })
            .expect("scan");
        taken
    }

    #[test]
    fn slots_are_laid_out_at_the_value_size_rounded_up_to_8() {
        for (value_size, stride) in [(24, 24), (28, 32), (80, 80), (128, 128)] {
            let (slots, all) = in_memory(value_size, 100);
            assert_eq!(slots.stride, stride);
            assert_eq!(slots.slots, 100);
            write(&all, stride, 7, 0xc000_0001, 42, 1_000);
            // SAFETY: slot 7 lies in the mapping; its head is 8-aligned.
            let raw =
                unsafe { std::ptr::read(all.base.as_ptr().add(7 * stride).cast::<SlotHead>()) };
            assert_eq!(
                raw,
                SlotHead {
                    key: 0xc000_0001,
                    pid: 42,
                    _pad: 0,
                    start_ns: 1_000
                }
            );
            assert_eq!(taken(&slots), [(7, raw)]);
        }
    }

    #[test]
    fn a_scan_maps_whole_pages_of_whole_slots_and_sees_every_window() {
        // 80-byte slots: 5 pages hold 256 of them; 65,536 slots span five windows.
        let (slots, all) = in_memory(80, 65_536);
        assert_eq!(slots.window % page_size(), 0);
        assert_eq!(slots.window % 80, 0);
        assert!(slots.window <= WINDOW_BYTES);
        let per_window = (slots.window / 80) as u32;
        let edges = [0, per_window - 1, per_window, 3 * per_window + 1, 65_535];
        for (n, &index) in edges.iter().enumerate() {
            write(&all, 80, index, 100 + n as u64, 7, 1);
        }
        let seen: Vec<u32> = taken(&slots).iter().map(|(i, _)| *i).collect();
        assert_eq!(seen, edges);
        // Every index but the first two edges is odd.
        assert_eq!(per_window % 2, 0);
        assert_eq!(slots.scan(|index, _| index % 2 == 1).expect("scan"), 3);
        let seen: Vec<u32> = taken(&slots).iter().map(|(i, _)| *i).collect();
        assert_eq!(seen, [0, per_window]);
    }

    #[test]
    fn values_smaller_than_a_head_are_refused() {
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        assert!(matches!(
            MappedSlots::new(file.into(), 16, 10),
            Err(MapSlotsError::TooSmall { value_size: 16 })
        ));
    }

    #[test]
    fn release_frees_the_lost_slots_by_their_key_only() {
        let (slots, all) = in_memory(80, 64);
        write(&all, 80, 1, 11, 100, 5);
        write(&all, 80, 2, 12, 200, 5);
        write(&all, 80, 63, 13, 100, 9);
        assert_eq!(slots.scan(|_, head| head.pid == 100).expect("scan"), 2);
        let taken = taken(&slots);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, 2);
        // The rest of a freed slot is left as it was, as the kernel leaves it.
        assert_eq!(all.head(80).pid, 100);
        assert_eq!(all.head(80).key, 0);
        assert_eq!(slots.scan(|_, _| false).expect("scan"), 0);
    }

    #[test]
    fn a_slot_taken_over_after_it_was_read_is_kept() {
        let (slots, all) = in_memory(80, 8);
        write(&all, 80, 3, 11, 100, 5);
        // A probe of process 300 takes the slot between the read and the write.
        let released = slots
            .scan(|_, head| {
                write(&all, 80, 3, 31, 300, 50);
                head.pid == 100
            })
            .expect("scan");
        assert_eq!(released, 0);
        assert_eq!(
            all.head(3 * 80),
            SlotHead {
                key: 31,
                pid: 300,
                _pad: 0,
                start_ns: 50
            }
        );
    }

    #[test]
    fn unmappable_maps_are_refused() {
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        let fd = std::os::fd::AsFd::as_fd(&file);
        assert!(matches!(
            MappedSlots::map(fd, 0, 80, 10),
            Err(MapSlotsError::NotMappable { flags: 0 })
        ));
    }
}
