//! ELF access: the symbols of a binary, the bytes of a function, and the translation of
//! virtual addresses to file offsets (uprobes are placed by file offset) through the
//! program headers, which works the same for PIE and non-PIE executables.
use std::collections::HashMap;

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

/// Errors reading an ELF file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not a readable ELF file")]
    Parse(#[source] object::Error),
    #[error("unsupported architecture {0:?} (only x86-64 is supported)")]
    Architecture(object::Architecture),
    #[error("the file is cut short: a section extends past its end")]
    Truncated,
    #[error("address {0:#x} is not in any loadable segment")]
    NotLoaded(u64),
}

/// A function found in the symbol table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Virtual address of the first instruction.
    pub address: u64,
    /// Size in bytes (0 when the symbol table does not say).
    pub size: u64,
}

/// A loadable segment: where its bytes are in the file and in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub address: u64,
    pub file_offset: u64,
    pub file_size: u64,
}

impl Segment {
    /// The file offset of `len` bytes at virtual address `address`, if the segment holds
    /// them all.
    pub fn offset_of(&self, address: u64, len: u64) -> Option<u64> {
        let end = address.checked_add(len)?;
        let segment_end = self.address.checked_add(self.file_size)?;
        if address < self.address || end > segment_end {
            return None;
        }
        (address - self.address).checked_add(self.file_offset)
    }
}

/// A parsed ELF file borrowing its bytes.
pub struct Elf<'data> {
    pub file: object::File<'data>,
    data: &'data [u8],
    /// `R_X86_64_RELATIVE` relocations by address, read on first use.
    relocations: std::cell::OnceCell<HashMap<u64, u64>>,
}

