//! Names of Go types from the binary's type descriptors, for `error.type`: a client call's
//! error is an interface value whose first word is an itab; the itab's second word points
//! to the dynamic type's descriptor (`internal/abi.Type`), whose `Str` field is the offset
//! of its name from the first type descriptor (`type:*`). Both are static data of the
//! binary for the itabs the compiler builds (errors returned as `error`), so they are read
//! from the executable file, never from the process. See
//! <https://go.dev/src/internal/abi/type.go> (`Type`, `Name`) and
//! <https://go.dev/src/runtime/iface.go>.
use std::{collections::HashMap, fs::File, os::unix::fs::FileExt as _, sync::Arc};

use compact_str::CompactString;

use super::elf::Segment;

/// `abi.Type.TFlag` (a byte) and `abi.Type.Str` (an `int32` offset) in a type descriptor
/// on 64-bit platforms, the same from Go 1.14 to 1.27.
pub(super) const TFLAG_OFFSET: u64 = 20;
pub(super) const STR_OFFSET: u64 = 40;
/// `TFlagExtraStar`: the stored name has a `*` in front that is not part of it.
pub(super) const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// `itab._type`.
const ITAB_TYPE_OFFSET: u64 = 8;
/// Longest name read.
const MAX_NAME: usize = 256;

/// Resolves itab addresses of one executable to type names, with a cache.
pub struct TypeNames {
    /// Shared by every process of the executable.
    file: Arc<File>,
    segments: Vec<Segment>,
    types_base: Option<u64>,
    /// The data word of `context.Canceled` in the process, once read.
    canceled: Option<u64>,
    /// Where to read it: the process and the variable's address (read when an error is
    /// first seen, after the program has initialised it).
    canceled_at: Option<(u32, u64)>,
    cache: HashMap<u64, Option<CompactString>>,
}

impl TypeNames {
    pub fn new(
        file: Arc<File>,
        segments: Vec<Segment>,
        types_base: Option<u64>,
        canceled_at: Option<(u32, u64)>,
    ) -> Self {
        Self {
            file,
            segments,
            types_base,
            canceled: None,
            canceled_at,
            cache: HashMap::new(),
        }
    }

    /// What an `error` value `{itab, data}` of the process is: `canceled` for
    /// `context.Canceled` itself, else the name of its dynamic type (see [`Self::of_itab`]).
    pub fn of_error(&mut self, itab: u64, data: u64) -> Option<CompactString> {
        if self.canceled.is_none()
            && let Some((pid, address)) = self.canceled_at
        {
            self.canceled = read_error_data(pid, address);
            if self.canceled.is_some() {
                self.canceled_at = None;
            }
        }
        if self.canceled == Some(data) {
            return Some(CompactString::const_new("canceled"));
        }
        self.of_itab(itab)
    }

    /// The name of the dynamic type of an interface value whose itab is at `itab`, e.g.
    /// `*net.OpError`; `None` when the itab is not static data of the binary (built at run
    /// time) or does not parse.
    pub fn of_itab(&mut self, itab: u64) -> Option<CompactString> {
        if let Some(name) = self.cache.get(&itab) {
            return name.clone();
        }
        let name = self.resolve(itab);
        // Itabs are few; the cache stays small. Guard it anyway against garbage addresses.
        if self.cache.len() < 4096 {
            self.cache.insert(itab, name.clone());
        }
        name
    }

    fn resolve(&self, itab: u64) -> Option<CompactString> {
        let typ = u64::from_le_bytes(self.read(itab.checked_add(ITAB_TYPE_OFFSET)?)?);
        let tflag = self.read::<1>(typ.checked_add(TFLAG_OFFSET)?)?[0];
        let str_offset = i32::from_le_bytes(self.read(typ.checked_add(STR_OFFSET)?)?);
        let name_at = self.types_base?.checked_add_signed(i64::from(str_offset))?;
        // abi.Name: a flags byte, the length as a uvarint, the bytes.
        let head: [u8; 11] = self.read(name_at)?;
        let (len, used) = uvarint(&head[1..])?;
        let len = usize::try_from(len).ok()?.min(MAX_NAME);
        let mut bytes = vec![0; len];
        let start = name_at.checked_add(1 + used as u64)?;
        let offset = self.file_offset(start, len as u64)?;
        self.file.read_exact_at(&mut bytes, offset).ok()?;
        let mut name = std::str::from_utf8(&bytes).ok()?;
        if tflag & TFLAG_EXTRA_STAR != 0 {
            name = name.strip_prefix('*').unwrap_or(name);
        }
        (!name.is_empty()).then(|| CompactString::from(name))
    }

    fn file_offset(&self, address: u64, len: u64) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|segment| segment.offset_of(address, len))
    }

    fn read<const N: usize>(&self, address: u64) -> Option<[u8; N]> {
        let offset = self.file_offset(address, N as u64)?;
        let mut buf = [0; N];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }
}

/// A little-endian base-128 varint and the bytes it took.
pub(super) fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The data word of the `error` variable at `address` in process `pid` (a sentinel error
/// such as `context.Canceled`, set once when the program starts); `None` if unreadable
/// or not set yet.
fn read_error_data(pid: u32, address: u64) -> Option<u64> {
    let read = || -> std::io::Result<u64> {
        let mem = File::open(format!("/proc/{pid}/mem"))?;
        let mut word = [0u8; 8];
        mem.read_exact_at(&mut word, address.saturating_add(8))?;
        Ok(u64::from_le_bytes(word))
    };
    match read() {
        Ok(data) => Some(data).filter(|&data| data != 0),
        Err(error) => {
            log::debug!("pid={pid}: cannot read context.Canceled ({error})");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[0x0c]), Some((12, 1)));
        assert_eq!(uvarint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(uvarint(&[0x80; 3]), None);
    }
}
