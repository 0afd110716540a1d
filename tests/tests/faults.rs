//! End-to-end: the traced program is never harmed by what happens to the tracer or to
//! itself (issue 9), and what the tracer cannot export it counts.
//!
//! The tracer is killed with SIGKILL at varied moments (while attaching, under load,
//! while exporting) and attached and stopped over and over against a loaded target:
//! every request succeeds, every span is a whole request, the kernel keeps none of the
//! tracer's programs, maps or links afterwards, the target's code is its file's again
//! (probes the kernel made calls included), and a new tracer attaches cleanly. The
//! target is killed with requests in flight, restarted, and replaced by another program
//! (`exec`): the tracer follows, and counts the spans lost with the process
//! (`process_exited`). Handlers that panic or
//! never return, 10,000 concurrent slow requests and a burst of 100,000 requests leave
//! the target unharmed and the tracer's memory bounded, and every request is either a
//! span or a counted drop. These tests need root.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::process::{self, Fixture, HttpServer};
use tracer_tests::span::Span;
use tracer_tests::tracer::{ATTACH_TIMEOUT, STOP_TIMEOUT, Summary, Tracer, TracerOutput};

/// How long the kernel may take to free what a killed tracer held.
const RELEASE: Duration = Duration::from_secs(10);

/// Requests sent to the target from a thread of their own, until stopped; each one must
/// succeed.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(server: &HttpServer) -> Self {
        let addr = server.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, n, f) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failures));
        let thread = thread::spawn(move || {
            // Bounded: at most 200 requests a second, until stopped.
            while !s.load(Ordering::Relaxed) {
                let outcome = http::get(addr, "/hello");
                n.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(response) if response.status == 200 => {}
                    Ok(response) => f
                        .lock()
                        .expect("lock")
                        .push(format!("status {}", response.status)),
                    Err(error) => f.lock().expect("lock").push(error.to_string()),
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            sent,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops the load; returns how many requests were sent and the failures.
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the load thread");
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

/// Ids of the BPF programs, maps and links loaded now.
fn kernel_objects() -> HashSet<(char, u32)> {
    let mut ids = HashSet::new();
    for program in aya::programs::loaded_programs().flatten() {
        ids.insert(('p', program.id()));
    }
    for map in aya::maps::loaded_maps().flatten() {
        ids.insert(('m', map.id()));
    }
    for link in aya::programs::loaded_links().flatten() {
        ids.insert(('l', link.id()));
    }
    ids
}

/// Waits until every BPF object loaded since `baseline` is gone; fails naming them.
fn assert_released(baseline: &HashSet<(char, u32)>, what: &str) {
    let left = tracer_tests::poll_until(RELEASE, || {
        let now = kernel_objects();
        let extra: Vec<_> = now.difference(baseline).copied().collect();
        extra.is_empty().then_some(())
    });
    if left.is_none() {
        let now = kernel_objects();
        let extra: Vec<_> = now.difference(baseline).collect();
        panic!("{what}: the kernel still holds the tracer's BPF objects {extra:?}");
    }
}

/// A small deterministic sequence of delays (a linear congruential generator): the
/// kill moments vary from run to run of the loop, and from one test run to the next
/// they are the same.
fn delays(count: usize) -> Vec<Duration> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // 0 to 1.5 s: before the probes are live, right after, and under load.
            Duration::from_millis((state >> 33) % 1500)
        })
        .collect()
}

#[test]
fn sigkill_at_any_moment_leaves_the_target_and_the_kernel_clean() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let baseline = kernel_objects();
    let load = Load::start(&server);
    let pid = server.pid().to_string();
    let mut attached_before_kill = 0;
    for (round, delay) in delays(30).into_iter().enumerate() {
        let tracer =
            Tracer::spawn(["--pid", pid.as_str(), "--format", "json"]).expect("start the tracer");
        let started = Instant::now();
        thread::sleep(delay);
        if tracer.stderr().contains("attached") {
            attached_before_kill += 1;
        }
        let output = tracer
            .signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
            .expect("the tracer dies");
        assert_eq!(
            output.code(),
            None,
            "round {round}: killed after {:?}",
            started.elapsed()
        );
    }
    let (sent, failures) = load.finish();
    assert!(sent > 100, "the target was under load ({sent} requests)");
    assert!(
        failures.is_empty(),
        "every request succeeds while tracers are killed: {} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        (10..=28).contains(&attached_before_kill),
        "kills came both before and after attaching ({attached_before_kill} of 30 after)"
    );
    assert_released(&baseline, "after 30 SIGKILLs");

    // A new tracer attaches cleanly and traces.
    let tracer = Tracer::attach(server.pid(), &[]).expect("a new tracer attaches");
    for _ in 0..10 {
        let response = http::get(server.addr(), "/hello").expect("GET /hello");
        assert_eq!(response.status, 200);
    }
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0));
    let spans = output.spans().expect("spans");
    assert_eq!(spans.len(), 10, "the new tracer traces every request");
    assert_released(&baseline, "after the last tracer stopped");
}

#[test]
fn attach_and_detach_100_times_under_load_fails_no_request() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let baseline = kernel_objects();
    let load = Load::start(&server);
    let mut spans = 0;
    for round in 0..100 {
        let tracer = Tracer::attach(server.pid(), &[])
            .unwrap_or_else(|e| panic!("round {round}: attach: {e}"));
        let output = tracer
            .stop()
            .unwrap_or_else(|e| panic!("round {round}: stop: {e}"));
        assert_eq!(output.code(), Some(0), "round {round}\n{}", output.stderr);
        // Each one a whole request: none ended as hijacked by the connection's close
        // because its own end was attached after its start or detached before it.
        spans += ok_spans(&output, "/hello", &[server.pid()]).len();
    }
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "every request succeeds across 100 attach/detach cycles: {} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        spans > 0,
        "requests during the attached windows were traced"
    );
    assert_released(&baseline, "after 100 attach/detach cycles");
}

// The target's own faults: killed, restarted, replaced, panicking, stuck, overloaded.

/// How long the tracer may take to notice a process exit or exec and publish its counts
/// (`--metrics-addr` gets a new snapshot every second).
const NOTICE: Duration = Duration::from_secs(10);

/// A slow request: in flight until the target is killed or replaced.
const SLOW: &str = "/sleep?ms=30000";

/// Requests sent each on a connection of its own (`Connection: close`), their responses
/// read later: requests in flight.
struct Pending(Vec<TcpStream>);

impl Pending {
    /// Sends `GET target` `count` times, each on a new connection, and waits (up to
    /// `timeout`) until the target has read every one of them (see [`wait_read`]).
    fn send(server: &HttpServer, target: &str, count: usize, timeout: Duration) -> Self {
        let pending = Self::send_only(server, target, count);
        let ports: HashSet<u16> = pending
            .0
            .iter()
            .map(|s| s.local_addr().expect("local address").port())
            .collect();
        wait_read(server.addr().port(), &ports, timeout);
        pending
    }

    /// Sends `GET target` `count` times, each on a new connection.
    fn send_only(server: &HttpServer, target: &str, count: usize) -> Self {
        let addr = server.addr();
        let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let streams: Vec<TcpStream> = (0..count)
            .map(|i| {
                let mut stream = TcpStream::connect_timeout(&addr, http::CONNECT_TIMEOUT)
                    .unwrap_or_else(|e| panic!("connection {i} of {count} to {addr}: {e}"));
                stream
                    .write_all(request.as_bytes())
                    .unwrap_or_else(|e| panic!("request {i} of {count}: {e}"));
                stream
            })
            .collect();
        Self(streams)
    }

    /// Reads every response to its end, waiting up to `timeout` for each: the responses,
    /// or why each could not be read.
    fn responses(self, timeout: Duration) -> Vec<Result<String, String>> {
        self.0
            .into_iter()
            .map(|mut stream| {
                stream
                    .set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                let mut text = String::new();
                match stream.read_to_string(&mut text) {
                    Ok(_) if text.is_empty() => Err("closed with no response".to_owned()),
                    Ok(_) => Ok(text),
                    Err(e) => Err(e.to_string()),
                }
            })
            .collect()
    }

