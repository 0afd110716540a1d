//! The Go function table reader (`.gopclntab`) with what it reads beside it to find the
//! text start and the type descriptors: the module data (`.go.module` from Go 1.26, else
//! `runtime.firstmoduledata` in `.noptrdata`). Input: those sections in the format of
//! `tracer_fuzz::sections`, wrapped into an ELF file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::target::{elf::Elf, pclntab::Pclntab};

/// The sections, in input order.
const SECTIONS: &[&str] = &[".gopclntab", ".go.module", ".noptrdata"];

fuzz_target!(|data: &[u8]| {
    let file = tracer_fuzz::elf(&tracer_fuzz::sections(data, SECTIONS, true));
    let Ok(elf) = Elf::parse(&file) else {
        return;
    };
    let Ok(table) = Pclntab::parse(&elf) else {
        return;
    };
    let hooks = tracer::run::hooks(true, true, tracer::probes::Placement::Cheapest);
    let (names, _) = tracer::target::sites(&hooks);
    let _ = table.lookup(&names);
    let _ = table.functions().count();
    for minor in [19, 24, 27] {
        let _ = table.types(&elf, minor);
        let _ = table.types_range(&elf, minor);
    }
});
