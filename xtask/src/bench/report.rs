//! The bench's results: medians per configuration and the markdown report. Pure.

use std::fmt::Write as _;
use std::time::Duration;

use super::wrk::{Load, Report};

/// A configuration under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    Untraced,
    Traced,
}

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Traced => "traced",
        }
    }
}

/// What the measured handler does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Writes `hello`.
    Hello,
    /// Makes one HTTP call to a second hello server, then writes `hello`.
    Call,
    /// Spends 100 µs of CPU, then writes `hello`.
    Work,
}

impl Scenario {
    fn describe(self) -> &'static str {
        match self {
            Scenario::Hello => {
                "one handler writing `hello`, no HTTP client code in the program, so server \
                 spans record no parent links"
            }
            Scenario::Call => {
                "built with `-tags call`: one handler that first GETs a second, plain hello \
                 server (`-backend`; pinned to CPU 1, `GOMAXPROCS=1`, untraced), then writes \
                 `hello`: a server span and a client span per request"
            }
            Scenario::Work => {
                "one handler spending 100 µs of CPU (`-work 100us`, a busy loop), then \
                 writing `hello`: a service that does some work per request"
            }
        }
    }
}

/// One round of one configuration.
pub struct Sample {
    pub round: u32,
    pub config: Config,
    /// The many-connection run.
    pub throughput: Report,
    /// The one-connection run.
    pub latency: Report,
    /// Lines the tracer wrote (traced only).
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
    /// Tracer CPU milliseconds per 10,000 spans written (traced only).
    fn cpu_ms_per_10k_spans(&self) -> Option<f64> {
        let (cpu, spans) = (self.tracer_cpu?, self.spans?);
        (spans > 0).then(|| cpu.as_secs_f64() * 1e3 * 1e4 / spans as f64)
    }
}

impl Sample {
    /// Requests wrk completed in both runs of the round.
    fn requests(&self) -> u64 {
        self.throughput.requests + self.latency.requests
    }
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
    /// Extra arguments of the traced runs' tracer.
    pub tracer_args: Vec<String>,
    pub throughput: Load,
    pub latency: Load,
}

/// The markdown report: summary table, set-up, every round, the tracer's summaries.
pub fn markdown(setup: &Setup, samples: &[Sample]) -> String {
    let mut out = String::from(match setup.scenario {
        Scenario::Hello => "# Tracer overhead on a Go hello-world server\n\n",
        Scenario::Call => {
            "# Tracer overhead on a Go server that makes one HTTP call per request\n\n"
        }
        Scenario::Work => {
            "# Tracer overhead on a Go server that spends 100 µs of CPU per request\n\n"
        }
    });
    summary_table(&mut out, samples);
    if let Some(probes) = samples.iter().rev().find_map(|s| s.probes.as_deref()) {
        let _ = writeln!(
            out,
            "Probes (where each sits; \"single-stepped\" would mark a slow one): {probes}\n"
        );
    }
    setup_section(&mut out, setup);
    rounds_table(&mut out, samples);
    summaries(&mut out, samples);
    out
}

