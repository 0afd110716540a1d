//! `cargo xtask bench`: the tracer's overhead on Go servers (`xtask/bench/hello`), its
//! configurations side by side. The servers run with `GOMAXPROCS=1` on CPU 0; wrk and the
//! tracer share CPU 1; everything stays on loopback. Each of `--rounds` rounds starts a
//! fresh server per program, warms it up, then measures each configuration of that
//! program on it (untraced, the tracer's, other tracers' placement; the tracer attached for
//! its run only), the order rotated each round; the report (medians, share of untraced,
//! added µs per request, latency at one connection, tracer CPU and memory, spans and
//! drops, BPF run times, where the probes sit, a noise check) is printed and written to
//! `results/bench-<UTC timestamp>.md`, with a chart next to it (`.png`).

mod chart;
mod fleet;
mod kernel;
mod report;
mod sink;
mod traps;
mod wrk;

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

use crate::go::Server;
use crate::tracer::{Launch, Tracer};
use crate::{cmd, go, setup, target_dir, test, workspace_root};
use report::{Config, Export, Program, Sample, Scenario, Setup};
use wrk::Load;

/// The Go release the server is built with.
const GO_VERSION: &str = "1.24.11";

/// Deadline for a server to listen, a tracer to attach, a tracer to exit.
const STEP: Duration = Duration::from_secs(20);

/// Seconds of load each new server gets before anything is measured.
const WARM_UP_SECONDS: u32 = 2;

/// Longest one-connection latency run, in seconds (shorter if `--duration` is).
const LATENCY_SECONDS: u32 = 3;

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Options {
    /// Rounds per configuration.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Seconds of the throughput run in each round.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=120))]
    duration: u32,
    /// Which programs: the hello world and the one that makes an HTTP call per request
    /// (`all`), or one of them, or the one spending 100 µs of CPU per request (`work`).
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Where the traced runs export spans: JSON lines to a file, or OTLP (HTTP/protobuf)
    /// to a sink in the bench.
    #[arg(long, value_enum, default_value_t = Export::Json)]
    export: Export,
    /// An extra argument for the traced runs' tracer, e.g. `--tracer-arg=--track-goroutines`
    /// (repeatable).
    #[arg(long = "tracer-arg", value_name = "ARG", allow_hyphen_values = true)]
    tracer_args: Vec<String>,
    #[command(subcommand)]
    other: Option<Other>,
}

/// The other benches.
#[derive(clap::Subcommand)]
enum Other {
    /// The tracer's memory, descriptors and CPU with hundreds of processes under `--all`;
    /// writes `results/bench-fleet-<UTC timestamp>.md`.
    Fleet(fleet::Options),
}

/// What every run of the bench shares.
struct Bench {
    scenario: Scenario,
    export: Export,
    tracer_args: Vec<String>,
    /// The plain hello world (also the called server of the call program).
    hello: PathBuf,
    /// The hello world built with `-tags call`, when measured.
    caller: Option<PathBuf>,
    /// Where OTLP exports go (`--export otlp`).
    sink: Option<sink::Sink>,
    /// Where the traced runs write their spans (each file removed once counted).
    scratch: PathBuf,
    warm_up: Load,
    throughput: Load,
    latency: Load,
}

pub fn run(options: &Options) -> Result<()> {
    if let Some(Other::Fleet(fleet)) = &options.other {
        return fleet::run(fleet);
    }
    cmd::ensure_root("cargo xtask bench", "the tracer attaches uprobes")?;
    ensure_two_cpus()?;
    setup::run()?;
    test::build_release()?;
    let (stamp, started_utc) = report::utc_stamps(unix_now()?);
    let bench = prepare(options, &stamp)?;
    // Per-program run times; the traced runs alone have programs to count.
    let stats = kernel::StatsOn::enable()?;
    let samples = run_rounds(&bench, options.rounds)?;
    drop(stats);
    // Every spans file is removed once counted; the directory goes too when empty.
    let _ = fs::remove_dir(&bench.scratch);
    let chart = format!("bench-{stamp}.png");
    let setup = describe_setup(&bench, options.rounds, started_utc.clone(), chart.clone())?;
    let markdown = report::markdown(&setup, &samples);
    println!("{markdown}");
    let png = chart::png(
        &format!("TRACER BENCH {started_utc}"),
        &report::rows(&samples),
    )?;
    let dir = workspace_root().join("results");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(&chart), png).with_context(|| format!("writing {chart}"))?;
    let path = write_results(&stamp, &markdown)?;
    cmd::say(format!(
        "bench: wrote {} and {}",
        path.display(),
        dir.join(&chart).display()
    ));
    Ok(())
}

