//! The instrumented libraries, one module per library. Each probe declares a manifest:
//! the functions it hooks (with the kernel program for each), the struct members it needs,
//! and how its events become spans.
pub mod net_http;

/// A function a probe hooks.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Go symbol name.
    pub symbol: &'static str,
    /// `None`: the probe goes at the entry of `symbol`. `Some(callee)`: just after
    /// `symbol`'s call to `callee` returns (see `target::placement::after_call`).
    pub after_call: Option<&'static str>,
    /// Kernel program attached there.
    pub program: &'static str,
    /// Tracing this library is impossible without it.
    pub required: bool,
    /// What is lost without it (for logs and `doctor`).
    pub purpose: &'static str,
}

/// Struct members a probe reads: `(struct, members)`.
pub type Fields = &'static [(&'static str, &'static [&'static str])];
