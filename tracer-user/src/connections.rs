//! Connections a traced process opened before their port was watched.
//!
//! `sock_ops` adds a connection to the socket map when it is opened to a watched port
//! (one a plain `http` call of the process went to: the client start probe notes it).
//! Connections opened before that, most often before the tracer attached (the idle
//! connections of a transport's pool), never pass `sock_ops` again, so their requests
//! would go out without `traceparent` for as long as they stay open. When the kernel says
//! that ports were added (a counter), [`Preexisting::poll`] looks up each new process and
//! port in `/proc/PID/net/tcp{,6}` (the process's network namespace) and
//! `/proc/PID/fd`, takes a copy of each such socket (`pidfd_getfd`), adds it to the
//! socket map and closes the copy: the process's own descriptor is untouched, and the
//! connection is closed when the process closes it, as before.
use std::{
    collections::HashSet,
    fs,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    os::unix::fs::MetadataExt as _,
    time::{Duration, Instant},
};

use crate::loader::Loader;

/// How often the kernel's count of watched ports is read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// `TCP_ESTABLISHED` as `/proc/net/tcp` writes it (the `st` column).
const ESTABLISHED: &str = "01";

/// The watched ports already looked at, and when the kernel's count was last read.
#[derive(Debug)]
pub struct Preexisting {
    /// The kernel's count of watched ports at the last look.
    added: u64,
    /// The watched `(pid, port)` pairs already looked at (the kernel's map is an LRU map:
    /// a pair that leaves it and comes back is looked at again).
    seen: HashSet<(u32, u16)>,
    polled: Instant,
    /// Whether a failure to take sockets in was logged (once per run).
    warned: bool,
}

impl Default for Preexisting {
    fn default() -> Self {
        Self::new()
    }
}

impl Preexisting {
    pub fn new() -> Self {
        Self {
            added: 0,
            seen: HashSet::new(),
            polled: Instant::now(),
            warned: false,
        }
    }

    /// Takes in the connections to ports watched since the last look, at most every
    /// [`POLL_INTERVAL`].
    pub fn poll(&mut self, loader: &mut Loader) {
        if self.polled.elapsed() < POLL_INTERVAL {
            return;
        }
        self.polled = Instant::now();
        let Ok(added) = loader.ports_watched() else {
            return;
        };
        if added == self.added {
            return;
        }
        let Ok(watched) = loader.watched_ports() else {
            return;
        };
        // Read before the ports are looked at: a port added meanwhile is seen next time.
        self.added = added;
        let watched: HashSet<(u32, u16)> = watched.into_iter().collect();
        for &(pid, port) in watched.difference(&self.seen) {
            match take_in(loader, pid, port) {
                Ok(0) => {}
                Ok(count) => log::info!(
                    "pid {pid}: {count} connection(s) to port {port} opened before it was watched now carry traceparent"
                ),
                Err(error) if !self.warned => {
                    self.warned = true;
                    log::warn!(
                        "pid {pid}: connections to port {port} opened before the tracer attached carry no traceparent: {error}"
                    );
                }
                Err(_) => {}
            }
        }
        self.seen = watched;
    }
}

