//! `tracer doctor --pid N | --binary PATH`: what the tracer would trace there and how,
//! and why not, without loading or attaching anything. Exit 0 when tracing will work,
//! 1 with the reasons when it will not.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Parser;

use crate::{
    cli::Config,
    privileges,
    probes::Placement,
    process::{self, Process},
    run::{self, RunError},
    target::{
        FunctionSource, Inspection, TargetError,
        layout::{Source, TABLE_COMMAND},
    },
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
            .push("privileges and kernel: ok (eBPF, uprobes, ring buffer)".into()),
        Err(error) => report.problems.push(error.to_string()),
    }
    for limitation in privileges::current_limitations() {
        if limitation.starts_with("CAP_SYS_ADMIN") {
            report
                .problems
                .push(format!("capability missing: {limitation}"));
        } else {
            report
                .lines
                .push(format!("capability missing: {limitation}"));
        }
    }
    report.lines.push(kernel());
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
    let hooks = run::hooks(cli.track_goroutines, true, Placement::Cheapest);
    let (inspection, probe_config) = match run::resolve_binary(&shown, &data, pid, &hooks) {
        Ok(resolved) => resolved,
        Err(error) => {
            report.problems.push(chain(&error));
            return report;
        }
    };
    describe_binary(&inspection, &mut report.lines);
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
        if !inspection.has(hook) && !run::is_missing(&inspection, &hooks, hook) {
            // This Go release has the same function under another name.
            continue;
        }
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

/// The kernel's release and the optional features the tracer uses.
fn kernel() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |r| r.trim().to_owned());
    let btf = if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        "yes"
    } else {
        "no"
    };
    let cgroup = process::cgroup2_mount()
        .map_or_else(|| "none".to_owned(), |path| path.display().to_string());
    format!("kernel: {release}, BTF {btf}, cgroup v2 {cgroup}")
}

/// Where the Go version, functions and struct offsets came from, and what kind of binary
/// it is.
fn describe_binary(inspection: &Inspection, lines: &mut Vec<String>) {
    let build = &inspection.build;
    let module = build.main_module.as_deref().unwrap_or("none");
    lines.push(format!(
        "go: {} (main module {module}, {} dependencies)",
        build.go_version,
        build.dependencies.len()
    ));
    let kind = if inspection.fixed_address {
        "executable"
    } else {
        "position-independent executable"
    };
    let cgo = match build.setting("CGO_ENABLED") {
        Some("1") => "on",
        Some(_) => "off",
        None => "unknown",
    };
    let symbols = match inspection.function_source {
        FunctionSource::Symbols => "yes",
        FunctionSource::Pclntab => "no (stripped)",
    };
    let dwarf = if inspection.dwarf { "yes" } else { "no" };
    lines.push(format!(
        "binary: {kind}, cgo {cgo}, symbol table {symbols}, DWARF {dwarf}"
    ));
    lines.push(format!(
        "functions: from the {}",
        inspection.function_source
    ));
    let mut by_struct: BTreeMap<&str, Vec<(&str, u64, Source)>> = BTreeMap::new();
    for ((strukt, member), &offset) in &inspection.offsets {
        let source = inspection
            .offset_sources
            .get(&(strukt.clone(), member.clone()))
            .copied()
            .unwrap_or(Source::Dwarf);
        by_struct
            .entry(strukt)
            .or_default()
            .push((member, offset, source));
    }
    let sources: BTreeSet<Source> = inspection.offset_sources.values().copied().collect();
    let from: Vec<String> = sources
        .iter()
        .map(|source| match (source, inspection.layout_release) {
            (Source::Table, Some(release)) => {
                format!("the table's {release} entry (made by `{TABLE_COMMAND}`)")
            }
            (source, _) => source.to_string(),
        })
        .collect();
    lines.push(format!(
        "offsets: {} members from {}",
        inspection.offsets.len(),
        if from.is_empty() {
            "nowhere".to_owned()
        } else {
            from.join(" and ")
        }
    ));
    for (strukt, mut members) in by_struct {
        members.sort_unstable();
        let fields: Vec<String> = members
            .iter()
            .map(|(member, offset, source)| {
                if sources.len() > 1 {
                    format!("{member}={offset} ({source})")
                } else {
                    format!("{member}={offset}")
                }
            })
            .collect();
        lines.push(format!("  {strukt}: {}", fields.join(" ")));
    }
}

/// The target's name in messages, its executable's bytes, and its pid.
fn read_target(cli: &DoctorCli) -> Result<(String, Vec<u8>, Option<u32>), RunError> {
    match (cli.pid, &cli.binary) {
        (Some(pid), _) => {
            let (shown, data) = run::read_exe(&Process::open(pid)?)?;
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
