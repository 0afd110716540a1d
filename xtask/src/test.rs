//! `cargo xtask test`: set up, build the release binary, run every test with it (the
//! end-to-end tests need root), then clippy on the host crates and on the kernel crate,
//! then a short fuzz run of every fuzz target.

use anyhow::{Result, ensure};

use crate::{cmd, fuzz, setup, tracer_bin, workspace_root};

/// Runs the whole check; `cargo_test_args` go to `cargo test` (e.g. a filter).
pub fn run(cargo_test_args: &[String]) -> Result<()> {
    cmd::ensure_root(
        "cargo xtask test",
        "the end-to-end tests attach uprobes to Go programs",
    )?;
    setup::run()?;
    build_release()?;
    cargo_test(cargo_test_args)?;
    clippy_host()?;
    clippy_ebpf()?;
    fuzz::run_targets(&fuzz::Options {
        seconds: fuzz::CHECK_SECONDS,
        target: None,
    })?;
    cmd::say("test: all passed");
    Ok(())
}

/// `cargo build --release`: the `tracer` binary with its kernel programs embedded.
pub fn build_release() -> Result<()> {
    cmd::run(
        cmd::cargo()
            .args(["build", "--release"])
            .current_dir(workspace_root()),
    )?;
    let bin = tracer_bin();
    ensure!(
        bin.is_file(),
        "cargo build --release left no {}",
        bin.display()
    );
    Ok(())
}

/// `cargo test --release` for the default members (never `--workspace`: that would build
/// the kernel crate for the host), with `TRACER_BIN` naming the binary under test.
fn cargo_test(args: &[String]) -> Result<()> {
    cmd::run(
        cmd::cargo()
            .args(["test", "--release"])
            .args(args)
            .env("TRACER_BIN", tracer_bin())
            .current_dir(workspace_root()),
    )
}

/// Clippy on the default members, every target, warnings denied.
fn clippy_host() -> Result<()> {
    cmd::run(
        cmd::cargo()
            .args([
                "clippy",
                "--release",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(workspace_root()),
    )
}

/// Clippy on the kernel crate, for its own target (`core` built from rust-src, which
/// stable allows here through `RUSTC_BOOTSTRAP`, as `tracer-user/build.rs` does).
fn clippy_ebpf() -> Result<()> {
    cmd::run(
        cmd::cargo()
            .args(["clippy", "--release", "--target", "bpfel-unknown-none"])
            .args(["-Z", "build-std=core", "--", "-D", "warnings"])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(workspace_root().join("tracer-ebpf")),
    )
}
