//! Support for the end-to-end tests: build real Go programs (the fixtures under
//! `tests/go/`), run them, trace them with the real `tracer` binary and check the spans
//! it prints against `CONTRACT.md`.
//!
//! A typical test:
//! ```no_run
//! use tracer_tests::{go, http, process::HttpServer, tracer::Tracer};
//!
//! let _serial = tracer_tests::serial();
//! tracer_tests::require_root();
//! let server = HttpServer::start(go::DEFAULT).expect("start the fixture");
//! let tracer = Tracer::attach(server.pid(), &[]).expect("attach the tracer");
//! let response = http::get(server.addr(), "/hello").expect("GET /hello");
//! assert_eq!(response.status, 200);
//! let output = tracer.stop().expect("stop the tracer");
//! let spans = output.spans().expect("spans on stdout");
//! assert_eq!(spans.len(), 1);
//! ```
//!
//! - [`go`]: Go toolchains by version, fixtures built into `target/go-fixtures/`.
//! - [`process`]: child processes with captured output, killed on drop
//!   ([`process::Fixture`], [`process::HttpServer`]).
//! - [`tracer`]: the tracer under test ([`tracer::Tracer`]), its output, spans and summary.
//! - [`http`]: a minimal HTTP/1.1 client over `std::net::TcpStream`.
//! - [`span`]: typed access to the JSON spans.
//!
//! Environment: `TRACER_BIN` (the binary under test, default
//! `<workspace>/target/release/tracer`), `TRACER_TOOLS` (Go toolchains, default
//! `$HOME/.cache/tracer-tools`).
//!
//! Everything waits with deadlines, never fixed sleeps; every child process is killed
//! when its guard drops, so a failing test leaks no process.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod chain;
pub mod container;
pub mod go;
pub mod http;
pub mod kubelet;
pub mod process;
pub mod receiver;
pub mod span;
pub mod tracer;

/// A test-support failure: a message meant for a person reading a failed test, often
/// several lines long (it may quote a child process's stderr).
///
/// `Debug` prints the message as is, so `.expect("...")` shows it readably.
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of a support function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to an error, like `anyhow::Context`.
pub trait Context<T> {
    /// Turns the error into an [`Error`] reading `"{what}: {error}"`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{what}: {e}")))
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
}

/// Fails the calling test unless it runs as root.
///
/// Tracing another process needs CAP_BPF, CAP_PERFMON and more; CI runs as root, so a
/// test that needs it and lacks it fails (it never skips silently).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test traces real processes and needs root (CAP_BPF, CAP_PERFMON, \
         CAP_SYS_ADMIN), but it runs as uid {euid}: run the end-to-end tests as root, \
         e.g. `sudo -E cargo test -p tracer-tests`"
    );
}

/// Serializes the tests that trace: hold the guard for the whole test.
///
/// The machines are small (2 cores): tracers attaching in parallel would slow each
/// other past their deadlines and blur timing checks. A test that failed while holding
/// the guard does not block the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls `probe` every few milliseconds until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

/// Nanoseconds since the UNIX epoch (the unit of span times).
pub fn unix_nanos(time: SystemTime) -> u64 {
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_nanos()).expect("before the year 2554")
}

/// This machine's host name, as the tracer should report it in `host.name`.
pub fn hostname() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("read /proc/sys/kernel/hostname")?;
    Ok(name.trim().to_owned())
}
