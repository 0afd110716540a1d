//! Probe placement on raw machine code (x86-64 decoding, the control-flow graph of
//! `once_point`), checked against what a placement must be: inside the function, and a
//! 5-byte nop wherever it says so. Input: `[address: u64 LE][callee: u64 LE][code]`.
//! Seeds: the probed functions of Go programs built by every supported toolchain, with
//! the function they call where the probe is placed on a call (`cargo xtask fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::target::placement::{self, NOP5, Placement, PlacementKind};

fuzz_target!(|data: &[u8]| {
    let Some((address, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((callee, code)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let (address, callee) = (u64::from_le_bytes(*address), u64::from_le_bytes(*callee));
    let inside = |p: &Placement| p.offset < code.len() as u64;
    let on_a_nop = |p: &Placement| {
        p.what != PlacementKind::CalledNop
            || usize::try_from(p.offset)
                .ok()
                .and_then(|at| code.get(at..at.checked_add(NOP5.len())?))
                == Some(&NOP5[..])
    };
    let entry = placement::entry_point(code, address);
    assert!(code.is_empty() || inside(&entry), "{entry:?}");
    for found in [
        placement::after_call(code, address, callee),
        placement::at_call(code, address, callee, false),
        placement::at_call(code, address, callee, true),
        placement::once_point(code, address),
    ]
    .into_iter()
    .flatten()
    .chain(placement::returns(code, address))
    {
        assert!(inside(&found) && on_a_nop(&found), "{found:?}");
    }
});
