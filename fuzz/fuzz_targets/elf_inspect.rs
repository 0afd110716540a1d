//! The whole resolution of a binary, as the tracer runs it on every Go program it is
//! asked to trace: ELF, `.go.buildinfo`, `.gopclntab`, DWARF, type descriptors, probe
//! placement (x86 decoding), then the kernel configuration built from the offsets found.
//! Seeds: Go programs built by every supported toolchain (`cargo xtask fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::probes::{Placement, net_http};
use tracer::target;

fuzz_target!(|data: &[u8]| {
    // The hooks `tracer run` resolves under either placement, injection's included, with
    // the functions injection adds (as in `run::resolve_binary`): one pass over the binary.
    let mut hooks = tracer::run::hooks(true, true, Placement::Cheapest);
    hooks.extend(tracer::run::hooks(true, true, Placement::EntryAndReturns));
    let (mut functions, mut call_sites) = target::sites(&hooks);
    functions.extend_from_slice(&[
        net_http::client::BUFIO_WRITE,
        net_http::client::PCONN_WRITE,
        net_http::client::TCP_CLOSE,
    ]);
    functions.sort_unstable();
    functions.dedup();
    call_sites.dedup();
    let structs = net_http::fields();
    let Ok(inspection) = target::inspect_bytes("fuzz", data, &functions, &call_sites, &structs)
    else {
        return;
    };
    for hook in &hooks {
        let _ = inspection.points(hook);
    }
    let _ = net_http::server::config(&inspection.offsets);
    let _ = target::gomap::header_map_layout(&inspection.offsets);
});
