//! Watching the traced binaries on disk (`--binary`, `--all`): a uprobe lives in a file
//! at an offset, and the kernel copies the instruction there once. A file rewritten in
//! place (same inode) would get breakpoints at the old offsets in every new process, with
//! the old instructions run in their stead; so every shared binary's file is watched with
//! inotify, and each change is reported to [`crate::targets`], which removes its probes.
//!
//! inotify: <https://man7.org/linux/man-pages/man7/inotify.7.html>.
use std::{
    collections::HashMap,
    ffi::CString,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::Path,
};

use crate::process::FileId;

/// What is watched: writes (`IN_MODIFY`), attribute changes (`IN_ATTRIB`: times, mode,
/// links), the end of a write (`IN_CLOSE_WRITE`), and the file leaving its path.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// Room for this many events of files without names (the size of `inotify_event`) per
/// read.
const EVENTS_PER_READ: usize = 256;

/// A file's identity and the marks a change leaves on it: a write changes its size or
/// its modification time, and any change its status change time (`ctime`), which no
/// caller can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub file: FileId,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The file at `path` (symbolic links, `/proc/PID/exe` included, are followed).
    pub fn of(path: &Path) -> std::io::Result<Self> {
        Ok(Self::from_metadata(&std::fs::metadata(path)?))
    }

    /// The open file `file`.
    pub fn of_file(file: &std::fs::File) -> std::io::Result<Self> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn from_metadata(meta: &std::fs::Metadata) -> Self {
        Self {
            file: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What happened to a watched file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It was written to (its content is not what was inspected any more).
    Modified,
    /// Its attributes changed (times, mode, links): a change if its [`Stamp`] did.
    Attributes,
    /// A writer closed it: writing may be over.
    WriteClosed,
    /// It was deleted or moved: its path may name another file now.
    Moved,
}

/// One report of the watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// `Change` happened to `FileId`.
    File(FileId, Change),
    /// The kernel's queue overflowed: changes may have been lost, every file is to be
    /// looked at again.
    Overflow,
}

/// Errors watching a file.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start inotify")]
    Init(#[source] std::io::Error),
    #[error("cannot watch {path}")]
    Add {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The watched files, each by its inotify watch descriptor.
pub struct Watcher {
    inotify: OwnedFd,
    files: HashMap<i32, FileId>,
    watches: HashMap<FileId, i32>,
    /// Where events are read to, kept: the main loop asks for reports every drain.
    buffer: Vec<u8>,
}

impl Watcher {
    pub fn new() -> Result<Self, WatchError> {
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(WatchError::Init(std::io::Error::last_os_error()));
        }
        Ok(Self {
            // SAFETY: `fd` was just returned by the kernel and is owned here only.
            inotify: unsafe { OwnedFd::from_raw_fd(fd) },
            files: HashMap::new(),
            watches: HashMap::new(),
            buffer: vec![0_u8; EVENTS_PER_READ * std::mem::size_of::<libc::inotify_event>()],
        })
    }

    /// The descriptor that becomes readable when a report is waiting.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Watches `file`, which `path` leads to (e.g. `/proc/self/fd/N` of the file opened
    /// for inspection: the very inode, whatever path named it).
    pub fn watch(&mut self, file: FileId, path: &Path) -> Result<(), WatchError> {
        let error = |source| WatchError::Add {
            path: path.display().to_string(),
            source,
        };
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| error(std::io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: a valid descriptor and a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.inotify.as_raw_fd(), name.as_ptr(), MASK) };
        if wd < 0 {
            return Err(error(std::io::Error::last_os_error()));
        }
        // One watch per inode: watching it again returns the same descriptor.
        self.files.insert(wd, file);
        self.watches.insert(file, wd);
        Ok(())
    }

    /// Whether `file` is watched.
    pub fn watches(&self, file: FileId) -> bool {
        self.watches.contains_key(&file)
    }

    /// Stops watching `file`.
    pub fn unwatch(&mut self, file: FileId) {
        let Some(wd) = self.watches.remove(&file) else {
            return;
        };
        self.files.remove(&wd);
        // SAFETY: a valid descriptor; a watch the kernel removed already (its file
        // deleted) makes this fail with EINVAL, which changes nothing.
        unsafe { libc::inotify_rm_watch(self.inotify.as_raw_fd(), wd) };
    }

    /// Every report waiting, in order (none when nothing happened).
    pub fn reports(&mut self) -> Vec<Report> {
        let mut reports = Vec::new();
        read_ready(self.inotify.as_fd(), &mut self.buffer, |read| {
            for (wd, mask) in parse(read) {
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    reports.push(Report::Overflow);
                    continue;
                }
                let Some(&file) = self.files.get(&wd) else {
                    continue;
                };
                reports.extend(changes(mask).map(|change| Report::File(file, change)));
                if mask & libc::IN_IGNORED != 0 {
                    // The kernel removed the watch (the file is gone).
                    self.files.remove(&wd);
                    self.watches.remove(&file);
                }
            }
            true
        });
        reports
    }
}

