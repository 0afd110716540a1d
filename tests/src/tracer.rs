//! The tracer under test: finding its binary, starting it against a process, waiting
//! for its `attached` log line, stopping it with SIGINT, and reading what it printed
//! (spans on stdout, logs and the closing summary on stderr).

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::process::{Captured, OTEL_VARIABLES, send_signal, wait_timeout};
use crate::span::Span;
use crate::{Context, Error, Result, workspace_root};

/// How long the tracer may take to attach to a process.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the tracer may take to exit after SIGINT (flush, summary).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a run expected to fail at start may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the output pipes may stay open after the tracer exited.
const PIPE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer binary: `$TRACER_BIN`, else `<workspace>/target/release/tracer`.
pub fn tracer_bin() -> Result<PathBuf> {
    if let Some(bin) = env::var_os("TRACER_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::new(format!(
                "TRACER_BIN={} is not a file",
                bin.display()
            )))
        };
    }
    let bin = workspace_root()
        .join("target")
        .join("release")
        .join("tracer");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::new(format!(
            "the tracer binary {} does not exist: run `cargo build --release` at the \
             workspace root first (or point TRACER_BIN at a tracer binary)",
            bin.display()
        )))
    }
}

/// A command running the tracer, with no stdin and without the [`OTEL_VARIABLES`] of
/// the test's environment; add the arguments.
pub fn command() -> Result<Command> {
    let mut command = Command::new(tracer_bin()?);
    command.stdin(Stdio::null());
    for variable in OTEL_VARIABLES {
        command.env_remove(variable);
    }
    Ok(command)
}

/// Runs the tracer with `args` to its exit (killing it after `timeout`).
pub fn run<I, S>(args: I, timeout: Duration) -> Result<TracerOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Tracer::spawn(args)?.wait_exit(timeout)
}

/// A running tracer, its stdout and stderr captured; killed (SIGKILL) on drop unless
/// stopped.
pub struct Tracer {
    child: Option<Child>,
    pid: u32,
    stdout: Captured,
    stderr: Captured,
}

