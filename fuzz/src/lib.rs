//! Helpers shared by the fuzz targets: the input format of the targets that fuzz one
//! reader on a few ELF sections, which they wrap into a minimal x86-64 ELF file
//! (`tracer::target::synthetic`) so the readers see the sections as in a real binary.
//!
//! # Section inputs
//!
//! The `pclntab`, `dwarf` and `derive` targets take the sections they read rather than
//! whole binaries (megabytes, which the fuzzer would spend its time copying): a sequence
//! of chunks `[address: u64 LE][length: u32 LE][bytes]`, the i-th chunk being the section
//! named `names[i]` of the target; a chunk with address and length 0 stands for a section
//! the binary lacks; a chunk cut short ends the list. `cargo xtask fuzz`
//! writes its seeds in this format from the sections of real Go binaries.

pub use tracer::target::synthetic::{Section, elf};

/// Splits `data` into chunks named after `names` (see the module docs); stops at the first
/// chunk cut short, so the result may have fewer sections than names.
pub fn sections<'a>(mut data: &'a [u8], names: &[&'a str], loaded: bool) -> Vec<Section<'a>> {
    let mut found = Vec::new();
    for name in names {
        let Some((address, rest)) = data.split_first_chunk::<8>() else {
            break;
        };
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = u32::from_le_bytes(*len) as usize;
        let len = len.min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        data = rest;
        let address = u64::from_le_bytes(*address);
        if address == 0 && bytes.is_empty() {
            continue;
        }
        found.push(Section {
            name,
            address,
            bytes,
            loaded,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_chunks_and_stops_at_a_short_one() {
        let mut data = Vec::new();
        data.extend_from_slice(&0x1000u64.to_le_bytes());
        data.extend_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(b"abc");
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&0x2000u64.to_le_bytes());
        let found = sections(&data, &[".a", ".absent", ".b"], true);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].name, found[0].address), (".a", 0x1000));
        assert_eq!(found[0].bytes, b"abc");
    }
}
