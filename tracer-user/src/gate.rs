//! Holding back the start of a program whose file is losing its probes.
//!
//! A binary rewritten in place loses its probes as soon as the tracer sees the first write
//! ([`crate::targets`]), but the kernel removes uprobes one after the other, with a grace
//! period each (about 0.1 s). A process that starts running the new content meanwhile
//! would meet the old build's breakpoints at the old offsets, and run the old build's
//! instructions there. While a file's probes are being removed, the gate marks it with
//! fanotify for `FAN_OPEN_EXEC_PERM`: the kernel then asks the tracer before an `execve`
//! of the file goes on, and the tracer answers once the last probe is gone (with
//! `--binary`, once the new probes are live: the process is traced from its first
//! instruction). It only ever allows (a denied exec would fail the program's start), and
//! never holds a start longer than [`HOLD_LIMIT`]. When the tracer ends, the kernel lets
//! every held start go on.
//!
//! fanotify: <https://man7.org/linux/man-pages/man7/fanotify.7.html>.
use std::{
    collections::HashMap,
    fs::File,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use crate::{process::FileId, watch::read_ready};

/// The longest a start is held: a removal that takes longer (the tracer stopped by a
/// signal, a kernel far slower than expected) must not hang the program that waits.
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// Room for this many events per read.
const EVENTS_PER_READ: usize = 64;

/// About how many starts are held at once (each holds a descriptor; one read more may
/// pass it): the later ones are left in the kernel's queue, where they wait alike, and
/// are read once some go on (a descriptor the kernel cannot open for an event would make
/// it deny the start).
const MAX_HELD: usize = 256;

/// The size of `struct fanotify_event_metadata` (version 3).
const EVENT_HEADER: usize = 24;

/// Errors starting the gate.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot start fanotify (a kernel without CONFIG_FANOTIFY_ACCESS_PERMISSIONS?)")]
    Init(#[source] std::io::Error),
}

/// A start held back: the kernel waits for the answer on `fd`.
#[derive(Debug)]
struct Held {
    fd: OwnedFd,
    file: FileId,
    pid: i32,
    since: Instant,
}

/// A start that went on after being held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub file: FileId,
    pub pid: i32,
    pub waited: Duration,
}

/// The fanotify group, the files closed to starts, and the starts held.
pub struct Gate {
    fanotify: OwnedFd,
    /// The files whose starts are held, each with its open file (the mark's object).
    closed: HashMap<FileId, std::sync::Arc<File>>,
    held: Vec<Held>,
    buffer: Vec<u8>,
}

