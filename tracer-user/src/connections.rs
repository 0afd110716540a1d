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
    collections::{HashMap, HashSet},
    fs,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    os::unix::fs::MetadataExt as _,
    time::{Duration, Instant},
};

use crate::loader::{AddSocket, Loader};

/// How often the kernel's count of watched ports is read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many more looks a process and port get while a connection to it is still being
/// opened (its `connect()` began before the port was watched, so `sock_ops` will not add
/// it): 2 s.
const RETRIES: u32 = 40;

/// TCP states as `/proc/net/tcp` writes them (the `st` column, `enum` in the kernel's
/// `include/net/tcp_states.h`:
/// <https://github.com/torvalds/linux/blob/v6.18/include/net/tcp_states.h>).
const ESTABLISHED: &str = "01";
const SYN_SENT: &str = "02";

/// The watched ports already looked at, and when the kernel's count was last read.
#[derive(Debug)]
pub struct Preexisting {
    /// The kernel's count of watched ports at the last look.
    added: u64,
    /// The watched `(pid, port)` pairs already looked at (the kernel's map is an LRU map:
    /// a pair that leaves it and comes back is looked at again).
    seen: HashSet<(u32, u16)>,
    /// Pairs with a connection still being opened at the last look: looked at again,
    /// each at most [`RETRIES`] more times.
    unsettled: HashMap<(u32, u16), u32>,
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
            unsettled: HashMap::new(),
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
        if added == self.added && self.unsettled.is_empty() {
            return;
        }
        let Ok(watched) = loader.watched_ports() else {
            return;
        };
        // Read before the ports are looked at: a port added meanwhile is seen next time.
        self.added = added;
        let watched: HashSet<(u32, u16)> = watched.into_iter().collect();
        let mut by_pid: HashMap<u32, Vec<u16>> = HashMap::new();
        for &(pid, port) in watched.difference(&self.seen) {
            by_pid.entry(pid).or_default().push(port);
        }
        let mut unsettled = HashMap::new();
        for (pid, ports) in by_pid {
            let found = match take_in(loader, pid, &ports) {
                Ok(found) => found,
                Err(error) => {
                    if !self.warned {
                        self.warned = true;
                        log::warn!(
                            "pid {pid}: connections opened before the tracer watched them carry no traceparent: {:#}",
                            anyhow::Error::new(error)
                        );
                    }
                    continue;
                }
            };
            for (port, count) in found.taken {
                log::info!(
                    "pid {pid}: {count} connection(s) to port {port} opened before it was watched now carry traceparent"
                );
            }
            for port in found.connecting {
                let tries = self.unsettled.get(&(pid, port)).copied().unwrap_or(0);
                if tries < RETRIES {
                    unsettled.insert((pid, port), tries + 1);
                }
            }
        }
        self.seen = watched
            .into_iter()
            .filter(|pair| !unsettled.contains_key(pair))
            .collect();
        self.unsettled = unsettled;
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
    #[error(
        "pidfd_getfd was refused: the tracer has no ptrace access to the process (CAP_SYS_PTRACE; Yama's ptrace_scope)"
    )]
    NoPtraceAccess(#[source] std::io::Error),
    #[error("pidfd_getfd failed")]
    GetFd(#[source] std::io::Error),
}

/// What [`take_in`] found of a process's connections to the ports it was given.
#[derive(Debug, Default)]
struct Found {
    /// Per port, how many connections joined the socket map (ports with none left out).
    taken: Vec<(u16, usize)>,
    /// Ports with a connection still being opened.
    connecting: Vec<u16>,
}

/// Adds `pid`'s established TCP connections to `ports` to the socket map.
fn take_in(loader: &mut Loader, pid: u32, ports: &[u16]) -> Result<Found, TakeInError> {
    let mut tables = String::new();
    for table in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        match fs::read_to_string(&path) {
            Ok(text) => tables.push_str(&text),
            // No IPv6 in the kernel or namespace; or the process is gone.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TakeInError::Proc { path, source }),
        }
    }
    let mut found = Found::default();
    let mut inodes = HashMap::new();
    for &port in ports {
        let sockets = connections_to(&tables, port);
        if sockets.connecting {
            found.connecting.push(port);
        }
        inodes.extend(sockets.established.into_iter().map(|inode| (inode, port)));
    }
    if inodes.is_empty() {
        return Ok(found);
    }
    let fds = socket_fds(pid, &inodes)?;
    if fds.is_empty() {
        return Ok(found);
    }
    let process = match pidfd_open(pid) {
        Ok(process) => process,
        // Gone meanwhile.
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Ok(found),
        Err(error) => return Err(TakeInError::PidFd(error)),
    };
    let mut taken: HashMap<u16, usize> = HashMap::new();
    for (fd, inode) in fds {
        let socket = match pidfd_getfd(&process, fd) {
            Ok(socket) => socket,
            // Closed meanwhile.
            Err(error) if error.raw_os_error() == Some(libc::EBADF) => continue,
            // The process is exiting or gone.
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => break,
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                return Err(TakeInError::NoPtraceAccess(error));
            }
            Err(error) => return Err(TakeInError::GetFd(error)),
        };
        // The number may have been reused for another file meanwhile.
        let same = fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .is_ok_and(|meta| meta.ino() == inode);
        let Ok(cookie) = socket_cookie(&socket) else {
            continue;
        };
        // Not counted: one `sock_ops` added (opened after the watch), or one closed
        // meanwhile (the map refuses it).
        if same && loader.watch_socket(cookie, socket.as_fd()) == AddSocket::Added {
            *taken.entry(inodes[&inode]).or_default() += 1;
        }
    }
    found.taken = taken.into_iter().collect();
    found.taken.sort_unstable();
    Ok(found)
}

