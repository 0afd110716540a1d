//! The `tracer` binary: parse the command line, run, print the summary; errors become one
//! `error: ...` line with the cause chain and exit code 1, usage errors exit code 2.
use std::{
    io::IsTerminal as _,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
};

use clap::Parser as _;
use tracer::{
    cli::{Cli, Mode},
    run,
};

/// Spans are allocated on the reader thread and freed on the exporter thread; mimalloc
/// handles that pattern at a fraction of glibc malloc's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option setter (in the C library the `mimalloc` crate links).
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc's `mi_option_t`
/// (`mimalloc.h` of the libmimalloc-sys version in Cargo.lock).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Memory freed goes back to the system at once: a binary's inspection (its DWARF
/// decompressed, its tables read) needs tens of MiB for a moment, and the tracer then
/// runs for weeks. By default mimalloc keeps freed memory for reuse, committed, and
/// purges it only on later allocations of the same thread.
fn return_freed_memory() {
    // SAFETY: plain option setters, called before any other thread exists.
    unsafe {
        mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

fn main() -> ExitCode {
    return_freed_memory();
    tracer::launch::no_huge_pages();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "doctor")
    {
        let cli = tracer::doctor::DoctorCli::parse_from(std::env::args_os().skip(1));
        init_logging(Some("error"));
        let report = tracer::doctor::examine(&cli);
        println!("{report}");
        return if report.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    let config = match cli.into_config(std::io::stdout().is_terminal(), |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    // A command the tracer starts gets the signals instead, and ends the tracer by exiting.
    let launches = matches!(config.mode, Mode::Command(_));
    if !launches && let Err(error) = run::stop_on_signals(&stop) {
        eprintln!("error: cannot install signal handlers: {error}");
        return ExitCode::from(1);
    }
    match run::run(&config, &stop) {
        Ok(outcome) => {
            eprintln!("{}", outcome.summary);
            match outcome.exit_code {
                Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)),
                None => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::new(error));
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr; `--log-level` wins over `RUST_LOG`; default `info`.
fn init_logging(level: Option<&str>) {
    let filter = level
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .format_target(false)
        .target(env_logger::Target::Stderr)
        .init();
}