/// Reads the non-blocking descriptor `fd` into `buffer` until nothing more is waiting,
/// handing `each` what every read returned; stops early when `each` says so (false).
pub fn read_ready(fd: BorrowedFd<'_>, buffer: &mut [u8], mut each: impl FnMut(&[u8]) -> bool) {
    loop {
        // SAFETY: the buffer is valid for writes of its length for the whole call.
        let n = unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        // Nothing more (EAGAIN), or an error the next call sees again.
        match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !each(&buffer[..n]) {
                    break;
                }
            }
        }
    }
}

/// The changes an event's `mask` reports, in the order they happen (a truncation is a
/// write and an attribute change at once).
fn changes(mask: u32) -> impl Iterator<Item = Change> {
    [
        (libc::IN_MODIFY, Change::Modified),
        (libc::IN_ATTRIB, Change::Attributes),
        (libc::IN_CLOSE_WRITE, Change::WriteClosed),
        (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF, Change::Moved),
    ]
    .into_iter()
    .filter(move |(bits, _)| mask & bits != 0)
    .map(|(_, change)| change)
}

/// The events in `bytes`, as read from an inotify descriptor: `(wd, mask)` each (a
/// watched file's events have no name; one with a name is skipped over). A truncated
/// event ends the list.
fn parse(bytes: &[u8]) -> Vec<(i32, u32)> {
    // struct inotify_event { int wd; uint32_t mask; uint32_t cookie; uint32_t len;
    // char name[]; }: <https://man7.org/linux/man-pages/man7/inotify.7.html>.
    const HEADER: usize = 16;
    let word = |at: usize| {
        let field: [u8; 4] = bytes[at..at + 4].try_into().expect("four bytes");
        u32::from_ne_bytes(field)
    };
    let mut events = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let wd = word(at) as i32;
        let mask = word(at + 4);
        let len = word(at + 12) as usize;
        events.push((wd, mask));
        at += HEADER + len;
    }
    events
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn event(wd: i32, mask: u32, name: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&wd.to_ne_bytes());
        bytes.extend_from_slice(&mask.to_ne_bytes());
        bytes.extend_from_slice(&0_u32.to_ne_bytes());
        bytes.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(name);
        bytes
    }

    #[test]
    fn parses_events_and_skips_names() {
        assert_eq!(
            std::mem::size_of::<libc::inotify_event>(),
            16,
            "the header parse() reads"
        );
        let mut bytes = event(1, libc::IN_MODIFY, b"");
        bytes.extend(event(2, libc::IN_ATTRIB, b"name\0\0\0\0"));
        bytes.extend(event(3, libc::IN_CLOSE_WRITE, b""));
        // A truncated header is ignored.
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse(&bytes),
            vec![
                (1, libc::IN_MODIFY),
                (2, libc::IN_ATTRIB),
                (3, libc::IN_CLOSE_WRITE)
            ]
        );
    }

    #[test]
    fn a_mask_reports_its_changes_in_order() {
        let all: Vec<Change> =
            changes(libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_IGNORED).collect();
        assert_eq!(all, vec![Change::Modified, Change::Attributes]);
        let moved: Vec<Change> = changes(libc::IN_MOVE_SELF).collect();
        assert_eq!(moved, vec![Change::Moved]);
        assert_eq!(changes(libc::IN_IGNORED).count(), 0);
    }

    #[test]
    fn reports_writes_to_a_file_watched_through_its_descriptor() {
        let dir = std::env::temp_dir().join(format!("tracer-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("file");
        std::fs::write(&path, b"before").expect("write the file");
        let file = std::fs::File::open(&path).expect("open the file");
        let stamp = Stamp::of_file(&file).expect("fstat");
        assert_eq!(Stamp::of(&path).expect("stat"), stamp);
        let mut watcher = Watcher::new().expect("inotify");
        let through = format!("/proc/self/fd/{}", file.as_raw_fd());
        watcher
            .watch(stamp.file, Path::new(&through))
            .expect("watch the file");
        assert!(watcher.watches(stamp.file));
        assert!(watcher.reports().is_empty(), "nothing happened yet");

        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open for writing");
        writer.write_all(b"after!!").expect("write");
        drop(writer);
        let reports = watcher.reports();
        assert_eq!(
            reports,
            vec![
                Report::File(stamp.file, Change::Modified),
                Report::File(stamp.file, Change::WriteClosed)
            ]
        );
        let now = Stamp::of_file(&file).expect("fstat");
        assert_eq!(now.file, stamp.file, "the same inode");
        assert_ne!(now, stamp, "a write changes the stamp");

        watcher.unwatch(stamp.file);
        std::fs::write(&path, b"again").expect("write again");
        assert!(watcher.reports().is_empty(), "no longer watched");
        std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
    }
}
