//! Facts about a running process from `/proc`: whether it exists (and is still the same
//! process), its executable, and its environment.
use std::path::PathBuf;

/// Errors looking at a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    #[error(
        "cannot read the executable of pid {pid} (needs CAP_SYS_PTRACE for other users' processes)"
    )]
    Exe {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// A running process, identified by pid and start time (pids are reused).
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
    /// The executable's path as the process sees it.
    pub exe: PathBuf,
    /// Where the executable can be opened (see [`Process::exe_handle`]).
    handle: PathBuf,
}

/// A file, by device and inode: what uprobes are attached to, whatever path leads there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The file at `path` (symbolic links, `/proc/PID/exe` included, are followed).
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl Process {
    /// Looks up a live process.
    pub fn open(pid: u32) -> Result<Self, ProcessError> {
        let (state, start_ticks) = stat(pid).ok_or(ProcessError::NoSuchProcess(pid))?;
        if matches!(state, 'Z' | 'X') {
            return Err(ProcessError::NoSuchProcess(pid));
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_err(|source| ProcessError::Exe { pid, source })?;
        Ok(Self {
            pid,
            start_ticks,
            exe,
            handle: PathBuf::from(format!("/proc/{pid}/exe")),
        })
    }

    /// A process the tracer started that has not run `exe` yet (it waits to): named by
    /// the program it is about to run.
    pub fn launched(pid: u32, exe: PathBuf) -> Result<Self, ProcessError> {
        let (_, start_ticks) = stat(pid).ok_or(ProcessError::NoSuchProcess(pid))?;
        Ok(Self {
            pid,
            start_ticks,
            handle: exe.clone(),
            exe,
        })
    }

    /// A path through which the executable can be opened, even from another mount
    /// namespace or after the file was replaced on disk (`/proc/PID/exe`).
    pub fn exe_handle(&self) -> PathBuf {
        self.handle.clone()
    }

    /// The file the process runs.
    pub fn file(&self) -> std::io::Result<FileId> {
        FileId::of(&self.handle)
    }

    /// True while the process runs (not exited, not a zombie, pid not reused).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start_ticks && !matches!(state, 'Z' | 'X'))
    }

    /// The value of `name` in the process's initial environment.
    pub fn env(&self, name: &str) -> Option<String> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.pid)).ok()?;
        environ.split(|&b| b == 0).find_map(|entry| {
            let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            String::from_utf8(value.to_vec()).ok()
        })
    }
}

/// State character and start time of `pid`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Where the cgroup v2 hierarchy is mounted (e.g. `/sys/fs/cgroup`), from this process's
/// mount table.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2")
            .then(|| before.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The cgroup v2 directory of process `pid` (`0::PATH` of `/proc/PID/cgroup` under the
/// cgroup v2 mount).
pub fn cgroup2_dir(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    let dir = cgroup2_mount()?.join(path.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = Process::open(std::process::id()).expect("own process");
        assert!(me.is_alive());
        assert_eq!(me.exe, std::env::current_exe().expect("current exe"));
        assert!(me.env("PATH").is_some());
    }

    #[test]
    fn missing_process() {
        assert!(matches!(
            Process::open(u32::MAX - 1),
            Err(ProcessError::NoSuchProcess(_))
        ));
    }
}
