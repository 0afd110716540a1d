//! Developer tasks for the tracer, run as `cargo xtask <command>` (see `cargo xtask --help`).
//!
//! Each command is idempotent, prints every external command before running it, and bounds
//! every wait on a child process with a deadline.

mod bench;
mod cmd;
mod demo;
mod fuzz;
mod go;
mod http;
mod process;
mod setup;
mod test;
mod tracer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Developer tasks for the tracer.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
enum Cli {
    /// Install whatever this machine lacks (apt packages, rust-src, bpf-linker, Go
    /// toolchains); skips what is present, safe to run twice.
    Setup,
    /// Set up, build the release binary, run every test (needs root) and clippy.
    Test {
        /// Arguments passed on to `cargo test`, e.g. a test filter: `cargo xtask test -- attach`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Set up, build, then trace a few requests to the Go demo service and print the spans.
    Demo,
    /// Measure the tracer's overhead on a Go hello-world server with wrk; writes
    /// `results/bench-<UTC timestamp>.md`.
    Bench(bench::Options),
    /// Regenerate the table of Go struct layouts (`tracer-user/src/target/layout/table.rs`)
    /// from the DWARF of a reference program built by every Go toolchain the tests cover.
    Offsets,
    /// Fuzz the binary readers and the event decoder with `cargo fuzz` (libFuzzer, under
    /// AddressSanitizer), from seeds made of Go programs built by every toolchain; fails
    /// on any crash, hang or oversized allocation.
    Fuzz(fuzz::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse() {
        Cli::Setup => setup::run(),
        Cli::Test { cargo_test_args } => test::run(&cargo_test_args),
        Cli::Demo => demo::run(),
        Cli::Bench(options) => bench::run(&options),
        Cli::Offsets => offsets(),
        Cli::Fuzz(options) => fuzz::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the cause chain; no backtrace even under RUST_BACKTRACE=1.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask offsets`: set up (the Go toolchains), then run the ignored test that
/// writes the layout table, and format it.
fn offsets() -> anyhow::Result<()> {
    setup::run()?;
    let table = workspace_root().join("tracer-user/src/target/layout/table.rs");
    cmd::run(
        cmd::cargo()
            .args([
                "test",
                "--release",
                "-p",
                "tracer-user",
                "--test",
                "layouts",
            ])
            .args(["--", "--ignored", "--exact", "write_the_table"])
            .env("TRACER_LAYOUT_TABLE", &table)
            .current_dir(workspace_root()),
    )?;
    cmd::run(
        cmd::cargo()
            .args(["fmt", "-p", "tracer-user"])
            .current_dir(workspace_root()),
    )?;
    cmd::say(format!("offsets: wrote {}", table.display()));
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `target/` at the root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The release `tracer` binary that `cargo build --release` leaves behind.
fn tracer_bin() -> PathBuf {
    target_dir().join("release").join("tracer")
}
