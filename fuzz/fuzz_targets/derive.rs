//! The type descriptor reader: struct member offsets derived from a binary's own Go type
//! descriptors (stripped binaries without DWARF). Input: the bounds `[types, etypes)` (two
//! u64 LE), then the section holding the descriptors in the format of
//! `tracer_fuzz::sections`, wrapped into an ELF file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::target::{derive, elf::Elf};

fuzz_target!(|data: &[u8]| {
    let Some((types, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((etypes, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let file = tracer_fuzz::elf(&tracer_fuzz::sections(rest, &[".rodata"], true));
    let Ok(elf) = Elf::parse(&file) else {
        return;
    };
    let _ = derive::member_offsets(
        &elf,
        u64::from_le_bytes(*types),
        u64::from_le_bytes(*etypes),
    );
});
