//! Wire types of each probe, one module per instrumented library.
pub mod net_http;
