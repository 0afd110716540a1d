//! Long-running child processes (servers, the tracer, wrk) under deadlines. Their piped
//! output arrives line by line over channels (stderr is also echoed, prefixed with the
//! child's name), and a child still running when its handle is dropped is killed, so no
//! error path leaves processes behind.

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// How often [`Running::wait`] polls the child.
const POLL: Duration = Duration::from_millis(20);

/// The lines of one output stream of a child, read by a background thread.
pub struct Lines {
    name: String,
    rx: Receiver<String>,
}

impl Lines {
    /// Reads `stream` line by line on a thread; echoes each line to stderr if `echo`.
    fn spawn(name: &str, stream: impl Read + Send + 'static, echo: bool) -> Self {
        let (tx, rx) = mpsc::channel();
        let prefix = format!("  [{name}] ");
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("{prefix}{line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            rx,
        }
    }

    /// Waits until a line satisfies `matches` and returns it; fails if the stream ends
    /// first (the child exited) or at `deadline`. `what` names the awaited line.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Instant,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if matches(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!("timed out waiting for {} to print {what}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("{} closed its output before printing {what}", self.name)
                }
            }
        }
    }

    /// Every line not yet consumed, until the stream closes or `deadline` passes.
    pub fn drain(&self, deadline: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return lines,
            }
        }
    }
}

/// CPU time (user and system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which ends at the last ')'): utime and stime are
    // the 12th and 13th, in clock ticks.
    let rest = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .context("no command name in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {i} of /proc/{pid}/stat"))
    };
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    Ok(Duration::from_nanos(
        (ticks(11)? + ticks(12)?) * 1_000_000_000 / hz,
    ))
}

/// A spawned child that is killed if still running when dropped.
pub struct Running {
    name: String,
    child: Child,
    stdout: Option<Lines>,
    stderr: Option<Lines>,
}

impl Running {
    /// Prints and spawns `cmd` with stdin closed. Streams the caller set to
    /// [`Stdio::piped`] become [`Lines`]; piped stderr is also echoed.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        let line = cmd::describe(cmd);
        eprintln!("$ {line} &");
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let stdout = child.stdout.take().map(|s| Lines::spawn(name, s, false));
        let stderr = child.stderr.take().map(|s| Lines::spawn(name, s, true));
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout lines (it must have been spawned with piped stdout).
    pub fn stdout(&self) -> Result<&Lines> {
        self.stdout
            .as_ref()
            .with_context(|| format!("{}: stdout not piped", self.name))
    }

    /// The child's stderr lines (it must have been spawned with piped stderr).
    pub fn stderr(&self) -> Result<&Lines> {
        self.stderr
            .as_ref()
            .with_context(|| format!("{}: stderr not piped", self.name))
    }

    /// Sends SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: plain syscall on a pid we own: the child is not reaped until we wait on
        // it, so the pid cannot have been reused.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot interrupt {}", self.name));
        }
        Ok(())
    }

    /// Waits for the child to exit; kills it and fails if it is still running at `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!("{} did not exit in time; killed it", self.name);
            }
            thread::sleep(POLL);
        }
    }

    /// Kills the child (if still running) and reaps it.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
