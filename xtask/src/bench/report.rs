//! The bench's results: medians per configuration and the markdown report. Pure.

use std::fmt::Write as _;
use std::time::Duration;

use super::wrk::{Load, Report};

/// What the measured handler does: one program of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// Writes `hello`.
    Hello,
    /// Makes one HTTP call to a second hello server, then writes `hello`.
    Call,
    /// The same, its calls on connections kept in a pool as large as the load.
    Pooled,
    /// Spends 100 µs of CPU, then writes `hello`.
    Work,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::Hello => "hello",
            Program::Call => "call",
            Program::Pooled => "pooled",
            Program::Work => "work",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Program::Hello => {
                "`hello`: one handler writing `hello`, no HTTP client code in the program, so \
                 server spans record no parent links"
            }
            Program::Call => {
                "`call`: built with `-tags call`, one handler that first GETs a second, plain \
                 hello server (`-backend`; pinned to CPU 1, `GOMAXPROCS=1`, untraced), then \
                 writes `hello`: a server span and a client span per request; net/http's \
                 default transport keeps 2 idle connections per host, so with 50 requests in \
                 flight most calls open a new connection"
            }
            Program::Pooled => {
                "`pooled`: the `call` program with `-idle N`, N the load's connections: its \
                 transport keeps as many idle connections to the called server as the load \
                 has requests in flight, so the calls reuse connections (the cost per call \
                 without the cost per new connection)"
            }
            Program::Work => {
                "`work`: one handler spending 100 µs of CPU (`-work 100us`, a busy loop), then \
                 writing `hello`: a service that does some work per request"
            }
        }
    }

    /// The configurations measured on this program, the untraced baseline first.
    pub fn configs(self) -> Vec<Config> {
        let tracings: &[Tracing] = match self {
            Program::Hello => &[
                Tracing::Off,
                Tracing::Server,
                Tracing::Traps,
                Tracing::Others,
            ],
            Program::Work => &[Tracing::Off, Tracing::Server, Tracing::Others],
            Program::Pooled => &[Tracing::Off, Tracing::Client, Tracing::Propagation],
            Program::Call => &[
                Tracing::Off,
                Tracing::Client,
                Tracing::Propagation,
                Tracing::Others,
            ],
        };
        tracings
            .iter()
            .map(|&tracing| Config {
                program: self,
                tracing,
            })
            .collect()
    }
}

/// How the program is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracing {
    /// Not at all: the baseline.
    Off,
    /// Server spans (a program without HTTP client code).
    Server,
    /// Server and client spans, no `traceparent` injection (`--read-only`).
    Client,
    /// Server and client spans with `traceparent` injected into the calls.
    Propagation,
    /// No tracer: the kernel's own uprobe events (no BPF program, recording off) on the
    /// two instructions of a server span's start and end: the two traps alone.
    Traps,
    /// The same probes placed as other eBPF tracers place them: starts on a function's
    /// first instruction, ends on its `ret`s, the reader woken per event
    /// (`--placement entry-and-returns`).
    Others,
}

impl Tracing {
    pub fn name(self) -> &'static str {
        match self {
            Tracing::Off => "untraced",
            Tracing::Server => "server spans",
            Tracing::Client => "server + client spans",
            Tracing::Propagation => "server + client spans + propagation",
            Tracing::Traps => "uprobe traps alone",
            Tracing::Others => "other tracers' placement",
        }
    }

    /// The tracer's arguments for this configuration.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Tracing::Off | Tracing::Server | Tracing::Propagation | Tracing::Traps => &[],
            Tracing::Client => &["--read-only"],
            Tracing::Others => &["--placement", "entry-and-returns"],
        }
    }
}

/// A configuration under measurement: a program and how it is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub program: Program,
    pub tracing: Tracing,
}

impl Config {
    pub fn name(self) -> String {
        format!("{}: {}", self.program.name(), self.tracing.name())
    }

    pub fn traced(self) -> bool {
        self.tracing != Tracing::Off
    }

    /// Whether the tracer runs (not for the untraced baseline or the traps alone).
    pub fn tracer_runs(self) -> bool {
        self.traced() && self.tracing != Tracing::Traps
    }

    /// The untraced configuration of the same program.
    fn baseline(self) -> Config {
        Config {
            program: self.program,
            tracing: Tracing::Off,
        }
    }
}

