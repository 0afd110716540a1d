//! Functions of a Go binary without its symbol table, from the runtime's own function table
//! (`.gopclntab`), which stripping (`-ldflags=-s`, `strip`) keeps because the runtime needs
//! it for stack traces and garbage collection.
//!
//! Layout (Go 1.18 to 1.27, 64-bit; <https://go.dev/src/runtime/symtab.go>): a header
//! (`pcHeader`: magic `0xfffffff0` for 1.18-1.19, `0xfffffff1` from 1.20; the function
//! count at 8; the text start at 24 until 1.25, zero from 1.26; the offsets of the name
//! table at 32 and of the function table at 64), then the function table: `nfunc + 1`
//! pairs `{entryoff u32, funcoff u32}` sorted by entry, the last one marking the end of the
//! text; `funcoff` leads to a `_func` whose second word is the offset of the function's
//! NUL-terminated name in the name table. Entries are relative to the module's text start
//! (`moduledata.text`), which is not the `.text` section's start when an external linker
//! put C code first (cgo), so it is read from the module data: the `.go.module` section
//! from Go 1.26, else the `runtime.firstmoduledata` variable, found as the data word that
//! points to the header followed by the slice of the name table.
use std::collections::HashMap;

use super::elf::{Elf, Function};

/// Errors reading the function table.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclntabError {
    #[error("no Go function table (.gopclntab)")]
    Missing,
    #[error("Go function table with unknown magic {0:#x} (Go older than 1.18, or a newer format)")]
    Magic(u32),
    #[error("corrupt Go function table: {0}")]
    Corrupt(&'static str),
    #[error("cannot find where the Go text starts (no module data points to the function table)")]
    TextStart,
}

/// `pcHeader.magic` values this parser reads.
const MAGIC_1_18: u32 = 0xffff_fff0;
const MAGIC_1_20: u32 = 0xffff_fff1;
/// Offsets in `pcHeader` (64-bit).
const NFUNC: usize = 8;
const TEXT_START: usize = 24;
const FUNCNAME_OFFSET: usize = 32;
const PCLN_OFFSET: usize = 64;
const HEADER_LEN: usize = 72;
/// `moduledata.text`: after `pcHeader` (8 bytes), six slices (24 each), `findfunctab`,
/// `minpc` and `maxpc`; the same from Go 1.16 to 1.27.
pub const MODULEDATA_TEXT: u64 = 176;
/// `moduledata.types`: after `text` and `etext`, eight words of data section bounds, two of
/// coverage counters (Go 1.20+), `end`, `gcdata` and `gcbss`.
const MODULEDATA_TYPES_1_19: u64 = 280;
const MODULEDATA_TYPES: u64 = 296;
/// The sections of the type descriptors (Go 1.26+; the second in position-independent
/// executables).
pub const TYPE_SECTIONS: [&str; 2] = [".go.type", ".data.rel.ro.go.type"];
/// `moduledata.funcnametab`'s data pointer.
const MODULEDATA_FUNCNAMETAB: u64 = 8;
/// Most header-like candidates tried when the table has no section of its own: a
/// binary has one table; each candidate costs a scan of the writable data.
const MAX_CANDIDATES: usize = 8;

/// The function table of one binary.
pub struct Pclntab<'data> {
    /// The table's bytes, from its header.
    data: std::borrow::Cow<'data, [u8]>,
    /// Where the header is in memory (as linked).
    pub address: u64,
    nfunc: usize,
    funcnames: usize,
    pcln: usize,
    /// Where the module's text starts: function entries are relative to it.
    pub text: u64,
    /// Where the module data is, when it was found.
    pub moduledata: Option<u64>,
}

impl<'data> Pclntab<'data> {
    /// Finds and checks the function table of `elf`.
    pub fn parse(elf: &Elf<'data>) -> Result<Self, PclntabError> {
        let named = [".gopclntab", ".data.rel.ro.gopclntab"]
            .iter()
            .find_map(|name| Some((elf.section_address(name)?, elf.section(name)?)));
        if let Some((address, data)) = named {
            return Self::at(elf, address, data);
        }
        // An external linker may merge the table into `.data.rel.ro` (PIE, Go <= 1.19):
        // look for its header there, trusting one that module data points to. Each
        // candidate costs a scan of the writable data: a few at most are tried.
        let mut first_error = PclntabError::Missing;
        let mut candidates = 0;
        for (address, data) in elf.data_sections() {
            for at in (0..data.len().saturating_sub(HEADER_LEN)).step_by(8) {
                if !is_header_start(&data[at..]) {
                    continue;
                }
                let Some(header) = address.checked_add(at as u64) else {
                    break;
                };
                candidates += 1;
                if candidates > MAX_CANDIDATES {
                    return Err(first_error);
                }
                let candidate = std::borrow::Cow::Borrowed(&data[at..]);
                match Self::at(elf, header, candidate) {
                    Ok(table) if table.moduledata.is_some() => return Ok(table),
                    Ok(_) => {}
                    Err(error) if first_error == PclntabError::Missing => first_error = error,
                    Err(_) => {}
                }
            }
        }
        Err(first_error)
    }

