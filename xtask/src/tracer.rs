//! Driving the `tracer` binary under test: start it on a process, wait until its probes
//! are live (the stderr line containing `attached` and `pid=<PID>`), stop it with SIGINT
//! as a user would.

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::process::{self, Running};
use crate::tracer_bin;

/// A running tracer whose probes are attached.
pub struct Tracer {
    process: Running,
    /// Its `attached` log line (which names where each probe sits).
    pub attached: String,
}

/// What a tracer left behind once stopped.
pub struct Stopped {
    pub status: ExitStatus,
    /// Its stdout lines, if stdout was piped.
    pub stdout: Vec<String>,
    /// Its stderr lines printed after `attached` (the last one is the summary).
    pub stderr: Vec<String>,
}

/// How to run the tracer.
pub struct Launch<'a> {
    /// The process to trace (`--pid`).
    pub pid: u32,
    /// Pin the tracer to this CPU with `taskset`.
    pub cpu: Option<u32>,
    /// Further arguments, e.g. `["--format", "json"]`.
    pub args: &'a [&'a str],
    /// Where the spans go ([`Stdio::piped`] to read them from [`Stopped::stdout`]).
    pub stdout: Stdio,
}

impl Tracer {
    /// Starts the release `tracer` and waits (until `deadline`) for it to attach.
    pub fn attach(launch: Launch<'_>, deadline: Instant) -> Result<Self> {
        let mut cmd = command(launch.cpu);
        cmd.arg("--pid")
            .arg(launch.pid.to_string())
            .args(launch.args)
            .stdout(launch.stdout)
            .stderr(Stdio::piped());
        let process = Running::spawn("tracer", &mut cmd)?;
        let attached =
            process
                .stderr()?
                .wait_for("a line saying `attached`", deadline, |line| {
                    says_attached(line, launch.pid)
                })?;
        Ok(Self { process, attached })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// CPU time (user and system) the tracer has used so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        process::cpu_time(self.process.pid())
    }

    /// Sends SIGINT and waits for the tracer to flush and exit.
    pub fn stop(mut self, deadline: Instant) -> Result<Stopped> {
        self.process.interrupt()?;
        let status = self.process.wait(deadline)?;
        let stdout = match self.process.stdout() {
            Ok(lines) => lines.drain(deadline),
            Err(_) => Vec::new(),
        };
        let stderr = self.process.stderr()?.drain(deadline);
        Ok(Stopped {
            status,
            stdout,
            stderr,
        })
    }
}

/// The release `tracer`, pinned to `cpu` with `taskset` if given.
pub fn command(cpu: Option<u32>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpu.to_string()).arg(tracer_bin());
            taskset
        }
        None => Command::new(tracer_bin()),
    }
}

/// The process an "attached" log line of the tracer names.
pub fn attached_pid(line: &str) -> Option<u32> {
    if !line.contains("attached") {
        return None;
    }
    line.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|word| word.strip_prefix("pid=")?.parse().ok())
}

/// Whether `line` is the tracer's "attached" log line for `pid`.
fn says_attached(line: &str, pid: u32) -> bool {
    attached_pid(line) == Some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_attached_line() {
        let line = "[INFO ] attached pid=4242 exe=/srv/shop go=go1.24.11";
        assert!(says_attached(line, 4242));
        assert!(!says_attached(line, 424));
        assert!(!says_attached("[INFO ] loading pid=4242", 4242));
    }
}