/// Which programs a bench run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `hello`, `call` and `pooled`: every configuration of the side-by-side comparison.
    All,
    /// The hello world alone.
    Hello,
    /// The server that makes one HTTP call per request alone.
    Call,
    /// That server with its connections pooled alone.
    Pooled,
    /// The server that spends 100 µs of CPU per request.
    Work,
}

impl Scenario {
    pub fn programs(self) -> &'static [Program] {
        match self {
            Scenario::All => &[Program::Hello, Program::Call, Program::Pooled],
            Scenario::Hello => &[Program::Hello],
            Scenario::Call => &[Program::Call],
            Scenario::Pooled => &[Program::Pooled],
            Scenario::Work => &[Program::Work],
        }
    }
}

/// Where the traced runs export their spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Export {
    /// JSON lines on stdout, to a file.
    Json,
    /// OTLP over HTTP/protobuf to a sink in the bench that reads and acknowledges every
    /// batch (the tracer's encoding, compression off, and sending are measured).
    Otlp,
}

/// One round of one configuration.
pub struct Sample {
    pub round: u32,
    pub config: Config,
    /// The many-connection run.
    pub throughput: Report,
    /// The one-connection run.
    pub latency: Report,
    /// CPU time the whole machine (every process, the kernel, the tracer) spent busy
    /// during the one-connection run.
    pub busy_ns: u64,
    /// Spans the tracer delivered: lines written (JSON) or its `spans_exported` (OTLP)
    /// (traced only).
    pub spans: Option<u64>,
    /// The tracer's last stderr line, its summary (traced only).
    pub summary: Option<String>,
    /// CPU time the tracer used during the loads (traced only).
    pub tracer_cpu: Option<Duration>,
    /// The probes and where they sit, from the tracer's `attached` line (traced only).
    pub probes: Option<String>,
    /// The tracer's peak resident memory in KiB (traced only).
    pub tracer_peak_rss_kib: Option<u64>,
    /// Each of the tracer's BPF programs that ran during the loads: name, runs and
    /// nanoseconds in total (`kernel.bpf_stats_enabled`; traced only).
    pub programs: Vec<(String, u64, u64)>,
}

impl Sample {
    /// Tracer CPU milliseconds per 10,000 spans delivered (traced only).
    fn cpu_ms_per_10k_spans(&self) -> Option<f64> {
        let (cpu, spans) = (self.tracer_cpu?, self.spans?);
        (spans > 0).then(|| cpu.as_secs_f64() * 1e3 * 1e4 / spans as f64)
    }

    /// Busy CPU time of the whole machine per request of the one-connection run, in µs:
    /// what a request costs on every CPU, the tracer's work included.
    fn cpu_us_per_request(&self) -> Option<f64> {
        (self.latency.requests > 0)
            .then(|| self.busy_ns as f64 / 1e3 / self.latency.requests as f64)
    }

    /// Requests wrk completed in both runs of the round.
    fn requests(&self) -> u64 {
        self.throughput.requests + self.latency.requests
    }

    /// Spans the tracer counted as dropped, from its summary (traced only).
    fn dropped(&self) -> Option<u64> {
        summary_field(self.summary.as_deref()?, "dropped")
    }
}

/// The number after `name=` in a tracer summary line.
pub fn summary_field(summary: &str, name: &str) -> Option<u64> {
    summary
        .split([' ', '(', ')'])
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// How the numbers were obtained, printed under the table.
pub struct Setup {
    pub started_utc: String,
    pub kernel: String,
    pub cpu: String,
    pub go: String,
    pub wrk: String,
    pub rounds: u32,
    pub scenario: Scenario,
    pub export: Export,
    /// Extra arguments of the traced runs' tracer.
    pub tracer_args: Vec<String>,
    pub throughput: Load,
    pub latency: Load,
    /// The chart's file name, next to the report.
    pub chart: Option<String>,
}

/// One configuration's figures, medians over rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub config: Config,
    pub rps: Option<f64>,
    /// Median of the per-round ratios to the untraced run of the same round.
    pub share: Option<f64>,
    /// The lowest and highest per-round ratio.
    pub share_range: Option<(f64, f64)>,
    /// 1e6/rps − 1e6/rps(untraced), from the medians.
    pub added_us: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Busy CPU µs per request at one connection (see `Sample::cpu_us_per_request`).
    pub cpu_us: Option<f64>,
    /// Median over rounds of the CPU µs per request above the same round's untraced run.
    pub added_cpu_us: Option<f64>,
    pub cpu_ms_per_10k: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub requests: u64,
    pub spans: Option<u64>,
    pub dropped: Option<u64>,
    /// The probes of the last traced round, and how many are single-stepped.
    pub probes: Option<String>,
    pub single_stepped: Option<usize>,
}

