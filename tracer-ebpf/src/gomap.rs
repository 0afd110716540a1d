//! A bounded scan of a Go `map[string][]string` (an `http.Header`) for the keys of
//! `tracer_common::propagation::HEADER_KEYS` (the user agent and the trace context
//! headers), all in one pass. Go seeds its map hashes randomly, so a key cannot be hashed
//! to its slot: every occupied slot is looked at, one read per group of 8, for at most
//! [`MAX_GROUPS`] groups; a larger map is counted in `HEADERS_INCOMPLETE`. Layouts
//! (offsets from DWARF) are described in `tracer_common::config::HeaderMapLayout`.
use tracer_common::{
    config::{HeaderMapLayout, MAP_BUCKETS, MAP_SWISS},
    counters::HEADERS_INCOMPLETE,
    propagation::{KEY_MAX_LEN, KEY_USER_AGENT, KEYS, classify, is_key_len},
};

use crate::{
    go::{Aligned, Window, read_u64, zeroed},
    maps::count,
};

/// Groups (buckets) read at most per scan.
const MAX_GROUPS: u32 = 8;
/// Groups scanned in a bucket's chain: the bucket and up to two overflow buckets.
const MAX_CHAIN: u32 = 3;

/// Buckets: a slot is occupied when its top hash is at least this (`minTopHash`).
const MIN_TOP_HASH: u8 = 5;
/// Scratch windows used here (see `crate::maps::SCRATCH`).
const HEADER_WINDOW: u32 = 1;
const GROUP_WINDOW: u32 = 2;

/// What a scan found: for each key found (bit `1 << KEY_*` of `found`), the address of its
/// `[]string` value's first element, the first value's string header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Matches {
    /// `1 << KEY_*` for each key found with at least one value.
    pub found: u64,
    /// Where the `User-Agent` key string is (see [`scan`]).
    pub user_agent_key: u64,
    /// Per `KEY_*` (8 entries so that a masked index stays inside): the data pointer of
    /// the key's `[]string`.
    pub values: [u64; 8],
}

/// Scans the header map at `map` for every key of `HEADER_KEYS` into `out`;
/// `known_user_agent` is where the `User-Agent` key string was last seen (Go interns
/// common header keys, so the address identifies the key without reading it).
///
/// The groups scanned are found up front, without loops the verifier would have to walk
/// iteration by iteration: a small swiss map's one group, or the first `MAX_GROUPS` groups
/// of a swiss map's first table; a bucket map's first `MAX_GROUPS` buckets, and as many of
/// its old buckets while it grows, each bucket with up to two overflow buckets. Anything
/// beyond (more tables, longer chains) is counted in
/// `HEADERS_INCOMPLETE`: request header maps fit unless a request has dozens of headers.
#[inline(always)]
pub fn scan(layout: &HeaderMapLayout, map: u64, known_user_agent: u64, out: &mut Matches) {
    let Some(Groups {
        first,
        groups,
        old,
        old_groups,
        complete,
    }) = groups(layout, map)
    else {
        return;
    };
    let shape = u64::from(layout.key_offset & 0xffff)
        | u64::from(layout.key_stride & 0xffff) << 16
        | u64::from(layout.value_offset & 0xffff) << 32
        | u64::from(layout.value_stride & 0xffff) << 48;
    let kind = u64::from(layout.kind)
        | u64::from(layout.overflow & 0xffff) << 16
        | u64::from(layout.group_size) << 32;
    let out = out as *mut Matches;
    let scan_buckets = |start: u64, groups: u64| {
        let mut whole = true;
        for i in 0..MAX_GROUPS {
            if u64::from(i) >= groups {
                break;
            }
            let group = start + u64::from(i) * u64::from(layout.group_size);
            let rest = tracer_scan_chain(group, known_user_agent, shape, kind, out);
            whole &= rest == 0;
        }
        whole
    };
    // The buckets, each with the overflow buckets chained to it; then, in a growing bucket
    // map, the old buckets, where the entries not moved yet are (moved ones are marked
    // there, and skipped like empty slots).
    let complete = scan_buckets(first, groups) & scan_buckets(old, old_groups) & complete;
    if !complete {
        count(HEADERS_INCOMPLETE);
    }
}