    /// The table whose header is at `address`, with bytes `data` from there on.
    fn at(
        elf: &Elf<'data>,
        address: u64,
        data: std::borrow::Cow<'data, [u8]>,
    ) -> Result<Self, PclntabError> {
        if data.len() < HEADER_LEN {
            return Err(PclntabError::Corrupt("header cut short"));
        }
        let magic = u32_at(&data, 0).ok_or(PclntabError::Corrupt("header cut short"))?;
        if magic != MAGIC_1_18 && magic != MAGIC_1_20 {
            return Err(PclntabError::Magic(magic));
        }
        if data[7] != 8 {
            return Err(PclntabError::Corrupt("pointer size is not 8"));
        }
        let word = |at| usize::try_from(u64_at(&data, at).unwrap_or(u64::MAX)).ok();
        let nfunc = word(NFUNC).ok_or(PclntabError::Corrupt("function count"))?;
        let funcnames = word(FUNCNAME_OFFSET).ok_or(PclntabError::Corrupt("name table"))?;
        let pcln = word(PCLN_OFFSET).ok_or(PclntabError::Corrupt("function table"))?;
        let ftab_end = nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| n.checked_add(pcln));
        if funcnames >= data.len() || ftab_end.is_none_or(|end| end > data.len()) {
            return Err(PclntabError::Corrupt("tables beyond the section"));
        }
        let moduledata = address
            .checked_add(funcnames as u64)
            .and_then(|funcnames| find_moduledata(elf, address, funcnames));
        let text = moduledata
            .and_then(|at| elf.pointer_at(at.checked_add(MODULEDATA_TEXT)?))
            .or_else(|| elf.pointer_at(address.checked_add(TEXT_START as u64)?))
            .filter(|&text| text != 0)
            .ok_or(PclntabError::TextStart)?;
        Ok(Self {
            data,
            address,
            nfunc,
            funcnames,
            pcln,
            text,
            moduledata,
        })
    }

    /// Where the Go type descriptors start (`moduledata.types`) in a binary built by Go
    /// 1.`minor`, if the module data was found.
    pub fn types(&self, elf: &Elf<'_>, minor: u32) -> Option<u64> {
        let (field, _) = moduledata_types_fields(minor);
        elf.pointer_at(self.moduledata?.checked_add(field)?)
            .filter(|&types| types != 0)
    }

    /// Where the Go type descriptors are, `[types, etypes)`: the `.go.type` section from
    /// Go 1.26, else the module data's `types` and `etypes` (the word after it).
    pub fn types_range(&self, elf: &Elf<'_>, minor: u32) -> Option<(u64, u64)> {
        if let Some(range) = TYPE_SECTIONS
            .iter()
            .find_map(|name| elf.section_range(name))
        {
            return Some(range);
        }
        let types = self.types(elf, minor)?;
        let (_, field) = moduledata_types_fields(minor);
        let etypes = elf.pointer_at(self.moduledata?.checked_add(field)?)?;
        (etypes > types).then_some((types, etypes))
    }

    /// Entry `i` of the function table: `(entryoff, funcoff)`.
    fn entry(&self, i: usize) -> Option<(u32, u32)> {
        let at = self.pcln + i * 8;
        Some((u32_at(&self.data, at)?, u32_at(&self.data, at + 4)?))
    }

    /// The name of the function whose `_func` is at `funcoff` in the function table.
    fn name(&self, funcoff: u32) -> Option<&[u8]> {
        let func = self.pcln.checked_add(funcoff as usize)?;
        let name_off = usize::try_from(i32::from_le_bytes(
            self.data.get(func + 4..func + 8)?.try_into().ok()?,
        ))
        .ok()?;
        let start = self.funcnames.checked_add(name_off)?;
        let rest = self.data.get(start..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    /// Every function, by name: its address and size (up to the next function's entry).
    pub fn functions(&self) -> impl Iterator<Item = (&[u8], Function)> + '_ {
        (0..self.nfunc).filter_map(move |i| {
            let (entry, funcoff) = self.entry(i)?;
            let (next, _) = self.entry(i + 1)?;
            let name = self.name(funcoff)?;
            let function = Function {
                address: self.text.checked_add(u64::from(entry))?,
                size: u64::from(next.checked_sub(entry)?),
            };
            Some((name, function))
        })
    }

    /// Looks up the given function names; names not found are absent from the result.
    pub fn lookup(&self, names: &[&str]) -> HashMap<String, Function> {
        let mut found = HashMap::new();
        for (name, function) in self.functions() {
            if let Some(wanted) = names.iter().find(|wanted| wanted.as_bytes() == name) {
                found.insert((*wanted).to_owned(), function);
            }
        }
        found
    }
}

