//! End-to-end: the traced program is never harmed by what happens to the tracer (issue 9).
//! The tracer is killed with SIGKILL at varied moments (while attaching, under load,
//! while exporting) and attached and stopped over and over against a loaded target:
//! every request succeeds, the kernel keeps none of the tracer's programs, maps or links
//! afterwards, and a new tracer attaches cleanly. These tests need root.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tracer_tests::go;
use tracer_tests::http;
use tracer_tests::process::HttpServer;
use tracer_tests::tracer::Tracer;

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
        spans += output.spans().expect("spans").len();
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