/// The configurations in the order measured, each once.
fn configs(samples: &[Sample]) -> Vec<Config> {
    let mut configs: Vec<Config> = Vec::new();
    for sample in samples {
        if !configs.contains(&sample.config) {
            configs.push(sample.config);
        }
    }
    configs.sort_by_key(|c| {
        let programs = [
            Program::Hello,
            Program::Call,
            Program::Pooled,
            Program::Work,
        ];
        let program = programs.iter().position(|p| *p == c.program);
        (program, c.program.configs().iter().position(|x| x == c))
    });
    configs
}

/// The figures of every configuration.
pub fn rows(samples: &[Sample]) -> Vec<Row> {
    configs(samples)
        .into_iter()
        .map(|config| {
            let of: Vec<&Sample> = samples.iter().filter(|s| s.config == config).collect();
            let rps = median_of(samples, config, |s| s.throughput.rps);
            let base = median_of(samples, config.baseline(), |s| s.throughput.rps);
            let ratios = round_ratios(samples, config);
            let probes = of.iter().rev().find_map(|s| s.probes.clone());
            Row {
                config,
                rps,
                share: config.traced().then(|| median(ratios.clone())).flatten(),
                share_range: config
                    .traced()
                    .then(|| {
                        let low = ratios.iter().copied().reduce(f64::min)?;
                        Some((low, ratios.iter().copied().reduce(f64::max)?))
                    })
                    .flatten(),
                added_us: match (config.traced(), rps, base) {
                    (true, Some(rps), Some(base)) if rps > 0.0 && base > 0.0 => {
                        Some(1e6 / rps - 1e6 / base)
                    }
                    _ => None,
                },
                p50_us: median_of(samples, config, |s| s.latency.p50_us),
                p99_us: median_of(samples, config, |s| s.latency.p99_us),
                cpu_us: median(of.iter().filter_map(|s| s.cpu_us_per_request()).collect()),
                added_cpu_us: config
                    .traced()
                    .then(|| median(round_differences(samples, config)))
                    .flatten(),
                cpu_ms_per_10k: median(
                    of.iter().filter_map(|s| s.cpu_ms_per_10k_spans()).collect(),
                ),
                peak_rss_mib: of
                    .iter()
                    .filter_map(|s| s.tracer_peak_rss_kib)
                    .max()
                    .map(|kib| kib as f64 / 1024.0),
                requests: of.iter().map(|s| s.requests()).sum(),
                spans: of.iter().map(|s| s.spans).sum(),
                dropped: of.iter().map(|s| s.dropped()).sum(),
                single_stepped: probes
                    .as_deref()
                    .map(|p| p.matches("single-stepped").count()),
                probes,
            }
        })
        .collect()
}

/// The markdown report: summary table, comparison, noise, set-up, every round, the
/// tracer's summaries.
pub fn markdown(setup: &Setup, samples: &[Sample]) -> String {
    let mut out = String::from("# Tracer overhead, configurations side by side\n\n");
    let rows = rows(samples);
    summary_table(&mut out, &rows);
    if let Some(chart) = &setup.chart {
        let _ = writeln!(
            out,
            "![throughput as a share of untraced, and added µs per request]({chart})\n"
        );
    }
    comparison(&mut out, &rows);
    noise(&mut out, samples, &rows);
    probes_section(&mut out, &rows);
    programs_section(&mut out, samples);
    setup_section(&mut out, setup);
    rounds_table(&mut out, samples);
    summaries(&mut out, samples);
    out
}

