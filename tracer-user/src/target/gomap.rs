//! The layout of Go's `map[string][]string` (an `http.Header`) in one binary, from the
//! per-type structs the Go linker describes in DWARF: `hash<K,V>` and `bucket<K,V>` for
//! the original hash maps (<https://go.dev/src/runtime/map.go>), `map<K,V>`,
//! `table<K,V>`, `groupReference<K,V>` and `noalg.map.group[K]V` for swiss tables
//! (<https://go.dev/src/internal/runtime/maps/>), including the split-group layout of
//! `GOEXPERIMENT=mapsplitgroup` (keys and values in separate arrays).
use tracer_common::config::{HeaderMapLayout, MAP_BUCKETS, MAP_SWISS, WINDOW_BYTES};

use super::dwarf::{Offsets, SIZE};

const HASH: &str = "hash<string,[]string>";
const BUCKET: &str = "bucket<string,[]string>";
const MAP: &str = "map<string,[]string>";
const TABLE: &str = "table<string,[]string>";
const GROUP_REF: &str = "groupReference<string,[]string>";
const GROUP: &str = "noalg.map.group[string][]string";
const SLOT: &str = "noalg.struct { key string; elem []string }";

/// Size of a Go string header and of a slice header on amd64.
const STRING: u64 = 16;
const SLICE: u64 = 24;

/// The structs and members read to find the layout.
pub const FIELDS: &[(&str, &[&str])] = &[
    (HASH, &["count", "B", "buckets", "oldbuckets"]),
    (BUCKET, &["keys", "values", "overflow", SIZE]),
    (MAP, &["used", "dirPtr", "dirLen"]),
    (TABLE, &["groups"]),
    (GROUP_REF, &["data", "lengthMask"]),
    (GROUP, &["ctrl", "slots", "keys", "elems", SIZE]),
    (SLOT, &["key", "elem", SIZE]),
];

fn u32_of(v: u64) -> Option<u32> {
    u32::try_from(v).ok()
}