/// A process's connections to one remote port.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sockets {
    /// The inodes of the established ones.
    established: Vec<u64>,
    /// Whether one is being opened (`SYN_SENT`).
    connecting: bool,
}

/// The connections to remote port `port` in `tables`, `/proc/net/tcp` and
/// `/proc/net/tcp6` listings (`tcp4_seq_show` and `tcp6_seq_show` in the kernel's
/// `net/ipv4/tcp_ipv4.c` and `net/ipv6/tcp_ipv6.c`): header lines, then per socket `sl`,
/// `local_address`, `rem_address` (`ADDR:PORT`, the port in hex), `st`, ..., `inode`
/// (the 10th column).
fn connections_to(tables: &str, port: u16) -> Sockets {
    let mut sockets = Sockets::default();
    for line in tables.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let Some(remote_port) = columns
            .get(2)
            .and_then(|remote| remote.rsplit_once(':'))
            .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        else {
            continue;
        };
        if remote_port != port {
            continue;
        }
        match columns.get(3).copied() {
            Some(ESTABLISHED) => {
                if let Some(inode) = columns.get(9).and_then(|i| i.parse().ok())
                    && inode != 0
                {
                    sockets.established.push(inode);
                }
            }
            Some(SYN_SENT) => sockets.connecting = true,
            _ => {}
        }
    }
    sockets
}

/// The socket inode a `/proc/PID/fd` link names (`socket:[INODE]`).
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `pid`'s descriptors of the sockets `inodes`: `(fd, inode)`.
fn socket_fds(pid: u32, inodes: &HashMap<u64, u16>) -> Result<Vec<(i32, u64)>, TakeInError> {
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
            && inodes.contains_key(&inode)
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

/// The socket's cookie (`SO_COOKIE`): the key `sock_ops` uses in the socket map; both
/// are the kernel's `sock_gen_cookie` of the socket (`net/core/sock_diag.c`,
/// `sk_getsockopt` in `net/core/sock.c`).
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
   5: 0100007F:A3E8 0100007F:1F91 02 00000000:00000000 01:00000100 00000000     0        0 41873 1 0000000000000000 100 0 0 10 -1
";

    fn established(inodes: &[u64], connecting: bool) -> Sockets {
        Sockets {
            established: inodes.to_vec(),
            connecting,
        }
    }

    #[test]
    fn established_connections_to_the_port_are_found_and_ones_being_opened_noted() {
        // 0x1F90 = 8080: the first line; not the one in TIME_WAIT (06, inode 0), not the
        // server's side (local 8080), not another port, not the listener.
        assert_eq!(connections_to(TCP, 8080), established(&[41870], false));
        // 0x1F91: one established, one in SYN_SENT (02).
        assert_eq!(connections_to(TCP, 8081), established(&[41872], true));
        assert_eq!(connections_to(TCP, 80), established(&[], false));
    }

    #[test]
    fn ipv6_tables_and_short_or_bad_lines_are_read_safely() {
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:B0E2 0000000000000000FFFF00000100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 5150 1 0000000000000000 20 4 30 10 -1
   1: garbage
   2: 0:1 0:zz 01 a b c d e 7
   3: 0:1 0:50 01
";
        assert_eq!(connections_to(tcp6, 80), established(&[5150], false));
        assert_eq!(connections_to("", 80), established(&[], false));
    }

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode("socket:[41870]"), Some(41870));
        assert_eq!(socket_inode("pipe:[41870]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