/// The groups of a map to scan.
struct Groups {
    /// The first group, and how many consecutive groups to scan from it.
    first: u64,
    groups: u64,
    /// A growing bucket map's old buckets, and how many to scan (0 when not growing).
    old: u64,
    old_groups: u64,
    /// Whether they hold every entry of the map.
    complete: bool,
}

/// `hmap.flags` bit of a growth to the same size (after many deletions).
const SAME_SIZE_GROW: u64 = 8;

/// The groups to scan in the map at `map`.
#[inline(always)]
fn groups(layout: &HeaderMapLayout, map: u64) -> Option<Groups> {
    if map == 0 {
        return None;
    }
    let header = Window::read(HEADER_WINDOW, map, layout.header_window)?;
    if header.word(layout.count_field)? == 0 {
        return None;
    }
    let first = header.word(layout.groups_field)?;
    match layout.kind {
        MAP_SWISS => {
            let directory_len = header.word(layout.size_field)?;
            if directory_len == 0 {
                // A small map: one group, no directory.
                return Some(Groups {
                    first,
                    groups: u64::from(first != 0),
                    old: 0,
                    old_groups: 0,
                    complete: true,
                });
            }
            let table = read_u64(first, 0)?;
            let window = Window::read(HEADER_WINDOW, table, layout.table_window)?;
            let data = window.word(layout.table_groups)?;
            let groups = window.word(layout.table_mask)? + 1;
            // Every directory entry names the first table when the map has only one.
            let one_table = directory_len == 1
                || read_u64(first, (8 * (directory_len as u32 - 1)) & 0x3f8) == Some(table);
            Some(Groups {
                first: data,
                groups: groups.min(u64::from(MAX_GROUPS)),
                old: 0,
                old_groups: 0,
                complete: one_table && groups <= u64::from(MAX_GROUPS),
            })
        }
        MAP_BUCKETS => {
            let word = header.word(layout.size_field & !7)?;
            let b = (word >> (8 * (layout.size_field & 7))) & 0xff;
            // `flags` is the byte before `B` (`count int; flags uint8; B uint8`).
            let flags = (word >> ((8 * (layout.size_field & 7)).wrapping_sub(8) & 0x38)) & 0xff;
            let old = header.word(layout.old_groups_field)?;
            let groups = 1u64 << (b & 7);
            // A map sized for its headers up front (`make(MIMEHeader, hint)`) does not
            // grow; one whose hint fell short (the request arrived in pieces) may still be
            // growing when the handler runs: its old buckets are scanned too.
            let old_groups = match (old, flags & SAME_SIZE_GROW != 0) {
                (0, _) => 0,
                (_, true) => groups,
                (_, false) => groups >> 1,
            };
            let complete = groups <= u64::from(MAX_GROUPS) && old_groups <= u64::from(MAX_GROUPS);
            Some(Groups {
                first,
                groups: groups.min(u64::from(MAX_GROUPS)),
                old,
                old_groups: old_groups.min(u64::from(MAX_GROUPS)),
                complete,
            })
        }
        _ => None,
    }
}

/// Scans the group at `group` and up to `MAX_CHAIN - 1` overflow buckets chained to it
/// (see [`tracer_scan_group`] for the arguments); returns the next overflow bucket not
/// scanned (0: the chain was scanned whole). A global function, verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_scan_chain(
    group: u64,
    known_user_agent: u64,
    shape: u64,
    kind: u64,
    out: *mut Matches,
) -> u64 {
    let mut group = group;
    for _ in 0..MAX_CHAIN {
        if group == 0 {
            break;
        }
        group = tracer_scan_group(group, known_user_agent, shape, kind, out);
    }
    group
}