    /// Whether no response came yet on any connection (their handlers are still running).
    fn all_waiting(&self) -> bool {
        self.0.iter().all(|stream| {
            let mut byte = [0_u8; 1];
            stream.set_nonblocking(true).expect("nonblocking");
            let waiting = matches!(
                (&*stream).read(&mut byte),
                Err(e) if e.kind() == ErrorKind::WouldBlock
            );
            stream.set_nonblocking(false).expect("blocking");
            waiting
        })
    }
}

/// Waits until the server listening on loopback port `server_port` has read everything
/// the connections from `client_ports` sent (its ends of them are established with
/// nothing left to read, per `/proc/net/tcp`): their handlers are then running, since
/// net/http calls the handler as soon as it has read a request.
fn wait_read(server_port: u16, client_ports: &HashSet<u16>, timeout: Duration) {
    let port = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let mut read = 0;
    let done = tracer_tests::poll_until(timeout, || {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        read = table
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local, remote, state (01: established), tx_queue:rx_queue
                fields.len() > 4
                    && port(fields[1]) == Some(server_port)
                    && port(fields[2]).is_some_and(|p| client_ports.contains(&p))
                    && fields[3] == "01"
                    && fields[4].ends_with(":00000000")
            })
            .count();
        (read == client_ports.len()).then_some(())
    });
    assert!(
        done.is_some(),
        "the target read {read} of {} requests within {timeout:?}",
        client_ports.len()
    );
}

/// The address `--metrics-addr 127.0.0.1:0` bound, from the tracer's log.
fn metrics_addr(tracer: &Tracer) -> SocketAddr {
    let line = tracer_tests::poll_until(ATTACH_TIMEOUT, || {
        let stderr = tracer.stderr();
        let line = stderr.lines().find(|l| l.contains("metrics at http://"))?;
        Some(line.to_owned())
    })
    .unwrap_or_else(|| panic!("no `metrics at` line\n{}", tracer.stderr()));
    let rest = &line[line.find("http://").expect("http://") + "http://".len()..];
    rest[..rest.find('/').expect("a path")]
        .parse()
        .unwrap_or_else(|e| panic!("the address in {line:?}: {e}"))
}

/// The value of the metric series `series` (e.g. `tracer_traced_processes`) in a scrape.
fn metric(scrape: &str, series: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes `addr` until every series of `wanted` has its value; fails with the last
/// scrape after [`NOTICE`].
fn wait_metrics(addr: SocketAddr, wanted: &[(&str, u64)], what: &str) {
    let mut last = String::new();
    let done = tracer_tests::poll_until(NOTICE, || {
        last = http::get(addr, "/metrics").ok()?.text();
        wanted
            .iter()
            .all(|&(series, value)| metric(&last, series) == Some(value))
            .then_some(())
    });
    assert!(
        done.is_some(),
        "{what}: the metrics did not reach {wanted:?} within {NOTICE:?}:\n{last}"
    );
}

const TRACED: &str = "tracer_traced_processes";
const PROCESS_EXITED: &str = "tracer_spans_dropped_total{reason=\"process_exited\"}";

/// Sends `count` requests to `GET target` (new connections), each of which must succeed.
fn send_ok(server: &HttpServer, target: &str, count: usize) {
    for i in 0..count {
        let response = http::get(server.addr(), target)
            .unwrap_or_else(|e| panic!("GET {target} ({i} of {count}): {e}"));
        assert_eq!(response.status, 200, "GET {target}: {}", response.text());
    }
}

/// The spans of `output`, each checked to be a server span of `GET path` answered 200 by
/// a process of `pids`.
fn ok_spans(output: &TracerOutput, path: &str, pids: &[u32]) -> Vec<Span> {
    let spans = output.spans().expect("spans");
    for span in &spans {
        let pid = span
            .resource("process.pid")
            .and_then(serde_json::Value::as_u64);
        assert!(
            span.kind() == Some("server")
                && span.attr_str("url.path") == Some(path)
                && span.attr_u64("http.response.status_code") == Some(200)
                && pid.is_some_and(|pid| pids.iter().any(|&p| u64::from(p) == pid)),
            "a server span of GET {path} answered 200 by one of {pids:?}: {span}"
        );
    }
    spans
}

/// The summary, which must exist.
fn summary(output: &TracerOutput) -> Summary {
    output
        .summary()
        .unwrap_or_else(|| panic!("no summary line\n{output}"))
}

/// Fails unless the summary says `key=value`.
fn expect_count(summary: &Summary, key: &str, value: u64) {
    assert_eq!(summary.get(key), Some(value), "{key}: {}", summary.line);
}

/// With `--binary` or `--all` (`mode`): the target killed with requests in flight, a new
/// process of the same binary, and that one replacing itself with `/bin/sleep`.
fn killed_restarted_and_replaced(mode: &[&str]) {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (toolchain, exe) = process::build_http_server(go::DEFAULT).expect("build the fixture");
    let exe_arg = exe.to_str().expect("a UTF-8 path");
    let mut args: Vec<&str> = mode.to_vec();
    args.push(exe_arg);
    args.extend(["--format", "json", "--metrics-addr", "127.0.0.1:0"]);
    let tracer = Tracer::spawn(&args).expect("start the tracer");
    let metrics = metrics_addr(&tracer);

    // First process: traced, then killed with 20 requests in flight.
    let mut first = HttpServer::start(go::DEFAULT).expect("start the first process");
    tracer
        .wait_attached(first.pid(), ATTACH_TIMEOUT)
        .expect("the first process is traced");
    send_ok(&first, "/hello", 1);
    let in_flight = Pending::send(&first, SLOW, 20, Duration::from_secs(10));
    first
        .fixture_mut()
        .kill()
        .expect("SIGKILL the first process");
    let answered = in_flight.responses(Duration::from_secs(5));
    assert!(
        answered.iter().all(Result::is_err),
        "the target died before answering: {answered:?}"
    );
    wait_metrics(
        metrics,
        &[(TRACED, 0), (PROCESS_EXITED, 20)],
        "the first process killed",
    );
    assert!(
        tracer
            .stderr()
            .contains(&format!("pid={} exited", first.pid())),
        "the tracer says it forgot the process\n{}",
        tracer.stderr()
    );

    // A new process of the same binary: traced from its start.
    let fixture = Fixture::spawn(&exe, &["-exec", "/bin/sleep 60"]).expect("start again");
    let second = HttpServer::from_fixture(fixture, toolchain).expect("the second process");
    tracer
        .wait_attached(second.pid(), ATTACH_TIMEOUT)
        .expect("the second process is traced");
    send_ok(&second, "/hello", 10);
    wait_metrics(metrics, &[(TRACED, 1)], "the second process started");

    // It replaces itself with another program while 5 requests and GET /exec are in flight.
    let in_flight = Pending::send(&second, SLOW, 5, Duration::from_secs(10));
    // Not waited for: once read, the sockets close with the exec.
    let exec = Pending::send_only(&second, "/exec", 1);
    wait_ran_sleep(&second);
    drop((in_flight, exec));
    wait_metrics(
        metrics,
        &[(TRACED, 0), (PROCESS_EXITED, 26)],
        "the second process replaced",
    );

    // The tracer kept running through all this.
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{output}");
    let spans = ok_spans(&output, "/hello", &[first.pid(), second.pid()]);
    assert_eq!(spans.len(), 11, "one span per answered request\n{output}");
    let summary = summary(&output);
    expect_count(&summary, "process_exited", 26);
    expect_count(&summary, "dropped", 26);
    expect_count(&summary, "in_flight_at_exit", 0);
}

/// Waits (up to 10 s) until `server`'s process runs `/bin/sleep` (its `GET /exec`).
fn wait_ran_sleep(server: &HttpServer) {
    let sleeping = tracer_tests::poll_until(Duration::from_secs(10), || {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).ok()?;
        cmdline.starts_with(b"/bin/sleep\0").then_some(())
    });
    assert!(sleeping.is_some(), "the second process ran /bin/sleep");
}

