//! The tracer's lifecycle: resolve and attach every target, drain the ring buffer on a
//! short timer through the pipeline to the exporter, and on SIGINT/SIGTERM or when every
//! target has exited, detach, flush and summarize.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tracer_common::{
    config::NO_FIELD,
    counters::{COUNTER_NAMES, INJECT_UNSENT, NUM_DROPS, PROCESS_EVENTS_LOST, SAMPLED_OUT},
    process::{PROCESS_EXEC, PROCESS_EXIT, ProcessEvent},
};

use crate::{
    cli::{Config, ExporterKind, Format, Mode},
    connections::Preexisting,
    export::{
        BATCH_CAPACITY, Encoder, Exporter, Exporters, Item, Policy, Sink, json::JsonLines, otlp,
        stream::Stream, text::Text, zipkin::Zipkin,
    },
    kube::{self, Kube},
    launch::{self, LaunchError},
    loader::{AttachedProbe, LoadError, Loader},
    metrics::{ExporterState, Metrics},
    pipeline::{
        clock::Clock,
        decode::{self, Event, decode},
        resource::Resource,
        sampler::Sampler,
    },
    priority::Yielding,
    privileges::{self, PrivilegeError},
    probes::{
        Hook, Placement, Site,
        net_http::{client, server},
    },
    process::{Process, ProcessError},
    target::{self, TargetError},
    targets::{Scope, Targets},
};

