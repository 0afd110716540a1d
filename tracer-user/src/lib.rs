//! `tracer`: traces the HTTP requests inside running Go programs with eBPF uprobes, with
//! no change to their code, build or process.
//!
//! Stages: [`target`] resolves a binary (functions, probe points, struct layouts);
//! [`loader`] loads the kernel programs and attaches them; [`targets`] follows the traced
//! processes and binaries ([`launch`] starts a command, [`container`] says where a
//! process runs, [`watch`] reports binaries changed on disk); [`run`] drains the ring
//! buffer through the [`pipeline`] (decode, span mapping in [`probes`], clock, resource)
//! to the [`export`]ers (over [`http`] or gRPC).
pub mod cli;
pub mod connections;
pub mod container;
pub mod doctor;
pub mod export;
pub mod gate;
pub mod http;
pub mod kube;
pub mod launch;
pub mod loader;
pub mod mapped_slots;
pub mod metrics;
pub mod pipeline;
pub mod priority;
pub mod privileges;
pub mod probes;
pub mod process;
pub mod run;
pub mod target;
pub mod targets;
pub mod watch;
