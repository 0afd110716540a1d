//! Struct member offsets from the binary's own Go type descriptors, which every Go binary
//! carries (the garbage collector, interfaces and reflection need them) and stripping
//! keeps. A struct type's descriptor lists its fields with their names and offsets, so
//! a Go release that did not exist when the tracer was built is still read correctly when
//! its descriptors hold the structs the probes need.
//!
//! Layouts (64-bit, Go 1.19 to 1.27; <https://go.dev/src/internal/abi/type.go>): a type
//! (`abi.Type`) has its size at 0, its flags at 20, its kind in the low 5 bits of byte 23
//! and its name at 40 (an `int32` offset from the start of the type descriptors, to an
//! `abi.Name`: a flags byte, a varint length, the bytes; `TFlagExtraStar` means the stored
//! name has a `*` in front). After those 48 bytes: a struct has its package path (a name
//! pointer) and its fields (`[]abi.StructField`: name pointer, type pointer, offset); a map
//! its key, element and bucket or group types; an array its element type.
//!
//! Descriptors are found by scanning the type descriptors for struct and map types whose
//! name is one of those wanted and whose package path matches.
use super::dwarf::{Offsets, SIZE};
use super::elf::Elf;
use super::gotype::{STR_OFFSET, TFLAG_EXTRA_STAR, TFLAG_OFFSET, uvarint};

const KIND_OFFSET: u64 = 23;
const KIND_MASK: u8 = 0x1f;
const KIND_ARRAY: u8 = 17;
const KIND_MAP: u8 = 21;
const KIND_STRUCT: u8 = 25;
/// `TFlagUncommon`: an `abi.UncommonType` (package path offset first) follows the kind's part.
const TFLAG_UNCOMMON: u8 = 1;
/// Where a type's kind-specific part starts.
const TYPE_LEN: u64 = 48;
/// `abi.StructType.PkgPath` and `.Fields` (data pointer, length).
const STRUCT_PKG_PATH: u64 = TYPE_LEN;
const STRUCT_FIELDS: u64 = TYPE_LEN + 8;
/// A struct type's `abi.UncommonType`, after its fields slice.
const STRUCT_UNCOMMON: u64 = STRUCT_FIELDS + 24;
/// `abi.StructField`: name, type, offset.
const FIELD_LEN: u64 = 24;
/// `abi.MapType.Bucket` (Go <= 1.23) / `.Group` (swiss tables): after the key and element.
const MAP_BUCKET: u64 = TYPE_LEN + 16;
/// `abi.ArrayType.Elem`.
const ARRAY_ELEM: u64 = TYPE_LEN;
/// Most fields read from one struct: a bound against corrupt descriptors.
const MAX_FIELDS: u64 = 256;

/// A Go struct as the probes name it (by its DWARF name), where its descriptor is found
/// (package path and name as the descriptor spells them), and its members, as the probes
/// name them and as the descriptor does.
struct Wanted {
    dwarf: &'static str,
    package: &'static [&'static str],
    name: &'static [&'static str],
    members: &'static [(&'static str, &'static str)],
}

