//! The traced processes and their binaries, as they come and go.
//!
//! A binary (a file: device and inode) is inspected once and gets one configuration slot.
//! With `--pid` and `--`, its probes are attached for each traced process; with `--binary`
//! and `--all`, once for every process running the file (uprobes live in the file, so a
//! process started later has them from its first instruction, and processes sharing a
//! binary share its probes: one hit, one span). Processes are learnt from the kernel's
//! exec and exit events ([`tracer_common::process`]), from a scan of `/proc` at start (and
//! after lost events), and from the first span of a process running a traced binary.
//!
//! In the shared scopes every traced binary's file is watched ([`crate::watch`]): one
//! rewritten in place loses its probes at once (the kernel would otherwise put them at
//! the old offsets into every new process of the new content), and is inspected afresh
//! when the writer is done (`--binary`) or when a process runs it next (`--all`).
use std::{
    collections::{HashMap, HashSet},
    fs::File,
    hash::Hasher as _,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    cli::{Config, Facts, Filter},
    container::Placement,
    gate::{Gate, HOLD_LIMIT},
    kube::{self, Kube},
    loader::{AttachedProbe, Detaching, Link, Loader},
    pipeline::resource::{Naming, Resource},
    probes::Hook,
    process::{FileId, Process},
    run::{self, Plan, RunError},
    target::{self, TargetError, gotype::TypeNames},
    watch::{Change, Report, Stamp, Watcher},
};

/// Binaries found not traceable (not Go, no `net/http` server, ...) remembered at most, so
/// that their processes' execs are not inspected again.
const MAX_REJECTED: usize = 4096;

/// How many pod lists may come without a container's pod before the tracer stops
/// waiting for it (a container on the node that Kubernetes does not run).
const POD_LISTS_WAITED: u64 = 3;

/// How often every traced binary's file and every `--binary` path is looked at, for
/// changes inotify did not report (its queue overflowed, a write through a memory
/// mapping, no inotify at all) and for writers that are done without closing.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How processes are attached to.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// One by one (`--pid`, `--`): the probes of each fire for it only.
    Each,
    /// Every process running these paths' files, now and later (`--binary`).
    Paths(Vec<PathBuf>),
    /// Every process of a traceable binary the filter admits (`--all`).
    All(Filter),
}

/// A traced process.
pub struct Target {
    pub process: Process,
    pub resource: Arc<Resource>,
    /// What the errors of failed calls are (`error.type`).
    pub types: TypeNames,
    file: FileId,
    /// Its container (from its cgroup), if it runs in one.
    container_id: Option<String>,
    /// While its pod is not known: the pod list generation the wait began at.
    pod_wait: Option<u64>,
    /// Set when the process exited: it is forgotten after one more drain (its last spans
    /// may still be in the ring buffer).
    exited: bool,
}

/// A traced binary.
struct Binary {
    inspection: target::Inspection,
    plan: Plan,
    slot: u32,
    /// Shared scopes: the probes of every process running the file.
    links: Vec<Link>,
    attached: Vec<AttachedProbe>,
    /// What to call it in messages.
    shown: String,
    /// The executable, open for reading type names (one descriptor for all its processes).
    exe: Option<Arc<File>>,
    /// Shared scopes: the file as inspected, and a digest of its content; a change on
    /// disk removes its probes.
    inspected: Option<(Stamp, u64)>,
}

/// A binary's file, open: read once for inspection, and watched and attached through
/// `/proc/self/fd/N`, the very file read, whatever happens to its path meanwhile.
struct Opened {
    file: Arc<File>,
    stamp: Stamp,
    data: Vec<u8>,
}