/// Where `moduledata.types` and `moduledata.etypes` are in Go 1.`minor`.
fn moduledata_types_fields(minor: u32) -> (u64, u64) {
    match minor {
        ..20 => (MODULEDATA_TYPES_1_19, MODULEDATA_TYPES_1_19 + 8),
        20..27 => (MODULEDATA_TYPES, MODULEDATA_TYPES + 8),
        // `typedesclen` comes between them.
        _ => (MODULEDATA_TYPES, MODULEDATA_TYPES + 16),
    }
}

/// Whether `bytes` start like a 64-bit function table header: a known magic, two zero
/// bytes, an instruction size of 1 and a pointer size of 8.
fn is_header_start(bytes: &[u8]) -> bool {
    matches!(u32_at(bytes, 0), Some(MAGIC_1_18 | MAGIC_1_20))
        && bytes.get(4..8) == Some(&[0, 0, 1, 8])
}

/// The module data of the binary whose function table header is at `header` and name
/// table at `funcnames`: the `.go.module` section (Go 1.26+), or the first data word that
/// points to the header and is followed by a pointer to the name table.
fn find_moduledata(elf: &Elf<'_>, header: u64, funcnames: u64) -> Option<u64> {
    if let Some(address) = elf.section_address(".go.module") {
        return Some(address);
    }
    elf.words_pointing_to(header).into_iter().find(|&at| {
        at.checked_add(MODULEDATA_FUNCNAMETAB)
            .is_some_and(|names| elf.pointer_at(names) == Some(funcnames))
    })
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{Section, elf};
    use super::*;

    /// A 64-bit header of Go 1.20+ with no functions and its name table at `funcnames`.
    fn header(funcnames: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN + 16];
        bytes[..4].copy_from_slice(&MAGIC_1_20.to_le_bytes());
        bytes[6] = 1;
        bytes[7] = 8;
        bytes[FUNCNAME_OFFSET..FUNCNAME_OFFSET + 8].copy_from_slice(&funcnames.to_le_bytes());
        bytes[PCLN_OFFSET..PCLN_OFFSET + 8].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
        bytes
    }

    /// Found by `cargo xtask fuzz` (target `pclntab`): a table placed at the top of the
    /// address space overflowed computing where its name table is.
    #[test]
    fn a_table_at_the_top_of_the_address_space_is_an_error() {
        let bytes = header(80);
        let file = elf(&[Section {
            name: ".gopclntab",
            address: u64::MAX - 40,
            bytes: &bytes,
            loaded: true,
        }]);
        let elf = Elf::parse(&file).expect("parses");
        assert!(Pclntab::parse(&elf).is_err());
    }

    /// Each header-like candidate costs a scan of the writable data: a section full of
    /// them is given up on, not scanned quadratically.
    #[test]
    fn header_candidates_are_bounded() {
        let one = header(8);
        let bytes: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * 20_000)
            .collect();
        let file = elf(&[Section {
            name: ".data.rel.ro",
            address: 0x40_0000,
            bytes: &bytes,
            loaded: true,
        }]);
        let elf = Elf::parse(&file).expect("parses");
        let started = std::time::Instant::now();
        assert!(Pclntab::parse(&elf).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn little_endian_words_are_bounds_checked() {
        let data = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(u32_at(&data, 0), Some(1));
        assert_eq!(u32_at(&data, 4), Some(2));
        assert_eq!(u32_at(&data, 8), None);
        assert_eq!(u64_at(&data, 0), Some(0x2_0000_0001));
        assert_eq!(u64_at(&data, 4), None);
    }
}