/// How often the ring buffer is drained (events are submitted without wake-ups).
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Longest the reader leaves spans in the ring buffer while an exporter is behind (see
/// `Pipeline::drain`): past it, it drains again and what the exporter cannot take is
/// counted there (`export_queue_full`), so a back end that stays slow is named as such.
const HOLD_LIMIT: Duration = Duration::from_secs(1);

/// How often `--metrics-addr` gets a new snapshot.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// How often at most the in-flight slots of exited processes are released (a pass reads
/// every slot of four maps, one system call each).
const RELEASE_INTERVAL: Duration = Duration::from_millis(500);

/// Errors that stop the tracer (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{path}{who} has no net/http server functions ({symbol} not found)")]
    NoHttpServer {
        path: String,
        /// ` (pid N)`, or empty.
        who: String,
        symbol: &'static str,
    },
    #[error("{path}{who}, {version}: unsupported struct layout")]
    Layout {
        path: String,
        who: String,
        version: String,
        #[source]
        source: server::LayoutError,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot start the exporter")]
    Exporter(#[source] std::io::Error),
    #[error("cannot set up the {0} exporter: {1:#}")]
    ExporterSetup(&'static str, anyhow::Error),
    #[error("cannot serve metrics on {0}")]
    Metrics(std::net::SocketAddr, #[source] std::io::Error),
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// What happened, for the exit summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub exported: u64,
    /// Lost spans by reason; every one counts in `dropped`.
    pub drops: Vec<(&'static str, u64)>,
    pub sampled_out: u64,
    pub in_flight_at_exit: u64,
    /// Spans exported with some attribute missing, by reason, and other counts that lose
    /// nothing (injection outcomes, process events, spans the filter excluded).
    pub incomplete: Vec<(&'static str, u64)>,
}

impl Summary {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reasons: Vec<String> = self.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(
            f,
            "summary: spans_exported={} dropped={} ({}) sampled_out={} in_flight_at_exit={}{}",
            self.exported,
            self.dropped(),
            reasons.join(" "),
            self.sampled_out,
            self.in_flight_at_exit,
            self.incomplete
                .iter()
                .map(|(k, v)| format!(" {k}={v}"))
                .collect::<String>(),
        )
    }
}

/// Every hook of every probe (injection's only when it may be on), placed as `placement`
/// says.
pub fn hooks(track_goroutines: bool, inject: bool, placement: Placement) -> Vec<Hook> {
    let mut hooks: Vec<Hook> = server::HOOKS.iter().chain(client::HOOKS).copied().collect();
    if track_goroutines {
        hooks.push(client::GOROUTINE_CREATED);
    }
    if inject {
        hooks.push(client::INJECT);
    }
    crate::probes::place(&hooks, placement, crate::probes::net_http::AT_RETURNS)
}

/// Why no process gets `traceparent` injection, if none may: `--read-only`, or the
/// kernel's refusal (said once, here).
fn injection_blocker(read_only: bool) -> Option<String> {
    if read_only {
        return Some("--read-only".into());
    }
    let blocker = privileges::injection_blocker()?;
    log::warn!("traceparent injection is off: {blocker}; incoming trace context is still read");
    Some(blocker)
}

/// Whether `hook` is missing from the binary, when the function it names is not there
/// and no other hook of `hooks` runs its program (the same function in another Go
/// release's layout).
pub fn is_missing(inspection: &target::Inspection, hooks: &[Hook], hook: &Hook) -> bool {
    let present = |h: &Hook| inspection.has(h);
    !present(hook)
        && !hooks
            .iter()
            .any(|other| other.program == hook.program && present(other))
}

/// True for the hooks of client spans, which a binary without an HTTP client lacks.
fn is_client_hook(hook: &Hook) -> bool {
    client::HOOKS.iter().any(|c| c.program == hook.program)
}

/// Counters kept by user space.
#[derive(Debug, Default)]
struct UserCounters {
    /// Spans of processes the filter leaves out (not lost: not wanted).
    excluded: u64,
    /// Spans of processes the filter could not decide on yet (their pod unknown).
    undecided: u64,
    decode_errors: u64,
    unknown_process: u64,
    /// Spans in flight in processes that exited or ran another program (lost).
    process_exited: u64,
}

/// How a run ended.
pub struct Outcome {
    pub summary: Summary,
    /// With `--`: the command's exit status, the tracer's own.
    pub exit_code: Option<i32>,
}

/// Runs until `stop` is set, or every target has exited (`--pid`), or the command has
/// (`--`); with `--binary` and `--all`, until stopped.
pub fn run(config: &Config, stop: &AtomicBool) -> Result<Outcome, RunError> {
    privileges::check()?;
    privileges::warn_limitations();
    // Started before the tracer lowers its priority, which the command would inherit.
    let mut child = match &config.mode {
        Mode::Command(argv) => Some(launch::spawn_paused(argv)?),
        _ => None,
    };
    let outcome = trace(config, stop, &mut child);
    // Not released: the tracer could not attach.
    if let Some(child) = child {
        child.abort();
    }
    outcome
}

/// [`run`], with the paused command `child` (taken when it is released).
fn trace(
    config: &Config,
    stop: &AtomicBool,
    child: &mut Option<launch::Child>,
) -> Result<Outcome, RunError> {
    lower_priority(config.nice);
    let blocker = injection_blocker(config.read_only);
    // The injection program is not even loaded when injection is off for all.
    let hooks = hooks(config.track_goroutines, blocker.is_none(), config.placement);
    let mut programs: Vec<&'static str> = hooks.iter().map(|h| h.program).collect();
    // Hooks of the same program in two Go layouts share it.
    programs.sort_unstable();
    programs.dedup();
    // Processes named on the command line must exist before anything is loaded.
    let mut processes = Vec::new();
    if let Mode::Pids(pids) = &config.mode {
        for &pid in pids {
            processes.push(Process::open(pid)?);
        }
    }
    if let Some(child) = child.as_ref() {
        processes.push(Process::launched(child.pid, launch::shown(&child.program))?);
    }
    // Exporters and the metrics endpoint before any probe: a bad setting fails first.
    let exporters = start_exporters(config)?;
    let metrics = match config.export.metrics_addr {
        Some(addr) => {
            let metrics = Metrics::serve(addr).map_err(|e| RunError::Metrics(addr, e))?;
            log::info!("metrics at http://{}/metrics", metrics.addr);
            Some(metrics)
        }
        None => None,
    };
    let mut loader = Loader::load(&programs)?;
    let scope = match &config.mode {
        Mode::Pids(_) | Mode::Command(_) => Scope::Each,
        Mode::Binaries(paths) => Scope::Paths(paths.clone()),
        Mode::All(filter) => Scope::All(filter.clone()),
    };
    let process_events = match scope {
        Scope::Each => None,
        _ => Some(loader.start_process_events()?),
    };
    let blocker = match blocker {
        Some(why) => Some(why),
        None => start_injection(&mut loader, &scope, &processes),
    };
    // Connections opened before their port was watched, taken in (injection only).
    let mut preexisting = blocker.is_none().then(Preexisting::new);
    let kube = kube::Source::of(&config.kubernetes).and_then(|source| {
        Kube::start(source)
            .map_err(|error| log::warn!("no Kubernetes metadata: {error}"))
            .ok()
    });
    let mut targets = Targets::new(scope, hooks, blocker, config, kube);
    for process in processes {
        targets.add_process(&mut loader, process)?;
    }
    if let Mode::Binaries(paths) = &config.mode {
        for path in paths {
            targets.add_path(&mut loader, path)?;
        }
    }
    if process_events.is_some() {
        targets.scan(&mut loader);
    }
    let running = match child.take() {
        Some(child) => {
            let running = child.release()?;
            if let Err(error) = running.forward_signals() {
                log::warn!("signals are not passed on to the command: {error}");
            }
            Some(running)
        }
        None => None,
    };

    // Mapped only now: the ring buffer's pages count twice in the tracer's resident
    // memory (16 MiB, its data is mapped twice), and the first inspections above need
    // some 15 MiB for a moment; spans of probes attached meanwhile wait in the kernel.
    let events = loader.take_events()?;
    let mut published = Instant::now();
    let mut pipeline = Pipeline {
        events,
        process_events,
        clock: Clock::measure(),
        mapping: server::Mapping {
            capture_query: config.capture_query,
        },
        exporters,
        counters: UserCounters::default(),
        lost_process_events: 0,
        gone: Vec::new(),
        released: Instant::now(),
        holding_since: None,
        held: false,
    };
    let mut exit_code = None;
    // From here on the span path yields the CPU to everything else while it keeps up.
    let yielding = Yielding::start(pipeline.exporters.thread_ids());
    loop {
        let finished = match &running {
            Some(running) => {
                exit_code = exit_code.or_else(|| running.try_wait());
                exit_code.is_some()
            }
            None => matches!(config.mode, Mode::Pids(_)) && targets.all_exited(),
        };
        let stopping = stop.load(Ordering::Relaxed) || finished;
        // First: a binary rewritten on disk loses its probes before anything else.
        targets.check_files(&mut loader);
        // Processes are followed once every span before their events has been read: a
        // process forgotten too early would leave its spans without a target.
        let caught_up = pipeline.drain(&mut targets, &mut loader, false);
        if caught_up {
            pipeline.follow_processes(&mut targets, &mut loader);
        }
        targets.refresh_metadata(&mut loader);
        if let Some(preexisting) = &mut preexisting {
            preexisting.poll(&mut loader);
        }
        if let Some(metrics) = &metrics
            && published.elapsed() >= METRICS_INTERVAL
        {
            published = Instant::now();
            // A failed read of the kernel's counters skips a snapshot, never the run.
            if let Ok(kernel) = loader.counters() {
                let summary = pipeline.summary(&kernel, 0, 0);
                metrics.publish(&summary, &pipeline.exporter_states(), targets.count());
            }
        }
        if stopping {
            if finished {
                log::info!("every traced process has exited");
            }
            break;
        }
        if let Some(yielding) = &yielding {
            yielding.turn(caught_up);
        }
        pipeline.wait(config.placement, targets.wake_fds());
    }
    drop(yielding);

    // Detach, then export whatever the kernel finished before that. The probes of
    // binaries changed on disk go first: their held starts go on after.
    targets.wait_removals(&mut loader);
    loader.detach();
    pipeline.drain(&mut targets, &mut loader, true);
    // Spans of exited processes still in the slots are lost with them, not in flight.
    let mut gone = std::mem::take(&mut pipeline.gone);
    gone.extend(targets.exited().into_iter().map(|pid| (pid, u64::MAX)));
    drop(targets);
    let inflight = loader.inflight(Clock::monotonic_now(), &gone)?;
    pipeline.counters.process_exited += inflight.process_exited;
    let mut kernel = loader.counters()?;
    // A failed count costs this count only, never the spans still to export.
    kernel[INJECT_UNSENT as usize] += loader.unsent_headers().unwrap_or_else(|error| {
        log::warn!("cannot count the injection headers never sent: {error}");
        0
    });
    drop(loader);
    pipeline.exporters.finish();
    let summary = pipeline.summary(&kernel, inflight.in_flight, inflight.expired);
    if let Some(metrics) = &metrics {
        metrics.publish(&summary, &pipeline.exporter_states(), 0);
    }
    Ok(Outcome { summary, exit_code })
}

/// Starts every exporter `config` names.
fn start_exporters(config: &Config) -> Result<Exporters, RunError> {
    let settings = &config.export;
    let mut exporters = Vec::new();
    for &kind in &settings.exporters {
        let setup = |error| RunError::ExporterSetup(kind.name(), error);
        let (sink, policy): (Box<dyn Sink>, Policy) = match kind {
            ExporterKind::Stdout => {
                let encoder: Box<dyn Encoder> = match config.format {
                    Format::Json => Box::new(JsonLines::default()),
                    Format::Text => Box::new(Text),
                };
                let stream = Stream::new(encoder, Box::new(std::io::stdout()));
                (Box::new(stream), Policy::STREAM)
            }
            ExporterKind::Otlp => {
                let otlp = &settings.otlp;
                log::info!(
                    "otlp: exporting to {} ({:?}{}{})",
                    otlp.endpoint,
                    otlp.protocol,
                    if otlp.gzip { ", gzip" } else { "" },
                    if otlp.headers.is_empty() {
                        String::new()
                    } else {
                        format!(", {} header(s)", otlp.headers.len())
                    }
                );
                (otlp::sink(otlp).map_err(setup)?, settings.policy)
            }
            ExporterKind::Zipkin => {
                log::info!("zipkin: exporting to {}", settings.zipkin_endpoint);
                let zipkin =
                    Zipkin::new(&settings.zipkin_endpoint, settings.otlp.timeout).map_err(setup)?;
                (Box::new(zipkin), settings.policy)
            }
        };
        let exporter = Exporter::spawn(kind.name(), sink, policy).map_err(RunError::Exporter)?;
        exporters.push((kind, exporter));
    }
    Ok(Exporters(exporters))
}

/// The executable of `process`, named by its real path for messages, and its bytes: read
/// through /proc/PID/exe (works across mount namespaces and after the file was replaced
/// on disk).
pub fn read_exe(process: &Process) -> Result<(String, Vec<u8>), TargetError> {
    let shown = process.exe.display().to_string();
    let data = std::fs::read(process.exe_handle()).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            TargetError::ReadDenied {
                path: shown.clone(),
            }
        } else {
            TargetError::Read {
                path: shown.clone(),
                source,
            }
        }
    })?;
    Ok((shown, data))
}

/// Resolves the binary `data` (`shown` in messages; run by `pid` if known): its probe
/// points and its kernel configuration.
pub fn resolve_binary(
    shown: &str,
    data: &[u8],
    pid: Option<u32>,
    hooks: &[Hook],
) -> Result<(target::Inspection, tracer_common::config::ProbeConfig), RunError> {
    let (mut symbols, call_sites) = target::sites(hooks);
    if hooks.contains(&client::INJECT) {
        symbols.extend_from_slice(&[client::BUFIO_WRITE, client::PCONN_WRITE, client::TCP_CLOSE]);
    }
    let structs = crate::probes::net_http::fields();
    let inspection = target::inspect_bytes(shown, data, &symbols, &call_sites, &structs)?;
    let who = pid.map_or_else(String::new, |pid| format!(" (pid {pid})"));
    if let Some(missing) = hooks.iter().find(|h| h.required && !inspection.has(h)) {
        return Err(RunError::NoHttpServer {
            path: shown.to_owned(),
            who,
            symbol: missing.symbol,
        });
    }
    let probe_config = server::config(&inspection.offsets).map_err(|source| RunError::Layout {
        path: shown.to_owned(),
        who,
        version: inspection.build.go_version.clone(),
        source,
    })?;
    if probe_config.header_map.kind == 0 {
        log::warn!(
            "{shown}: the header map layout is unknown: user_agent.original and incoming trace context unavailable"
        );
    }
    Ok((inspection, probe_config))
}

/// What is traced in one binary, and how.
pub struct Plan {
    /// The hooks to attach.
    pub hooks: Vec<Hook>,
    pub config: tracer_common::config::ProbeConfig,
    pub propagation: Propagation,
}

/// Decides what to trace in a binary: client spans when it has both client hooks and
/// their structs, the goroutine tree when asked and possible, injection when nothing
/// blocks it (`blocker`). `who` names it in warnings.
pub fn plan(
    who: &str,
    inspection: &target::Inspection,
    mut probe_config: tracer_common::config::ProbeConfig,
    hooks: &[Hook],
    config: &Config,
    blocker: Option<&str>,
) -> Plan {
    // Client probes need the client's struct members too.
    let client_layout = [
        probe_config.req_url,
        probe_config.url_scheme,
        probe_config.url_host,
        probe_config.url_path,
        probe_config.url_raw_query,
        probe_config.resp_status_code,
    ]
    .iter()
    .all(|&offset| offset != NO_FIELD);
    if !client_layout {
        log::warn!("{who}: the client structs are not described: no client spans");
    }
    // Both ends of client spans, or neither.
    let calls = hooks
        .iter()
        .filter(|h| is_client_hook(h))
        .all(|h| inspection.has(h));
    let clients = client_layout && calls;
    // Server spans record their goroutine id only for programs that make calls.
    probe_config.link_goroutines = u32::from(clients);
    let tracks = hooks.contains(&client::GOROUTINE_CREATED)
        && inspection.has(&client::GOROUTINE_CREATED)
        && probe_config.g_parent_goid != NO_FIELD;
    if config.track_goroutines && !tracks {
        log::warn!(
            "{who}: goroutine creations cannot be followed (Go 1.21+ with runtime.newproc.func1 needed): --track-goroutines has no effect there"
        );
    }
    probe_config.track_goroutines = u32::from(clients && tracks);
    let (sampling, sample_below) = Sampler::new(config.sample_ratio, config.parent_based).rule();
    probe_config.sampling = sampling;
    probe_config.sample_below = sample_below;
    probe_config.wake_up = u32::from(config.placement == Placement::EntryAndReturns);
    let inject = match blocker {
        Some(why) => Err(why.to_owned()),
        None => injection(inspection, &mut probe_config, clients),
    };
    let hooks: Vec<Hook> = hooks
        .iter()
        .filter(|h| clients || !is_client_hook(h))
        .filter(|h| **h != client::GOROUTINE_CREATED || probe_config.track_goroutines != 0)
        .filter(|h| **h != client::INJECT || inject.is_ok())
        .copied()
        .collect();
    let propagation = Propagation::of(&probe_config, inject);
    Plan {
        hooks,
        config: probe_config,
        propagation,
    }
}

pub fn log_attached(
    process: &Process,
    resource: &Resource,
    attached: &[AttachedProbe],
    hooks: &[Hook],
    inspection: &target::Inspection,
    propagation: &Propagation,
) {
    // Probes placed as other tracers place them (`--placement`) are slow on purpose.
    let chosen =
        |p: &&AttachedProbe| !matches!(p.hook.site, Site::FirstInstruction | Site::Returns);
    for probe in attached
        .iter()
        .filter(|p| !p.point.placement.emulated)
        .filter(chosen)
    {
        log::warn!(
            "pid={} probe on {} is on a single-stepped instruction (slow path, ~15 µs per hit in a VM)",
            process.pid,
            probe.hook.symbol
        );
    }
    for hook in hooks.iter().filter(|h| is_missing(inspection, hooks, h)) {
        // Many programs make no HTTP calls: their lack of client functions is normal.
        let level = if is_client_hook(hook) {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        log::log!(
            level,
            "pid={} {} not found: {} unavailable",
            process.pid,
            hook.symbol,
            hook.purpose
        );
    }
    let placements: Vec<String> = attached
        .iter()
        .map(|p| {
            format!(
                "{}+{:#x}({})",
                p.hook.symbol, p.point.placement.offset, p.point.placement.what
            )
        })
        .collect();
    log::info!(
        "attached pid={} exe={} go={} service={} probes=[{}] propagation=[{}]",
        process.pid,
        resource.executable_path,
        resource.runtime_version,
        resource.service_name,
        placements.join(", "),
        propagation
    );
}

/// Starts the socket side of injection: for the cgroups of `processes` (`--pid`, `--`),
/// or for the whole cgroup hierarchy (`--binary`, `--all`); says why not (once) when it
/// cannot.
fn start_injection(loader: &mut Loader, scope: &Scope, processes: &[Process]) -> Option<String> {
    let mut cgroups: Vec<std::path::PathBuf> = Vec::new();
    if *scope != Scope::Each {
        match crate::process::cgroup2_mount() {
            Some(root) => cgroups.push(root),
            None => {
                let why = "no cgroup v2 hierarchy is mounted".to_owned();
                log::warn!("traceparent injection is off: {why}");
                return Some(why);
            }
        }
    }
    for process in processes {
        match crate::process::cgroup2_dir(process.pid) {
            Some(dir) if !cgroups.contains(&dir) => cgroups.push(dir),
            Some(_) => {}
            None => {
                let why = format!("the cgroup v2 group of pid {} is unknown", process.pid);
                log::warn!("traceparent injection is off: {why}");
                return Some(why);
            }
        }
    }
    match loader.start_injection(&cgroups) {
        Ok(()) => None,
        Err(error) => {
            let why = format!("{:#}", anyhow::Error::new(error));
            log::warn!("traceparent injection is off: {why}");
            Some(why)
        }
    }
}

/// Turns `traceparent` injection on in `config` when everything it needs is in the
/// binary; else says what is missing.
fn injection(
    inspection: &target::Inspection,
    config: &mut tracer_common::config::ProbeConfig,
    clients: bool,
) -> Result<(), String> {
    if !clients {
        return Err("no client spans in this program".into());
    }
    if !inspection.has(&client::INJECT) {
        return Err(format!("{} not found", client::INJECT.symbol));
    }
    if config.header_map.kind == 0 {
        return Err("the header map layout is unknown".into());
    }
    if [config.bufio_err, config.bufio_buf, config.bufio_n].contains(&NO_FIELD) {
        return Err("the bufio.Writer layout is unknown".into());
    }
    let Some(write) = inspection.functions.get(client::BUFIO_WRITE) else {
        return Err(format!("{} not found", client::BUFIO_WRITE));
    };
    config.bufio_write = write.function;
    let conn = &mut config.conn;
    let members = [
        conn.writer_wr,
        conn.pconn_conn,
        conn.conn_fd,
        conn.fd_laddr,
        conn.fd_raddr,
        conn.addr_port,
    ];
    if members.contains(&NO_FIELD) {
        return Err("the layout of the transport's connections is unknown".into());
    }
    for (name, address) in [
        (client::PCONN_WRITE, &mut conn.pconn_write),
        (client::TCP_CLOSE, &mut conn.tcp_close),
    ] {
        let Some(function) = inspection.functions.get(name) else {
            return Err(format!("{name} not found"));
        };
        *address = function.function;
    }
    if !inspection.fixed_address {
        // The writer check compares a method's run-time address: the kernel adds the
        // process's load bias, from where the probe hit.
        let site = inspection
            .point(&client::INJECT)
            .map_or(0, |point| point.function + point.placement.offset);
        config.inject_site = site;
    }
    config.inject = 1;
    Ok(())
}

/// Whether trace context is read from a process's requests and written into its
/// outgoing ones, and why not: the `propagation=[...]` part of the `attached` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagation {
    /// `Err(why)` when incoming `traceparent`/B3 headers are not read.
    pub extract: Result<(), &'static str>,
    /// `Err(why)` when outgoing requests get no `traceparent`.
    pub inject: Result<(), String>,
}

impl Propagation {
    pub fn of(config: &tracer_common::config::ProbeConfig, inject: Result<(), String>) -> Self {
        Self {
            extract: if config.header_map.kind == 0 {
                Err("the header map layout is unknown")
            } else {
                Ok(())
            },
            inject,
        }
    }
}

impl std::fmt::Display for Propagation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = |r: Result<(), &str>| match r {
            Ok(()) => "on".to_owned(),
            Err(why) => format!("off ({why})"),
        };
        write!(
            f,
            "extract={} (w3c, b3), inject={}",
            state(self.extract),
            state(self.inject.as_ref().map(|_| ()).map_err(|why| why.as_str()))
        )
    }
}