/// The header map layout, or `None` when the binary's DWARF does not describe one that
/// the kernel programs can scan (header attributes are then not reported).
pub fn header_map_layout(offsets: &Offsets) -> Option<HeaderMapLayout> {
    let get = |s: &str, m: &str| offsets.get(&(s.to_owned(), m.to_owned())).copied();
    let layout = if let (Some(dir_ptr), Some(dir_len)) = (get(MAP, "dirPtr"), get(MAP, "dirLen")) {
        let used = get(MAP, "used")?;
        let groups = get(TABLE, "groups")?;
        let (key_offset, key_stride, value_offset, value_stride) =
            match (get(GROUP, "slots"), get(GROUP, "keys"), get(GROUP, "elems")) {
                (Some(slots), _, _) => {
                    let slot = get(SLOT, SIZE)?;
                    (
                        slots + get(SLOT, "key")?,
                        slot,
                        slots + get(SLOT, "elem")?,
                        slot,
                    )
                }
                (None, Some(keys), Some(elems)) => (keys, STRING, elems, SLICE),
                _ => return None,
            };
        let table_groups = groups + get(GROUP_REF, "data")?;
        let table_mask = groups + get(GROUP_REF, "lengthMask")?;
        HeaderMapLayout {
            kind: MAP_SWISS,
            header_window: u32_of(dir_ptr.max(dir_len).max(used) + 8)?,
            size_field: u32_of(dir_len)?,
            groups_field: u32_of(dir_ptr)?,
            old_groups_field: 0,
            table_window: u32_of(table_groups.max(table_mask) + 8)?,
            table_groups: u32_of(table_groups)?,
            table_mask: u32_of(table_mask)?,
            group_size: u32_of(get(GROUP, SIZE)?)?,
            key_offset: u32_of(key_offset)?,
            key_stride: u32_of(key_stride)?,
            value_offset: u32_of(value_offset)?,
            value_stride: u32_of(value_stride)?,
            overflow: 0,
            count_field: u32_of(used)?,
            _pad: 0,
        }
    } else {
        let (count, b, buckets, old) = (
            get(HASH, "count")?,
            get(HASH, "B")?,
            get(HASH, "buckets")?,
            get(HASH, "oldbuckets")?,
        );
        HeaderMapLayout {
            kind: MAP_BUCKETS,
            header_window: u32_of(b.max(buckets).max(old).max(count) / 8 * 8 + 8)?,
            size_field: u32_of(b)?,
            groups_field: u32_of(buckets)?,
            old_groups_field: u32_of(old)?,
            table_window: 0,
            table_groups: 0,
            table_mask: 0,
            group_size: u32_of(get(BUCKET, SIZE)?)?,
            key_offset: u32_of(get(BUCKET, "keys")?)?,
            key_stride: STRING as u32,
            value_offset: u32_of(get(BUCKET, "values")?)?,
            value_stride: SLICE as u32,
            overflow: u32_of(get(BUCKET, "overflow")?)?,
            count_field: u32_of(count)?,
            _pad: 0,
        }
    };
    // Every window must fit the kernel's scratch buffers, and word fields be aligned.
    let fits = [layout.header_window, layout.table_window, layout.group_size]
        .iter()
        .all(|&w| w <= WINDOW_BYTES);
    let aligned = [
        layout.count_field,
        layout.groups_field,
        layout.old_groups_field,
        layout.table_groups,
        layout.table_mask,
    ]
    .iter()
    .all(|&o| o % 8 == 0)
        && (layout.kind == MAP_BUCKETS || layout.size_field % 8 == 0)
        && layout.key_offset % 8 == 0
        && layout.value_offset % 8 == 0
        && layout.key_stride % 8 == 0
        && layout.value_stride % 8 == 0;
    (fits && aligned).then_some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(&str, &str, u64)]) -> Offsets {
        entries
            .iter()
            .map(|(s, m, v)| (((*s).to_owned(), (*m).to_owned()), *v))
            .collect()
    }

    #[test]
    fn swiss_layout_of_go_1_24() {
        let o = offsets(&[
            (MAP, "used", 0),
            (MAP, "dirPtr", 16),
            (MAP, "dirLen", 24),
            (TABLE, "groups", 16),
            (GROUP_REF, "data", 0),
            (GROUP_REF, "lengthMask", 8),
            (GROUP, "ctrl", 0),
            (GROUP, "slots", 8),
            (GROUP, SIZE, 328),
            (SLOT, "key", 0),
            (SLOT, "elem", 16),
            (SLOT, SIZE, 40),
        ]);
        let l = header_map_layout(&o).expect("layout");
        assert_eq!(
            (l.kind, l.groups_field, l.size_field, l.header_window),
            (MAP_SWISS, 16, 24, 32)
        );
        assert_eq!((l.table_groups, l.table_mask, l.table_window), (16, 24, 32));
        assert_eq!(
            (l.key_offset, l.key_stride, l.value_offset, l.value_stride),
            (8, 40, 24, 40)
        );
        assert_eq!((l.group_size, l.count_field), (328, 0));
        // Without the entry count the layout is not used.
        let mut partial = o.clone();
        partial.remove(&(MAP.to_owned(), "used".to_owned()));
        assert_eq!(header_map_layout(&partial), None);
    }

    #[test]
    fn split_group_and_bucket_layouts() {
        let o = offsets(&[
            (MAP, "used", 0),
            (MAP, "dirPtr", 16),
            (MAP, "dirLen", 24),
            (TABLE, "groups", 16),
            (GROUP_REF, "data", 0),
            (GROUP_REF, "lengthMask", 8),
            (GROUP, "keys", 8),
            (GROUP, "elems", 136),
            (GROUP, SIZE, 328),
        ]);
        let l = header_map_layout(&o).expect("split layout");
        assert_eq!(
            (l.key_offset, l.key_stride, l.value_offset, l.value_stride),
            (8, 16, 136, 24)
        );

        let o = offsets(&[
            (HASH, "count", 0),
            (HASH, "B", 9),
            (HASH, "buckets", 16),
            (HASH, "oldbuckets", 24),
            (BUCKET, "keys", 8),
            (BUCKET, "values", 136),
            (BUCKET, "overflow", 328),
            (BUCKET, SIZE, 336),
        ]);
        let l = header_map_layout(&o).expect("bucket layout");
        assert_eq!(
            (l.kind, l.size_field, l.groups_field, l.old_groups_field),
            (MAP_BUCKETS, 9, 16, 24)
        );
        assert_eq!((l.header_window, l.overflow, l.group_size), (32, 328, 336));
        assert_eq!(header_map_layout(&Offsets::new()), None);
    }
}