impl Gate {
    pub fn new() -> Result<Self, GateError> {
        // SAFETY: fanotify_init takes flags only; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(GateError::Init(std::io::Error::last_os_error()));
        }
        Ok(Self {
            // SAFETY: `fd` was just returned by the kernel and is owned here only.
            fanotify: unsafe { OwnedFd::from_raw_fd(fd) },
            closed: HashMap::new(),
            held: Vec::new(),
            buffer: vec![0_u8; EVENTS_PER_READ * EVENT_HEADER],
        })
    }

    /// The descriptor that becomes readable when a start asks to go on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fanotify.as_fd()
    }

    /// Holds every start of `file` (open as `exe`) from now until [`Gate::open`].
    pub fn close(&mut self, file: FileId, exe: std::sync::Arc<File>) -> std::io::Result<()> {
        self.mark(libc::FAN_MARK_ADD, &exe)?;
        self.closed.insert(file, exe);
        Ok(())
    }

    /// Lets the held starts of `file` go on, and the later ones pass; returns the ones
    /// held.
    pub fn open(&mut self, file: FileId) -> Vec<Released> {
        if let Some(exe) = self.closed.remove(&file) {
            // A mark the kernel dropped already (the file is gone) fails: nothing to undo.
            let _ = self.mark(libc::FAN_MARK_REMOVE, &exe);
        }
        self.release(|held| held.file == file)
    }

    /// Takes the starts that ask to go on: those of a closed file are held, any other goes
    /// on at once. Lets go those held for [`HOLD_LIMIT`]; returns them.
    pub fn poll(&mut self) -> Vec<Released> {
        let mut asked = Vec::new();
        let room = MAX_HELD.saturating_sub(self.held.len());
        read_ready(self.fanotify.as_fd(), &mut self.buffer, |read| {
            asked.extend(parse(read));
            asked.len() + EVENTS_PER_READ <= room
        });
        for (fd, pid) in asked {
            // SAFETY: the kernel opened this descriptor for this process with the event;
            // it is owned here from now on.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            match file_of(fd.as_fd()).filter(|file| self.closed.contains_key(file)) {
                Some(file) => self.held.push(Held {
                    fd,
                    file,
                    pid,
                    since: Instant::now(),
                }),
                None => respond(self.fanotify.as_fd(), fd.as_fd()),
            }
        }
        self.release(|held| held.since.elapsed() >= HOLD_LIMIT)
    }

    /// Lets the held starts `which` picks go on; returns them.
    fn release(&mut self, which: impl Fn(&Held) -> bool) -> Vec<Released> {
        let group = self.fanotify.as_fd();
        self.held
            .extract_if(.., |held| which(held))
            .map(|held| {
                respond(group, held.fd.as_fd());
                Released {
                    file: held.file,
                    pid: held.pid,
                    waited: held.since.elapsed(),
                }
            })
            .collect()
    }

    fn mark(&self, action: libc::c_uint, exe: &File) -> std::io::Result<()> {
        // SAFETY: valid descriptors; a null path marks the object `exe` refers to.
        let result = unsafe {
            libc::fanotify_mark(
                self.fanotify.as_raw_fd(),
                action,
                libc::FAN_OPEN_EXEC_PERM,
                exe.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if result < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The file `fd` refers to.
fn file_of(fd: BorrowedFd<'_>) -> Option<FileId> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid descriptor and room for a `struct stat`, filled on success.
    if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it wrote the whole struct.
    let stat = unsafe { stat.assume_init() };
    Some(FileId {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// Tells `group` to let the start that opened `fd` go on (the descriptor is closed by its
/// owner after).
fn respond(group: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let response = libc::fanotify_response {
        fd: fd.as_raw_fd(),
        response: libc::FAN_ALLOW,
    };
    // SAFETY: the response struct is valid for reads of its size for the whole call. A
    // failed write leaves the start to the kernel, which lets it go on when the group
    // closes.
    unsafe {
        libc::write(
            group.as_raw_fd(),
            (&raw const response).cast(),
            std::mem::size_of::<libc::fanotify_response>(),
        )
    };
}

/// The events in `bytes`, as read from a fanotify descriptor: `(fd, pid)` of each event
/// that carries a descriptor (the queue overflow's does not). A truncated event ends the
/// list.
fn parse(bytes: &[u8]) -> Vec<(i32, i32)> {
    // struct fanotify_event_metadata { __u32 event_len; __u8 vers; __u8 reserved;
    // __u16 metadata_len; __aligned_u64 mask; __s32 fd; __s32 pid; }
    let mut events = Vec::new();
    let mut rest = bytes;
    while let Some(event) = rest.get(..EVENT_HEADER) {
        let field = |at: usize| -> [u8; 4] { event[at..at + 4].try_into().expect("four bytes") };
        let len = u32::from_ne_bytes(field(0)) as usize;
        let fd = i32::from_ne_bytes(field(16));
        let pid = i32::from_ne_bytes(field(20));
        if len < EVENT_HEADER {
            break;
        }
        // Only exec permission is asked for (the mask at 8..16); any event with a
        // descriptor is answered (and the descriptor closed) alike.
        if fd >= 0 {
            events.push((fd, pid));
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(mask: u64, fd: i32, pid: i32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(EVENT_HEADER as u32).to_ne_bytes());
        bytes.push(libc::FANOTIFY_METADATA_VERSION);
        bytes.push(0);
        bytes.extend_from_slice(&(EVENT_HEADER as u16).to_ne_bytes());
        bytes.extend_from_slice(&mask.to_ne_bytes());
        bytes.extend_from_slice(&fd.to_ne_bytes());
        bytes.extend_from_slice(&pid.to_ne_bytes());
        bytes
    }

    #[test]
    fn parses_exec_permission_events() {
        assert_eq!(
            std::mem::size_of::<libc::fanotify_event_metadata>(),
            EVENT_HEADER,
            "the header parse() reads"
        );
        let mut bytes = event(libc::FAN_OPEN_EXEC_PERM, 7, 4242);
        // An overflow carries no descriptor.
        bytes.extend(event(libc::FAN_Q_OVERFLOW, -1, 0));
        bytes.extend(event(libc::FAN_OPEN_EXEC_PERM, 9, 4343));
        // A truncated event is ignored.
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&bytes), vec![(7, 4242), (9, 4343)]);
    }
}
