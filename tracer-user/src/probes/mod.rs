//! The instrumented libraries, one module per library. Each probe declares a manifest:
//! the functions it hooks (with the kernel program for each), the struct members it needs,
//! and how its events become spans.
pub mod net_http;

/// A function a probe hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Go symbol name.
    pub symbol: &'static str,
    /// Where in `symbol` the probe goes.
    pub site: Site,
    /// Kernel program attached there.
    pub program: &'static str,
    /// Tracing this library is impossible without it.
    pub required: bool,
    /// What is lost without it (for logs and `doctor`).
    pub purpose: &'static str,
}

/// Where the program `program` comes when probes are detached: first those that open
/// spans (named `*_start`), then those that end a span as panicked or hijacked when its
/// own end never came (`*_unwind`), then the rest. Probes are attached in the opposite
/// order. A request in flight while probes come or go is then either traced whole, not
/// traced, or counted (`unmatched_end`, `in_flight_at_exit`): never ended by the
/// connection's close as something it was not because its own end was not attached yet
/// or any more.
pub fn detach_rank(program: &str) -> u8 {
    if program.ends_with("_start") {
        0
    } else if program.ends_with("_unwind") {
        1
    } else {
        2
    }
}

/// Where in a function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Its entry (see `target::placement::entry_point`).
    Entry,
    /// A point every call passes exactly once, for a program that needs the goroutine and
    /// no argument: a 5-byte nop there where the kernel makes a probe on one a call instead
    /// of a trap (see `target::placement::once_point`), else the entry.
    Once,
    /// Its call to this function, on the call instruction (arguments in registers).
    AtCall(&'static str),
    /// Just after its call to this function returns (results in registers; see
    /// `target::placement::after_call`).
    AfterCall(&'static str),
    /// Its first instruction, whatever it costs (see [`Placement::EntryAndReturns`]).
    FirstInstruction,
    /// Each of its `ret` instructions (results in registers; see
    /// [`Placement::EntryAndReturns`]).
    Returns,
}

/// How the probes are placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Each probe on the cheapest instruction that sees what it needs: the tracer's way.
    #[default]
    Cheapest,
    /// As other eBPF tracers place them, for comparison (`cargo xtask bench`): starts on
    /// a function's first instruction, ends on each of its `ret`s (both single-stepped
    /// by the kernel), and a reader woken for every event.
    EntryAndReturns,
}

/// `hooks` placed as `placement` says. For [`Placement::EntryAndReturns`], entries move
/// to the first instruction and the span ends listed in `at_returns` (program, function)
/// move to the `ret`s of that function; hooks on calls stay.
pub fn place(
    hooks: &[Hook],
    placement: Placement,
    at_returns: &[(&str, &'static str)],
) -> Vec<Hook> {
    match placement {
        Placement::Cheapest => hooks.to_vec(),
        Placement::EntryAndReturns => hooks
            .iter()
            .map(|hook| {
                match at_returns
                    .iter()
                    .find(|(program, _)| *program == hook.program)
                {
                    Some((_, function)) => Hook {
                        symbol: function,
                        site: Site::Returns,
                        ..*hook
                    },
                    None if matches!(hook.site, Site::Entry | Site::Once) => Hook {
                        site: Site::FirstInstruction,
                        ..*hook
                    },
                    None => *hook,
                }
            })
            .collect(),
    }
}

/// Struct members a probe reads: `(struct, members)`.
pub type Fields = &'static [(&'static str, &'static [&'static str])];