impl Tracer {
    /// Starts the tracer with `args`.
    pub fn spawn<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = command()?;
        command.args(args);
        Self::spawn_command(command)
    }

    /// Starts `command` (e.g. [`command`] wrapped in `setpriv`) with its stdout and
    /// stderr captured.
    pub fn spawn_command(mut command: Command) -> Result<Self> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().context(format_args!(
            "start the tracer ({:?})",
            command.get_program()
        ))?;
        let stdout = Captured::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Captured::start(child.stderr.take().expect("stderr is piped"));
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
        })
    }

    /// Starts `tracer --pid PID --format json EXTRA_ARGS...` and waits (up to
    /// [`ATTACH_TIMEOUT`]) until it says it attached to `pid`.
    pub fn attach(pid: u32, extra_args: &[&str]) -> Result<Self> {
        let pid_arg = pid.to_string();
        let args = ["--pid", pid_arg.as_str(), "--format", "json"];
        let tracer = Self::spawn(args.iter().chain(extra_args))?;
        tracer.wait_attached(pid, ATTACH_TIMEOUT)?;
        Ok(tracer)
    }

    /// Waits for the stderr line that contains the word `attached` and `pid=<pid>`,
    /// which the tracer prints once every probe for the process is live; returns it.
    /// The error quotes the tracer's stderr so far.
    pub fn wait_attached(&self, pid: u32, timeout: Duration) -> Result<String> {
        self.stderr
            .wait_for_line(timeout, |line| is_attached_line(line, pid))
            .ok_or_else(|| {
                let why = if self.stderr.is_closed() {
                    "it closed its stderr (exited?) first".to_owned()
                } else {
                    format!("not within {timeout:?}")
                };
                Error::new(format!(
                    "the tracer printed no line with `attached` and `pid={pid}`: {why}\n\
                     --- tracer stderr ---\n{}",
                    self.stderr()
                ))
            })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// How many bytes it wrote to stdout so far (cheap, unlike [`Tracer::stdout`]).
    pub fn stdout_bytes(&self) -> usize {
        self.stdout.byte_count()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Sends SIGINT and waits (up to [`STOP_TIMEOUT`]) for it to exit; if it does not,
    /// kills it and fails.
    pub fn stop(self) -> Result<TracerOutput> {
        self.signal_and_wait(libc::SIGINT, STOP_TIMEOUT)
    }

    /// Sends `signal` and waits up to `timeout` for it to exit; if it does not, kills it
    /// and fails.
    pub fn signal_and_wait(self, signal: libc::c_int, timeout: Duration) -> Result<TracerOutput> {
        send_signal(self.pid, signal)?;
        let name = match signal {
            libc::SIGINT => "SIGINT".to_owned(),
            libc::SIGTERM => "SIGTERM".to_owned(),
            other => format!("signal {other}"),
        };
        self.finish(timeout, &format!("after {name}"))
    }

    /// Waits up to `timeout` for it to exit on its own; if it does not, kills it and
    /// fails.
    pub fn wait_exit(self, timeout: Duration) -> Result<TracerOutput> {
        self.finish(timeout, "on its own")
    }

    fn finish(mut self, timeout: Duration, how: &str) -> Result<TracerOutput> {
        let mut child = self.child.take().expect("only finish() takes the child");
        let Some(status) = wait_timeout(&mut child, timeout)? else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(format!(
                "the tracer did not exit within {timeout:?} {how}, so it was killed\n\
                 --- tracer stderr ---\n{}",
                self.stderr()
            )));
        };
        // The pipes close when the process exits; the reader threads may lag a little.
        self.stdout.wait_closed(PIPE_CLOSE_TIMEOUT);
        self.stderr.wait_closed(PIPE_CLOSE_TIMEOUT);
        Ok(TracerOutput {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a log line says the tracer attached to `pid`: it contains the word
/// `attached` and `pid=<pid>` (as whole words: `pid=12` does not match `pid=123`).
pub fn is_attached_line(line: &str, pid: u32) -> bool {
    contains_word(line, "attached") && contains_word(line, &format!("pid={pid}"))
}

/// Whether `needle` occurs in `text` with no letter, digit or `_` right before or after.
fn contains_word(text: &str, needle: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(needle).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + needle.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// What an exited tracer printed, and how it ended.
#[derive(Debug)]
pub struct TracerOutput {
    /// How it exited.
    pub status: ExitStatus,
    /// All of stdout: spans.
    pub stdout: String,
    /// All of stderr: logs, errors, the summary.
    pub stderr: String,
}

impl TracerOutput {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The spans on stdout, one JSON object per line; any other line is an error.
    pub fn spans(&self) -> Result<Vec<Span>> {
        Span::parse_lines(&self.stdout)
            .map_err(|e| Error::new(format!("{e}\n--- tracer stderr ---\n{}", self.stderr)))
    }

    /// The summary printed at exit: the last stderr line with `spans_exported=`.
    pub fn summary(&self) -> Option<Summary> {
        self.stderr
            .lines()
            .rev()
            .find(|line| line.contains("spans_exported="))
            .map(Summary::parse)
    }

    /// The first stderr line starting with `error:` (the one-line runtime error).
    pub fn error_line(&self) -> Option<&str> {
        self.stderr.lines().find(|line| line.starts_with("error:"))
    }
}

impl fmt::Display for TracerOutput {
    /// Everything, for assertion messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tracer {}\n--- tracer stdout ---\n{}--- tracer stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The tracer's closing summary, e.g.
/// `summary: spans_exported=12 dropped=0 (ringbuf_full=0 unmatched_end=0)`: every
/// `key=number` in the line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The whole line.
    pub line: String,
    counters: BTreeMap<String, u64>,
}

impl Summary {
    /// Reads the `key=number` pairs of a summary line.
    pub fn parse(line: &str) -> Self {
        let counters = line
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
            .filter_map(|word| {
                let (key, value) = word.split_once('=')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self {
            line: line.to_owned(),
            counters,
        }
    }

    /// The counter `key`, e.g. `"dropped"`.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.counters.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_line_needs_the_word_and_the_exact_pid() {
        assert!(is_attached_line(
            "INFO attached 14 probes pid=123 exe=/srv/x",
            123
        ));
        assert!(is_attached_line("[tracer] attached (pid=123)", 123));
        assert!(!is_attached_line("attached pid=1234", 123));
        assert!(!is_attached_line("attached ppid=123", 123));
        assert!(!is_attached_line("probe unattached pid=123", 123));
        assert!(!is_attached_line("attaching pid=123", 123));
    }

    #[test]
    fn summary_reads_every_counter() {
        let summary = Summary::parse(
            "summary: spans_exported=12 dropped=0 (ringbuf_full=0, unmatched_end=3)",
        );
        assert_eq!(summary.get("spans_exported"), Some(12));
        assert_eq!(summary.get("dropped"), Some(0));
        assert_eq!(summary.get("ringbuf_full"), Some(0));
        assert_eq!(summary.get("unmatched_end"), Some(3));
        assert_eq!(summary.get("missing"), None);
    }
}
