//! The user-space pipeline: ring-buffer records are decoded ([`decode`]), mapped to spans
//! by their probe, given wall-clock times and a resource ([`clock`], [`resource`]) and
//! handed to the exporters. Everything here is pure; I/O lives in `run` and `export`.
pub mod clock;
pub mod decode;
pub mod resource;
pub mod sampler;
pub mod span;
