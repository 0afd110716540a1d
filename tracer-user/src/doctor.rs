//! `tracer doctor --pid N | --binary PATH`: what the tracer would trace there and how,
//! and why not, without loading or attaching anything. Exit 0 when tracing will work,
//! 1 with the reasons when it will not.
use std::path::PathBuf;

use clap::Parser;

use crate::{
    cli::Config,
    privileges,
    process::{self, Process},
    run::{self, RunError},
    target::TargetError,
};

/// Says what can be traced in a process or binary, and why not.
#[derive(Debug, Parser)]
#[command(name = "tracer doctor", version, about, long_about = None)]
pub struct DoctorCli {
    /// A running process.
    #[arg(
        long,
        value_name = "PID",
        conflicts_with = "binary",
        required_unless_present = "binary"
    )]
    pub pid: Option<u32>,

    /// An executable (as if it ran).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// As the tracer would run with --read-only.
    #[arg(long)]
    pub read_only: bool,

    /// As the tracer would run with --track-goroutines.
    #[arg(long)]
    pub track_goroutines: bool,
}

/// What doctor found: lines to print, and the reasons tracing will not work (none: it
/// will).
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        if self.problems.is_empty() {
            write!(f, "verdict: tracing will work")
        } else {
            write!(
                f,
                "verdict: tracing will not work: {}",
                self.problems.join("; ")
            )
        }
    }
}

/// Examines the target of `cli`.
pub fn examine(cli: &DoctorCli) -> Report {
    let mut report = Report::default();
    match privileges::check() {
        Ok(()) => report
            .lines
            .push("privileges and kernel: ok (CAP_BPF, CAP_PERFMON, uprobes, ring buffer)".into()),
        Err(error) => report.problems.push(error.to_string()),
    }
    let (shown, data, pid) = match read_target(cli) {
        Ok(target) => target,
        Err(error) => {
            report.problems.push(chain(&error));
            return report;
        }
    };
    report.lines.push(match pid {
        Some(pid) => format!("target: pid {pid}, {shown}"),
        None => format!("target: {shown}"),
    });
    let hooks = run::hooks(cli.track_goroutines, true);
    let (inspection, probe_config) = match run::resolve_binary(&shown, &data, pid, &hooks) {
        Ok(resolved) => resolved,
        Err(error) => {
            report.problems.push(chain(&error));
            return report;
        }
    };
    report
        .lines
        .push(format!("go: {}", inspection.build.go_version));
    let blocker = if cli.read_only {
        Some("--read-only".to_owned())
    } else {
        privileges::injection_blocker().or_else(|| {
            pid.filter(|&pid| process::cgroup2_dir(pid).is_none())
                .map(|pid| format!("the cgroup v2 group of pid {pid} is unknown"))
        })
    };
    let config = Config {
        read_only: cli.read_only,
        track_goroutines: cli.track_goroutines,
        ..Config::default()
    };
    let plan = run::plan(
        &shown,
        &inspection,
        probe_config,
        &hooks,
        &config,
        blocker.as_deref(),
    );
    report.lines.push("probes:".into());
    for hook in &hooks {
        let line = match inspection.point(hook) {
            Some(point) if plan.hooks.contains(hook) => format!(
                "  {}+{:#x} ({}, {}): {}",
                hook.symbol,
                point.placement.offset,
                point.placement.what,
                if point.placement.emulated {
                    "emulated"
                } else {
                    "single-stepped: slow"
                },
                hook.purpose
            ),
            Some(_) => format!("  {}: not used here: {}", hook.symbol, hook.purpose),
            None => format!("  {}: not found: no {}", hook.symbol, hook.purpose),
        };
        report.lines.push(line);
    }
    report
        .lines
        .push(format!("propagation: {}", plan.propagation));
    report
}

/// The target's name in messages, its executable's bytes, and its pid.
fn read_target(cli: &DoctorCli) -> Result<(String, Vec<u8>, Option<u32>), RunError> {
    match (cli.pid, &cli.binary) {
        (Some(pid), _) => {
            let process = Process::open(pid)?;
            let shown = process.exe.display().to_string();
            let data = std::fs::read(process.exe_handle()).map_err(|source| TargetError::Read {
                path: shown.clone(),
                source,
            })?;
            Ok((shown, data, Some(pid)))
        }
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let data = std::fs::read(path).map_err(|source| TargetError::Read {
                path: shown.clone(),
                source,
            })?;
            Ok((shown, data, None))
        }
        (None, None) => unreachable!("clap requires --pid or --binary"),
    }
}

fn chain(error: &RunError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