#[test]
fn binary_mode_follows_a_target_killed_restarted_and_replaced_counting_lost_spans() {
    killed_restarted_and_replaced(&["--binary"]);
}

#[test]
fn all_mode_follows_a_target_killed_restarted_and_replaced_counting_lost_spans() {
    killed_restarted_and_replaced(&["--all", "--include"]);
}

/// Processes whose exec and exit events (8,000) overflow the kernel's process event
/// ring (128 KiB of 24-byte records).
const FLOOD: usize = 4_000;

/// Runs `/bin/true` `count` times, one after another: an exec and an exit event each.
/// Spawned as std does (`posix_spawn`), whose cost does not grow with the test process's
/// memory as a `fork`'s does (it copies the page tables: seconds for thousands after the
/// suite's large tests).
fn flood_processes(count: usize) {
    for _ in 0..count {
        let status = Command::new("/bin/true").status().expect("run /bin/true");
        assert!(status.success(), "/bin/true: {status}");
    }
}

/// The kernel drops process events when the tracer reads none for long: here the tracer
/// is stopped (SIGSTOP) while thousands of processes come and go, and then one traced
/// process is killed and another runs another program. The tracer's rescan of /proc
/// finds both, forgets them and counts their spans in flight lost (`process_exited`).
#[test]
fn targets_gone_while_process_events_were_lost_count_their_spans() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (toolchain, exe) = process::build_http_server(go::DEFAULT).expect("build the fixture");
    let exe_arg = exe.to_str().expect("a UTF-8 path");
    let tracer = Tracer::spawn([
        "--binary",
        exe_arg,
        "--format",
        "json",
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .expect("start the tracer");
    let metrics = metrics_addr(&tracer);
    let mut killed = HttpServer::start(go::DEFAULT).expect("start the process to kill");
    let fixture = Fixture::spawn(&exe, &["-exec", "/bin/sleep 60"]).expect("start again");
    let replaced = HttpServer::from_fixture(fixture, toolchain).expect("the other process");
    for server in [&killed, &replaced] {
        tracer
            .wait_attached(server.pid(), ATTACH_TIMEOUT)
            .expect("the process is traced");
        send_ok(server, "/hello", 2);
    }
    wait_metrics(metrics, &[(TRACED, 2)], "both processes traced");
    // `/block`, not a slow request: forking thousands of processes can take longer than
    // any sleep on a slow machine, and a request answered is a span, not a loss.
    let in_flight = [
        Pending::send(&killed, "/block", 10, Duration::from_secs(10)),
        Pending::send(&replaced, "/block", 5, Duration::from_secs(10)),
    ];

    process::send_signal(tracer.pid(), libc::SIGSTOP).expect("stop the tracer");
    let flood = Instant::now();
    flood_processes(FLOOD);
    eprintln!(
        "{FLOOD} processes started and reaped in {:?}",
        flood.elapsed()
    );
    killed
        .fixture_mut()
        .kill()
        .expect("SIGKILL the first process");
    let exec = Pending::send_only(&replaced, "/exec", 1);
    wait_ran_sleep(&replaced);
    process::send_signal(tracer.pid(), libc::SIGCONT).expect("resume the tracer");

    wait_lines(&tracer, "process events were lost", 1, NOTICE);
    // 10 killed, 5 + GET /exec replaced.
    wait_metrics(
        metrics,
        &[(TRACED, 0), (PROCESS_EXITED, 16)],
        "both processes gone while their events were lost",
    );
    drop((in_flight, exec));
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{output}");
    let spans = ok_spans(&output, "/hello", &[killed.pid(), replaced.pid()]);
    assert_eq!(spans.len(), 4, "one span per answered request\n{output}");
    let summary = summary(&output);
    assert!(
        summary
            .get("process_events_lost")
            .is_some_and(|lost| lost > 0),
        "{}",
        summary.line
    );
    expect_count(&summary, "process_exited", 16);
    expect_count(&summary, "dropped", 16);
    expect_count(&summary, "in_flight_at_exit", 0);
}

#[test]
fn pid_mode_exits_when_its_target_is_killed_mid_request_counting_lost_spans() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let mut server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    send_ok(&server, "/hello", 3);
    let in_flight = Pending::send(&server, SLOW, 20, Duration::from_secs(10));
    server.fixture_mut().kill().expect("SIGKILL the target");
    drop(in_flight);
    // CONTRACT: with --pid, the tracer exits 0 once every target has exited.
    let output = tracer
        .wait_exit(STOP_TIMEOUT)
        .expect("the tracer exits on its own");
    assert_eq!(output.code(), Some(0), "{output}");
    let spans = ok_spans(&output, "/hello", &[server.pid()]);
    assert_eq!(spans.len(), 3, "{output}");
    let summary = summary(&output);
    expect_count(&summary, "process_exited", 20);
    expect_count(&summary, "dropped", 20);
    expect_count(&summary, "in_flight_at_exit", 0);
}

// A traced binary changed on disk (`--binary`): rewritten in place, or replaced by a
// rename.

/// A directory of its own under the system's temporary directory for the test `name`,
/// empty; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Waits until the tracer's stderr has `count` lines containing `needle`; returns the
/// last of them.
fn wait_lines(tracer: &Tracer, needle: &str, count: usize, timeout: Duration) -> String {
    tracer_tests::poll_until(timeout, || {
        let stderr = tracer.stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
        (lines.len() >= count).then(|| lines[count - 1].to_owned())
    })
    .unwrap_or_else(|| {
        panic!(
            "no {count} lines with {needle:?} within {timeout:?}\n--- tracer stderr ---\n{}",
            tracer.stderr()
        )
    })
}

/// The line the tracer logs when the probes of `path` are live, built by Go `go`.
fn probes_live(path: &Path, go: &str) -> String {
    format!("probes live in {} go={go} ", path.display())
}

/// `exe` (built by `go`) installed as `app` in a new directory named after `name`, and a
/// tracer of `--binary` that path, its probes live.
fn trace_installed(name: &str, exe: &Path, go: &go::Toolchain) -> (TempDir, PathBuf, Tracer) {
    let dir = TempDir::new(name);
    let path = dir.0.join("app");
    fs::copy(exe, &path).expect("install the old program");
    let path_arg = path.to_str().expect("a UTF-8 path");
    let tracer = Tracer::spawn(["--binary", path_arg, "--format", "json"]).expect("start");
    wait_lines(
        &tracer,
        &probes_live(&path, go.runtime_version()),
        1,
        ATTACH_TIMEOUT,
    );
    (dir, path, tracer)
}

/// The addresses of `symbols` in `exe`, by `go tool nm` of `toolchain`.
fn symbol_addresses(toolchain: &go::Toolchain, exe: &Path, symbols: &[&str]) -> Vec<u64> {
    let output = toolchain
        .command()
        .args(["tool", "nm"])
        .arg(exe)
        .output()
        .expect("run go tool nm");
    assert!(output.status.success(), "go tool nm {}", exe.display());
    let table = String::from_utf8_lossy(&output.stdout);
    symbols
        .iter()
        .map(|symbol| {
            table
                .lines()
                .find_map(|line| {
                    let mut fields = line.split_whitespace();
                    let address = u64::from_str_radix(fields.next()?, 16).ok()?;
                    (fields.next()? == "T" && fields.next()? == *symbol).then_some(address)
                })
                .unwrap_or_else(|| panic!("{symbol} in {}", exe.display()))
        })
        .collect()
}

/// Rewrites the file at `path` in place with `bytes` (truncated and written, like `cp`
/// over an existing file): the same inode, checked.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    let inode = fs::metadata(path).expect("stat").ino();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for writing: {e}", path.display()));
    file.write_all(bytes).expect("write");
    drop(file);
    assert_eq!(
        fs::metadata(path).expect("stat").ino(),
        inode,
        "the same inode"
    );
}