impl Opened {
    /// The path through which this process reaches the open file.
    fn handle(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// The probes of a binary changed on disk, being removed.
struct Removal {
    file: FileId,
    /// Its configuration slot, free once no probe carries it.
    slot: u32,
    shown: String,
    since: Instant,
    detaching: Detaching,
}

/// A `--binary` path's file that changed on disk and lost its probes: attached again once
/// the writer is done.
#[derive(Clone, Copy, Debug, Default)]
struct Settling {
    /// A writer closed it since its last write.
    closed: bool,
    /// The file at the last periodic look: unchanged for one interval, it is settled too.
    last: Option<Stamp>,
}

pub struct Targets {
    scope: Scope,
    hooks: Vec<Hook>,
    /// Why injection is off for every process, if it is.
    blocker: Option<String>,
    config: Config,
    binaries: HashMap<FileId, Binary>,
    processes: HashMap<u32, Target>,
    /// Files found not traceable, as they were then (one rewritten in place is looked at
    /// again).
    rejected: HashSet<Stamp>,
    /// Processes of traced binaries that the filter leaves out (`--all`): their spans are
    /// discarded (uprobes fire for every process running a file).
    excluded: HashSet<u32>,
    /// Processes the filter cannot decide on before their pod is known: their spans
    /// are dropped (`filter_undecided`) until it is.
    undecided: HashMap<u32, Undecided>,
    kube: Option<Kube>,
    /// The pod list generation last looked at.
    kube_generation: u64,
    /// The shared binaries' files, watched for changes on disk (`None` with `--pid` and
    /// `--`, or without inotify: then the periodic look only).
    watcher: Option<Watcher>,
    /// The files of `--binary` paths that changed on disk, until attached again.
    settling: HashMap<FileId, Settling>,
    /// The `--binary` paths whose file could not be traced after a change, as it was
    /// then: said once, tried again when the file changes.
    failed: HashMap<PathBuf, Stamp>,
    /// When the files were last looked at.
    checked: Instant,
    /// The probes of binaries changed on disk, being removed: the file is not attached
    /// again before (a uprobe added where one is still registered would share its copy
    /// of the old instruction).
    detaching: Vec<Removal>,
    /// Holds the starts of a binary whose probes are being removed (`None` with `--pid`
    /// and `--`, or without fanotify permission events).
    gate: Option<Gate>,
}

/// A process waiting for its pod's metadata before the filter decides on it.
struct Undecided {
    process: Process,
    file: FileId,
    /// The pod list generation the wait began at.
    since: u64,
}

impl Targets {
    pub fn new(
        scope: Scope,
        hooks: Vec<Hook>,
        blocker: Option<String>,
        config: &Config,
        kube: Option<Kube>,
    ) -> Self {
        // Both only where probes live in files, each said once when it cannot start.
        let shared = scope != Scope::Each;
        let watcher = shared.then(Watcher::new).and_then(|made| {
            started(
                made,
                format_args!(
                    "traced binaries changed on disk are noticed within {CHECK_INTERVAL:?} only"
                ),
            )
        });
        let gate = shared.then(Gate::new).and_then(|made| {
            started(made, format_args!("a program started within a second of a rewrite of its traced binary may meet the old probes"))
        });
        Self {
            scope,
            hooks,
            blocker,
            config: config.clone(),
            binaries: HashMap::new(),
            processes: HashMap::new(),
            rejected: HashSet::new(),
            excluded: HashSet::new(),
            undecided: HashMap::new(),
            kube,
            kube_generation: 0,
            watcher,
            settling: HashMap::new(),
            failed: HashMap::new(),
            checked: Instant::now(),
            detaching: Vec::new(),
            gate,
        }
    }

    /// The descriptors to wait on: readable when a watched file changed, and when a
    /// program asks to start running a binary whose probes are being removed.
    pub fn wake_fds(&self) -> [Option<std::os::fd::BorrowedFd<'_>>; 2] {
        [
            self.watcher.as_ref().map(Watcher::fd),
            self.gate.as_ref().map(Gate::fd),
        ]
    }

    /// Whether `pid` runs a traced binary but the filter waits for its pod's metadata.
    pub fn is_undecided(&self, pid: u32) -> bool {
        self.undecided.contains_key(&pid)
    }

    /// Whether `pid` runs a traced binary but is left out by the filter.
    pub fn is_excluded(&self, pid: u32) -> bool {
        self.excluded.contains(&pid)
    }

    /// True when probes fire for every process running a traced binary.
    fn shared(&self) -> bool {
        self.scope != Scope::Each
    }

    /// The traced process `pid`. In the shared scopes, a process not known yet that runs
    /// a traced binary is taken in (its probes are live: the span came from them).
    pub fn get(&mut self, loader: &mut Loader, pid: u32) -> Option<&mut Target> {
        if !self.processes.contains_key(&pid)
            && self.shared()
            && !self.is_excluded(pid)
            && !self.is_undecided(pid)
        {
            self.discover(loader, pid);
        }
        self.processes.get_mut(&pid)
    }

    /// How many processes are traced now.
    pub fn count(&self) -> usize {
        self.processes.values().filter(|t| !t.exited).count()
    }

    /// Whether every traced process has exited (with at least one traced).
    pub fn all_exited(&self) -> bool {
        self.processes
            .values()
            .all(|t| t.exited || !t.process.is_alive())
    }

    /// Attaches to process `pid` on its own (`--pid`, `--`): any failure is the caller's.
    pub fn add_process(&mut self, loader: &mut Loader, process: Process) -> Result<(), RunError> {
        let file = process.file().map_err(|source| TargetError::Read {
            path: process.exe.display().to_string(),
            source,
        })?;
        if !self.binaries.contains_key(&file) {
            let (shown, data) = run::read_exe(&process)?;
            let binary = self.inspect(loader, &shown, &data, Some(process.pid))?;
            self.binaries.insert(file, binary);
        }
        let binary = self.binaries.get_mut(&file).expect("inserted above");
        let who = format!("pid={} ({})", process.pid, process.exe.display());
        let (attached, _links) = loader.attach(
            &process.exe_handle(),
            Some(process.pid),
            &who,
            &binary.inspection,
            &binary.plan.hooks,
            binary.slot,
        )?;
        binary.attached = attached;
        self.take_in(process, file)
    }

    /// Attaches to the executable at `path` for every process that runs it, now or later
    /// (`--binary`): fails when it cannot be traced. Processes already running it are
    /// taken in by [`Targets::scan`].
    pub fn add_path(&mut self, loader: &mut Loader, path: &Path) -> Result<(), RunError> {
        let shown = path.display().to_string();
        let read = |source| TargetError::Read {
            path: shown.clone(),
            source,
        };
        let file = match FileId::of(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // A path inside containers (other mount namespaces) only.
                log::warn!(
                    "{shown}: no such file here; tracing the processes that run it from their own root (containers)"
                );
                return Ok(());
            }
            Err(error) => return Err(read(error).into()),
        };
        if self.binaries.contains_key(&file) {
            return Ok(());
        }
        let opened = self.open(path, &shown)?;
        // Kept watched when it cannot be traced: a later change is tried again.
        let binary = self.inspect(loader, &shown, &opened.data, None)?;
        self.attach_shared(loader, binary, opened)
    }

    /// Opens the executable at `path` (`shown` in messages), watches it (before reading
    /// it: no write goes unseen) and reads it.
    fn open(&mut self, path: &Path, shown: &str) -> Result<Opened, TargetError> {
        let read = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                TargetError::ReadDenied {
                    path: shown.to_owned(),
                }
            } else {
                TargetError::Read {
                    path: shown.to_owned(),
                    source,
                }
            }
        };
        let file = File::open(path).map_err(read)?;
        let stamp = Stamp::of_file(&file).map_err(read)?;
        let mut opened = Opened {
            file: Arc::new(file),
            stamp,
            data: Vec::new(),
        };
        if let Some(watcher) = &mut self.watcher
            && let Err(error) = watcher.watch(stamp.file, &opened.handle())
        {
            log::warn!(
                "{shown}: a change on disk is noticed within {CHECK_INTERVAL:?} only: {:#}",
                anyhow::Error::new(error)
            );
        }
        let mut data = Vec::with_capacity(usize::try_from(stamp.size()).unwrap_or(0));
        if let Err(error) = std::io::Read::read_to_end(&mut &*opened.file, &mut data) {
            self.unwatch(stamp.file);
            return Err(read(error));
        }
        opened.data = data;
        Ok(opened)
    }

    /// Inspects a binary, plans what to trace in it and gives it a configuration slot.
    fn inspect(
        &self,
        loader: &mut Loader,
        shown: &str,
        data: &[u8],
        pid: Option<u32>,
    ) -> Result<Binary, RunError> {
        let (inspection, probe_config) = run::resolve_binary(shown, data, pid, &self.hooks)?;
        let plan = run::plan(
            shown,
            &inspection,
            probe_config,
            &self.hooks,
            &self.config,
            self.blocker.as_deref(),
        );
        let slot = loader.add_config(plan.config)?;
        Ok(Binary {
            inspection,
            plan,
            slot,
            links: Vec::new(),
            attached: Vec::new(),
            shown: shown.to_owned(),
            exe: None,
            inspected: None,
        })
    }

    /// Attaches `binary` (inspected from `opened`) for every process running its file.
    fn attach_shared(
        &mut self,
        loader: &mut Loader,
        mut binary: Binary,
        opened: Opened,
    ) -> Result<(), RunError> {
        let who = binary.shown.clone();
        let file = opened.stamp.file;
        // A process started running the new content (rare: a wait of a grace period
        // per old probe at most). Starts held meanwhile go on once the new probes are
        // live (or could not be), traced from their first instruction.
        self.wait_removed(loader, file);
        binary.inspected = Some((opened.stamp, digest(&opened.data)));
        let attached = loader.attach(
            &opened.handle(),
            None,
            &who,
            &binary.inspection,
            &binary.plan.hooks,
            binary.slot,
        );
        self.open_gate(file, &who);
        match attached {
            Ok((attached, links)) => {
                binary.attached = attached;
                binary.links = links;
                log::info!(
                    "probes live in {who} go={} for every process running it",
                    binary.inspection.build.go_version
                );
                binary.exe = Some(opened.file);
                self.binaries.insert(file, binary);
                self.settling.remove(&file);
                Ok(())
            }
            Err(error) => {
                loader.free_config(binary.slot);
                Err(error.into())
            }
        }
    }

    /// Looks at every process on the machine (at start, and after process events were
    /// lost). Returns the traced processes found to have exited or run another program
    /// since the events that were lost: the spans they had in flight are lost.
    pub fn scan(&mut self, loader: &mut Loader) -> Vec<u32> {
        let mut gone = Vec::new();
        // Exits and execs the lost events would have reported.
        let mut replaced = Vec::new();
        for (&pid, target) in &mut self.processes {
            if target.exited {
                continue;
            }
            if !target.process.is_alive() {
                target.exited = true;
                gone.push(pid);
            } else if target.process.file().is_ok_and(|file| file != target.file) {
                replaced.push(pid);
            }
        }
        for pid in replaced {
            if self.exec(loader, pid) {
                gone.push(pid);
            }
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return gone;
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            if !self.processes.contains_key(&pid) {
                self.discover(loader, pid);
            }
        }
        gone
    }

    /// A process ran a new program: traced when the program is a traced binary, or one
    /// the scope wants and that can be traced. Returns whether it was traced before (the
    /// spans it had in flight are lost).
    pub fn exec(&mut self, loader: &mut Loader, pid: u32) -> bool {
        self.excluded.remove(&pid);
        self.undecided.remove(&pid);
        let old = self.processes.remove(&pid);
        if let Some(old) = &old {
            // The same pid runs another program now.
            log::info!("pid={pid} ran another program: its old one detached");
            self.release(loader, old.file);
        }
        self.discover(loader, pid);
        old.is_some()
    }

    /// A process ended: forgotten after the next drain. Returns whether it was traced
    /// (the spans it had in flight are lost).
    pub fn exit(&mut self, pid: u32) -> bool {
        self.excluded.remove(&pid);
        self.undecided.remove(&pid);
        match self.processes.get_mut(&pid) {
            Some(target) => {
                target.exited = true;
                true
            }
            None => false,
        }
    }

    /// The traced processes that exited and are not forgotten yet (with `--pid` and `--`,
    /// every one that exited).
    pub fn exited(&self) -> Vec<u32> {
        self.processes
            .iter()
            .filter(|(_, t)| t.exited || !t.process.is_alive())
            .map(|(&pid, _)| pid)
            .collect()
    }

    /// Forgets the processes that exited before the last drain, and the binaries of the
    /// shared scopes that no process runs any more (unless a `--binary` path leads to
    /// them).
    pub fn sweep(&mut self, loader: &mut Loader) {
        if !self.shared() {
            return;
        }
        let gone: Vec<u32> = self
            .processes
            .iter()
            .filter(|(_, t)| t.exited)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            if let Some(target) = self.processes.remove(&pid) {
                log::info!("pid={pid} exited: detached");
                self.release(loader, target.file);
            }
        }
    }

    /// Detaches binary `file` when no process runs it and no `--binary` path leads to it.
    fn release(&mut self, loader: &mut Loader, file: FileId) {
        if !self.shared()
            || self.processes.values().any(|t| t.file == file)
            || self.undecided.values().any(|u| u.file == file)
        {
            return;
        }
        if let Scope::Paths(paths) = &self.scope
            && paths.iter().any(|p| FileId::of(p).ok() == Some(file))
        {
            return;
        }
        if let Some(binary) = self.binaries.remove(&file) {
            log::info!("{}: no process runs it any more: detached", binary.shown);
            loader.detach_links(binary.links);
            loader.free_config(binary.slot);
            self.unwatch(file);
        }
    }

    /// Acts on what happened to the traced binaries' files on disk (see [`crate::watch`]),
    /// and looks at each of them and at each `--binary` path every [`CHECK_INTERVAL`]:
    /// a binary changed on disk loses its probes at once; a `--binary` path's file is
    /// attached again once its writer is done, and a new file at the path (a deploy's
    /// rename) at once.
    pub fn check_files(&mut self, loader: &mut Loader) {
        if !self.shared() {
            return;
        }
        let reports = self
            .watcher
            .as_mut()
            .map(Watcher::reports)
            .unwrap_or_default();
        self.poll_gate();
        let mut everything = false;
        // A `--binary` path's file whose old probes are all gone may be attached again.
        let finished = self.finish_removals(loader);
        let mut paths = finished
            .iter()
            .any(|(file, _)| self.settling.contains_key(file));
        for report in reports {
            match report {
                Report::Overflow => everything = true,
                Report::File(file, Change::Modified) => {
                    // A writer is at work; no process can run the file until it closes it.
                    self.changed(loader, file);
                    if let Some(settling) = self.settling.get_mut(&file) {
                        settling.closed = false;
                    } else if self.failed.values().any(|stamp| stamp.file == file) {
                        self.settling.insert(file, Settling::default());
                    }
                }
                Report::File(file, Change::WriteClosed) => match self.settling.get_mut(&file) {
                    Some(settling) => {
                        settling.closed = true;
                        paths = true;
                    }
                    None => self.recheck(loader, file),
                },
                Report::File(file, Change::Attributes) => {
                    self.recheck(loader, file);
                    // A rename over a `--binary` path takes a link from the file it named.
                    paths = true;
                }
                Report::File(_, Change::Moved) => paths = true,
            }
        }
        let periodic = everything || self.checked.elapsed() >= CHECK_INTERVAL;
        if periodic {
            self.checked = Instant::now();
            let files: Vec<FileId> = self.binaries.keys().copied().collect();
            for file in files {
                self.recheck(loader, file);
            }
        }
        if periodic || paths {
            self.look_at_paths(loader, periodic);
        }
        // Only now: a `--binary` file attached again just above let its held starts go
        // with its new probes live.
        for (file, shown) in finished {
            self.open_gate(file, &shown);
        }
    }

    /// Frees the slots of the binaries changed on disk whose probes are all removed now;
    /// returns their files (and names), whose held starts may go on.
    fn finish_removals(&mut self, loader: &mut Loader) -> Vec<(FileId, String)> {
        let mut finished = Vec::new();
        let mut index = 0;
        while index < self.detaching.len() {
            if self.detaching[index].detaching.is_done() {
                let removal = self.detaching.swap_remove(index);
                finished.push((removal.file, removal.shown.clone()));
                self.removed(loader, removal);
            } else {
                index += 1;
            }
        }
        finished
    }

    /// Waits until the old probes of every binary changed on disk are all removed (before
    /// the tracer ends: the starts it holds go on then).
    pub fn wait_removals(&mut self, loader: &mut Loader) {
        while let Some(mut removal) = self.detaching.pop() {
            self.wait_removal(&mut removal);
            self.open_gate(removal.file, &removal.shown);
            self.removed(loader, removal);
        }
    }

    /// Waits until `removal` is done, letting held starts go on at [`HOLD_LIMIT`]
    /// meanwhile.
    fn wait_removal(&mut self, removal: &mut Removal) {
        while !removal.detaching.is_done() {
            self.poll_gate();
            std::thread::sleep(Duration::from_millis(10));
        }
        removal.detaching.wait();
    }

    /// Lets the starts of `file` (`shown`) held so far go on, and the later ones pass.
    fn open_gate(&mut self, file: FileId, shown: &str) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        for held in gate.open(file) {
            log::info!(
                "{shown}: pid {} held {:?} at its start, until the old probes were removed",
                held.pid,
                held.waited
            );
        }
    }

    /// Lets the starts that asked to go on meanwhile go on, but those of a binary whose
    /// probes are being removed, which wait for the last (at most [`HOLD_LIMIT`]).
    fn poll_gate(&mut self) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        for late in gate.poll() {
            let shown = self
                .detaching
                .iter()
                .find(|r| r.file == late.file)
                .map_or("a binary changed on disk", |r| r.shown.as_str());
            log::warn!(
                "{shown}: pid {} started after {HOLD_LIMIT:?} held, its old probes not all removed",
                late.pid
            );
        }
    }

    /// Waits until the old probes of `file` (changed on disk) are all removed; the starts
    /// held meanwhile wait for [`Targets::open_gate`].
    fn wait_removed(&mut self, loader: &mut Loader, file: FileId) {
        while let Some(index) = self.detaching.iter().position(|r| r.file == file) {
            let mut removal = self.detaching.swap_remove(index);
            self.wait_removal(&mut removal);
            self.removed(loader, removal);
        }
    }

    /// Whether the old probes of `file` (changed on disk) are still being removed.
    fn removing(&self, file: FileId) -> bool {
        self.detaching.iter().any(|r| r.file == file)
    }

    /// The old probes of a binary changed on disk are all removed: its slot is free.
    fn removed(&mut self, loader: &mut Loader, removal: Removal) {
        loader.free_config(removal.slot);
        log::debug!(
            "{}: every probe removed in {:?}",
            removal.shown,
            removal.since.elapsed()
        );
    }

    /// Removes the probes of binary `file` when its file is not what was inspected any
    /// more.
    fn recheck(&mut self, loader: &mut Loader, file: FileId) {
        let Some(exe) = self.binaries.get(&file).and_then(|b| b.exe.clone()) else {
            return;
        };
        match Stamp::of_file(&exe) {
            Ok(now) if self.unchanged(file, now) => {}
            _ => self.changed(loader, file),
        }
    }

    /// Whether binary `file`'s content is still what was inspected, its file now being
    /// `now`: the same stamp, or (an attribute changed: a mode, a time, a link) the same
    /// content, read again. True for a binary not inspected in a shared scope.
    fn unchanged(&mut self, file: FileId, now: Stamp) -> bool {
        let Some(binary) = self.binaries.get_mut(&file) else {
            return true;
        };
        let (Some((stamp, digest)), Some(exe)) = (binary.inspected, &binary.exe) else {
            return true;
        };
        if stamp == now {
            return true;
        }
        if digest_of(exe).ok() != Some(digest) {
            return false;
        }
        log::debug!("{}: attributes changed, content unchanged", binary.shown);
        binary.inspected = Some((now, digest));
        true
    }

    /// The file of binary `file` changed on disk: its probes are removed now (a process
    /// that starts running the new content must not get them at the old offsets), and it
    /// is forgotten; a `--binary` path's file waits for its writer to be done.
    fn changed(&mut self, loader: &mut Loader, file: FileId) {
        let Some(binary) = self.binaries.remove(&file) else {
            return;
        };
        // Programs that start running the file meanwhile wait for the last probe to go.
        if let (Some(gate), Some(exe)) = (&mut self.gate, binary.exe.clone())
            && let Err(error) = gate.close(file, exe)
        {
            log::warn!(
                "{}: a program started before its old probes are all removed may meet them: cannot hold starts: {error}",
                binary.shown
            );
        }
        // Started now, on a thread of its own: the kernel takes a grace period per
        // uprobe, and the reader does not wait.
        let detaching = loader.detach_links_apart(binary.links);
        self.detaching.push(Removal {
            file,
            slot: binary.slot,
            shown: binary.shown.clone(),
            since: Instant::now(),
            detaching,
        });
        log::warn!("{} changed on disk: probes removed", binary.shown);
        if self.named_by_path(file) {
            self.settling.insert(file, Settling::default());
        } else {
            self.unwatch(file);
        }
    }

    /// Attaches what the `--binary` paths name now and is not traced: a new file at once
    /// (a tried one that failed, maybe half written, waits to settle), one that changed
    /// on disk once settled (closed by its writer, or unchanged since the last
    /// `periodic` look); a file that cannot be traced is said once. Releases the files
    /// the paths named before.
    fn look_at_paths(&mut self, loader: &mut Loader, periodic: bool) {
        let Scope::Paths(paths) = &self.scope else {
            return;
        };
        let mut named = HashSet::new();
        for path in paths.clone() {
            // Not here: only in containers, or gone for now.
            let Ok(stamp) = Stamp::of(&path) else {
                continue;
            };
            let file = stamp.file;
            named.insert(file);
            if self.binaries.contains_key(&file) {
                if self.unchanged(file, stamp) {
                    continue;
                }
                self.changed(loader, file);
            }
            let settled = match self.settling.get_mut(&file) {
                Some(settling) => {
                    let settled = settling.closed || (periodic && settling.last == Some(stamp));
                    if periodic {
                        settling.last = Some(stamp);
                    }
                    // Looked at again once the old probes are all gone.
                    if !settled || self.removing(file) {
                        continue;
                    }
                    true
                }
                None => false,
            };
            if self.failed.get(&path) == Some(&stamp) {
                continue;
            }
            match self.add_path(loader, &path) {
                Ok(()) => {
                    self.failed.remove(&path);
                }
                Err(error) if settled => {
                    log::warn!(
                        "{} not traced: {:#}",
                        path.display(),
                        anyhow::Error::new(error)
                    );
                    self.settling.remove(&file);
                    self.failed.insert(path, stamp);
                }
                Err(error) => {
                    log::debug!(
                        "{}: tried again once settled: {:#}",
                        path.display(),
                        anyhow::Error::new(error)
                    );
                    let settling = Settling {
                        closed: false,
                        last: Some(stamp),
                    };
                    self.settling.insert(file, settling);
                }
            }
        }
        self.settling.retain(|file, _| named.contains(file));
        let before: Vec<FileId> = self
            .binaries
            .keys()
            .filter(|file| !named.contains(file))
            .copied()
            .collect();
        for file in before {
            self.release(loader, file);
        }
    }

    /// Whether a `--binary` path names `file` (on this machine's filesystem).
    fn named_by_path(&self, file: FileId) -> bool {
        match &self.scope {
            Scope::Paths(paths) => paths.iter().any(|p| FileId::of(p).ok() == Some(file)),
            _ => false,
        }
    }

    /// Stops watching `file`, unless a traced binary or a `--binary` path needs it.
    fn unwatch(&mut self, file: FileId) {
        if self.binaries.contains_key(&file) || self.named_by_path(file) {
            return;
        }
        if let Some(watcher) = &mut self.watcher {
            watcher.unwatch(file);
        }
    }

    /// Takes process `pid` in when the scope wants it and it runs a traced or traceable
    /// binary; says why not, for processes the scope wanted.
    fn discover(&mut self, loader: &mut Loader, pid: u32) {
        let Ok(process) = Process::open(pid) else {
            return;
        };
        let Ok(stamp) = Stamp::of(&process.exe_handle()) else {
            return;
        };
        if self.rejected.contains(&stamp) {
            return;
        }
        let mut file = stamp.file;
        if self.binaries.contains_key(&file) && !self.unchanged(file, stamp) {
            // A change no event reported.
            self.changed(loader, file);
        }
        let wanted = self.wants(&process, file, false);
        if wanted == Some(false) {
            if self.binaries.contains_key(&file) {
                self.excluded.insert(pid);
            }
            return;
        }
        if !self.binaries.contains_key(&file) {
            match self.attach_process_file(loader, &process) {
                Ok(attached) => file = attached,
                Err(error) => {
                    self.reject(stamp, &process, error);
                    return;
                }
            }
        }
        if wanted.is_none() {
            log::debug!("pid={pid}: the filter waits for its pod");
            self.undecided.insert(
                pid,
                Undecided {
                    process,
                    file,
                    since: self.kube_generation,
                },
            );
            return;
        }
        if let Err(error) = self.take_in(process, file) {
            log::warn!("pid={pid} not traced: {:#}", anyhow::Error::new(error));
        }
    }

    /// Remembers that the file `stamp` that `process` runs cannot be traced, and says why
    /// (quietly with `--all`: most programs on a node are not Go HTTP services).
    fn reject(&mut self, stamp: Stamp, process: &Process, error: RunError) {
        if self.rejected.len() >= MAX_REJECTED {
            self.rejected.clear();
        }
        self.rejected.insert(stamp);
        let level = match self.scope {
            Scope::All(_) => log::Level::Debug,
            _ => log::Level::Warn,
        };
        log::log!(
            level,
            "pid={} ({}) not traced: {:#}",
            process.pid,
            process.exe.display(),
            anyhow::Error::new(error)
        );
    }

    /// Whether the scope asks for `process`, which runs `file`; `None` when the filter
    /// waits for its pod's metadata (unless `settled`: no more waiting).
    fn wants(&self, process: &Process, file: FileId, settled: bool) -> Option<bool> {
        match &self.scope {
            Scope::Each => Some(false),
            Scope::Paths(_) if self.binaries.contains_key(&file) => Some(true),
            Scope::Paths(paths) => Some(paths.iter().any(|path| {
                process.exe == *path
                    || FileId::of(path).ok() == Some(file)
                    // The path as the process's own mount namespace sees it.
                    || in_root(process.pid, path).is_some_and(|p| FileId::of(&p).ok() == Some(file))
            })),
            Scope::All(filter) => self.admits(filter, process, settled),
        }
    }

    /// What `filter` says of `process`, with its container and pod when they matter.
    fn admits(&self, filter: &Filter, process: &Process, settled: bool) -> Option<bool> {
        let exe = process.exe.to_string_lossy();
        let mut facts = Facts {
            exe: &exe,
            complete: true,
            ..Facts::default()
        };
        if !filter.needs_pods() {
            return filter.admits(&facts);
        }
        let (container_id, pod) = self.placement(process.pid);
        facts.container_id = container_id.as_deref();
        if let Some(container) = &pod {
            facts.container_name = Some(&container.name);
            facts.pod = Some(&container.pod.name);
            facts.namespace = Some(&container.pod.namespace);
        }
        facts.complete = settled || self.kube.is_none() || container_id.is_none() || pod.is_some();
        filter.admits(&facts)
    }

    /// The container process `pid` runs in, and its Kubernetes container if the pod list
    /// has it (a miss asks for a new list).
    fn placement(&self, pid: u32) -> (Option<String>, Option<kube::Container>) {
        let container_id = Placement::of(pid).container_id;
        let pod = match (&self.kube, &container_id) {
            (Some(kube), Some(id)) => kube.container(id),
            _ => None,
        };
        (container_id, pod)
    }

    /// Looks again at what waited for pod metadata, when a new pod list came: resources
    /// get their `k8s.*` attributes, the filter decides on the processes it waited for.
    pub fn refresh_metadata(&mut self, loader: &mut Loader) {
        let Some(kube) = &self.kube else {
            return;
        };
        let generation = kube.generation();
        if generation == self.kube_generation {
            return;
        }
        self.kube_generation = generation;
        for target in self.processes.values_mut() {
            let (Some(since), Some(id)) = (target.pod_wait, &target.container_id) else {
                continue;
            };
            if let Some(pod) = kube.cached(id) {
                // The binary's version; its probes may be gone (changed on disk).
                let go_version = self.binaries.get(&target.file).map_or_else(
                    || target.resource.runtime_version.clone(),
                    |b| b.inspection.build.go_version.clone(),
                );
                target.resource = Arc::new(Resource::of(
                    &target.process,
                    &go_version,
                    naming(&self.config),
                    Some(id),
                    Some(&pod),
                ));
                target.pod_wait = None;
            } else if generation >= since + POD_LISTS_WAITED {
                target.pod_wait = None;
            }
        }
        let pids: Vec<u32> = self.undecided.keys().copied().collect();
        for pid in pids {
            let Some(waiting) = self.undecided.remove(&pid) else {
                continue;
            };
            let settled = generation >= waiting.since + POD_LISTS_WAITED;
            match self.wants(&waiting.process, waiting.file, settled) {
                None => {
                    self.undecided.insert(pid, waiting);
                }
                Some(false) => {
                    self.excluded.insert(pid);
                    self.release(loader, waiting.file);
                }
                Some(true) => {
                    if let Err(error) = self.take_in(waiting.process, waiting.file) {
                        log::warn!("pid={pid} not traced: {:#}", anyhow::Error::new(error));
                    }
                }
            }
        }
    }

    /// Inspects and attaches the binary that `process` runs, for every process; returns
    /// its file.
    fn attach_process_file(
        &mut self,
        loader: &mut Loader,
        process: &Process,
    ) -> Result<FileId, RunError> {
        let shown = process.exe.display().to_string();
        // Through /proc/PID/exe: the file itself, in whatever mount namespace.
        let opened = self.open(&process.exe_handle(), &shown)?;
        let file = opened.stamp.file;
        let attached = self
            .inspect(loader, &shown, &opened.data, Some(process.pid))
            .and_then(|binary| self.attach_shared(loader, binary, opened));
        if attached.is_err() {
            self.unwatch(file);
        }
        attached.map(|()| file)
    }

    /// Records `process` (running the traced binary `file`) and says it is attached.
    fn take_in(&mut self, process: Process, file: FileId) -> Result<(), RunError> {
        let (container_id, pod) = self.placement(process.pid);
        let binary = &self.binaries[&file];
        let pod_wait = (self.kube.is_some() && container_id.is_some() && pod.is_none())
            .then_some(self.kube_generation);
        let resource = Arc::new(Resource::of(
            &process,
            &binary.inspection.build.go_version,
            naming(&self.config),
            container_id.as_deref(),
            pod.as_ref(),
        ));
        // Opened before the process is said to be attached: a process that exits right
        // after that line takes `/proc/PID/exe` with it, and the tracer must not fail then.
        let binary = self.binaries.get_mut(&file).expect("a traced binary");
        let exe = match &binary.exe {
            Some(exe) => Arc::clone(exe),
            None => {
                let exe =
                    Arc::new(std::fs::File::open(process.exe_handle()).map_err(|source| {
                        TargetError::Read {
                            path: process.exe.display().to_string(),
                            source,
                        }
                    })?);
                binary.exe = Some(Arc::clone(&exe));
                exe
            }
        };
        run::log_attached(
            &process,
            &resource,
            &binary.attached,
            &self.hooks,
            &binary.inspection,
            &binary.plan.propagation,
        );
        let types = TypeNames::new(
            exe,
            binary.inspection.segments.clone(),
            binary.inspection.types_base,
            binary
                .inspection
                .context_canceled
                .map(|address| (process.pid, address)),
        );
        self.processes.insert(
            process.pid,
            Target {
                process,
                resource,
                types,
                file,
                container_id,
                pod_wait,
                exited: false,
            },
        );
        Ok(())
    }
}