impl<'data> Elf<'data> {
    pub fn parse(data: &'data [u8]) -> Result<Self, ElfError> {
        let file = object::File::parse(data).map_err(ElfError::Parse)?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(ElfError::Architecture(file.architecture()));
        }
        // object parses headers lazily: a file cut short still parses, with sections whose
        // bytes are missing.
        let len = data.len() as u64;
        for section in file.sections() {
            if let Some((offset, size)) = section.file_range()
                && offset.checked_add(size).is_none_or(|end| end > len)
            {
                return Err(ElfError::Truncated);
            }
        }
        Ok(Self {
            file,
            data,
            relocations: std::cell::OnceCell::new(),
        })
    }

    /// Looks up the given function names in the symbol table (`.symtab`); names not
    /// found are absent from the result.
    pub fn functions(&self, names: &[&str]) -> HashMap<String, Function> {
        let mut found = HashMap::new();
        for symbol in self.file.symbols() {
            let Ok(name) = symbol.name() else { continue };
            if names.contains(&name) && symbol.kind() == object::SymbolKind::Text {
                let function = Function {
                    address: symbol.address(),
                    size: symbol.size(),
                };
                found.insert(name.to_owned(), function);
            }
        }
        found
    }

    /// True when the file has a symbol table.
    pub fn has_symbols(&self) -> bool {
        self.file.symbols().next().is_some()
    }

    /// The loadable segments.
    pub fn segments(&self) -> Vec<Segment> {
        self.file
            .segments()
            .map(|segment| {
                let (file_offset, file_size) = segment.file_range();
                Segment {
                    address: segment.address(),
                    file_offset,
                    file_size,
                }
            })
            .collect()
    }

    /// The address of the data symbol `name` (a package-level variable), if the symbol
    /// table has it.
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        self.file.symbols().find_map(|symbol| {
            (symbol.kind() == object::SymbolKind::Data && symbol.name() == Ok(name))
                .then(|| symbol.address())
        })
    }

    /// True for a position-dependent executable (`ET_EXEC`): its addresses are where it
    /// runs, with no load bias.
    pub fn is_fixed_address(&self) -> bool {
        self.file.kind() == object::ObjectKind::Executable
    }

    /// Where the Go type descriptors start (`moduledata.types`), which the runtime's name
    /// offsets are relative to: the `.go.type` section from Go 1.26, else the symbol
    /// `runtime.types` (the `type:*` symbol may sit 8 bytes after it, in position-independent
    /// executables and from Go 1.26), else `type:*` (Go 1.20+) or `type.*` (older).
    pub fn types_base(&self) -> Option<u64> {
        if let Some(address) = super::pclntab::TYPE_SECTIONS
            .iter()
            .find_map(|name| self.section_address(name))
        {
            return Some(address);
        }
        let symbol = |names: &[&str]| {
            self.file.symbols().find_map(|symbol| {
                names
                    .contains(&symbol.name().ok()?)
                    .then(|| symbol.address())
            })
        };
        symbol(&["runtime.types"]).or_else(|| symbol(&["type:*", "type.*"]))
    }

    /// The file offset of virtual address `address`, from the loadable segment holding it.
    pub fn file_offset(&self, address: u64) -> Result<u64, ElfError> {
        for segment in self.file.segments() {
            let (offset, file_size) = segment.file_range();
            let start = segment.address();
            if address >= start && address - start < file_size {
                return (address - start)
                    .checked_add(offset)
                    .ok_or(ElfError::NotLoaded(address));
            }
        }
        Err(ElfError::NotLoaded(address))
    }

    /// Up to `len` bytes of code starting at virtual address `address`.
    pub fn code(&self, address: u64, len: u64) -> Result<&'data [u8], ElfError> {
        let offset = self.file_offset(address)? as usize;
        let end = offset.saturating_add(len as usize).min(self.data.len());
        Ok(&self.data[offset.min(end)..end])
    }

    /// The allocated sections that hold data in the file, not code: `(address, bytes)`.
    pub fn data_sections(&self) -> impl Iterator<Item = (u64, &'data [u8])> + '_ {
        self.file.sections().filter_map(|section| {
            let kind = section.kind();
            let data = matches!(
                kind,
                object::SectionKind::Data | object::SectionKind::ReadOnlyData
            );
            Some((section.address(), section.data().ok().filter(|_| data)?))
        })
    }

    /// Every `R_X86_64_RELATIVE` relocation: the pointer the loader stores at each
    /// address (a position-independent executable's pointers; the linker may leave the
    /// words themselves zero).
    fn relative_relocations(&self) -> &HashMap<u64, u64> {
        self.relocations.get_or_init(|| {
            let Some(relocations) = self.file.dynamic_relocations() else {
                return HashMap::new();
            };
            relocations
                .filter(|(_, relocation)| is_relative(relocation))
                .filter_map(|(at, relocation)| Some((at, u64::try_from(relocation.addend()).ok()?)))
                .collect()
        })
    }

    /// The address range `[start, end)` of section `name`, if present.
    pub fn section_range(&self, name: &str) -> Option<(u64, u64)> {
        let section = self.file.section_by_name(name)?;
        Some((
            section.address(),
            section.address().checked_add(section.size())?,
        ))
    }

    /// The address of section `name`, if present.
    pub fn section_address(&self, name: &str) -> Option<u64> {
        Some(self.file.section_by_name(name)?.address())
    }

    /// The pointer stored at virtual address `address` as the loaded program sees it: the
    /// addend of a dynamic `R_X86_64_RELATIVE` relocation there, else the word in the file.
    pub fn pointer_at(&self, address: u64) -> Option<u64> {
        if let Some(&value) = self.relative_relocations().get(&address) {
            return Some(value);
        }
        let bytes = self.code(address, 8).ok()?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// The addresses of the aligned pointers to `target` in the writable data sections,
    /// stored in the file or set by a `R_X86_64_RELATIVE` relocation.
    pub fn words_pointing_to(&self, target: u64) -> Vec<u64> {
        let mut found: Vec<u64> = self
            .relative_relocations()
            .iter()
            .filter_map(|(&at, &value)| (value == target).then_some(at))
            .collect();
        for section in self.file.sections() {
            let writable = matches!(section.flags(), object::SectionFlags::Elf { sh_flags }
                if sh_flags & u64::from(object::elf::SHF_WRITE) != 0);
            let Ok(data) = section.data() else { continue };
            if !writable || section.kind() == object::SectionKind::UninitializedData {
                continue;
            }
            let start = section.address();
            let Some(aligned) = start.checked_next_multiple_of(8) else {
                continue;
            };
            let skip = aligned - start;
            for (i, word) in data
                .get(skip as usize..)
                .unwrap_or(&[])
                .chunks_exact(8)
                .enumerate()
            {
                if word == target.to_le_bytes()
                    && let Some(at) = aligned.checked_add(i as u64 * 8)
                {
                    found.push(at);
                }
            }
        }
        found
    }

    /// The uncompressed contents of section `name`, if present.
    pub fn section(&self, name: &str) -> Option<std::borrow::Cow<'data, [u8]>> {
        self.file.section_by_name(name)?.uncompressed_data().ok()
    }
}

/// Whether `relocation` is `R_X86_64_RELATIVE` (base + addend).
fn is_relative(relocation: &object::Relocation) -> bool {
    relocation.flags()
        == object::RelocationFlags::Elf {
            r_type: object::elf::R_X86_64_RELATIVE,
        }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{Section, elf};
    use super::*;

    /// Segments and sections at the top of the address space: the readers' arithmetic
    /// on addresses from the file must not overflow.
    #[test]
    fn addresses_at_the_top_do_not_overflow() {
        let bytes = u64::MAX.to_le_bytes().repeat(4);
        for address in [u64::MAX - 20, u64::MAX - 2] {
            let file = elf(&[Section {
                name: ".data",
                address,
                bytes: &bytes,
                loaded: true,
            }]);
            let elf = Elf::parse(&file).expect("parses");
            assert_eq!(elf.file_offset(u64::MAX).ok().map(|o| o > 0), Some(true));
            assert!(elf.code(u64::MAX - 1, 64).is_ok());
            assert_eq!(elf.section_range(".data"), None);
            let _ = elf.words_pointing_to(u64::MAX);
        }
    }
}