/// Starts the `net_http_server` fixture at `path` (built by `toolchain`) and waits until
/// the tracer says it is attached to it with the probes of that build.
fn start_traced(tracer: &Tracer, path: &Path, toolchain: go::Toolchain) -> HttpServer {
    let runtime = toolchain.runtime_version().to_owned();
    let mut fixture = Fixture::spawn(path, &[]).expect("start the program");
    if let Err(error) = fixture.wait_for_stdout_line("listening on ", process::STARTUP_TIMEOUT) {
        let status = fixture.kill().expect("reap the program");
        panic!("the program ({runtime}) did not start: {status}\n{error}");
    }
    let server = HttpServer::from_fixture(fixture, toolchain).expect("the program serves");
    let line = tracer
        .wait_attached(server.pid(), ATTACH_TIMEOUT)
        .expect("the program is traced");
    assert!(
        line.contains(&format!(" go={runtime} ")),
        "attached with the probes of {runtime}: {line}"
    );
    server
}

/// Ends `server` with SIGTERM and checks that it was running unharmed until then: it
/// dies of that signal (not SIGTRAP, SIGSEGV, SIGILL, SIGBUS), having written nothing to
/// stderr (where the Go runtime reports a fault).
fn terminate_unharmed(server: &mut HttpServer) {
    let pid = server.pid();
    process::send_signal(pid, libc::SIGTERM).expect("SIGTERM the program");
    let ended = tracer_tests::poll_until(Duration::from_secs(10), || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat[stat.rfind(')')? + 2..].chars().next()?;
        (state == 'Z').then_some(())
    });
    assert!(ended.is_some(), "pid {pid} ends on SIGTERM");
    let status = server.fixture_mut().kill().expect("reap the program");
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "the program ran until stopped: {status}\n--- its stderr ---\n{}",
        server.fixture().stderr()
    );
    assert_eq!(
        server.fixture().stderr(),
        "",
        "the program reported no fault"
    );
}

/// Checks that `spans` has exactly `count` spans of the process `server` (built by Go
/// `runtime`, at `path`), each a server span of `GET /hello` answered 200.
fn expect_hello_spans(spans: &[Span], server: &HttpServer, path: &Path, count: usize) {
    let runtime = server.toolchain().runtime_version();
    let pid = u64::from(server.pid());
    let own: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            s.resource("process.pid")
                .and_then(serde_json::Value::as_u64)
                == Some(pid)
        })
        .collect();
    assert_eq!(
        own.len(),
        count,
        "one span per request of pid {pid} ({runtime}): {}",
        tracer_tests::span::dump(&own)
    );
    for span in own {
        assert!(
            span.kind() == Some("server")
                && span.name().is_some_and(|n| n.starts_with("GET"))
                && span.attr_str("http.request.method") == Some("GET")
                && span.attr_str("url.path") == Some("/hello")
                && span.attr_u64("http.response.status_code") == Some(200)
                && span.attr_u64("server.port") == Some(u64::from(server.addr().port()))
                && span.resource_str("process.runtime.version") == Some(runtime)
                && span.resource_str("process.executable.path") == path.to_str(),
            "a server span of GET /hello answered 200 by pid {pid} ({runtime}): {span}"
        );
    }
}

/// A `--binary` tracer whose path's old build (Go 1.22) ran, served 3 traced requests and
/// stopped, and the bytes of a build of another release (Go 1.25) whose probed functions
/// are elsewhere, to write over it.
struct Rewrite {
    new_go: go::Toolchain,
    new_bytes: Vec<u8>,
    path: PathBuf,
    tracer: Tracer,
    old: HttpServer,
    _dir: TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// Requests the new build of a [`Rewrite`] serves once its probes are live.
const REWRITE_REQUESTS: usize = 20;

fn old_build_traced_and_stopped(name: &str) -> Rewrite {
    let serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (old_go, old_exe) = process::build_http_server("1.22.10").expect("build the old one");
    let (new_go, new_exe) = process::build_http_server("1.25.5").expect("build the new one");
    let probed = [
        "net/http.serverHandler.ServeHTTP",
        "net/http.(*response).finishRequest",
    ];
    let (old_at, new_at) = (
        symbol_addresses(&old_go, &old_exe, &probed),
        symbol_addresses(&new_go, &new_exe, &probed),
    );
    for (i, symbol) in probed.iter().enumerate() {
        assert_ne!(old_at[i], new_at[i], "{symbol} moved between the builds");
    }
    let new_bytes = fs::read(&new_exe).expect("read the new program");
    let (dir, path, tracer) = trace_installed(name, &old_exe, &old_go);
    let mut old = start_traced(&tracer, &path, old_go);
    send_ok(&old, "/hello", 3);
    old.fixture_mut().kill().expect("stop the old program");
    Rewrite {
        new_go,
        new_bytes,
        path,
        tracer,
        old,
        _dir: dir,
        _serial: serial,
    }
}

impl Rewrite {
    /// Writes the new build over the old one in place and waits until the tracer says
    /// the old probes are going; returns that line and how long after the first write.
    fn write_new(&self) -> (String, Duration) {
        let writing = Instant::now();
        rewrite_in_place(&self.path, &self.new_bytes);
        let removed = format!("{} changed on disk: probes removed", self.path.display());
        wait_lines(&self.tracer, &removed, 1, NOTICE);
        (removed, writing.elapsed())
    }

    /// Sends [`REWRITE_REQUESTS`] to the new build `new`, ends it (checked unharmed), stops
    /// the tracer and checks its spans: one per request of either build, none dropped.
    fn finish(self, mut new: HttpServer) -> TracerOutput {
        send_ok(&new, "/hello", REWRITE_REQUESTS);
        terminate_unharmed(&mut new);
        let output = self.tracer.stop().expect("stop the tracer");
        assert_eq!(output.code(), Some(0), "{output}");
        let spans = output.spans().expect("spans");
        expect_hello_spans(&spans, &self.old, &self.path, 3);
        expect_hello_spans(&spans, &new, &self.path, REWRITE_REQUESTS);
        assert_eq!(spans.len(), 3 + REWRITE_REQUESTS, "{output}");
        expect_count(&summary(&output), "dropped", 0);
        output
    }
}

/// `--binary PATH`, the file at PATH rewritten in place (same inode, as `cp` over it
/// does) between two runs of the program, by a build of another Go release whose
/// functions are elsewhere: the kernel would put the old build's breakpoints, with the
/// old build's instructions, into the new one. The tracer removes the probes as soon as
/// the write begins, attaches to the new content once the writer is done, and the new
/// build runs unharmed and traced, every request a span.
#[test]
fn binary_rewritten_in_place_loses_its_probes_at_once_and_its_new_build_is_traced_unharmed() {
    let rewrite = old_build_traced_and_stopped("in-place");
    let (path, tracer) = (&rewrite.path, &rewrite.tracer);

    // The new build is written over it; the probes go at the first write.
    let (removed, noticed) = rewrite.write_new();
    wait_lines(
        tracer,
        &probes_live(path, rewrite.new_go.runtime_version()),
        1,
        ATTACH_TIMEOUT,
    );
    eprintln!("probes removed {noticed:?} after the write began");
    assert!(noticed < Duration::from_secs(2), "noticed in {noticed:?}");

    // The new build: unharmed, and every request a span of it.
    let new = start_traced(tracer, path, rewrite.new_go.clone());
    let output = rewrite.finish(new);
    assert_eq!(output.stderr.matches(&removed).count(), 1, "{output}");
}

/// `--binary PATH` rewritten in place by a build of another Go release, which is run at
/// once, while the kernel is still removing the old build's probes (a grace period each,
/// about 0.1 s): without a wait the new build would meet breakpoints at the old offsets,
/// with the old build's instructions. Its start is held (fanotify) until the last old
/// probe is gone; it then runs unharmed, and every request is a span once its own probes
/// are live.
#[test]
fn binary_rewritten_in_place_and_run_at_once_starts_after_its_old_probes_are_gone() {
    let rewrite = old_build_traced_and_stopped("run-at-once");
    let (path, tracer) = (&rewrite.path, &rewrite.tracer);

    // Written over and started as soon as the tracer has seen the write (a writer that
    // is done before it wakes leaves nothing to hold: a test machine's load must not
    // decide the test), while the old probes are still being removed: the start goes on
    // once they are gone.
    let (_, noticed) = rewrite.write_new();
    // Taken in before any request (the tracer follows processes every 20 ms drain: a
    // process gone before that would leave its spans to no process).
    let new = start_traced(tracer, path, rewrite.new_go.clone());
    let held = format!("{}: pid {} held ", path.display(), new.pid());
    let held = wait_lines(tracer, &held, 1, NOTICE);
    eprintln!("write noticed in {noticed:?}: {held}");
    rewrite.finish(new);
}

/// `--binary PATH`, a new build renamed over PATH (a deploy: a new inode at the path):
/// its probes are live at once, before any process runs it, the old file's are detached,
/// and the new file is watched in turn (rewriting it in place is noticed).
#[test]
fn binary_replaced_by_rename_is_attached_at_once_and_watched() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let (old_go, old_exe) = process::build_http_server("1.23.9").expect("build the old one");
    let (new_go, new_exe) = process::build_http_server(go::DEFAULT).expect("build the new one");
    let (dir, path, tracer) = trace_installed("rename", &old_exe, &old_go);