fn summary_table(out: &mut String, rows: &[Row]) {
    out.push_str(
        "| configuration | median req/s | share of untraced (range) | added µs/request \
         | p50 @1 conn (µs) | p99 @1 conn (µs) | CPU µs/request @1 conn (added) | tracer \
         CPU, ms per 10k spans | tracer peak RSS (MiB) | requests | spans | dropped | \
         single-stepped probes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let share = match (row.share, row.share_range) {
            (Some(share), Some((low, high))) => format!(
                "{:.1}% ({:.1}–{:.1}%)",
                100.0 * share,
                100.0 * low,
                100.0 * high
            ),
            _ => "—".to_owned(),
        };
        let cpu = match (row.cpu_us, row.added_cpu_us) {
            (Some(cpu), Some(added)) => format!("{cpu:.1} ({added:+.1})"),
            (Some(cpu), None) => format!("{cpu:.1}"),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {share} | {} | {} | {} | {cpu} | {} | {} | {} | {} | {} | {} |",
            row.config.name(),
            fixed(row.rps, 0),
            fixed(row.added_us, 2),
            fixed(row.p50_us, 1),
            fixed(row.p99_us, 1),
            fixed(row.cpu_ms_per_10k, 1),
            fixed(row.peak_rss_mib, 1),
            row.requests,
            row.spans.map_or("—".to_owned(), |n| n.to_string()),
            row.dropped.map_or("—".to_owned(), |n| n.to_string()),
            row.single_stepped.map_or("—".to_owned(), |n| n.to_string()),
        );
    }
    out.push_str(
        "\nShare of untraced: the median over rounds of each round's traced req/s over the \
         same round's untraced req/s (same program, same server process). CPU µs/request \
         @1 conn: the whole machine's busy CPU time (every process, the kernel, the \
         tracer) during the one-connection run over its requests, and in brackets the \
         median over rounds of its difference to the same round's untraced run: what \
         tracing adds to each request's cost on every CPU, the tracer's own work \
         included (idle Go runtimes and wrk spin a little between requests, so \
         differences of a few tens of µs are noise). \
         Tracer CPU per 10,000 spans in ms, divided by 10, is the share of one core the \
         tracer needs at 10,000 spans/s.\n\n",
    );
}