/// Builds the servers and fixes the loads.
fn prepare(options: &Options, stamp: &str) -> Result<Bench> {
    let dir = target_dir().join("xtask").join("bench");
    let source = workspace_root().join("xtask").join("bench").join("hello");
    let go = setup::go_bin(GO_VERSION)?;
    // The hello world has no HTTP client code (a server-only program: no parent links to
    // record); the called server of the call program is built with it.
    let hello = dir.join("hello");
    go::build(&go, &source, &hello)?;
    let caller = if options
        .scenario
        .programs()
        .iter()
        .any(|p| matches!(p, Program::Call | Program::Pooled))
    {
        let caller = dir.join("hello-call");
        go::build_tagged(&go, &source, &caller, &["call"])?;
        Some(caller)
    } else {
        None
    };
    let sink = match options.export {
        Export::Json => None,
        Export::Otlp => Some(sink::Sink::start(1)?),
    };
    let scratch = dir.join(stamp);
    fs::create_dir_all(&scratch)?;
    Ok(Bench {
        scenario: options.scenario,
        export: options.export,
        tracer_args: options.tracer_args.clone(),
        hello,
        caller,
        sink,
        scratch,
        warm_up: Load {
            threads: 2,
            connections: 50,
            seconds: WARM_UP_SECONDS,
        },
        throughput: Load {
            threads: 2,
            connections: 50,
            seconds: options.duration,
        },
        latency: Load {
            threads: 1,
            connections: 1,
            seconds: options.duration.min(LATENCY_SECONDS),
        },
    })
}

/// Runs every configuration each round, on one server per program, the order rotated by
/// one each round so that each configuration runs in each position as often.
fn run_rounds(bench: &Bench, rounds: u32) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for round in 1..=rounds {
        for &program in bench.scenario.programs() {
            let mut order = program.configs();
            let len = order.len();
            order.rotate_left((round as usize - 1) % len);
            // The called server, for client spans: on the load's CPU, untraced.
            let mut backend = match program {
                Program::Hello | Program::Work => None,
                Program::Call | Program::Pooled => Some(start_hello(&bench.hello, 1, &[])?),
            };
            let backend_url = backend.as_ref().map(|b| format!("http://{}/", b.addr));
            // Room for as many idle connections as the load has requests in flight.
            let idle = bench
                .throughput
                .connections
                .max(bench.warm_up.connections)
                .to_string();
            let (binary, args): (&Path, Vec<&str>) = match (program, &backend_url) {
                (Program::Call | Program::Pooled, Some(url)) => {
                    let mut args = vec!["-backend", url.as_str()];
                    if program == Program::Pooled {
                        args.extend(["-idle", idle.as_str()]);
                    }
                    let caller = bench.caller.as_deref();
                    (caller.context("the call program is built")?, args)
                }
                (Program::Work, _) => (&bench.hello, vec!["-work", "100us"]),
                _ => (&bench.hello, Vec::new()),
            };
            let mut server = start_hello(binary, 0, &args)?;
            // The server's first seconds (heap growth, first connections) are not measured.
            wrk::run(server.addr, bench.warm_up)?;
            for config in order {
                cmd::say(format!("bench: round {round}/{rounds}, {}", config.name()));
                samples.push(run_once(bench, &server, round, config)?);
            }
            server.process.kill();
            if let Some(backend) = backend.as_mut() {
                backend.process.kill();
            }
        }
    }
    Ok(samples)
}

/// Starts the hello server `binary` on `cpu` with `GOMAXPROCS=1` and `args`.
fn start_hello(binary: &Path, cpu: u32, args: &[&str]) -> Result<Server> {
    Server::start(
        "hello",
        Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .arg(binary)
            .args(["-addr", "127.0.0.1:0"])
            .args(args)
            .env("GOMAXPROCS", "1"),
        Instant::now() + STEP,
    )
}

/// One run on `server`: the tracer attached if `config` says so (and detached after),
/// both wrk loads.
fn run_once(bench: &Bench, server: &Server, round: u32, config: Config) -> Result<Sample> {
    let spans_file = bench.scratch.join(format!("round-{round}.jsonl"));
    let traps = if config.tracing == report::Tracing::Traps {
        // Only on the hello world, the program `bench.hello`.
        let probes = traps::server_probes(&bench.hello)?;
        Some((traps::Events::enable(&bench.hello, &probes)?, probes))
    } else {
        None
    };
    let tracer = if config.tracer_runs() {
        let mut args: Vec<String> = config
            .tracing
            .args()
            .iter()
            .map(|&a| a.to_owned())
            .collect();
        args.extend(bench.tracer_args.iter().cloned());
        if let Some(sink) = &bench.sink {
            args.extend(sink.tracer_args());
        }
        Some(attach(server.process.pid(), &spans_file, &args)?)
    } else {
        None
    };
    let cpu_before = tracer.as_ref().map(Tracer::cpu_time).transpose()?;
    let throughput = wrk::run(server.addr, bench.throughput)?;
    let busy_before = kernel::busy_ns()?;
    let latency = wrk::run(server.addr, bench.latency)?;
    let busy_ns = kernel::busy_ns()?.saturating_sub(busy_before);
    let (spans, summary, tracer_cpu, probes, peak_rss, programs) = match tracer {
        Some(tracer) => {
            // Only the loads: loading and verifying the programs is not per span.
            let cpu = tracer
                .cpu_time()?
                .saturating_sub(cpu_before.unwrap_or_default());
            let probes = probes_of(&tracer.attached);
            let peak_rss = kernel::status_kib(tracer.pid(), "VmHWM:");
            let programs = kernel::programs(tracer.pid())?;
            let (written, summary) = detach(tracer, &spans_file)?;
            // With OTLP the tracer's stdout is empty: its own count of exported spans.
            let spans = match bench.export {
                Export::Json => written,
                Export::Otlp => report::summary_field(&summary, "spans_exported").unwrap_or(0),
            };
            (
                Some(spans),
                Some(summary),
                Some(cpu),
                probes,
                peak_rss,
                programs,
            )
        }
        None => {
            let probes = traps.as_ref().map(|(_, probes)| {
                format!("{}(uprobe event), {}(uprobe event)", probes[0], probes[1])
            });
            (None, None, None, probes, None, Vec::new())
        }
    };
    drop(traps);
    Ok(Sample {
        round,
        config,
        throughput,
        latency,
        busy_ns,
        spans,
        summary,
        tracer_cpu,
        probes,
        tracer_peak_rss_kib: peak_rss,
        programs,
    })
}