    let staged = dir.0.join("app.new");
    fs::copy(&new_exe, &staged).expect("stage the new program");
    let old_inode = fs::metadata(&path).expect("stat").ino();
    fs::rename(&staged, &path).expect("rename it over the old one");
    assert_ne!(fs::metadata(&path).expect("stat").ino(), old_inode);
    let live = probes_live(&path, new_go.runtime_version());
    wait_lines(&tracer, &live, 1, NOTICE);
    let released = format!("{}: no process runs it any more: detached", path.display());
    wait_lines(&tracer, &released, 1, NOTICE);

    // Watched: rewritten in place (the same bytes), it loses its probes and gets them
    // again.
    rewrite_in_place(&path, &fs::read(&new_exe).expect("read the new program"));
    let removed = format!("{} changed on disk: probes removed", path.display());
    wait_lines(&tracer, &removed, 1, NOTICE);
    wait_lines(&tracer, &live, 2, ATTACH_TIMEOUT);

    let mut new = start_traced(&tracer, &path, new_go);
    send_ok(&new, "/hello", 5);
    terminate_unharmed(&mut new);
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{output}");
    let spans = output.spans().expect("spans");
    expect_hello_spans(&spans, &new, &path, 5);
    assert_eq!(spans.len(), 5, "{output}");
    expect_count(&summary(&output), "dropped", 0);
}

/// The 5-byte nop the kernel may turn a probe on into a call.
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// Where the running process `pid`'s code differs from its executable file, in its
/// executable mappings of the file, as `(address, in the file, in memory)`: a call written
/// over a 5-byte nop as one change of 5 bytes (some bytes of its target's offset may equal
/// the nop's), any other run of differing bytes as one.
fn code_changes(pid: u32) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let exe = fs::read(format!("/proc/{pid}/exe")).expect("read the executable");
    let inode = fs::metadata(format!("/proc/{pid}/exe"))
        .expect("stat the executable")
        .ino();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    let memory = fs::File::open(format!("/proc/{pid}/mem")).expect("open mem");
    let mut changes = Vec::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [range, perms, offset, _, map_inode, ..] = fields[..] else {
            continue;
        };
        if !perms.contains('x') || map_inode.parse::<u64>().ok() != Some(inode) {
            continue;
        }
        let (start, end) = range.split_once('-').expect("a range");
        let start = u64::from_str_radix(start, 16).expect("start");
        let end = u64::from_str_radix(end, 16).expect("end");
        let offset = usize::from_str_radix(offset, 16).expect("offset");
        let mut code = vec![0; (end - start) as usize];
        let read = std::os::unix::fs::FileExt::read_at(&memory, &mut code, start)
            .expect("read the process's code");
        code.truncate(read);
        let file = &exe[offset.min(exe.len())..(offset + code.len()).min(exe.len())];
        let mut i = 0;
        while i < file.len() {
            if file[i] == code[i] {
                i += 1;
                continue;
            }
            let first = i;
            if file[i..].starts_with(&NOP5) && code[i] == 0xe8 {
                i += NOP5.len();
            } else {
                while i < file.len() && file[i] != code[i] {
                    i += 1;
                }
            }
            changes.push((
                start + first as u64,
                file[first..i].to_vec(),
                code[first..i].to_vec(),
            ));
        }
    }
    changes
}

/// Whether the kernel turns uprobes on 5-byte nops into calls (Linux 6.18+, x86-64).
fn kernel_calls_nop_probes() -> bool {
    fs::read_to_string("/proc/kallsyms")
        .expect("read /proc/kallsyms")
        .lines()
        .any(|line| line.ends_with(" arch_uprobe_optimize"))
}

#[test]
fn probes_the_kernel_turns_into_calls_are_undone_when_the_tracer_stops_or_is_killed() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    // Go 1.24's finishRequest has a 5-byte nop every call passes once (see
    // `target::placement::once_point`; 1.25 and 1.26 have none): the server span's end.
    let server = HttpServer::start("1.24.11").expect("start the fixture");
    assert_eq!(
        code_changes(server.pid()),
        [],
        "untraced code is the file's"
    );
    let calls = kernel_calls_nop_probes();
    let load = Load::start(&server);
    for round in 0..2 {
        let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
        // Every probe has been hit (the span's end at least once per request).
        send_ok(&server, "/hello", 20);
        let changes = code_changes(server.pid());
        let called: Vec<_> = changes
            .iter()
            .filter(|(_, file, memory)| file[..] == NOP5 && memory[0] == 0xe8)
            .collect();
        let traps = changes
            .iter()
            .filter(|(_, _, memory)| memory == &[0xcc])
            .count();
        assert!(
            traps >= 1,
            "round {round}: breakpoints in the code: {changes:x?}"
        );
        if calls {
            assert!(
                tracer.stderr().contains("finishRequest+0x3b(5-byte nop"),
                "{}",
                tracer.stderr()
            );
            assert_eq!(
                called.len(),
                1,
                "round {round}: a nop made a call: {changes:x?}"
            );
            let maps = fs::read_to_string(format!("/proc/{}/maps", server.pid())).expect("maps");
            assert!(maps.contains("[uprobes-trampoline]"), "{maps}");
        } else {
            assert!(called.is_empty(), "round {round}: {changes:x?}");
        }
        assert_eq!(
            changes.len(),
            traps + called.len(),
            "round {round}: nothing else changed: {changes:x?}"
        );
        if round == 0 {
            let output = tracer.stop().expect("stop the tracer");
            assert_eq!(output.code(), Some(0), "{output}");
            let spans = ok_spans(&output, "/hello", &[server.pid()]);
            assert!(spans.len() >= 20, "the requests were traced: {output}");
        } else {
            let output = tracer
                .signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
                .expect("the tracer dies");
            assert_eq!(output.code(), None);
        }
        let left = tracer_tests::poll_until(RELEASE, || {
            code_changes(server.pid()).is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "round {round}: the code is the file's again: {:x?}",
            code_changes(server.pid())
        );
        send_ok(&server, "/hello", 5);
    }
    let (sent, failures) = load.finish();
    assert!(sent > 10, "the target was under load ({sent} requests)");
    assert!(failures.is_empty(), "every request succeeds: {failures:?}");
}

