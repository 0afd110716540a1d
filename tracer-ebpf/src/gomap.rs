//! A bounded scan of a Go `map[string][]string` (an `http.Header`) for one key. Go seeds
//! its map hashes randomly, so the key cannot be hashed to its slot: every occupied slot
//! is looked at, one read per group of 8, for at most [`MAX_GROUPS`] groups; a larger map
//! is counted in `HEADERS_INCOMPLETE`. Layouts (offsets from DWARF) are described in
//! `tracer_common::config::HeaderMapLayout`.
use tracer_common::{
    config::{HeaderMapLayout, MAP_BUCKETS, MAP_SWISS},
    counters::HEADERS_INCOMPLETE,
    event::StrBuf,
};

use crate::{
    go::{Window, copy_string, read_u64, read_words},
    maps::count,
};

/// Groups (buckets) read at most per scan.
const MAX_GROUPS: u32 = 8;
/// Buckets: a slot is occupied when its top hash is at least this (`minTopHash`).
const MIN_TOP_HASH: u8 = 5;
/// Scratch windows used here (see `crate::maps::SCRATCH`).
const HEADER_WINDOW: u32 = 1;
const GROUP_WINDOW: u32 = 2;

/// The canonical key of the user agent header (`textproto.CanonicalMIMEHeaderKey`).
pub const USER_AGENT: &[u8; 10] = b"User-Agent";

/// Outcome of a scan.
pub enum Found {
    /// The key's first value was copied; the key string is at this address.
    At(u64),
    Absent,
}

/// A matching slot: the key's address and the value's `[]string` header.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Match {
    key: u64,
    values: u64,
    count: u64,
}

/// Copies the first `User-Agent` value of the map at `map` into `dst`; `known_address` is
/// where the key string was last seen (Go interns common header keys, so the address
/// usually identifies the key without reading it).
///
/// The groups scanned are found up front, without loops the verifier would have to walk
/// iteration by iteration: a small swiss map's one group, or the first `MAX_GROUPS` groups
/// of a swiss map's first table; a bucket map's first `MAX_GROUPS` buckets. Anything
/// beyond (more tables, overflow buckets, a map that is growing) is counted in
/// `HEADERS_INCOMPLETE`: request header maps fit unless a request has dozens of headers.
#[inline(always)]
pub fn first_value<const N: usize>(
    layout: &HeaderMapLayout,
    map: u64,
    known_address: u64,
    dst: &mut StrBuf<N>,
) -> Found {
    dst.len = 0;
    dst.flags = 0;
    let Some((first, groups, complete)) = groups(layout, map) else {
        return Found::Absent;
    };
    let shape = u64::from(layout.key_offset & 0xffff)
        | u64::from(layout.key_stride & 0xffff) << 16
        | u64::from(layout.value_offset & 0xffff) << 32
        | u64::from(layout.value_stride & 0xffff) << 48;
    let kind = u64::from(layout.kind) | u64::from(layout.group_size) << 32;
    let mut found = None;
    for i in 0..MAX_GROUPS {
        if u64::from(i) >= groups {
            break;
        }
        let group = first + u64::from(i) * u64::from(layout.group_size);
        let mut result = Match::default();
        if tracer_scan_group(group, known_address, shape, kind, &mut result) != 0 {
            found = Some(result);
            break;
        }
    }
    let Some(found) = found else {
        if !complete {
            count(HEADERS_INCOMPLETE);
        }
        return Found::Absent;
    };
    if found.count > 0
        && let Some([ptr, len]) = read_words(found.values)
    {
        copy_string(dst, ptr, len);
    }
    Found::At(found.key)
}