/// The `probes=[...]` part of the tracer's `attached` line: each probe and the
/// instruction it sits on.
fn probes_of(attached: &str) -> Option<String> {
    let start = attached.find("probes=[")? + "probes=[".len();
    let end = attached[start..].find(']')? + start;
    let propagation = attached
        .find("propagation=[")
        .and_then(|at| {
            let from = at + "propagation=[".len();
            Some(&attached[from..from + attached[from..].find(']')?])
        })
        .map_or_else(String::new, |p| format!("; propagation: {p}"));
    Some(format!("{}{propagation}", &attached[start..end]))
}

/// Starts the tracer on CPU 1 with JSON spans going to `spans_file` (unless `extra` picks
/// another exporter).
fn attach(pid: u32, spans_file: &Path, extra: &[String]) -> Result<Tracer> {
    let out =
        File::create(spans_file).with_context(|| format!("creating {}", spans_file.display()))?;
    let mut args = vec!["--format", "json"];
    args.extend(extra.iter().map(String::as_str));
    let launch = Launch {
        pid,
        cpu: Some(1),
        args: &args,
        stdout: Stdio::from(out),
    };
    Tracer::attach(launch, Instant::now() + STEP)
}

/// Stops the tracer; returns the spans it wrote (the file is then removed) and its
/// summary line.
fn detach(tracer: Tracer, spans_file: &Path) -> Result<(u64, String)> {
    let stopped = tracer.stop(Instant::now() + STEP)?;
    if !stopped.status.success() {
        bail!(
            "the tracer failed ({}): {}",
            stopped.status,
            stopped.stderr.join("\n")
        );
    }
    let spans = count_lines(spans_file)?;
    fs::remove_file(spans_file)?;
    let summary = stopped.stderr.last().cloned().unwrap_or_default();
    Ok((spans, summary))
}

fn count_lines(path: &Path) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = 0;
    for line in BufReader::new(file).split(b'\n') {
        line?;
        lines += 1;
    }
    Ok(lines)
}

/// The bench pins to CPUs 0 and 1.
fn ensure_two_cpus() -> Result<()> {
    let cpus = std::thread::available_parallelism()?.get();
    if cpus < 2 {
        bail!("the bench pins the server to CPU 0 and the load to CPU 1; only {cpus} CPU here");
    }
    Ok(())
}

/// Kernel, CPU, Go and wrk versions, and the loads.
fn describe_setup(bench: &Bench, rounds: u32, started_utc: String, chart: String) -> Result<Setup> {
    let go = cmd::output(
        Command::new(setup::go_bin(GO_VERSION)?)
            .arg("version")
            .env("GOTOOLCHAIN", "local"),
    )?;
    Ok(Setup {
        started_utc,
        kernel: cmd::output(Command::new("uname").arg("-r"))?
            .trim()
            .to_owned(),
        cpu: cpu_model()?,
        go: go.trim().to_owned(),
        wrk: wrk_version(),
        rounds,
        scenario: bench.scenario,
        export: bench.export,
        tracer_args: bench.tracer_args.clone(),
        throughput: bench.throughput,
        latency: bench.latency,
        chart: Some(chart),
    })
}

/// `model name` from /proc/cpuinfo, with the CPU count.
fn cpu_model() -> Result<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo")?;
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown");
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    Ok(format!("{model} ({cpus} CPUs)"))
}

/// The first line of `wrk -v` (which exits non-zero by design).
fn wrk_version() -> String {
    Command::new("wrk")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let first = text.lines().next()?;
            Some(
                first
                    .split(" Copyright")
                    .next()
                    .unwrap_or(first)
                    .trim()
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "wrk (unknown version)".to_owned())
}

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// Writes the report under `results/`.
fn write_results(stamp: &str, markdown: &str) -> Result<PathBuf> {
    let dir = workspace_root().join("results");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("bench-{stamp}.md"));
    fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