#[test]
fn panicking_handlers_end_their_spans_as_panicked_and_harm_nothing() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    for round in 0..100 {
        let result = http::get(server.addr(), "/panic");
        assert!(
            result.is_err(),
            "round {round}: net/http recovers the panic and closes the connection without \
             a response: {result:?}"
        );
        send_ok(&server, "/hello", 1);
    }
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{output}");
    send_ok(&server, "/hello", 1);
    let spans = output.spans().expect("spans");
    let (panicked, others): (Vec<&Span>, Vec<&Span>) = spans
        .iter()
        .partition(|span| span.attr_str("url.path") == Some("/panic"));
    assert_eq!(panicked.len(), 100, "{output}");
    for span in &panicked {
        assert_eq!(span.status_code(), Some("error"), "{span}");
        assert_eq!(span.attr_str("error.type"), Some("panic"), "{span}");
        assert_eq!(span.attr_str("http.request.method"), Some("GET"), "{span}");
    }
    assert_eq!(others.len(), 100, "{output}");
    for span in &others {
        assert_eq!(span.attr_str("url.path"), Some("/hello"), "{span}");
        assert_eq!(
            span.attr_u64("http.response.status_code"),
            Some(200),
            "{span}"
        );
        assert_eq!(span.status_code(), Some("unset"), "{span}");
    }
    let summary = summary(&output);
    expect_count(&summary, "dropped", 0);
    expect_count(&summary, "in_flight_at_exit", 0);
}

#[test]
fn handlers_that_never_return_stay_in_flight_and_harm_nothing() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    let blocked = Pending::send(&server, "/block", 5, Duration::from_secs(10));
    send_ok(&server, "/hello", 50);
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{output}");
    let spans = ok_spans(&output, "/hello", &[server.pid()]);
    assert_eq!(
        spans.len(),
        50,
        "no span for the handlers that never end\n{output}"
    );
    let summary = summary(&output);
    expect_count(&summary, "in_flight_at_exit", 5);
    expect_count(&summary, "dropped", 0);
    // The program goes on as before: its handlers still waiting, its server answering.
    assert!(blocked.all_waiting(), "the blocked handlers still wait");
    send_ok(&server, "/hello", 10);
}

// Overload: many requests at once, or in a burst.

/// Raises this process's limit of open files to at least `wanted` (children inherit
/// it; Go programs raise their own soft limit to the hard one anyway).
fn raise_open_files(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if limit.rlim_cur >= wanted {
        return;
    }
    limit.rlim_cur = wanted;
    limit.rlim_max = limit.rlim_max.max(wanted);
    // SAFETY: setrlimit only reads the struct it is given.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(
        rc,
        0,
        "raise the open files limit to {wanted}: {}",
        std::io::Error::last_os_error()
    );
}

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The tracer's memory may not grow past this under any load: its queues and buffers
/// are bounded.
const TRACER_PEAK_KIB: u64 = 256 << 10;

/// The most spans of `spans` in progress at one moment.
fn max_overlap(spans: &[Span]) -> usize {
    let mut edges: Vec<(u64, i64)> = spans
        .iter()
        .flat_map(|span| {
            let start = span.start_ns().expect("start time");
            let end = span.end_ns().expect("end time");
            [(start, 1), (end, -1)]
        })
        .collect();
    // Ends before starts at the same instant.
    edges.sort_unstable();
    let mut now = 0_i64;
    let mut most = 0_i64;
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).expect("positive")
}

/// The spans lost, from a summary, each counted once: with the tracer attached before
/// any request, no end lacks its start but one whose start was evicted from a full slot
/// set, which was counted then (`start_replaced`), not again at its end
/// (`unmatched_end`).
fn lost(summary: &Summary) -> u64 {
    assert_eq!(
        summary.get("unmatched_end"),
        Some(0),
        "no request is counted twice: {}",
        summary.line
    );
    summary
        .get("dropped")
        .unwrap_or_else(|| panic!("no dropped in {}", summary.line))
}

/// Fails unless every expected span was `delivered` or counted lost, and none is left in
/// flight.
fn expect_accounted(delivered: u64, summary: &Summary, expected: u64) {
    assert_eq!(
        delivered + lost(summary),
        expected,
        "every span is exported or a counted drop: {}",
        summary.line
    );
    expect_count(summary, "in_flight_at_exit", 0);
}

const CONCURRENT: usize = 10_000;

#[test]
fn ten_thousand_concurrent_slow_requests_all_succeed_and_each_is_a_span_or_a_counted_drop() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    raise_open_files(CONCURRENT as u64 + 1024);
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    let before = memory_kib(tracer.pid()).0;
    let started = Instant::now();
    // Each handler sleeps 2 s: longer than sending them all takes.
    let pending = Pending::send_only(&server, "/sleep?ms=2000", CONCURRENT);
    let sent_in = started.elapsed();
    let responses = pending.responses(Duration::from_secs(30));
    let answered_in = started.elapsed();
    let failures: Vec<&Result<String, String>> = responses
        .iter()
        .filter(|r| {
            !r.as_ref().is_ok_and(|text| {
                text.starts_with("HTTP/1.1 200 ") && text.ends_with("slept 2000 ms")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "every request succeeds: {} of {CONCURRENT} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let (during, peak) = memory_kib(tracer.pid());
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{}", output.stderr);
    let spans = ok_spans(&output, "/sleep", &[server.pid()]);
    let summary = summary(&output);
    let overlap = max_overlap(&spans);
    eprintln!(
        "{CONCURRENT} requests sent in {sent_in:?}, answered in {answered_in:?}; {} spans, \
         {overlap} at once; {}; tracer RSS {before} KiB before, {during} KiB after, peak \
         {peak} KiB",
        spans.len(),
        summary.line
    );
    expect_accounted(spans.len() as u64, &summary, CONCURRENT as u64);
    assert!(
        overlap * 10 >= spans.len() * 9,
        "the requests ran at once: at most {overlap} of {} spans overlap",
        spans.len()
    );
    expect_bounded_memory(peak);
}

/// The tracer's peak resident memory `peak` (KiB) stayed under the bound.
fn expect_bounded_memory(peak: u64) {
    assert!(
        peak < TRACER_PEAK_KIB,
        "the tracer's memory stays bounded: peak {peak} KiB"
    );
}

const BURST: usize = 100_000;
/// Client threads and keep-alive connections of the burst, and the requests written at
/// once on a connection (HTTP/1.1 pipelining: few system calls per request, so that two
/// cores shared by the client, the target and the tracer send 100,000 in about a
/// second).
const BURST_THREADS: usize = 4;
const BURST_CONNECTIONS: usize = 16;
const PIPELINED: usize = 32;

/// Sends `GET target` `total` times over [`BURST_THREADS`] × [`BURST_CONNECTIONS`]
/// keep-alive connections, giving up at `deadline`; returns how many were answered 200,
/// and what went wrong otherwise.
fn burst(addr: SocketAddr, target: &str, total: usize, deadline: Instant) -> (usize, Vec<String>) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let threads: Vec<_> = (0..BURST_THREADS)
        .map(|t| {
            let share = total / BURST_THREADS + usize::from(t < total % BURST_THREADS);
            let request = request.clone();
            thread::spawn(move || burst_thread(addr, &request, share, deadline))
        })
        .collect();
    let mut ok = 0;
    let mut failures = Vec::new();
    for thread in threads {
        let (n, mut failed) = thread.join().expect("a burst thread");
        ok += n;
        failures.append(&mut failed);
    }
    (ok, failures)
}

/// One thread of [`burst`]: `count` requests over its connections, in rounds of
/// [`PIPELINED`] per connection.
fn burst_thread(
    addr: SocketAddr,
    request: &str,
    count: usize,
    deadline: Instant,
) -> (usize, Vec<String>) {
    let mut connections: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    for _ in 0..BURST_CONNECTIONS {
        match TcpStream::connect_timeout(&addr, http::CONNECT_TIMEOUT) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(http::IO_TIMEOUT));
                connections.push((stream, Vec::new()));
            }
            Err(e) => return (0, vec![format!("connect: {e}")]),
        }
    }
    let batch = request.repeat(PIPELINED);
    let (mut remaining, mut ok) = (count, 0);
    while remaining > 0 {
        if Instant::now() >= deadline {
            return (
                ok,
                vec![format!("{remaining} requests not sent by the deadline")],
            );
        }
        let mut sent = Vec::with_capacity(connections.len());
        for (stream, _) in &mut connections {
            let n = remaining.min(PIPELINED);
            remaining -= n;
            if let Err(e) = stream.write_all(&batch.as_bytes()[..n * request.len()]) {
                return (ok, vec![format!("write: {e}")]);
            }
            sent.push(n);
        }
        for ((stream, buffer), n) in connections.iter_mut().zip(sent) {
            match read_responses(stream, buffer, n) {
                Ok(answered) => ok += answered,
                Err(e) => return (ok, vec![format!("read: {e}")]),
            }
        }
    }
    (ok, Vec::new())
}

