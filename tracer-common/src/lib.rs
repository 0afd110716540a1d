//! Wire types shared by the kernel programs (`tracer-ebpf`) and user space (`tracer-user`).
//!
//! This crate is the only place where the layout of anything that crosses the kernel/user
//! boundary is written down: ring-buffer events, in-flight map values, per-binary
//! configuration and counters. Every type is `#[repr(C)]`, uses fixed-size arrays and
//! explicit padding (no `bool`, `enum` or `Option` on the wire) and carries a compile-time
//! size assertion, so both sides agree byte for byte.
#![no_std]

pub mod config;
pub mod counters;
pub mod event;
pub mod inflight;
pub mod probes;
pub mod process;
pub mod propagation;

/// Asserts at compile time that a wire type has the expected size.
#[macro_export]
macro_rules! assert_size {
    ($ty:ty, $size:expr) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
    };
}

/// Marks wire types as plain old data for aya's user-space map and ring-buffer APIs.
#[cfg(feature = "user")]
macro_rules! impl_pod {
    ($($ty:ty),* $(,)?) => {
        $(
            // SAFETY: every type listed is `#[repr(C)]`, `Copy`, made only of integers and
            // integer arrays with explicit padding, so any bit pattern is a valid value.
            unsafe impl aya::Pod for $ty {}
        )*
    };
}

#[cfg(feature = "user")]
impl_pod!(
    config::ProbeConfig,
    event::IdState,
    inflight::Evicted,
    probes::net_http::client::ClientInflight,
    probes::net_http::client::PendingHeader,
    probes::net_http::server::ServerInflight,
    probes::net_http::server::SpanLink,
);