/// Structs found by their own descriptor.
const NAMED: &[Wanted] = &[
    Wanted {
        dwarf: "runtime.g",
        package: &["runtime"],
        name: &["runtime.g"],
        members: &[("goid", "goid"), ("parentGoid", "parentGoid")],
    },
    Wanted {
        dwarf: "net/http.Request",
        package: &["net/http"],
        name: &["http.Request"],
        members: &[
            ("Method", "Method"),
            ("URL", "URL"),
            ("ProtoMajor", "ProtoMajor"),
            ("ProtoMinor", "ProtoMinor"),
            ("Header", "Header"),
            ("Host", "Host"),
            ("RemoteAddr", "RemoteAddr"),
            ("RequestURI", "RequestURI"),
            ("TLS", "TLS"),
            ("Pattern", "Pattern"),
            ("ctx", "ctx"),
        ],
    },
    Wanted {
        dwarf: "net/http.response",
        package: &["net/http"],
        name: &["http.response"],
        members: &[("status", "status")],
    },
    Wanted {
        dwarf: "net/http.http2responseWriter",
        package: &["net/http"],
        name: &["http.http2responseWriter"],
        members: &[("rws", "rws")],
    },
    Wanted {
        dwarf: "net/http.http2responseWriterState",
        package: &["net/http"],
        name: &["http.http2responseWriterState"],
        members: &[("status", "status")],
    },
    Wanted {
        dwarf: "net/http/internal/http2.responseWriter",
        package: &["net/http/internal/http2"],
        name: &["http2.responseWriter"],
        members: &[("rws", "rws")],
    },
    Wanted {
        dwarf: "net/http/internal/http2.responseWriterState",
        package: &["net/http/internal/http2"],
        name: &["http2.responseWriterState"],
        members: &[("status", "status")],
    },
    Wanted {
        dwarf: "net/http.Response",
        package: &["net/http"],
        name: &["http.Response"],
        members: &[("StatusCode", "StatusCode")],
    },
    Wanted {
        dwarf: "net/url.URL",
        package: &["net/url"],
        name: &["url.URL"],
        members: &[
            ("Scheme", "Scheme"),
            ("Host", "Host"),
            ("Path", "Path"),
            ("RawQuery", "RawQuery"),
        ],
    },
    Wanted {
        dwarf: "bufio.Writer",
        package: &["bufio"],
        name: &["bufio.Writer"],
        members: &[("err", "err"), ("buf", "buf"), ("n", "n"), ("wr", "wr")],
    },
    // A client request's connection (injection).
    Wanted {
        dwarf: "net/http.persistConn",
        package: &["net/http"],
        name: &["http.persistConn"],
        members: &[("conn", "conn")],
    },
    Wanted {
        dwarf: "net.conn",
        package: &["net"],
        name: &["net.conn"],
        members: &[("fd", "fd")],
    },
    Wanted {
        dwarf: "net.netFD",
        package: &["net"],
        name: &["net.netFD"],
        members: &[("laddr", "laddr"), ("raddr", "raddr")],
    },
    Wanted {
        dwarf: "net.TCPAddr",
        package: &["net"],
        name: &["net.TCPAddr"],
        members: &[("Port", "Port")],
    },
    // The map header: Go's original hash maps (runtime.hmap) ...
    Wanted {
        dwarf: "hash<string,[]string>",
        package: &["runtime"],
        name: &["runtime.hmap"],
        members: &[
            ("count", "count"),
            ("B", "B"),
            ("buckets", "buckets"),
            ("oldbuckets", "oldbuckets"),
        ],
    },
    // ... or swiss tables (Go 1.24+).
    Wanted {
        dwarf: "map<string,[]string>",
        package: &["internal/runtime/maps"],
        name: &["maps.Map"],
        members: &[("used", "used"), ("dirPtr", "dirPtr"), ("dirLen", "dirLen")],
    },
    Wanted {
        dwarf: "table<string,[]string>",
        package: &["internal/runtime/maps"],
        name: &["maps.table"],
        members: &[("groups", "groups")],
    },
];

/// The type of `maps.table`'s `groups` field (`groupsReference`), which has no
/// descriptor of its own in most programs.
const GROUPS: &str = "groupReference<string,[]string>";
const GROUPS_MEMBERS: &[(&str, &str)] = &[("data", "data"), ("lengthMask", "lengthMask")];

/// The bucket (or group) of `http.Header`'s map type, and a group's slot.
const BUCKET: &str = "bucket<string,[]string>";
const BUCKET_MEMBERS: &[(&str, &str)] = &[
    ("keys", "keys"),
    ("values", "elems"),
    ("overflow", "overflow"),
];
const GROUP: &str = "noalg.map.group[string][]string";
const GROUP_MEMBERS: &[(&str, &str)] = &[("ctrl", "ctrl"), ("slots", "slots")];
const SLOT: &str = "noalg.struct { key string; elem []string }";
const SLOT_MEMBERS: &[(&str, &str)] = &[("key", "key"), ("elem", "elem")];

/// Reads the binary's memory image as the loaded program sees it.
struct Image<'a, 'data> {
    elf: &'a Elf<'data>,
}

impl Image<'_, '_> {
    fn bytes(&self, address: u64, len: u64) -> Option<&[u8]> {
        let bytes = self.elf.code(address, len).ok()?;
        (bytes.len() as u64 == len).then_some(bytes)
    }

    fn u8(&self, address: u64) -> Option<u8> {
        Some(self.bytes(address, 1)?[0])
    }