/// Each program's other-tracers row against the tracer's own fullest configuration.
fn comparison(out: &mut String, rows: &[Row]) {
    for others in rows.iter().filter(|r| r.config.tracing == Tracing::Others) {
        let ours = rows.iter().rfind(|r| {
            r.config.program == others.config.program
                && r.config.tracer_runs()
                && r.config.tracing != Tracing::Others
        });
        let (Some(ours), Some(their_share), Some(their_added)) =
            (ours, others.share, others.added_us)
        else {
            continue;
        };
        let (Some(our_share), Some(our_added)) = (ours.share, ours.added_us) else {
            continue;
        };
        let times = if our_added > 0.0 {
            format!(
                "; the other placement adds {:.1}× the tracer's cost per request",
                their_added / our_added
            )
        } else {
            String::new()
        };
        let cpu = match (ours.added_cpu_us, others.added_cpu_us) {
            (Some(our_cpu), Some(their_cpu)) => format!(
                " At one connection a request costs {our_cpu:+.1} CPU µs traced by the \
                 tracer, {their_cpu:+.1} with the other placement."
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Side by side on `{}`: the tracer ({}) keeps {:.1}% of the untraced throughput \
             (+{:.2} µs/request); the same probes placed as other tracers place them keep \
             {:.1}% (+{:.2} µs/request): {:.1}× the tracer's throughput{times}.{cpu}\n",
            others.config.program.name(),
            ours.config.tracing.name(),
            100.0 * our_share,
            our_added,
            100.0 * their_share,
            their_added,
            our_share / their_share,
        );
    }
}

/// How much the untraced runs of one program vary between rounds: differences between
/// configurations smaller than that are noise.
fn noise(out: &mut String, samples: &[Sample], rows: &[Row]) {
    let mut lines = Vec::new();
    for row in rows.iter().filter(|r| !r.config.traced()) {
        let rps: Vec<f64> = samples
            .iter()
            .filter(|s| s.config == row.config)
            .map(|s| s.throughput.rps)
            .collect();
        let (Some(mid), Some(low), Some(high)) = (
            median(rps.clone()),
            rps.iter().copied().reduce(f64::min),
            rps.iter().copied().reduce(f64::max),
        ) else {
            continue;
        };
        if mid <= 0.0 {
            continue;
        }
        lines.push(format!(
            "`{}` untraced {:.0}–{:.0} req/s over {} rounds (±{:.1}% around the median)",
            row.config.program.name(),
            low,
            high,
            rps.len(),
            100.0 * (high - low) / 2.0 / mid,
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "Noise check: {}. A share's range (above) shows the same round to round; \
             differences between configurations within these spreads are not significant.\n",
            lines.join("; ")
        );
    }
}

/// Where each configuration's probes sit.
fn probes_section(out: &mut String, rows: &[Row]) {
    out.push_str("## Probes\n\nWhere each probe sits (from the tracer's `attached` line); the kernel emulates `push`, `nop`, `jmp`, `jcc` and `call` and single-steps the rest.\n\n");
    for row in rows {
        if let Some(probes) = &row.probes {
            let _ = writeln!(out, "- {}: {probes}", row.config.name());
        }
    }
    out.push('\n');
}

/// Each BPF program's mean run time per configuration, the median over rounds.
fn programs_section(out: &mut String, samples: &[Sample]) {
    let mut lines = Vec::new();
    for config in configs(samples) {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.config == config).collect();
        let mut names: Vec<&str> = of
            .iter()
            .flat_map(|s| s.programs.iter().map(|(name, _, _)| name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        let parts: Vec<String> = names
            .into_iter()
            .filter_map(|name| {
                let programs = || of.iter().flat_map(|s| &s.programs).filter(|p| p.0 == name);
                let per_run: Vec<f64> = programs()
                    .filter(|(_, runs, _)| *runs > 0)
                    .map(|(_, runs, ns)| *ns as f64 / *runs as f64)
                    .collect();
                let runs: u64 = programs().map(|(_, runs, _)| runs).sum();
                Some(format!(
                    "`{name}` {:.2} µs × {runs}",
                    median(per_run)? / 1e3
                ))
            })
            .collect();
        if !parts.is_empty() {
            lines.push(format!("- {}: {}", config.name(), parts.join(", ")));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "## BPF programs\n\nMean run time per hit, median over rounds, × hits in all \
             rounds (`kernel.bpf_stats_enabled` on during the bench; the kernel keeps 15 \
             characters of a name, so programs that share them, e.g. a span's start and \
             end, are counted together). This is the programs' own time; the trap that \
             runs them (emulated or single-stepped) comes on top.\n\n{}\n",
            lines.join("\n")
        );
    }
}

/// `compare(traced, untraced)` for each round that measured both `config` and its
/// untraced baseline: the configurations of a round share one server process and the
/// machine's state of the moment, and the rounds rotate their order.
fn per_round(
    samples: &[Sample],
    config: Config,
    compare: impl Fn(&Sample, &Sample) -> Option<f64>,
) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.config == config)
        .filter_map(|traced| {
            let untraced = samples
                .iter()
                .find(|s| s.config == config.baseline() && s.round == traced.round)?;
            compare(traced, untraced)
        })
        .collect()
}

/// Traced over untraced throughput of `config`, per round (see [`per_round`]).
pub fn round_ratios(samples: &[Sample], config: Config) -> Vec<f64> {
    per_round(samples, config, |traced, untraced| {
        (untraced.throughput.rps > 0.0).then(|| traced.throughput.rps / untraced.throughput.rps)
    })
}

/// Busy CPU µs per request of `config` above the untraced run's, per round (see
/// [`per_round`]).
pub fn round_differences(samples: &[Sample], config: Config) -> Vec<f64> {
    per_round(samples, config, |traced, untraced| {
        Some(traced.cpu_us_per_request()? - untraced.cpu_us_per_request()?)
    })
}

fn setup_section(out: &mut String, setup: &Setup) {
    let (t, l) = (setup.throughput, setup.latency);
    let programs: Vec<String> = setup
        .scenario
        .programs()
        .iter()
        .map(|p| format!("  - {}", p.describe()))
        .collect();
    let export = match setup.export {
        Export::Json => "`--format json` with stdout to a file",
        Export::Otlp => {
            "`--exporter otlp --otlp-protocol http/protobuf` to a sink in the bench (on \
             loopback, CPU 1) that reads each batch and answers 200; stdout unused"
        }
    };
    let _ = write!(
        out,
        "## Set-up\n\n\
         - date: {}\n\
         - kernel: {}\n\
         - CPU: {}\n\
         - servers: `xtask/bench/hello` (net/http), {}, `GOMAXPROCS=1`, pinned to CPU 0 \
           (`taskset -c 0`):\n{}\n\
         - traced: `tracer --pid PID{}` plus the configuration's arguments (`--read-only` \
           for client spans without propagation, `--placement entry-and-returns` for other \
           tracers' placement), spans exported by {export}; pinned to CPU 1 (niceness 10, \
           its default)\n\
         - load: {} on loopback, pinned to CPU 1: `wrk -t{} -c{} -d{}s` for throughput, \
           then `wrk -t{} -c{} -d{}s --latency` for latency at one connection\n\
         - rounds: {}; each round starts a fresh server per program, warms it up with 2 s of \
           the throughput load, then measures every configuration of that program on it \
           (the tracer attached for its run only), the order rotated by one each round; \
           figures are medians over rounds\n\
         - added µs/request: 1e6/req/s(traced) − 1e6/req/s(untraced)\n\n",
        setup.started_utc,
        setup.kernel,
        setup.cpu,
        setup.go,
        programs.join("\n"),
        setup
            .tracer_args
            .iter()
            .map(|a| format!(" {a}"))
            .collect::<String>(),
        setup.wrk,
        t.threads,
        t.connections,
        t.seconds,
        l.threads,
        l.connections,
        l.seconds,
        setup.rounds,
    );
}

fn rounds_table(out: &mut String, samples: &[Sample]) {
    out.push_str(
        "## Rounds\n\n\
         | round | configuration | req/s | p50 @1 conn (µs) | p99 @1 conn (µs) | requests \
         | spans | tracer CPU ms / 10k spans | tracer peak RSS (MiB) | wrk errors |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in samples {
        let errors: Vec<&str> = s
            .throughput
            .errors
            .iter()
            .chain(&s.latency.errors)
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            s.round,
            s.config.name(),
            s.throughput.rps,
            s.latency.p50_us,
            s.latency.p99_us,
            s.requests(),
            s.spans.map_or("—".to_owned(), |n| n.to_string()),
            fixed(s.cpu_ms_per_10k_spans(), 1),
            fixed(s.tracer_peak_rss_kib.map(|kib| kib as f64 / 1024.0), 1),
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join("; ")
            },
        );
    }
    out.push('\n');
}

