//! `tracer -- COMMAND`: the command is started paused (forked, waiting before `execve`),
//! its probes are attached for its pid, and only then does it run its program, so its
//! first request is traced. Signals sent to the tracer are passed on to it; the tracer
//! exits with its exit status.
use std::{
    ffi::{CString, OsStr},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicI32, Ordering},
};

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("command {0:?} not found (no such file, or not in PATH)")]
    NotFound(String),
    #[error("command {0:?} contains a NUL byte")]
    Nul(String),
    #[error("cannot start {command}")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// The signals passed on to the command.
const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A started command, paused before its program runs.
pub struct Child {
    pub pid: u32,
    /// The program it runs once released.
    pub program: PathBuf,
    command: String,
    /// Writing a byte releases it.
    go: OwnedFd,
    /// Closed by a successful `execve`; carries its `errno` otherwise.
    exec_error: OwnedFd,
}

/// The program `name` names: itself when it has a `/`, else the first executable file of
/// that name in `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, LaunchError> {
    use std::os::unix::fs::PermissionsExt as _;
    if name.contains('/') {
        let path = PathBuf::from(name);
        return match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(path),
            _ => Err(LaunchError::NotFound(name.to_owned())),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| LaunchError::NotFound(name.to_owned()))
}

fn c_string(text: &OsStr, command: &str) -> Result<CString, LaunchError> {
    CString::new(text.as_bytes()).map_err(|_| LaunchError::Nul(command.to_owned()))
}