/// The user-space pipeline: ring buffer -> decode -> span -> wall clock and resource ->
/// exporters (the kernel sampled already).
struct Pipeline {
    events: RingBuf<MapData>,
    /// Exec and exit events (`--binary`, `--all`).
    process_events: Option<RingBuf<MapData>>,
    /// The kernel's count of lost process events when last looked at.
    lost_process_events: u64,
    /// Traced processes that exited or ran another program, with when (monotonic), whose
    /// in-flight slots are not released yet.
    gone: Vec<(u32, u64)>,
    /// When slots were last released.
    released: Instant,
    /// Since when an exporter has been behind, while the reader holds spans back for it.
    holding_since: Option<Instant>,
    /// The last drain left spans in the ring buffer.
    held: bool,
    clock: Clock,
    mapping: server::Mapping,
    exporters: Exporters,
    counters: UserCounters,
}

impl Pipeline {
    /// The counts so far, with the kernel's (`kernel`, in [`COUNTER_NAMES`] order) and
    /// the requests still in flight and expired (known at exit only). Export drops add up
    /// over the exporters; with several, `spans_exported` is the fewest any delivered
    /// and each one's count is listed too.
    fn summary(&self, kernel: &[u64], in_flight: u64, expired: u64) -> Summary {
        let exporters = &self.exporters.0;
        let total = |count: fn(&crate::export::Stats) -> &std::sync::atomic::AtomicU64| {
            exporters
                .iter()
                .map(|(_, e)| count(&e.stats).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let named = COUNTER_NAMES.iter().copied().zip(kernel.iter().copied());
        let mut drops: Vec<(&'static str, u64)> = named.clone().take(NUM_DROPS as usize).collect();
        // The kernel samples (also listed as `sampled_out_in_kernel`).
        let sampled_out = kernel.get(SAMPLED_OUT as usize).copied().unwrap_or(0);
        let mut incomplete: Vec<(&'static str, u64)> = named.skip(NUM_DROPS as usize).collect();
        incomplete.push(("excluded_by_filter", self.counters.excluded));
        incomplete.push(("export_errors", total(|s| &s.send_errors)));
        if exporters.len() > 1 {
            for (kind, exporter) in exporters {
                let exported = exporter.stats.exported.load(Ordering::Relaxed);
                incomplete.push((kind.exported_counter(), exported));
            }
        }
        drops.push(("export_queue_full", total(|s| &s.queue_full)));
        drops.push(("export_failed", total(|s| &s.failed)));
        drops.push(("export_rejected", total(|s| &s.rejected)));
        drops.push(("decode_failed", self.counters.decode_errors));
        drops.push(("unknown_process", self.counters.unknown_process));
        drops.push(("filter_undecided", self.counters.undecided));
        drops.push(("inflight_expired", expired));
        drops.push(("process_exited", self.counters.process_exited));
        Summary {
            exported: exporters
                .iter()
                .map(|(_, e)| e.stats.exported.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0),
            drops,
            sampled_out,
            in_flight_at_exit: in_flight,
            incomplete,
        }
    }

    /// Each exporter's counts now, for the metrics endpoint.
    fn exporter_states(&self) -> Vec<ExporterState> {
        self.exporters
            .0
            .iter()
            .map(|(_, e)| ExporterState {
                name: e.name,
                exported: e.stats.exported.load(Ordering::Relaxed),
                send_errors: e.stats.send_errors.load(Ordering::Relaxed),
                queued: e.stats.queued.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Takes in the processes that ran a program, forgets those that ended; rescans
    /// `/proc` when the kernel lost some of these events.
    fn follow_processes(&mut self, targets: &mut Targets, loader: &mut Loader) {
        let Some(events) = &mut self.process_events else {
            return;
        };
        // Exits first, from before the last drain, which emptied the ring buffer: their
        // spans were exported.
        targets.sweep(loader);
        while let Some(record) = events.next() {
            let Some(event) = decode::read::<ProcessEvent>(&record) else {
                self.counters.decode_errors += 1;
                continue;
            };
            match event.kind {
                PROCESS_EXEC => {
                    if targets.exec(loader, event.pid) {
                        self.gone.push((event.pid, event.time_ns));
                    }
                }
                PROCESS_EXIT => {
                    if targets.exit(event.pid) {
                        self.gone.push((event.pid, event.time_ns));
                    }
                }
                _ => self.counters.decode_errors += 1,
            }
        }
        self.release_gone(loader);
        let lost = loader.counter(PROCESS_EVENTS_LOST).unwrap_or(0);
        if lost > self.lost_process_events {
            self.lost_process_events = lost;
            log::warn!("process events were lost: rescanning /proc");
            let now = Clock::monotonic_now();
            self.gone
                .extend(targets.scan(loader).into_iter().map(|pid| (pid, now)));
        }
    }

    /// Waits for the next drain: a timer, as events come without wake-ups; with other
    /// tracers' placement, until the kernel wakes the reader for an event (or the timer).
    /// A change to a watched binary, or a start held back (`wake`), ends the wait at once.
    fn wait(&self, placement: Placement, wake: [Option<std::os::fd::BorrowedFd<'_>>; 2]) {
        use std::os::fd::AsRawFd as _;
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // poll() skips a negative descriptor: with neither, it is a sleep. Spans held back
        // for an exporter would end every wait at once.
        let events = match placement {
            Placement::Cheapest => -1,
            _ if self.held => -1,
            _ => self.events.as_raw_fd(),
        };
        let [watch, gate] = wake.map(|fd| pollfd(fd.map_or(-1, |fd| fd.as_raw_fd())));
        let mut fds = [pollfd(events), watch, gate];
        // SAFETY: valid pollfds for the duration of the call; the result (ready, timed
        // out or interrupted) only decides when to drain.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                DRAIN_INTERVAL.as_millis() as libc::c_int,
            )
        };
    }

    /// Frees the in-flight slots of the traced processes that exited or ran another
    /// program, counting their spans lost (`process_exited`); at most once per
    /// [`RELEASE_INTERVAL`], since it reads every slot.
    fn release_gone(&mut self, loader: &mut Loader) {
        if self.gone.is_empty() || self.released.elapsed() < RELEASE_INTERVAL {
            return;
        }
        self.released = Instant::now();
        match loader.release_gone(&self.gone) {
            Ok(lost) => self.counters.process_exited += lost,
            // Left to the TTL; counted at exit if still there.
            Err(error) => log::warn!("cannot release the spans of exited processes: {error}"),
        }
        self.gone.clear();
    }

    /// Moves finished events from the ring buffer to the exporters, in batches of at most
    /// [`BATCH_CAPACITY`] spans; true when it emptied the ring buffer. While an exporter
    /// is [`behind`](Exporters::behind), the rest stays in the ring buffer, where a span
    /// takes a fifth of the memory it takes queued, for up to [`HOLD_LIMIT`]; the last
    /// drain takes everything.
    fn drain(&mut self, targets: &mut Targets, loader: &mut Loader, last: bool) -> bool {
        self.held = !last && hold(&self.exporters, &mut self.holding_since);
        if self.held {
            return false;
        }
        // Taken at the first span: an empty drain keeps the spare batches for later.
        let mut batch: Option<Vec<Item>> = None;
        while let Some(record) = self.events.next() {
            let event = match decode(&record) {
                Ok(event) => event,
                Err(error) => {
                    self.counters.decode_errors += 1;
                    log::debug!("undecodable event: {error}");
                    continue;
                }
            };
            let pid = match &event {
                Event::NetHttpServer(ev) => ev.head.header.pid,
                Event::NetHttpClient(ev) => ev.head.header.pid,
            };
            let Some(target) = targets.get(loader, pid) else {
                if targets.is_excluded(pid) {
                    self.counters.excluded += 1;
                    continue;
                }
                if targets.is_undecided(pid) {
                    self.counters.undecided += 1;
                    continue;
                }
                self.counters.unknown_process += 1;
                continue;
            };
            let mut span = match event {
                Event::NetHttpServer(ev) => server::span(&ev, self.mapping),
                Event::NetHttpClient(ev) => {
                    let error_type = match ev.head.err_itab {
                        0 => None,
                        itab => target.types.of_error(itab, ev.head.err_data),
                    };
                    client::span(&ev, self.mapping, error_type)
                }
            };
            span.start_ns = self.clock.to_unix(span.start_ns);
            span.end_ns = self.clock.to_unix(span.end_ns);
            let filling = batch.get_or_insert_with(|| self.exporters.batch());
            filling.push(Item {
                span,
                resource: Arc::clone(&target.resource),
            });
            // A backlog (the reader fell behind) goes out in batches of the usual size:
            // the exporters start on it, and no batch or encoding buffer grows with it.
            if filling.len() >= BATCH_CAPACITY
                && let Some(full) = batch.take()
            {
                self.exporters.offer(full);
                self.held = !last && hold(&self.exporters, &mut self.holding_since);
                if self.held {
                    return false;
                }
            }
        }
        if let Some(batch) = batch {
            self.exporters.offer(batch);
        }
        true
    }
}

/// True when a drain should stop and leave spans in the ring buffer: an exporter is
/// behind, and has been for less than [`HOLD_LIMIT`] (`since` keeps from when).
fn hold(exporters: &Exporters, since: &mut Option<Instant>) -> bool {
    if !exporters.behind() {
        *since = None;
        return false;
    }
    since.get_or_insert_with(Instant::now).elapsed() < HOLD_LIMIT
}

/// Sets the niceness of the calling thread, which every thread it starts inherits: the
/// reader and the exporters then yield to the traced programs (and, on a shared machine,
/// to their clients). A failure only costs that, so it is logged.
fn lower_priority(nice: i32) {
    // SAFETY: setpriority has no memory preconditions; `0` names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        log::warn!(
            "cannot set niceness {nice}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Sets `flag` on SIGINT or SIGTERM.
pub fn stop_on_signals(flag: &Arc<AtomicBool>) -> std::io::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(flag))?;
    }
    Ok(())
}