fn summaries(out: &mut String, samples: &[Sample]) {
    out.push_str("## Tracer summaries (last stderr line at SIGINT)\n\n");
    for s in samples {
        if let Some(summary) = &s.summary {
            let _ = writeln!(out, "- round {}, {}: `{summary}`", s.round, s.config.name());
        }
    }
}

/// The median of `value` over the samples of `config`.
fn median_of(samples: &[Sample], config: Config, value: impl Fn(&Sample) -> f64) -> Option<f64> {
    median(
        samples
            .iter()
            .filter(|s| s.config == config)
            .map(value)
            .collect(),
    )
}

/// The median (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or("—".to_owned(), |v| format!("{v:.decimals$}"))
}

/// `(file-name stamp, readable)` for a UNIX time: `20261123T041500Z`, `2026-11-23 04:15:00 UTC`.
pub fn utc_stamps(unix_secs: u64) -> (String, String) {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    (
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC"),
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rps: f64, p50_us: f64) -> Report {
        Report {
            requests: 10,
            rps,
            p50_us,
            p99_us: 2.0 * p50_us,
            errors: Vec::new(),
        }
    }

    const HELLO_OFF: Config = Config {
        program: Program::Hello,
        tracing: Tracing::Off,
    };
    const HELLO_SERVER: Config = Config {
        program: Program::Hello,
        tracing: Tracing::Server,
    };
    const HELLO_OTHERS: Config = Config {
        program: Program::Hello,
        tracing: Tracing::Others,
    };

    fn sample(round: u32, config: Config, rps: f64) -> Sample {
        let traced = config.traced();
        let probes = if config.tracing == Tracing::Others {
            "ServeHTTP+0x0(first instruction (single-stepped)), ServeHTTP+0x93(ret (single-stepped))"
        } else {
            "ServeHTTP+0xa(push rbp)"
        };
        Sample {
            round,
            config,
            throughput: report(rps, 100.0),
            latency: report(1000.0, 50.0),
            busy_ns: if traced { 60_000_000 } else { 50_000_000 },
            spans: traced.then_some(20),
            summary: traced
                .then(|| format!("summary: spans_exported=20 dropped={round} (ringbuf_full=0)")),
            tracer_cpu: traced.then_some(Duration::from_millis(4)),
            probes: traced.then(|| probes.to_owned()),
            tracer_peak_rss_kib: traced.then_some(40 * 1024),
            programs: if traced {
                vec![("net_http_server".to_owned(), 10, 5000)]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn per_round_ratios_pair_rounds() {
        let samples = vec![
            sample(1, HELLO_OFF, 100.0),
            sample(1, HELLO_SERVER, 80.0),
            sample(2, HELLO_SERVER, 60.0),
            sample(2, HELLO_OFF, 50.0),
            sample(3, HELLO_SERVER, 10.0),
        ];
        assert_eq!(round_ratios(&samples, HELLO_SERVER), vec![0.8, 1.2]);
    }

    #[test]
    fn reads_summary_fields() {
        let line = "summary: spans_exported=38514 dropped=7 (ringbuf_full=7 unmatched_end=0)";
        assert_eq!(summary_field(line, "dropped"), Some(7));
        assert_eq!(summary_field(line, "spans_exported"), Some(38514));
        assert_eq!(summary_field(line, "ringbuf_full"), Some(7));
        assert_eq!(summary_field(line, "exported"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamps(0).0, "19700101T000000Z");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(utc_stamps(1_709_210_096).1, "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn report_puts_configurations_side_by_side() {
        let samples = [
            sample(1, HELLO_OFF, 50_000.0),
            sample(1, HELLO_SERVER, 40_000.0),
            sample(1, HELLO_OTHERS, 10_000.0),
            sample(2, HELLO_OTHERS, 10_000.0),
            sample(2, HELLO_OFF, 50_000.0),
            sample(2, HELLO_SERVER, 40_000.0),
        ];
        let setup = Setup {
            started_utc: "2024-02-29 12:34:56 UTC".into(),
            kernel: "6.1".into(),
            cpu: "test cpu".into(),
            go: "go1.24.11".into(),
            wrk: "wrk 4.1.0".into(),
            rounds: 2,
            scenario: Scenario::Hello,
            export: Export::Json,
            tracer_args: vec!["--track-goroutines".into()],
            throughput: Load {
                threads: 2,
                connections: 50,
                seconds: 5,
            },
            latency: Load {
                threads: 1,
                connections: 1,
                seconds: 3,
            },
            chart: Some("bench-x.png".into()),
        };
        let md = markdown(&setup, &samples);
        // 1e6/40000 - 1e6/50000 = 25 - 20 = 5 µs; 4 ms over 20 spans = 2000 ms per 10k.
        assert!(md.contains(
            "| hello: server spans | 40000 | 80.0% (80.0–80.0%) | 5.00 | 50.0 | 100.0 | 6000.0 (+1000.0) | 2000.0 | 40.0 | 40 | 40 | 3 | 0 |"
        ), "{md}");
        assert!(
            md.contains(
                "| hello: untraced | 50000 | — | — | 50.0 | 100.0 | 5000.0 | — | — | 40 | — | — | — |"
            ),
            "{md}"
        );
        // 1e6/10000 - 20 = 80 µs, 16x the tracer's 5 µs; 80% / 20% = 4x the throughput.
        assert!(
            md.contains("| hello: other tracers' placement | 10000 | 20.0% (20.0–20.0%) | 80.00 |"),
            "{md}"
        );
        assert!(md.contains("keep 20.0% (+80.00 µs/request): 4.0× the tracer's throughput; the other placement adds 16.0× the tracer's cost per request"), "{md}");
        assert!(
            md.contains("`hello` untraced 50000–50000 req/s over 2 rounds (±0.0%"),
            "{md}"
        );
        // 5000 ns over 10 runs, in both traced rounds.
        assert!(
            md.contains("- hello: server spans: `net_http_server` 0.50 µs × 20"),
            "{md}"
        );
        assert!(md.contains("`tracer --pid PID --track-goroutines`"), "{md}");
        assert!(
            md.contains(
                "![throughput as a share of untraced, and added µs per request](bench-x.png)"
            ),
            "{md}"
        );
        assert!(md.contains("- hello: other tracers' placement: ServeHTTP+0x0(first instruction (single-stepped))"), "{md}");
    }
}
