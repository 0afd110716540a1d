//! A minimal x86-64 ELF executable built around given sections, for tests and fuzz
//! targets that exercise the readers of [`super`] on chosen bytes (built with the
//! `synthetic-elf` feature or under `cfg(test)`, never into the tracer).

/// One section of a synthetic ELF file.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    pub name: &'a str,
    pub address: u64,
    pub bytes: &'a [u8],
    /// Mapped by a `PT_LOAD` segment and flagged allocated and writable (program data);
    /// else a non-allocated section (debug information).
    pub loaded: bool,
}

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const SHDR_LEN: usize = 64;
const PT_LOAD: u32 = 1;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    out.resize(out.len().next_multiple_of(align), 0);
}

/// A position-dependent x86-64 executable holding `sections`, each loaded one by its own
/// `PT_LOAD` segment at its address (file offset and address need not agree in alignment:
/// the readers only translate between them).
pub fn elf(sections: &[Section<'_>]) -> Vec<u8> {
    let loaded = sections.iter().filter(|s| s.loaded).count();
    let mut out = Vec::with_capacity(
        EHDR_LEN + PHDR_LEN * loaded + sections.iter().map(|s| s.bytes.len() + 8).sum::<usize>(),
    );
    // The header, completed once the offsets are known.
    out.resize(EHDR_LEN + PHDR_LEN * loaded, 0);
    let mut offsets = Vec::with_capacity(sections.len());
    for section in sections {
        pad_to(&mut out, 8);
        offsets.push(out.len() as u64);
        out.extend_from_slice(section.bytes);
    }
    let mut names = vec![0u8];
    let mut name_at = Vec::with_capacity(sections.len());
    for section in sections {
        name_at.push(names.len() as u32);
        names.extend_from_slice(section.name.as_bytes());
        names.push(0);
    }
    let shstrtab_name = names.len() as u32;
    names.extend_from_slice(b".shstrtab\0");
    let shstrtab_offset = out.len() as u64;
    out.extend_from_slice(&names);
    pad_to(&mut out, 8);
    let shoff = out.len() as u64;

    // Section headers: the null one, the sections, the name table.
    out.resize(out.len() + SHDR_LEN, 0);
    for ((section, &offset), &name) in sections.iter().zip(&offsets).zip(&name_at) {
        put_u32(&mut out, name);
        put_u32(&mut out, SHT_PROGBITS);
        put_u64(
            &mut out,
            if section.loaded {
                SHF_ALLOC | SHF_WRITE
            } else {
                0
            },
        );
        put_u64(&mut out, section.address);
        put_u64(&mut out, offset);
        put_u64(&mut out, section.bytes.len() as u64);
        put_u32(&mut out, 0);
        put_u32(&mut out, 0);
        put_u64(&mut out, 8);
        put_u64(&mut out, 0);
    }
    put_u32(&mut out, shstrtab_name);
    put_u32(&mut out, SHT_STRTAB);
    put_u64(&mut out, 0);
    put_u64(&mut out, 0);
    put_u64(&mut out, shstrtab_offset);
    put_u64(&mut out, names.len() as u64);
    put_u32(&mut out, 0);
    put_u32(&mut out, 0);
    put_u64(&mut out, 1);
    put_u64(&mut out, 0);

    let mut header = Vec::with_capacity(EHDR_LEN + PHDR_LEN * loaded);
    header.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    put_u16(&mut header, ET_EXEC);
    put_u16(&mut header, EM_X86_64);
    put_u32(&mut header, 1);
    put_u64(&mut header, 0); // e_entry
    put_u64(&mut header, EHDR_LEN as u64); // e_phoff
    put_u64(&mut header, shoff);
    put_u32(&mut header, 0); // e_flags
    put_u16(&mut header, EHDR_LEN as u16);
    put_u16(&mut header, PHDR_LEN as u16);
    put_u16(&mut header, loaded as u16);
    put_u16(&mut header, SHDR_LEN as u16);
    put_u16(&mut header, sections.len() as u16 + 2);
    put_u16(&mut header, sections.len() as u16 + 1);
    for (section, &offset) in sections.iter().zip(&offsets) {
        if !section.loaded {
            continue;
        }
        put_u32(&mut header, PT_LOAD);
        put_u32(&mut header, 6); // PF_R | PF_W
        put_u64(&mut header, offset);
        put_u64(&mut header, section.address);
        put_u64(&mut header, section.address);
        put_u64(&mut header, section.bytes.len() as u64);
        put_u64(&mut header, section.bytes.len() as u64);
        put_u64(&mut header, 8);
    }
    out[..header.len()].copy_from_slice(&header);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_an_elf_the_readers_accept() {
        let text = [0xc3u8; 16];
        let debug = [1u8, 2, 3];
        let file = elf(&[
            Section {
                name: ".data",
                address: 0x40_0000,
                bytes: &text,
                loaded: true,
            },
            Section {
                name: ".debug_info",
                address: 0,
                bytes: &debug,
                loaded: false,
            },
        ]);
        let parsed = super::super::elf::Elf::parse(&file).expect("parses");
        assert_eq!(parsed.code(0x40_0004, 4).ok(), Some(&text[..4]));
        assert_eq!(parsed.section(".debug_info").as_deref(), Some(&debug[..]));
        assert_eq!(parsed.segments().len(), 1);
    }
}