fn pipe(command: &str) -> Result<(OwnedFd, OwnedFd), LaunchError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(LaunchError::Start {
            command: command.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The tracer's transparent huge page setting before [`no_huge_pages`]
/// (`PR_GET_THP_DISABLE`: bit 0 off, bit 1 off except where advised): what a command it
/// starts gets back.
static HUGE_PAGES_BEFORE: AtomicI32 = AtomicI32::new(0);

/// `PR_THP_DISABLE_EXCEPT_ADVISED` of the kernel's `include/uapi/linux/prctl.h`.
const THP_DISABLE_EXCEPT_ADVISED: libc::c_ulong = 1 << 1;

/// Turns transparent huge pages off for the tracer (`PR_SET_THP_DISABLE`). With the
/// kernel's `always` mode, each 2 MiB region the allocator touches again after returning
/// it to the system (at once: see `main.rs`) is one fault that clears 2 MiB: measured on
/// the hello-world bench, 11% of the tracer's CPU in `clear_page_erms`, and a peak
/// resident size of 54-59 MiB under load instead of 32-34 MiB. The setting is inherited
/// across `fork` and `execve`: a command the tracer starts gets the one the tracer had.
pub fn no_huge_pages() {
    // SAFETY: plain prctl calls with integer arguments.
    let before = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    if before < 0 {
        return;
    }
    HUGE_PAGES_BEFORE.store(before, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// The `PR_SET_THP_DISABLE` arguments that bring back `before` (see [`no_huge_pages`]).
fn huge_pages_as(before: i32) -> (libc::c_ulong, libc::c_ulong) {
    let flags = before as libc::c_ulong;
    (flags & 1, flags & THP_DISABLE_EXCEPT_ADVISED)
}

/// Starts `argv` paused: a child process of the tracer that runs nothing until
/// [`Child::release`].
pub fn spawn_paused(argv: &[String]) -> Result<Child, LaunchError> {
    let command = argv.join(" ");
    let program = find_program(&argv[0])?;
    let path = c_string(program.as_os_str(), &command)?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| c_string(OsStr::new(a), &command))
        .collect::<Result<_, _>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let (go_read, go_write) = pipe(&command)?;
    let (error_read, error_write) = pipe(&command)?;
    let parent_ends = [go_write.as_raw_fd(), error_read.as_raw_fd()];
    let (huge_pages_off, except_advised) = huge_pages_as(HUGE_PAGES_BEFORE.load(Ordering::Relaxed));
    // SAFETY: the child only makes async-signal-safe calls (read, execv, write, _exit) and
    // prctl (a raw system call, no locks) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(LaunchError::Start {
            command,
            source: std::io::Error::last_os_error(),
        });
    }
    if pid == 0 {
        // SAFETY: see above; every descriptor and pointer is valid in the child.
        unsafe {
            // Only the parent releases it, and only the parent reads the exec error.
            for fd in parent_ends {
                libc::close(fd);
            }
            // Signals the tracer blocks or ignores are the program's business again.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // The program's transparent huge pages as they were before the tracer's.
            libc::prctl(
                libc::PR_SET_THP_DISABLE,
                huge_pages_off,
                except_advised,
                0,
                0,
            );
            let mut byte = 0u8;
            if libc::read(go_read.as_raw_fd(), (&raw mut byte).cast(), 1) != 1 {
                libc::_exit(127);
            }
            libc::execv(path.as_ptr(), arg_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(
                error_write.as_raw_fd(),
                (&raw const errno).cast(),
                size_of::<i32>(),
            );
            libc::_exit(127);
        }
    }
    drop((go_read, error_write));
    Ok(Child {
        pid: pid as u32,
        program,
        command,
        go: go_write,
        exec_error: error_read,
    })
}

impl Child {
    /// Lets the command run its program; fails when `execve` did.
    pub fn release(self) -> Result<Running, LaunchError> {
        let start_error = |source| LaunchError::Start {
            command: self.command.clone(),
            source,
        };
        // SAFETY: one byte from a valid buffer to an owned descriptor.
        if unsafe { libc::write(self.go.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(start_error(std::io::Error::last_os_error()));
        }
        let mut errno = [0u8; 4];
        // SAFETY: reads at most 4 bytes into `errno`.
        let n = unsafe {
            libc::read(
                self.exec_error.as_raw_fd(),
                errno.as_mut_ptr().cast(),
                errno.len(),
            )
        };
        if n == 4 {
            let running = Running { pid: self.pid };
            // Reap the child, which exits 127.
            let _ = running.wait_blocking();
            return Err(start_error(std::io::Error::from_raw_os_error(
                i32::from_ne_bytes(errno),
            )));
        }
        Ok(Running { pid: self.pid })
    }

    /// Ends the paused command (the tracer could not attach).
    pub fn abort(self) {
        drop(self.go);
        let _ = Running { pid: self.pid }.wait_blocking();
    }
}

/// The command, running its program.
pub struct Running {
    pub pid: u32,
}

impl Running {
    /// Its exit status once it has exited (128 + N when signal N ended it), without
    /// waiting.
    pub fn try_wait(&self) -> Option<i32> {
        self.wait(libc::WNOHANG)
    }

    fn wait_blocking(&self) -> Option<i32> {
        self.wait(0)
    }

    fn wait(&self, flags: i32) -> Option<i32> {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(self.pid as i32, &mut status, flags) };
        if rc != self.pid as i32 {
            return None;
        }
        if libc::WIFEXITED(status) {
            Some(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Some(128 + libc::WTERMSIG(status))
        } else {
            None
        }
    }

    /// Passes the signals the tracer receives (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
    /// SIGUSR2) on to the command, from a thread of its own.
    pub fn forward_signals(&self) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
        let pid = self.pid as i32;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    // SAFETY: sends a signal to our child.
                    unsafe { libc::kill(pid, signal) };
                }
            })?;
        Ok(())
    }
}

/// The absolute form of `program` for messages and the resource (as `/proc/PID/exe`
/// would name it once the program runs).
pub fn shown(program: &Path) -> PathBuf {
    std::fs::canonicalize(program).unwrap_or_else(|_| program.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_back_the_huge_page_setting_the_tracer_had() {
        assert_eq!(huge_pages_as(0), (0, 0));
        assert_eq!(huge_pages_as(1), (1, 0));
        assert_eq!(huge_pages_as(3), (1, THP_DISABLE_EXCEPT_ADVISED));
    }
}
