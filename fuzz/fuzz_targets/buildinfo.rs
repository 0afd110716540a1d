//! The `.go.buildinfo` reader: as a section, and as a whole file searched for its magic
//! (binaries without section headers). Seeds: the sections of real Go binaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::target::buildinfo;

fuzz_target!(|data: &[u8]| {
    let parsed = [
        buildinfo::parse(Some(data), &[]),
        buildinfo::parse(None, data),
    ];
    for info in parsed.iter().flatten() {
        let _ = buildinfo::parse_version(&info.go_version);
        let _ = info.setting("-buildmode");
    }
    let _ = buildinfo::parse_version(&String::from_utf8_lossy(data));
});