    fn i32(&self, address: u64) -> Option<i32> {
        Some(i32::from_le_bytes(self.bytes(address, 4)?.try_into().ok()?))
    }

    fn word(&self, address: u64) -> Option<u64> {
        self.elf.pointer_at(address)
    }

    /// The bytes of the `abi.Name` at `address`.
    fn name(&self, address: u64) -> Option<&[u8]> {
        let head = self.elf.code(address.checked_add(1)?, 10).ok()?;
        let (len, used) = uvarint(head)?;
        self.bytes(address.checked_add(1 + used as u64)?, len)
    }
}

/// The type descriptors of one binary.
struct Types<'a, 'data> {
    image: Image<'a, 'data>,
    start: u64,
    end: u64,
}

impl Types<'_, '_> {
    fn kind(&self, ty: u64) -> Option<u8> {
        Some(self.image.u8(ty.checked_add(KIND_OFFSET)?)? & KIND_MASK)
    }

    /// The name of type `ty` as the runtime prints it (`http.Request`).
    fn name(&self, ty: u64) -> Option<&[u8]> {
        let offset = self.image.i32(ty.checked_add(STR_OFFSET)?)?;
        let name = self
            .image
            .name(self.start.checked_add_signed(offset.into())?)?;
        let extra_star = self.image.u8(ty.checked_add(TFLAG_OFFSET)?)? & TFLAG_EXTRA_STAR != 0;
        Some(if extra_star {
            name.strip_prefix(b"*")?
        } else {
            name
        })
    }

    /// The fields of struct type `ty`: `(name, offset, type)`.
    fn fields(&self, ty: u64) -> Option<Vec<(&[u8], u64, u64)>> {
        let data = self.image.word(ty.checked_add(STRUCT_FIELDS)?)?;
        let len = self.image.word(ty.checked_add(STRUCT_FIELDS + 8)?)?;
        if len > MAX_FIELDS {
            return None;
        }
        (0..len)
            .map(|i| {
                let field = data.checked_add(i * FIELD_LEN)?;
                let name = self.image.name(self.image.word(field)?)?;
                let ty = self.image.word(field.checked_add(8)?)?;
                let offset = self.image.word(field.checked_add(16)?)?;
                Some((name, offset, ty))
            })
            .collect()
    }

    /// The package of struct type `ty`: the struct's package path when it has unexported
    /// fields, else its uncommon part's (a named type's).
    fn package(&self, ty: u64) -> Option<&[u8]> {
        let name = self.image.word(ty.checked_add(STRUCT_PKG_PATH)?)?;
        if name != 0 {
            return self.image.name(name);
        }
        if self.image.u8(ty.checked_add(TFLAG_OFFSET)?)? & TFLAG_UNCOMMON == 0 {
            return None;
        }
        let offset = self.image.i32(ty.checked_add(STRUCT_UNCOMMON)?)?;
        self.image
            .name(self.start.checked_add_signed(offset.into())?)
    }

    /// Records the `members` of struct type `ty` under `dwarf` (and its size when the
    /// probes want it).
    fn record(&self, ty: u64, dwarf: &str, members: &[(&str, &str)], into: &mut Offsets) {
        let Some(fields) = self.fields(ty) else {
            return;
        };
        for (wanted, spelled) in members {
            if let Some((_, offset, _)) = fields.iter().find(|(n, _, _)| n == &spelled.as_bytes()) {
                into.insert((dwarf.to_owned(), (*wanted).to_owned()), *offset);
            }
        }
        if let Some(size) = self.image.word(ty) {
            into.insert((dwarf.to_owned(), SIZE.to_owned()), size);
        }
    }

    /// The type of field `name` of struct type `ty`.
    fn field_type(&self, ty: u64, name: &str) -> Option<u64> {
        self.fields(ty)?
            .into_iter()
            .find(|(n, _, _)| *n == name.as_bytes())
            .map(|(_, _, ty)| ty)
    }
}