/// Reads `count` responses (each with a `Content-Length`) from `stream`; `buffer` keeps
/// what was read past them. Returns how many were 200.
fn read_responses(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    count: usize,
) -> std::io::Result<usize> {
    let mut ok = 0;
    let mut chunk = vec![0_u8; 64 << 10];
    for _ in 0..count {
        loop {
            if let Some((length, status)) = parse_response(buffer)? {
                buffer.drain(..length);
                ok += usize::from(status == 200);
                break;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(ok)
}

/// The length and status of the complete response at the start of `bytes`, if it is all
/// there.
fn parse_response(bytes: &[u8]) -> std::io::Result<Option<(usize, u16)>> {
    let invalid = |what: &str| std::io::Error::new(ErrorKind::InvalidData, what.to_owned());
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| invalid("head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .ok_or_else(|| invalid(head))?;
    let length: usize = lines
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| invalid(head))?;
    let total = head_end + 4 + length;
    Ok((bytes.len() >= total).then_some((total, status)))
}

#[test]
fn a_burst_of_100k_requests_fails_none_and_each_is_a_span_or_a_counted_drop() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    let before = memory_kib(tracer.pid()).0;
    let started = Instant::now();
    let (ok, failures) = burst(
        server.addr(),
        "/hello",
        BURST,
        started + Duration::from_secs(30),
    );
    let sent_in = started.elapsed();
    assert!(
        failures.is_empty() && ok == BURST,
        "every request of the burst succeeds: {ok} of {BURST} did, {failures:?}"
    );
    let during = memory_kib(tracer.pid()).0;

    // The tracer catches up: its output stops growing (within 60 s)...
    let mut last = tracer.stdout_bytes();
    let caught_up = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = tracer.stdout_bytes();
        if now == last || caught_up.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = now;
    }
    let caught_up_in = caught_up.elapsed();
    // ...and traces again.
    send_ok(&server, "/users/7", 10);
    let peak = memory_kib(tracer.pid()).1;
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{}", output.stderr);
    let spans = output.spans().expect("spans");
    let after: Vec<&Span> = spans
        .iter()
        .filter(|span| span.attr_str("url.path") == Some("/users/7"))
        .collect();
    let summary = summary(&output);
    eprintln!(
        "{BURST} requests in {sent_in:?}; the tracer caught up {caught_up_in:?} later; {} \
         spans; {}; tracer RSS {before} KiB before, {during} KiB after the burst, peak \
         {peak} KiB",
        spans.len(),
        summary.line
    );
    assert_eq!(after.len(), 10, "the requests after the burst are traced");
    for span in &spans {
        let path = span.attr_str("url.path");
        assert!(
            span.attr_u64("http.response.status_code") == Some(200)
                && (path == Some("/hello") || path == Some("/users/7")),
            "a span of the requests sent: {span}"
        );
    }
    expect_accounted(spans.len() as u64, &summary, BURST as u64 + 10);
    expect_bounded_memory(peak);
}

/// Requests served while the tracer is stopped: more than the ring buffer held with
/// records of a fixed size (about 6,600 server spans in 8 MiB), fewer than it holds now
/// that a record is its fixed part and the bytes its strings use (about 43,000 of this
/// fixture's).
const STALLED: usize = 20_000;

#[test]
fn a_stalled_reader_loses_no_span_the_ring_buffer_can_hold() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    send_ok(&server, "/hello", 1);
    process::send_signal(tracer.pid(), libc::SIGSTOP).expect("stop the tracer");
    let started = Instant::now();
    let (ok, failures) = burst(
        server.addr(),
        "/hello",
        STALLED,
        started + Duration::from_secs(30),
    );
    let sent_in = started.elapsed();
    process::send_signal(tracer.pid(), libc::SIGCONT).expect("resume the tracer");
    assert!(
        failures.is_empty() && ok == STALLED,
        "every request succeeds: {ok} of {STALLED} did, {failures:?}"
    );
    // Within a few drains the tracer has read the backlog; its output stops growing.
    let mut last = tracer.stdout_bytes();
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = tracer.stdout_bytes();
        if now == last || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        last = now;
    }
    let peak = memory_kib(tracer.pid()).1;
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{}", output.stderr);
    let spans = output.spans().expect("spans");
    let summary = summary(&output);
    eprintln!(
        "{STALLED} requests in {sent_in:?} while the tracer was stopped; {} spans; {}; \
         tracer peak RSS {peak} KiB",
        spans.len(),
        summary.line
    );
    expect_count(&summary, "ringbuf_full", 0);
    expect_count(&summary, "dropped", 0);
    assert_eq!(spans.len(), STALLED + 1, "a span per request");
    expect_bounded_memory(peak);
}

/// The scheduling policy (field 41 of `stat`) of each thread of process `pid`: its id,
/// name and policy.
fn thread_policies(pid: u32) -> Vec<(u32, String, i32)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let tid = path.file_name()?.to_str()?.parse().ok()?;
            let name = fs::read_to_string(path.join("comm")).ok()?;
            let stat = fs::read_to_string(path.join("stat")).ok()?;
            let after_name = stat.get(stat.rfind(')')? + 2..)?;
            let policy = after_name.split(' ').nth(38)?.parse().ok()?;
            Some((tid, name.trim().to_owned(), policy))
        })
        .collect()
}

/// The policy of the tracer's span path: its main thread's, and the stdout exporter's;
/// `None` while they differ (the watchdog is moving them) or one is not found.
fn span_path_policy(pid: u32) -> Option<i32> {
    let policies = thread_policies(pid);
    let main = policies.iter().find(|(tid, _, _)| *tid == pid)?.2;
    let exporter = policies
        .iter()
        .find(|(_, name, _)| name == "export-stdout")?
        .2;
    (exporter == main).then_some(main)
}

