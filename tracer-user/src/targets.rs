//! The traced processes and their binaries, as they come and go.
//!
//! A binary (a file: device and inode) is inspected once and gets one configuration slot.
//! With `--pid` and `--`, its probes are attached for each traced process; with `--binary`
//! and `--all`, once for every process running the file (uprobes live in the file, so a
//! process started later has them from its first instruction, and processes sharing a
//! binary share its probes: one hit, one span). Processes are learnt from the kernel's
//! exec and exit events ([`tracer_common::process`]), from a scan of `/proc` at start (and
//! after lost events), and from the first span of a process running a traced binary.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    cli::{Config, Facts, Filter},
    container::Placement,
    kube::{self, Kube},
    loader::{AttachedProbe, Link, Loader},
    pipeline::resource::{Naming, Resource},
    probes::Hook,
    process::{FileId, Process},
    run::{self, Plan, RunError},
    target::{self, TargetError, gotype::TypeNames},
};

/// Binaries found not traceable (not Go, no `net/http` server, ...) remembered at most, so
/// that their processes' execs are not inspected again.
const MAX_REJECTED: usize = 4096;

/// How many pod lists may come without a container's pod before the tracer stops
/// waiting for it (a container on the node that Kubernetes does not run).
const POD_LISTS_WAITED: u64 = 3;

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
    exe: Option<Arc<std::fs::File>>,
}

pub struct Targets {
    scope: Scope,
    hooks: Vec<Hook>,
    /// Why injection is off for every process, if it is.
    blocker: Option<String>,
    config: Config,
    binaries: HashMap<FileId, Binary>,
    processes: HashMap<u32, Target>,
    rejected: HashSet<FileId>,
    /// Processes of traced binaries that the filter leaves out (`--all`): their spans are
    /// discarded (uprobes fire for every process running a file).
    excluded: HashSet<u32>,
    /// Processes the filter cannot decide on before their pod is known: their spans
    /// are dropped (`filter_undecided`) until it is.
    undecided: HashMap<u32, Undecided>,
    kube: Option<Kube>,
    /// The pod list generation last looked at.
    kube_generation: u64,
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
        }
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
        if binary.plan.propagation.inject.is_ok() {
            loader.watch_connections(process.pid)?;
        }
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
        let data = std::fs::read(path).map_err(read)?;
        let binary = self.inspect(loader, &shown, &data, None)?;
        self.attach_shared(loader, file, binary, path)
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
        })
    }

    /// Attaches `binary` (the file `file`, opened through `path`) for every process.
    fn attach_shared(
        &mut self,
        loader: &mut Loader,
        file: FileId,
        mut binary: Binary,
        path: &Path,
    ) -> Result<(), RunError> {
        let who = binary.shown.clone();
        match loader.attach(
            path,
            None,
            &who,
            &binary.inspection,
            &binary.plan.hooks,
            binary.slot,
        ) {
            Ok((attached, links)) => {
                binary.attached = attached;
                binary.links = links;
                log::info!(
                    "probes live in {who} go={} for every process running it",
                    binary.inspection.build.go_version
                );
                self.binaries.insert(file, binary);
                Ok(())
            }
            Err(error) => {
                loader.free_config(binary.slot);
                Err(error.into())
            }
        }
    }

    /// Looks at every process on the machine (at start, and after process events were
    /// lost).
    pub fn scan(&mut self, loader: &mut Loader) {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        // Exits the lost events would have reported.
        for target in self.processes.values_mut() {
            if !target.process.is_alive() {
                target.exited = true;
            }
        }
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            if !self.processes.contains_key(&pid) {
                self.discover(loader, pid);
            }
        }
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
        }
    }

    /// Takes process `pid` in when the scope wants it and it runs a traced or traceable
    /// binary; says why not, for processes the scope wanted.
    fn discover(&mut self, loader: &mut Loader, pid: u32) {
        let Ok(process) = Process::open(pid) else {
            return;
        };
        let Ok(file) = process.file() else {
            return;
        };
        if self.rejected.contains(&file) {
            return;
        }
        let wanted = self.wants(&process, file, false);
        if wanted == Some(false) {
            if self.binaries.contains_key(&file) {
                self.excluded.insert(pid);
            }
            return;
        }
        if !self.binaries.contains_key(&file)
            && let Err(error) = self.attach_process_file(loader, &process, file)
        {
            if self.rejected.len() >= MAX_REJECTED {
                self.rejected.clear();
            }
            self.rejected.insert(file);
            let level = match self.scope {
                // Most programs on a node are not Go HTTP services.
                Scope::All(_) => log::Level::Debug,
                _ => log::Level::Warn,
            };
            log::log!(
                level,
                "pid={pid} ({}) not traced: {:#}",
                process.exe.display(),
                anyhow::Error::new(error)
            );
            return;
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
                let go_version = &self.binaries[&target.file].inspection.build.go_version;
                target.resource = Arc::new(Resource::of(
                    &target.process,
                    go_version,
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

    /// Inspects and attaches the binary `file` that `process` runs, for every process.
    fn attach_process_file(
        &mut self,
        loader: &mut Loader,
        process: &Process,
        file: FileId,
    ) -> Result<(), RunError> {
        let (shown, data) = run::read_exe(process)?;
        let binary = self.inspect(loader, &shown, &data, Some(process.pid))?;
        // Through /proc/PID/exe: the file itself, in whatever mount namespace.
        self.attach_shared(loader, file, binary, &process.exe_handle())
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
