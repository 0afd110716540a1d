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

/// Where in a function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Its entry (see `target::placement::entry_point`).
    Entry,
    /// Its call to this function, on the call instruction (arguments in registers).
    AtCall(&'static str),
    /// Just after its call to this function returns (results in registers; see
    /// `target::placement::after_call`).
    AfterCall(&'static str),
}

/// Struct members a probe reads: `(struct, members)`.
pub type Fields = &'static [(&'static str, &'static [&'static str])];