fn summary_table(out: &mut String, samples: &[Sample]) {
    out.push_str(
        "| configuration | median req/s | added µs/request | p50 @1 conn (µs) | p99 @1 conn (µs) \
         | requests | spans written | tracer peak RSS (MiB) | tracer summary (last round) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let base_rps = median_of(samples, Config::Untraced, |s| s.throughput.rps);
    for config in [Config::Untraced, Config::Traced] {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.config == config).collect();
        let rps = median_of(samples, config, |s| s.throughput.rps);
        let added = match (config, rps, base_rps) {
            (Config::Traced, Some(rps), Some(base)) => format!("{:.2}", 1e6 / rps - 1e6 / base),
            _ => "—".to_owned(),
        };
        let spans: Option<u64> = of.iter().map(|s| s.spans).sum();
        let summary = of.last().and_then(|s| s.summary.as_deref());
        let peak = of
            .iter()
            .filter_map(|s| s.tracer_peak_rss_kib)
            .max()
            .map(|kib| kib as f64 / 1024.0);
        let _ = writeln!(
            out,
            "| {} | {} | {added} | {} | {} | {} | {} | {} | {} |",
            config.name(),
            fixed(rps, 0),
            fixed(median_of(samples, config, |s| s.latency.p50_us), 1),
            fixed(median_of(samples, config, |s| s.latency.p99_us), 1),
            of.iter().map(|s| s.requests()).sum::<u64>(),
            spans.map_or("—".to_owned(), |n| n.to_string()),
            fixed(peak, 1),
            summary.map_or("—".to_owned(), |s| format!("`{s}`")),
        );
    }
    out.push('\n');
    let ratios = round_ratios(samples);
    if let (Some(median_ratio), Some(low), Some(high), Some(rps), Some(base)) = (
        median(ratios.clone()),
        ratios.iter().copied().reduce(f64::min),
        ratios.iter().copied().reduce(f64::max),
        median_of(samples, Config::Traced, |s| s.throughput.rps),
        base_rps,
    ) {
        let _ = writeln!(
            out,
            "Traced throughput as a share of untraced: {:.1}% (median of the {} per-round \
             ratios, range {:.1}%–{:.1}%); ratio of the medians {:.1}%.\n",
            100.0 * median_ratio,
            ratios.len(),
            100.0 * low,
            100.0 * high,
            100.0 * rps / base,
        );
    }
    let cpu: Vec<f64> = samples
        .iter()
        .filter_map(Sample::cpu_ms_per_10k_spans)
        .collect();
    if let Some(cpu) = median(cpu) {
        let _ = writeln!(
            out,
            "Tracer CPU (user + system, during the loads): {cpu:.0} ms per 10,000 spans \
             (median over rounds).\n",
        );
    }
    programs_line(out, samples);
}

/// Each BPF program's mean run time, the median over the traced rounds.
fn programs_line(out: &mut String, samples: &[Sample]) {
    let mut names: Vec<&str> = samples
        .iter()
        .flat_map(|s| s.programs.iter().map(|(name, _, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let parts: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let per_run: Vec<f64> = samples
                .iter()
                .flat_map(|s| &s.programs)
                .filter(|(n, runs, _)| n == name && *runs > 0)
                .map(|(_, runs, ns)| *ns as f64 / *runs as f64)
                .collect();
            let runs: u64 = samples
                .iter()
                .flat_map(|s| &s.programs)
                .filter(|(n, _, _)| n == name)
                .map(|(_, runs, _)| runs)
                .sum();
            Some(format!(
                "`{name}` {:.2} µs × {runs}",
                median(per_run)? / 1e3
            ))
        })
        .collect();
    if !parts.is_empty() {
        let _ = writeln!(
            out,
            "BPF programs (mean run time per hit, median over rounds, × hits in all rounds; \
             `kernel.bpf_stats_enabled` on during the bench; the kernel keeps 15 characters \
             of a name, so programs that share them, e.g. a span's start and end, are \
             counted together): {}.\n",
            parts.join(", ")
        );
    }
}

/// Traced over untraced throughput of each round that measured both: the rounds alternate
/// which configuration runs first, so a pair shares the machine's state of the moment.
pub fn round_ratios(samples: &[Sample]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.config == Config::Traced)
        .filter_map(|traced| {
            samples
                .iter()
                .find(|s| s.config == Config::Untraced && s.round == traced.round)
                .filter(|untraced| untraced.throughput.rps > 0.0)
                .map(|untraced| traced.throughput.rps / untraced.throughput.rps)
        })
        .collect()
}

