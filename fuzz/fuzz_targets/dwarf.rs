//! The DWARF reader (gimli): struct member offsets of the structs the probes read. Input:
//! the debug sections, uncompressed, in the format of `tracer_fuzz::sections`, wrapped
//! into an ELF file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::target::{dwarf, elf::Elf};

/// The sections, in input order: what Go 1.18 to 1.27 emit that a type lookup reads.
const SECTIONS: &[&str] = &[
    ".debug_info",
    ".debug_abbrev",
    ".debug_str",
    ".debug_line_str",
    ".debug_str_offsets",
    ".debug_addr",
];

fuzz_target!(|data: &[u8]| {
    let file = tracer_fuzz::elf(&tracer_fuzz::sections(data, SECTIONS, false));
    let Ok(elf) = Elf::parse(&file) else {
        return;
    };
    let _ = dwarf::member_offsets(&elf, &tracer::probes::net_http::fields());
});