/// The first group to scan, how many consecutive groups to scan, and whether they hold
/// every entry of the map.
#[inline(always)]
fn groups(layout: &HeaderMapLayout, map: u64) -> Option<(u64, u64, bool)> {
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
                return Some((first, u64::from(first != 0), true));
            }
            let table = read_u64(first, 0)?;
            let window = Window::read(HEADER_WINDOW, table, layout.table_window)?;
            let data = window.word(layout.table_groups)?;
            let groups = window.word(layout.table_mask)? + 1;
            // Every directory entry names the first table when the map has only one.
            let one_table = directory_len == 1
                || read_u64(first, (8 * (directory_len as u32 - 1)) & 0x3f8) == Some(table);
            Some((
                data,
                groups.min(u64::from(MAX_GROUPS)),
                one_table && groups <= u64::from(MAX_GROUPS),
            ))
        }
        MAP_BUCKETS => {
            let word = header.word(layout.size_field & !7)?;
            let b = (word >> (8 * (layout.size_field & 7))) & 0xff;
            let old = header.word(layout.old_groups_field)?;
            let groups = 1u64 << (b & 7);
            // Overflow buckets are not followed: a parsed request's header map is sized
            // for its headers up front (`make(MIMEHeader, hint)`), so it has none.
            let complete = old == 0 && groups <= u64::from(MAX_GROUPS);
            Some((first, groups.min(u64::from(MAX_GROUPS)), complete))
        }
        _ => None,
    }
}

/// Scans the 8 slots of the group at `group` for the `User-Agent` key: by address first
/// (no read), then the bytes of every key of the right length; writes the match
/// to `out` and returns 1. A global function: the verifier checks it once, on its own,
/// instead of once per call and per path of its callers. Arguments are scalars (at most
/// five): `shape` packs the key offset, key stride, value offset and value stride (16
/// bits each), `kind` the map kind (low half) and the group size (high half).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_scan_group(
    group: u64,
    known_address: u64,
    shape: u64,
    kind: u64,
    out: *mut Match,
) -> u64 {
    if out.is_null() {
        return 0;
    }
    let key_offset = (shape & 0xffff) as u32;
    let key_stride = ((shape >> 16) & 0xffff) as u32;
    let value_offset = ((shape >> 32) & 0xffff) as u32;
    let value_stride = ((shape >> 48) & 0xffff) as u32;
    let swiss = (kind & 0xffff_ffff) as u32 == MAP_SWISS;
    let Some(window) = Window::read(GROUP_WINDOW, group, (kind >> 32) as u32) else {
        return 0;
    };
    let Some(control) = window.word(0) else {
        return 0;
    };
    let want = USER_AGENT.len() as u64;
    let slot_match = |slot: u32| -> Option<Match> {
        let byte = (control >> (8 * slot)) as u8;
        let occupied = if swiss {
            byte & 0x80 == 0
        } else {
            byte >= MIN_TOP_HASH
        };
        let key_at = key_offset + slot * key_stride;
        if !occupied || window.word(key_at + 8) != Some(want) {
            return None;
        }
        let value_at = value_offset + slot * value_stride;
        Some(Match {
            key: window.word(key_at).unwrap_or(0),
            values: window.word(value_at).unwrap_or(0),
            count: window.word(value_at + 8).unwrap_or(0),
        })
    };
    // By address, which needs no read, or else by the bytes of the key (other headers
    // have 10-byte names too, e.g. `Connection`, so every key of that length is checked).
    let mut found = None;
    for slot in 0..8u32 {
        if let Some(candidate) =
            slot_match(slot).filter(|m| m.key == known_address || tracer_is_user_agent(m.key) != 0)
        {
            found = Some(candidate);
            break;
        }
    }
    let Some(candidate) = found else { return 0 };
    // SAFETY: `out` is non-null and points to a `Match` of the caller.
    unsafe { *out = candidate };
    1
}

/// 1 when the target's 10 bytes at `address` spell `User-Agent`. A global function like
/// [`tracer_scan_group`], so that its read and comparison are verified once rather than in
/// every iteration of the scan.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_is_user_agent(address: u64) -> u64 {
    u64::from(address != 0 && bytes_equal(address, USER_AGENT))
}

/// True when the target's 10 bytes at `address` equal `expected`.
#[inline(always)]
fn bytes_equal(address: u64, expected: &[u8; 10]) -> bool {
    // SAFETY: bpf_probe_read_user never faults; a bad address returns an error.
    match unsafe { aya_ebpf::helpers::bpf_probe_read_user(address as *const [u8; 10]) } {
        Ok(actual) => &actual == expected,
        Err(_) => false,
    }
}
