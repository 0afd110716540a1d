//! Probes, one module per instrumented library.
pub mod net_http;
pub mod process;