/// Scans the 8 slots of the group at `group` for the keys of `HEADER_KEYS`: slots whose
/// key has the length of one of them are classified by address (the user agent's, no
/// read) or by their bytes ([`tracer_classify_key`]); the first match of each key is
/// recorded in `out`. Returns the bucket's overflow bucket (0 for none, and in swiss
/// maps). A global function: the verifier checks it once, on its own, instead of once per
/// call and per path of its callers. Arguments are scalars (at most five): `shape` packs
/// the key offset, key stride, value offset and value stride (16 bits each), `kind` the
/// map kind (bits 0-15), the overflow pointer's offset in a bucket (bits 16-31) and the
/// group size (high half).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_scan_group(
    group: u64,
    known_user_agent: u64,
    shape: u64,
    kind: u64,
    out: *mut Matches,
) -> u64 {
    if out.is_null() {
        return 0;
    }
    // SAFETY: `out` is non-null and points to the caller's `Matches`.
    let out = unsafe { &mut *out };
    let key_offset = (shape & 0xffff) as u32;
    let key_stride = ((shape >> 16) & 0xffff) as u32;
    let value_offset = ((shape >> 32) & 0xffff) as u32;
    let value_stride = ((shape >> 48) & 0xffff) as u32;
    let swiss = (kind & 0xffff) as u32 == MAP_SWISS;
    let overflow_at = ((kind >> 16) & 0xffff) as u32;
    let Some(window) = Window::read(GROUP_WINDOW, group, (kind >> 32) as u32) else {
        return 0;
    };
    let Some(control) = window.word(0) else {
        return 0;
    };
    let mut found = 0u64;
    for slot in 0..8u32 {
        let byte = (control >> (8 * slot)) as u8;
        let occupied = if swiss {
            byte & 0x80 == 0
        } else {
            byte >= MIN_TOP_HASH
        };
        let key_at = key_offset + slot * key_stride;
        let Some(len) = window.word(key_at + 8) else {
            continue;
        };
        if !occupied || !is_key_len(len) {
            continue;
        }
        let key = window.word(key_at).unwrap_or(0);
        let bit = if key != 0 && key == known_user_agent {
            1 << KEY_USER_AGENT
        } else {
            tracer_classify_key(key, len)
        };
        if bit == 0 || (out.found | found) & bit != 0 {
            continue;
        }
        let value_at = value_offset + slot * value_stride;
        let values = window.word(value_at).unwrap_or(0);
        if values == 0 || window.word(value_at + 8).unwrap_or(0) == 0 {
            continue;
        }
        found |= bit;
        // Constant indexes only: the key's entry is picked by comparing bits.
        for (k, entry) in out.values.iter_mut().enumerate().take(KEYS) {
            if bit == 1 << k {
                *entry = values;
            }
        }
        if bit == 1 << KEY_USER_AGENT {
            out.user_agent_key = key;
        }
    }
    out.found |= found;
    if swiss {
        0
    } else {
        window.word(overflow_at).unwrap_or(0)
    }
}

/// `1 << KEY_*` for the key string `{address, len}` of the target, or 0 when it is none
/// of them or cannot be read. A global function like [`tracer_scan_group`], so
/// that its read and comparisons are verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_classify_key(address: u64, len: u64) -> u64 {
    if address == 0 || len == 0 || len > KEY_MAX_LEN as u64 {
        return 0;
    }
    let mut bytes = core::mem::MaybeUninit::<Aligned<16>>::uninit();
    // SAFETY: zero bytes are a valid byte array.
    let bytes = &mut unsafe { zeroed(&mut bytes) }.0;
    // SAFETY: `len <= KEY_MAX_LEN < 16` bytes of `bytes` are written; the helper never
    // faults on `address`.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            bytes.as_mut_ptr() as *mut core::ffi::c_void,
            len as u32,
            address as *const core::ffi::c_void,
        )
    };
    if rc < 0 {
        return 0;
    }
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    high.copy_from_slice(&bytes[8..]);
    let words = [u64::from_le_bytes(low), u64::from_le_bytes(high)];
    classify(len, words).map_or(0, |i| 1 << i)
}