/// The offsets of the members of `wanted` that the binary's type descriptors describe,
/// given where they start (`types`) and end (`etypes`). Both bounds come from the binary:
/// the scan covers only the part of `[types, etypes)` that the loadable segment holding
/// `types` has in the file.
pub fn member_offsets(elf: &Elf<'_>, types: u64, etypes: u64) -> Offsets {
    let mut found = Offsets::new();
    let Some(end) = elf
        .segments()
        .iter()
        .find(|segment| segment.offset_of(types, 1).is_some())
        .and_then(|segment| segment.address.checked_add(segment.file_size))
        .map(|segment_end| segment_end.min(etypes))
    else {
        return found;
    };
    let types = Types {
        image: Image { elf },
        start: types,
        end,
    };
    let mut header_map = None;
    let mut ty = types.start;
    while ty
        .checked_add(TYPE_LEN)
        .is_some_and(|type_end| type_end <= types.end)
    {
        let candidate = ty;
        ty += 8;
        let Some(kind) = types.kind(candidate) else {
            continue;
        };
        if kind != KIND_STRUCT && kind != KIND_MAP {
            continue;
        }
        let Some(name) = types.name(candidate) else {
            continue;
        };
        if kind == KIND_MAP {
            if name == b"http.Header" && header_map.is_none() {
                header_map = Some(candidate);
            }
            continue;
        }
        let Some(wanted) = NAMED
            .iter()
            .find(|w| w.name.iter().any(|n| n.as_bytes() == name))
        else {
            continue;
        };
        if found.keys().any(|(s, _)| s == wanted.dwarf) {
            continue;
        }
        if !types
            .package(candidate)
            .is_some_and(|p| wanted.package.iter().any(|w| w.as_bytes() == p))
        {
            continue;
        }
        types.record(candidate, wanted.dwarf, wanted.members, &mut found);
        if wanted.dwarf == "table<string,[]string>"
            && let Some(groups) = types.field_type(candidate, "groups")
        {
            types.record(groups, GROUPS, GROUPS_MEMBERS, &mut found);
        }
    }
    // `http.Header`'s map type names its bucket (hash maps) or group (swiss tables).
    if let Some(bucket) = header_map.and_then(|map| types.image.word(map.checked_add(MAP_BUCKET)?))
    {
        if types.field_type(bucket, "overflow").is_some() {
            types.record(bucket, BUCKET, BUCKET_MEMBERS, &mut found);
        } else if let Some(slots) = types.field_type(bucket, "slots") {
            types.record(bucket, GROUP, GROUP_MEMBERS, &mut found);
            let slot = (types.kind(slots) == Some(KIND_ARRAY))
                .then(|| types.image.word(slots.checked_add(ARRAY_ELEM)?))
                .flatten();
            if let Some(slot) = slot {
                types.record(slot, SLOT, SLOT_MEMBERS, &mut found);
            }
        }
    }
    // Sizes only where the probes use them.
    found.retain(|(strukt, member), _| {
        member != SIZE || [BUCKET, GROUP, SLOT].contains(&strukt.as_str())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{Section, elf};
    use super::*;

    /// Found by `cargo xtask fuzz` (target `derive`): bounds read from a corrupt binary
    /// made the scan walk 2^60 addresses (a hang), and bounds near the top of the address
    /// space overflowed.
    #[test]
    fn scans_only_what_the_file_holds() {
        let bytes = [0u8; 256];
        let file = elf(&[Section {
            name: ".rodata",
            address: 0x40_0000,
            bytes: &bytes,
            loaded: true,
        }]);
        let elf = Elf::parse(&file).expect("parses");
        let started = std::time::Instant::now();
        assert!(member_offsets(&elf, 0x40_0000, 0x1a00_0000_0000_0000).is_empty());
        assert!(member_offsets(&elf, 0x11_c8c8_c8c8_2c11, 0x1a00_0000_0000_0000).is_empty());
        assert!(member_offsets(&elf, u64::MAX - 8, u64::MAX).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn descriptors_at_the_top_of_the_address_space_do_not_overflow() {
        let mut bytes = [0u8; 256];
        // A struct kind, for the reader to go on to its name and fields.
        bytes[KIND_OFFSET as usize] = KIND_STRUCT;
        let file = elf(&[Section {
            name: ".rodata",
            address: u64::MAX - 255,
            bytes: &bytes,
            loaded: true,
        }]);
        let elf = Elf::parse(&file).expect("parses");
        assert!(member_offsets(&elf, u64::MAX - 255, u64::MAX).is_empty());
    }
}