/// Why the connections of a process could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum TakeInError {
    #[error("cannot read {path}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pidfd_open failed")]
    PidFd(#[source] std::io::Error),
    #[error("pidfd_getfd failed (it needs ptrace access to the process)")]
    GetFd(#[source] std::io::Error),
    #[error("cannot read the socket's cookie")]
    Cookie(#[source] std::io::Error),
    #[error(transparent)]
    Map(#[from] crate::loader::LoadError),
}

/// Adds `pid`'s established TCP connections to `port` to the socket map; how many.
fn take_in(loader: &mut Loader, pid: u32, port: u16) -> Result<usize, TakeInError> {
    let mut inodes = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        match fs::read_to_string(&path) {
            Ok(text) => inodes.extend(established_to(&text, port)),
            // No IPv6 in the kernel or namespace; or the process is gone.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TakeInError::Proc { path, source }),
        }
    }
    if inodes.is_empty() {
        return Ok(0);
    }
    let fds = socket_fds(pid, &inodes)?;
    if fds.is_empty() {
        return Ok(0);
    }
    let process = match pidfd_open(pid) {
        Ok(process) => process,
        // Gone meanwhile.
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Ok(0),
        Err(error) => return Err(TakeInError::PidFd(error)),
    };
    let mut count = 0;
    for (fd, inode) in fds {
        let socket = match pidfd_getfd(&process, fd) {
            Ok(socket) => socket,
            // Closed meanwhile.
            Err(error) if error.raw_os_error() == Some(libc::EBADF) => continue,
            Err(error) => return Err(TakeInError::GetFd(error)),
        };
        // The number may have been reused for another file meanwhile.
        let same = fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .is_ok_and(|meta| meta.ino() == inode);
        if !same {
            continue;
        }
        let cookie = socket_cookie(&socket).map_err(TakeInError::Cookie)?;
        // A connection closed meanwhile is refused by the map: nothing to take in.
        if loader.watch_socket(cookie, socket.as_fd()).is_ok() {
            count += 1;
        }
    }
    Ok(count)
}

/// The inodes of the established connections to remote port `port` in `table`, a
/// `/proc/net/tcp` or `/proc/net/tcp6` listing: a header line, then per socket `sl`,
/// `local_address`, `rem_address` (`ADDR:PORT`, the port in hex), `st`, ..., `inode`
/// (the 10th column).
pub fn established_to(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let (_, remote_port) = columns.get(2)?.rsplit_once(':')?;
            let remote_port = u16::from_str_radix(remote_port, 16).ok()?;
            if remote_port != port || *columns.get(3)? != ESTABLISHED {
                return None;
            }
            columns.get(9)?.parse().ok().filter(|&inode| inode != 0)
        })
        .collect()
}

/// The socket inode a `/proc/PID/fd` link names (`socket:[INODE]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `pid`'s descriptors of the sockets `inodes`: `(fd, inode)`.
fn socket_fds(pid: u32, inodes: &HashSet<u64>) -> Result<Vec<(i32, u64)>, TakeInError> {
    let dir = format!("/proc/{pid}/fd");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Gone meanwhile.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TakeInError::Proc { path: dir, source }),
    };
    let mut fds = Vec::new();
    for entry in entries.flatten() {
        let Ok(link) = fs::read_link(entry.path()) else {
            continue;
        };
        let inode = link.to_str().and_then(socket_inode);
        let fd = entry.file_name().to_str().and_then(|n| n.parse().ok());
        if let (Some(inode), Some(fd)) = (inode, fd)
            && inodes.contains(&inode)
        {
            fds.push((fd, inode));
        }
    }
    Ok(fds)
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: the system call takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A copy, in the tracer, of the process's descriptor `fd`.
fn pidfd_getfd(process: &OwnedFd, fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: the system call takes a pidfd, a descriptor number in that process and
    // flags, and returns a new descriptor in this one.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, process.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as i32) })
}

/// The socket's cookie (`SO_COOKIE`): the key `sock_ops` uses in the socket map.
fn socket_cookie(socket: &OwnedFd) -> std::io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A3E2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 41870 1 0000000000000000 20 4 30 10 -1
   1: 0100007F:A3E4 0100007F:1F90 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000
   2: 0100007F:1F90 0100007F:A3E2 01 00000000:00000000 00:00000000 00000000     0        0 41871 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:A3E6 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 41872 1 0000000000000000 20 4 30 10 -1
   4: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41000 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn only_established_connections_to_the_port_are_found() {
        // 0x1F90 = 8080: the first line; not the one in TIME_WAIT (06, inode 0), not the
        // server's side (local 8080), not another port, not the listener.
        assert_eq!(established_to(TCP, 8080), vec![41870]);
        assert_eq!(established_to(TCP, 8081), vec![41872]);
        assert_eq!(established_to(TCP, 80), Vec::<u64>::new());
    }

    #[test]
    fn ipv6_tables_and_short_or_bad_lines_are_read_safely() {
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:B0E2 0000000000000000FFFF00000100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 5150 1 0000000000000000 20 4 30 10 -1
   1: garbage
   2: 0:1 0:zz 01 a b c d e 7
";
        assert_eq!(established_to(tcp6, 80), vec![5150]);
        assert_eq!(established_to("", 80), Vec::<u64>::new());
    }

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode("socket:[41870]"), Some(41870));
        assert_eq!(socket_inode("pipe:[41870]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
