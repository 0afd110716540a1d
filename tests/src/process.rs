//! Child processes for the tests: their output captured by background threads, waits
//! with deadlines, and guards that kill them on drop so that a failing test leaks none.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::go::Toolchain;
use crate::{Context, Error, Result};

/// The fixture [`HttpServer`] runs: `tests/go/net_http_server`.
pub const HTTP_SERVER_FIXTURE: &str = "net_http_server";

/// The toolchain of Go `go_version` and the [`HTTP_SERVER_FIXTURE`] it built.
pub fn build_http_server(go_version: &str) -> Result<(Toolchain, PathBuf)> {
    let toolchain = Toolchain::find(go_version)?;
    let exe = toolchain.build_fixture(HTTP_SERVER_FIXTURE)?;
    Ok((toolchain, exe))
}

/// How long a fixture may take to print its first line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables removed from the children the tests start, since they would
/// change what the tracer reports (e.g. `OTEL_SERVICE_NAME` names the service).
pub const OTEL_VARIABLES: &[&str] = &[
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "TRACER_METRICS_ADDR",
];

/// Everything a child process writes to one pipe, read by a background thread until
/// the pipe closes. Clones share the same buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Shared>);

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    closed: bool,
}

impl Captured {
    /// Starts a thread that reads `pipe` to its end into the returned buffer.
    pub fn start(pipe: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        thread::spawn(move || writer.read_to_end(pipe));
        captured
    }

    fn read_to_end(&self, mut pipe: impl Read) {
        let mut chunk = [0_u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    self.lock().bytes.extend_from_slice(&chunk[..n]);
                    self.0.changed.notify_all();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.lock().closed = true;
        self.0.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What was written so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// How many bytes were written so far (cheap: copies nothing).
    pub fn byte_count(&self) -> usize {
        self.lock().bytes.len()
    }

    /// Whether the pipe was closed (usually: the process exited).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits up to `timeout` for a line for which `wanted` is true and returns it
    /// (without its newline). Returns `None` at the deadline or once the pipe closed
    /// without such a line.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut scanned = 0; // bytes already split into lines and rejected
        loop {
            while let Some(end) = state.bytes[scanned..].iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&state.bytes[scanned..scanned + end]);
                if wanted(&line) {
                    return Some(line.into_owned());
                }
                scanned += end + 1;
            }
            if state.closed {
                let rest = String::from_utf8_lossy(&state.bytes[scanned..]);
                return (!rest.is_empty() && wanted(&rest)).then(|| rest.into_owned());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits up to `timeout` for the pipe to close; returns whether it did.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = child
            .try_wait()
            .context(format_args!("wait for process {}", child.id()))?;
        if status.is_some() || Instant::now() >= deadline {
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (e.g. `libc::SIGINT`) to process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill has no memory-safety preconditions; the pid is one of our children,
    // not yet reaped, so it cannot have been reused.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(Error::new(format!(
            "send signal {signal} to process {pid}: {}",
            std::io::Error::last_os_error()
        )))
    }
}

/// A process under test (a Go fixture, or any program), killed and reaped on drop.
/// Its stdout and stderr are captured; its stdin is empty.
pub struct Fixture {
    child: Child,
    exe: PathBuf,
    stdout: Captured,
    stderr: Captured,
    exited: Option<ExitStatus>,
}

impl Fixture {
    /// Starts `exe` with `args`.
    pub fn spawn(exe: impl AsRef<Path>, args: &[&str]) -> Result<Self> {
        let exe = exe.as_ref();
        let mut command = Command::new(exe);
        command.args(args);
        Self::spawn_command(command, exe)
    }

    /// Starts `command`, which ends up running `exe` (it may be a wrapper such as
    /// `setpriv ... exe`, which execs `exe` in the same process). Its stdio and the
    /// [`OTEL_VARIABLES`] are overridden.
    pub fn spawn_command(mut command: Command, exe: impl AsRef<Path>) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for variable in OTEL_VARIABLES {
            command.env_remove(variable);
        }
        let mut child = command
            .spawn()
            .context(format_args!("start {:?}", command.get_program()))?;
        let stdout = Captured::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Captured::start(child.stderr.take().expect("stderr is piped"));
        Ok(Self {
            child,
            exe: exe.as_ref().to_path_buf(),
            stdout,
            stderr,
            exited: None,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The executable it runs.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits up to `timeout` for a stdout line that starts with `prefix` and returns it.
    pub fn wait_for_stdout_line(&self, prefix: &str, timeout: Duration) -> Result<String> {
        self.stdout
            .wait_for_line(timeout, |line| line.starts_with(prefix))
            .ok_or_else(|| {
                let why = if self.stdout.is_closed() {
                    "it closed its stdout (exited?)".to_owned()
                } else {
                    format!("none within {timeout:?}")
                };
                Error::new(format!(
                    "{} (pid {}) printed no line starting with {prefix:?}: {why}\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                    self.exe.display(),
                    self.pid(),
                    self.stdout(),
                    self.stderr()
                ))
            })
    }

    /// Kills it (SIGKILL) and reaps it; returns how it ended.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        // Fails only if it already exited, which wait() below then reports.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .context(format_args!("wait for {}", self.exe.display()))?;
        self.exited = Some(status);
        Ok(status)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The `net_http_server` fixture, running and listening (see
/// `tests/go/net_http_server/main.go` for its routes).
pub struct HttpServer {
    fixture: Fixture,
    addr: SocketAddr,
    toolchain: Toolchain,
}

impl HttpServer {
    /// Builds the fixture with Go `go_version`, starts it on a free loopback port and
    /// waits for its `listening on` line.
    pub fn start(go_version: &str) -> Result<Self> {
        let (toolchain, exe) = build_http_server(go_version)?;
        let fixture = Fixture::spawn(&exe, &[])?;
        Self::from_fixture(fixture, toolchain)
    }

    /// Waits for an already started `net_http_server` fixture (built with `toolchain`)
    /// to print its `listening on` line.
    pub fn from_fixture(fixture: Fixture, toolchain: Toolchain) -> Result<Self> {
        let line = fixture.wait_for_stdout_line("listening on ", STARTUP_TIMEOUT)?;
        let addr = line["listening on ".len()..]
            .trim()
            .parse()
            .context(format_args!("parse the address in {line:?}"))?;
        Ok(Self {
            fixture,
            addr,
            toolchain,
        })
    }

    /// Where it listens, e.g. `127.0.0.1:40123`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.fixture.pid()
    }

    /// The toolchain it was built with.
    pub fn toolchain(&self) -> &Toolchain {
        &self.toolchain
    }

    /// The process.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// The process, e.g. to kill it.
    pub fn fixture_mut(&mut self) -> &mut Fixture {
        &mut self.fixture
    }
}