/// Waits up to `within` for the span path's policy to be `wanted`.
fn await_policy(pid: u32, wanted: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if span_path_policy(pid) == Some(wanted) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Requests sent while the tracer's CPU is taken.
const CROWDED: usize = 20_000;

/// While it keeps up, the tracer's span path (the reader and the exporter) waits in the
/// idle scheduling class, where it takes no CPU time anything else wants; when a CPU hog
/// shares its CPU, the watchdog moves it back to the normal class and no span is lost;
/// once the CPU is free again, it yields again.
#[test]
fn the_span_path_yields_the_cpu_while_it_keeps_up_and_takes_it_back_when_crowded_out() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
    let tracer = Tracer::attach(server.pid(), &[]).expect("attach");
    send_ok(&server, "/hello", 1);
    assert!(
        await_policy(tracer.pid(), libc::SCHED_IDLE, Duration::from_secs(5)),
        "the span path waits in the idle class: {:?}",
        thread_policies(tracer.pid())
    );
    // Every thread of the tracer on one CPU, and a busy loop (normal class, niceness 0)
    // on it for a bounded time: the highest CPU this test may use, the load on others.
    // SAFETY: a zeroed cpu_set_t is an empty set; the call fills it.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `allowed` is valid for the call; 0 names this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) };
    assert_eq!(rc, 0, "sched_getaffinity");
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
        .collect();
    assert!(
        cpus.len() >= 2,
        "the test needs 2 CPUs, it may use {cpus:?}"
    );
    let cpu = cpus[cpus.len() - 1];
    let pinned = Command::new("taskset")
        .args([
            "-a",
            "-c",
            "-p",
            &cpu.to_string(),
            &tracer.pid().to_string(),
        ])
        .output()
        .expect("taskset");
    assert!(pinned.status.success(), "taskset: {pinned:?}");
    let hogging = Arc::new(AtomicBool::new(true));
    let (hog_pinned, hog_ready) = std::sync::mpsc::channel();
    let hog = thread::spawn({
        let hogging = Arc::clone(&hogging);
        move || {
            // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it.
            let set = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                set
            };
            // SAFETY: `set` is valid for the call; 0 names this thread.
            let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
            let _ = hog_pinned.send(rc);
            let until = Instant::now() + Duration::from_secs(30);
            let mut spins = 0u64;
            while rc == 0 && hogging.load(Ordering::Relaxed) && Instant::now() < until {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
    });
    assert_eq!(
        hog_ready.recv().expect("the busy loop"),
        0,
        "sched_setaffinity"
    );
    // The burst gives the reader more work than the idle class gets done on a busy
    // CPU: a thread notes whether the span path is moved to the normal class meanwhile.
    let sending = Arc::new(AtomicBool::new(true));
    let watcher = thread::spawn({
        let sending = Arc::clone(&sending);
        let pid = tracer.pid();
        move || {
            let mut seen = false;
            while sending.load(Ordering::Relaxed) && !seen {
                seen = span_path_policy(pid) == Some(libc::SCHED_OTHER);
                thread::sleep(Duration::from_millis(2));
            }
            seen
        }
    });
    let (ok, failures) = burst(
        server.addr(),
        "/hello",
        CROWDED,
        Instant::now() + Duration::from_secs(30),
    );
    // Time for the watchdog to see a reader still behind after the burst.
    let crowded = await_policy(tracer.pid(), libc::SCHED_OTHER, Duration::from_millis(500));
    sending.store(false, Ordering::Relaxed);
    let crowded = watcher.join().expect("the watcher") || crowded;
    hogging.store(false, Ordering::Relaxed);
    hog.join().expect("the busy loop");
    assert!(
        crowded,
        "a busy CPU moves the span path back to the normal class: {:?}",
        thread_policies(tracer.pid())
    );
    assert!(
        failures.is_empty() && ok == CROWDED,
        "every request succeeds: {ok} of {CROWDED} did, {failures:?}"
    );
    // Caught up, it yields again (after at least a second in the normal class).
    assert!(
        await_policy(tracer.pid(), libc::SCHED_IDLE, Duration::from_secs(10)),
        "a free CPU puts the span path back in the idle class: {:?}",
        thread_policies(tracer.pid())
    );
    let output = tracer.stop().expect("stop the tracer");
    assert_eq!(output.code(), Some(0), "{}", output.stderr);
    let spans = output.spans().expect("spans");
    let summary = summary(&output);
    expect_count(&summary, "dropped", 0);
    assert_eq!(spans.len(), CROWDED + 1, "a span per request");
}

/// Soak (a longer run, not in CI: `cargo test --release -p tracer-tests --test faults -- --ignored soak`):
/// requests per cycle, and cycles. Each cycle sends `SOAK_HELLO` plain requests and
/// `SOAK_CHAIN` chained ones (a server span, a client span with `traceparent` injected,
/// and the next service's server span each) while a second tracer attaches to and
/// detaches from the first service.
const SOAK_CYCLES: usize = 20;
const SOAK_HELLO: usize = 45_000;
const SOAK_CHAIN: usize = 5_000;

/// 1,000,000 requests across server, client and propagation paths under one long-lived
/// `--binary` tracer, with a second tracer attaching and detaching every cycle: no
/// request fails, every span is exported or a counted drop, nothing stays in flight or
/// in the kernel, and the long-lived tracer's memory stays flat.
#[test]
#[ignore = "soak: a longer run (minutes), see README"]
fn soak_a_million_requests_with_attach_detach_churn() {
    let _serial = tracer_tests::serial();
    tracer_tests::require_root();
    let baseline = kernel_objects();
    let (toolchain, exe) = process::build_http_server(go::DEFAULT).expect("build the fixture");
    let services = tracer_tests::chain::start(&toolchain, &exe, 2);
    let pids: Vec<u32> = services.iter().map(HttpServer::pid).collect();
    let dir = std::env::temp_dir().join(format!("tracer-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (out, err) = (dir.join("spans.jsonl"), dir.join("stderr.log"));
    let exe_arg = exe.display().to_string();
    let mut long_lived = tracer_tests::tracer::command().expect("the tracer");
    long_lived
        .args(["--binary", exe_arg.as_str(), "--format", "json"])
        .stdout(std::fs::File::create(&out).expect("spans file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let mut long_lived = long_lived.spawn().expect("start the long-lived tracer");
    let attached = tracer_tests::poll_until(ATTACH_TIMEOUT, || {
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        pids.iter()
            .all(|pid| text.contains(&format!("attached pid={pid} ")))
            .then_some(())
    });
    assert!(
        attached.is_some(),
        "the long-lived tracer attached to {pids:?}:\n{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );

    let mut rss = Vec::new();
    let started = Instant::now();
    for cycle in 0..SOAK_CYCLES {
        // Read-only: one tracer injects (two would each add a header).
        let churn = Tracer::attach(pids[0], &["--read-only"]).expect("attach the churning tracer");
        let deadline = Instant::now() + Duration::from_secs(120);
        let (ok, failures) = burst(services[0].addr(), "/hello", SOAK_HELLO, deadline);
        assert!(
            failures.is_empty() && ok == SOAK_HELLO,
            "cycle {cycle}: {ok} of {SOAK_HELLO} plain requests succeeded: {failures:?}"
        );
        let (ok, failures) = burst(services[0].addr(), "/chain", SOAK_CHAIN, deadline);
        assert!(
            failures.is_empty() && ok == SOAK_CHAIN,
            "cycle {cycle}: {ok} of {SOAK_CHAIN} chained requests succeeded: {failures:?}"
        );
        // Its output is not kept: the churning tracer's stdout is captured in memory.
        let output = churn.stop().expect("stop the churning tracer");
        assert_eq!(output.code(), Some(0), "cycle {cycle}: {}", output.stderr);
        rss.push(memory_kib(long_lived.id()).0);
    }
    let took = started.elapsed();
    process::send_signal(long_lived.id(), libc::SIGINT).expect("SIGINT");
    let status = process::wait_timeout(&mut long_lived, STOP_TIMEOUT * 4)
        .expect("wait for the tracer")
        .expect("the tracer exits");
    let stderr = std::fs::read_to_string(&err).expect("the tracer's stderr");
    assert!(
        status.success(),
        "the long-lived tracer: {status}\n{stderr}"
    );
    let summary = Summary::parse(stderr.lines().last().unwrap_or_default());
    let spans = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&out).expect("spans"),
    ))
    .count() as u64;
    let _ = std::fs::remove_dir_all(&dir);
    let requests = SOAK_CYCLES * (SOAK_HELLO + SOAK_CHAIN);
    let expected = (SOAK_CYCLES * (SOAK_HELLO + 3 * SOAK_CHAIN)) as u64;
    eprintln!(
        "soak: {requests} requests in {took:?}; {spans} spans of {expected}; {}; the \
         long-lived tracer's RSS per cycle (KiB): {rss:?}",
        summary.line
    );
    expect_accounted(spans, &summary, expected);
    expect_count(&summary, "injected", (SOAK_CYCLES * SOAK_CHAIN) as u64);
    // Flat: the last cycles' memory within 16 MiB of the first ones' highest.
    let first = rss[..3].iter().copied().max().unwrap_or_default();
    let last = rss[SOAK_CYCLES - 3..]
        .iter()
        .copied()
        .max()
        .unwrap_or_default();
    assert!(
        last <= first + (16 << 10),
        "the long-lived tracer's memory stays flat: {rss:?} KiB"
    );
    drop(services);
    assert_released(&baseline, "after the soak");
}