/// `made`, or `None` after a warning that says what is lost (`without`) and why.
fn started<T, E: std::error::Error + Send + Sync + 'static>(
    made: Result<T, E>,
    without: std::fmt::Arguments<'_>,
) -> Option<T> {
    made.map_err(|error| log::warn!("{without}: {:#}", anyhow::Error::new(error)))
        .ok()
}

/// A digest of a binary's content, to tell a file whose attributes changed from one
/// rewritten.
fn digest(data: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(data);
    hasher.finish()
}

/// [`digest`] of the content of `file` now.
fn digest_of(file: &File) -> std::io::Result<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    let mut buffer = vec![0_u8; 1 << 20];
    let mut offset = 0;
    loop {
        let n = file.read_at(&mut buffer, offset)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.write(&buffer[..n]);
        offset += n as u64;
    }
}

/// What the configuration says about resources.
fn naming(config: &Config) -> Naming<'_> {
    Naming {
        service_name: config.service_name.as_deref(),
        attributes: &config.resource_attributes,
    }
}

/// `path` as seen from the root directory of process `pid` (its mount namespace), when
/// that is not this process's root.
fn in_root(pid: u32, path: &Path) -> Option<PathBuf> {
    let relative = path.strip_prefix("/").ok()?;
    Some(Path::new(&format!("/proc/{pid}/root")).join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_in_chunks_has_the_digest_of_its_bytes() {
        // Over two read chunks, not a multiple of one.
        let data: Vec<u8> = (0..(5_u32 << 19) + 7)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let path = std::env::temp_dir().join(format!("tracer-digest-{}", std::process::id()));
        std::fs::write(&path, &data).expect("write the file");
        let file = File::open(&path).expect("open the file");
        assert_eq!(digest_of(&file).expect("read the file"), digest(&data));
        let mut changed = data.clone();
        changed[data.len() - 1] ^= 1;
        assert_ne!(digest(&changed), digest(&data));
        std::fs::remove_file(&path).expect("remove the file");
    }
}