fn setup_section(out: &mut String, setup: &Setup) {
    let (t, l) = (setup.throughput, setup.latency);
    let _ = write!(
        out,
        "## Set-up\n\n\
         - date: {}\n\
         - kernel: {}\n\
         - CPU: {}\n\
         - server: `xtask/bench/hello` (net/http, {}), {}, \
           `GOMAXPROCS=1`, pinned to CPU 0 (`taskset -c 0`)\n\
         - traced: `tracer --pid PID --format json{}` with stdout to a file, pinned to CPU \
           1 (niceness 10, its default, unless an argument says otherwise)\n\
         - load: {} on loopback, pinned to CPU 1: `wrk -t{} -c{} -d{}s` for throughput, \
           then `wrk -t{} -c{} -d{}s --latency` for latency at one connection\n\
         - rounds: {} per configuration; each round starts a fresh server, warms it up with \
           2 s of the throughput load, then measures it untraced and traced (the tracer \
           attached for that run only), odd rounds untraced first, even rounds traced first; \
           figures are medians over rounds\n\
         - added µs/request: 1e6/req/s(traced) − 1e6/req/s(untraced)\n\n",
        setup.started_utc,
        setup.kernel,
        setup.cpu,
        setup.scenario.describe(),
        setup.go,
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
         | spans written | tracer CPU ms / 10k spans | wrk errors |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
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
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} |",
            s.round,
            s.config.name(),
            s.throughput.rps,
            s.latency.p50_us,
            s.latency.p99_us,
            s.requests(),
            s.spans.map_or("—".to_owned(), |n| n.to_string()),
            fixed(s.cpu_ms_per_10k_spans(), 0),
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
            let _ = writeln!(out, "- round {}: `{summary}`", s.round);
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

    fn sample(round: u32, config: Config, rps: f64) -> Sample {
        let traced = config == Config::Traced;
        Sample {
            round,
            config,
            throughput: report(rps, 100.0),
            latency: report(1000.0, 50.0),
            spans: traced.then_some(20),
            summary: traced.then(|| format!("exported 20 spans, dropped 0 (round {round})")),
            tracer_cpu: traced.then_some(Duration::from_millis(4)),
            probes: traced.then(|| "net/http.send+0x12(push rbp)".to_owned()),
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
            sample(1, Config::Untraced, 100.0),
            sample(1, Config::Traced, 80.0),
            sample(2, Config::Traced, 60.0),
            sample(2, Config::Untraced, 50.0),
            sample(3, Config::Traced, 10.0),
        ];
        assert_eq!(round_ratios(&samples), vec![0.8, 1.2]);
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
    fn summary_row_shows_the_added_cost() {
        let samples = [
            sample(1, Config::Untraced, 50_000.0),
            sample(1, Config::Traced, 40_000.0),
            sample(2, Config::Traced, 40_000.0),
            sample(2, Config::Untraced, 50_000.0),
        ];
        let setup = Setup {
            started_utc: "2024-02-29 12:34:56 UTC".into(),
            kernel: "6.1".into(),
            cpu: "test cpu".into(),
            go: "go1.24.11".into(),
            wrk: "wrk 4.1.0".into(),
            rounds: 2,
            scenario: Scenario::Call,
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
        };
        let md = markdown(&setup, &samples);
        // 1e6/40000 - 1e6/50000 = 25 - 20 = 5 µs.
        assert!(md.contains(
            "| traced | 40000 | 5.00 | 50.0 | 100.0 | 40 | 40 | 40.0 | `exported 20 spans, dropped 0 (round 2)` |"
        ), "{md}");
        assert!(
            md.contains("| untraced | 50000 | — | 50.0 | 100.0 | 40 | — | — | — |"),
            "{md}"
        );
        assert!(md.contains("one HTTP call per request"), "{md}");
        // 5000 ns over 10 runs, in both traced rounds.
        assert!(md.contains("`net_http_server` 0.50 µs × 20"), "{md}");
        assert!(md.contains("--format json --track-goroutines`"), "{md}");
        assert!(
            md.contains("Probes (where each sits; \"single-stepped\" would mark a slow one): net/http.send+0x12(push rbp)"),
            "{md}"
        );
    }
}
