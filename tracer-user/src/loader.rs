//! Loading the kernel programs and attaching them to traced processes.
//!
//! One set of programs and maps serves every traced process: each binary gets a
//! configuration slot (its struct offsets) and every uprobe on it carries that slot as its
//! attach cookie. Probes are attached by file offset, through `/proc/PID/exe`, filtered to
//! the traced process.
use std::num::NonZeroU32;
use std::os::fd::BorrowedFd;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeLinkId, UProbeScope},
    },
};
use tracer_common::{
    config::{MAX_CONFIGS, ProbeConfig},
    counters::NUM_COUNTERS,
    event::IdState,
    inflight::{SlotHead, TTL_NS},
    probes::net_http::{
        client::{ClientInflight, PendingHeader},
        server::{ServerInflight, SpanLink},
    },
};

use crate::{
    mapped_slots::{MapSlotsError, MappedSlots},
    probes::{Hook, detach_rank},
    target::{Inspection, ProbePoint},
};

/// The kernel programs, built by `build.rs`.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// Errors loading or attaching.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF programs into the kernel failed")]
    Load(#[source] aya::EbpfError),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("loading eBPF program {program} failed")]
    Program {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {map} failed")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot map eBPF map {map} into memory")]
    MapSlots {
        map: &'static str,
        #[source]
        source: MapSlotsError,
    },
    #[error("cannot open cgroup {path}")]
    Cgroup {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot seed the span id generator")]
    Seed(#[source] std::io::Error),
    #[error("too many traced binaries (at most {MAX_CONFIGS})")]
    NoSlot,
    #[error(
        "missing privileges: CAP_SYS_ADMIN needed to attach uprobes ({program} to {symbol} in {who}: permission denied; the kernel's uprobe perf events accept no narrower capability)"
    )]
    UprobesNeedSysAdmin {
        program: &'static str,
        symbol: &'static str,
        who: Box<str>,
    },
    #[error("attaching {program} to {symbol} in {who} failed")]
    Attach {
        program: &'static str,
        symbol: &'static str,
        who: Box<str>,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
}

/// One attached probe, for logs.
#[derive(Clone, Debug)]
pub struct AttachedProbe {
    pub hook: Hook,
    pub point: ProbePoint,
}

/// The loaded programs and maps.
/// One attached uprobe, to detach it later.
#[derive(Debug)]
pub struct Link {
    program: &'static str,
    id: UProbeLinkId,
}

pub struct Loader {
    ebpf: Ebpf,
    next_slot: u32,
    /// Configuration slots given back by binaries no longer traced.
    free_slots: Vec<u32>,
    /// Where detached links go to be closed (started on first use).
    detacher: Option<Detacher>,
    /// The slot arrays of [`SCANNED`], scanned through memory mappings; one that cannot
    /// be is read with one system call per slot.
    mapped: Vec<(&'static str, MappedSlots)>,
}

/// The slot arrays scanned for the spans of processes that exited, and the injection
/// headers never sent at exit (created mappable in `tracer-ebpf/src/maps.rs` and
/// `probes/net_http/inject.rs`).
const SCANNED: [&str; 5] = [
    SERVER_INFLIGHT,
    CLIENT_INFLIGHT,
    SERVER_BY_GOID,
    SERVER_BY_CONTEXT,
    PENDING,
];
const SERVER_INFLIGHT: &str = "SERVER_INFLIGHT";
const CLIENT_INFLIGHT: &str = "CLIENT_INFLIGHT";
const SERVER_BY_GOID: &str = "SERVER_BY_GOID";
const SERVER_BY_CONTEXT: &str = "SERVER_BY_CONTEXT";
const PENDING: &str = "PENDING";

/// Links being detached by [`Loader::detach_links_apart`].
pub struct Detaching(Option<std::thread::JoinHandle<()>>);

impl Detaching {
    /// Whether every link is closed.
    pub fn is_done(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
    }

    /// Waits until every link is closed.
    pub fn wait(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// A thread that closes uprobe links: the kernel waits for an RCU grace period (tens of
/// milliseconds here) for each uprobe it removes, and the reader must not wait with it.
struct Detacher {
    sender: Option<std::sync::mpsc::Sender<Vec<UProbeLink>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Detacher {
    fn spawn() -> std::io::Result<Self> {
        let (sender, receiver) = std::sync::mpsc::channel::<Vec<UProbeLink>>();
        let thread = std::thread::Builder::new()
            .name("detacher".into())
            // Dropping a link detaches it. Started from the main loop at its first detach:
            // the exit waits for it, so not in the loop's idle class.
            .spawn(move || {
                crate::priority::leave_idle_class();
                receiver.iter().for_each(drop)
            })?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Hands `links` to the thread (if it is gone, they are closed here, on return).
    fn send(&self, links: Vec<UProbeLink>) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(links);
        }
    }
}

impl Drop for Detacher {
    /// Waits for every link handed over to be closed.
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Loader {
    /// Loads every program into the kernel (nothing is attached yet).
    pub fn load(programs: &[&'static str]) -> Result<Self, LoadError> {
        let mut ebpf = EbpfLoader::new().load(PROGRAMS).map_err(LoadError::Load)?;
        for &name in programs {
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(LoadError::MissingProgram(name))?
                .try_into()
                .map_err(|source| LoadError::Program {
                    program: name,
                    source,
                })?;
            program.load().map_err(|source| LoadError::Program {
                program: name,
                source,
            })?;
        }
        let mut mapped = Vec::with_capacity(SCANNED.len());
        for name in SCANNED {
            match map_slots(&ebpf, name) {
                Ok(slots) => mapped.push((name, slots)),
                Err(error) => log::warn!(
                    "{}; scanning it with one system call per slot",
                    chain(&error)
                ),
            }
        }
        let mut loader = Self {
            ebpf,
            next_slot: 0,
            free_slots: Vec::new(),
            detacher: None,
            mapped,
        };
        loader.seed_ids()?;
        Ok(loader)
    }

    /// Gives every CPU's id generator its own random seeds.
    fn seed_ids(&mut self) -> Result<(), LoadError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| LoadError::Seed(source))?;
        let mut states = Vec::with_capacity(cpus);
        for _ in 0..cpus {
            let mut seeds = [0u64; 3];
            for seed in &mut seeds {
                *seed = random_u64().map_err(LoadError::Seed)?;
            }
            states.push(IdState { seeds, counter: 0 });
        }
        let values = PerCpuValues::try_from(states).map_err(LoadError::Seed)?;
        let mut ids: PerCpuArray<&mut MapData, IdState> = self.map_mut("IDS")?;
        ids.set(0, values, 0)
            .map_err(|source| LoadError::Map { map: "IDS", source })
    }

    /// Stores a binary's configuration and returns its slot.
    pub fn add_config(&mut self, config: ProbeConfig) -> Result<u32, LoadError> {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None if self.next_slot < MAX_CONFIGS => {
                self.next_slot += 1;
                self.next_slot - 1
            }
            None => return Err(LoadError::NoSlot),
        };
        let mut configs: Array<&mut MapData, ProbeConfig> = self.map_mut("CONFIGS")?;
        if let Err(source) = configs.set(slot, config, 0) {
            self.free_slots.push(slot);
            return Err(LoadError::Map {
                map: "CONFIGS",
                source,
            });
        }
        Ok(slot)
    }

    /// Gives a configuration slot back, once no probe uses it.
    pub fn free_config(&mut self, slot: u32) {
        self.free_slots.push(slot);
    }

    /// Attaches `hooks` (those `inspection` places) to the executable at `exe`, for
    /// process `pid` only, or for every process running it; `who` names the target in
    /// messages. Returns what was attached (in the order of `hooks`) and the links to
    /// detach it, in the order they are to be detached.
    pub fn attach(
        &mut self,
        exe: &std::path::Path,
        pid: Option<u32>,
        who: &str,
        inspection: &Inspection,
        hooks: &[Hook],
        slot: u32,
    ) -> Result<(Vec<AttachedProbe>, Vec<Link>), LoadError> {
        let scope = match pid.and_then(NonZeroU32::new) {
            Some(pid) => UProbeScope::OneProcess(pid),
            None => UProbeScope::AllProcesses,
        };
        // Each probe with the index of its hook; attached in the reverse of the detach
        // order (see `probes::detach_rank`).
        let mut placed: Vec<(usize, AttachedProbe, Link)> = Vec::new();
        let mut order: Vec<usize> = (0..hooks.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(detach_rank(hooks[i].program)));
        for i in order {
            let hook = &hooks[i];
            for point in inspection.points(hook) {
                let program: &mut UProbe = program(&mut self.ebpf, hook.program)?;
                let attach_point = UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(point.file_offset),
                    cookie: Some(u64::from(slot)),
                };
                match program.attach(attach_point, exe, scope) {
                    Ok(id) => placed.push((
                        i,
                        AttachedProbe { hook: *hook, point },
                        Link {
                            program: hook.program,
                            id,
                        },
                    )),
                    Err(source) if hook.required => {
                        self.detach_links(placed.into_iter().map(|(_, _, link)| link).collect());
                        if permission_denied(&source) && !crate::privileges::has_sys_admin() {
                            return Err(LoadError::UprobesNeedSysAdmin {
                                program: hook.program,
                                symbol: hook.symbol,
                                who: who.into(),
                            });
                        }
                        return Err(LoadError::Attach {
                            program: hook.program,
                            symbol: hook.symbol,
                            who: who.into(),
                            source: Box::new(source),
                        });
                    }
                    Err(source) => log::warn!(
                        "{who}: could not attach to {} ({}): {} unavailable",
                        hook.symbol,
                        source,
                        hook.purpose
                    ),
                }
            }
        }
        // What was attached in the order of `hooks`, the links in the order to detach them.
        placed.sort_by_key(|&(i, _, _)| i);
        let (attached, mut links): (Vec<_>, Vec<_>) = placed
            .into_iter()
            .map(|(_, probe, link)| (probe, link))
            .unzip();
        links.sort_by_key(|link| detach_rank(link.program));
        Ok((attached, links))
    }

    /// Detaches what [`Loader::attach`] attached.
    pub fn detach_links(&mut self, links: Vec<Link>) {
        let taken = self.take_links(links);
        if self.detacher.is_none() {
            self.detacher = Detacher::spawn()
                .map_err(|error| log::debug!("no detacher thread ({error}): detaching here"))
                .ok();
        }
        match &self.detacher {
            Some(detacher) => detacher.send(taken),
            // Closed here.
            None => drop(taken),
        }
    }

    /// Detaches what [`Loader::attach`] attached, starting now, on a thread of its own
    /// (not behind other detaches): the kernel removes the uprobes one after the other,
    /// each followed by a grace period. The returned [`Detaching`] says when none of
    /// `links` can fire any more.
    pub fn detach_links_apart(&mut self, links: Vec<Link>) -> Detaching {
        let taken = self.take_links(links);
        let thread = std::thread::Builder::new()
            .name("detach-changed".into())
            // Dropping a link detaches it; without a thread, they are closed here. Held
            // program starts wait for it: not in the main loop's idle class.
            .spawn(move || {
                crate::priority::leave_idle_class();
                drop(taken)
            });
        Detaching(thread.ok())
    }

    /// Takes `links` out of their programs (dropping what is returned detaches them).
    fn take_links(&mut self, links: Vec<Link>) -> Vec<UProbeLink> {
        let mut taken = Vec::with_capacity(links.len());
        for link in links {
            let result = program::<UProbe>(&mut self.ebpf, link.program).and_then(|p| {
                p.take_link(link.id)
                    .map_err(|e| program_error(link.program, e))
            });
            match result {
                Ok(link) => taken.push(link),
                Err(error) => log::warn!("detaching {} failed: {error}", link.program),
            }
        }
        taken
    }

    /// Starts the exec and exit events of every process (see
    /// `tracer_common::process`) and returns their ring buffer.
    pub fn start_process_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        use aya::programs::RawTracePoint;
        for (name, tracepoint) in [
            (PROCESS_EXEC, "sched_process_exec"),
            (PROCESS_EXIT, "sched_process_exit"),
        ] {
            let program: &mut RawTracePoint = program(&mut self.ebpf, name)?;
            program
                .load()
                .map_err(|source| program_error(name, source))?;
            program
                .attach(tracepoint)
                .map_err(|source| program_error(name, source))?;
        }
        self.take_ring("PROCESS_EVENTS")
    }

    pub fn start_injection(&mut self, cgroups: &[std::path::PathBuf]) -> Result<(), LoadError> {
        use aya::programs::{CgroupAttachMode, SkMsg, SockOps};
        let sockets: aya::maps::SockHash<&MapData, u64> = self.map("SOCKETS")?;
        let sockets = sockets.fd().try_clone().map_err(|source| LoadError::Map {
            map: "SOCKETS",
            source: aya::maps::MapError::from(source),
        })?;
        let send: &mut SkMsg = program(&mut self.ebpf, SEND)?;
        send.load().map_err(|source| program_error(SEND, source))?;
        send.attach(&sockets)
            .map_err(|source| program_error(SEND, source))?;
        let ops: &mut SockOps = program(&mut self.ebpf, SOCKET_OPS)?;
        ops.load()
            .map_err(|source| program_error(SOCKET_OPS, source))?;
        for cgroup in cgroups {
            let dir = std::fs::File::open(cgroup).map_err(|source| LoadError::Cgroup {
                path: cgroup.display().to_string(),
                source,
            })?;
            ops.attach(dir, CgroupAttachMode::Single)
                .map_err(|source| program_error(SOCKET_OPS, source))?;
        }
        Ok(())
    }

    /// How many ports the client start probes added to `WATCHED_PORTS` so far (see
    /// `crate::connections`).
    pub fn ports_watched(&self) -> Result<u64, LoadError> {
        self.per_cpu_sum("PORTS_WATCHED", 0)
    }

    /// The processes and ports whose new connections join the socket map: `(pid, port)`.
    pub fn watched_ports(&self) -> Result<Vec<(u32, u16)>, LoadError> {
        let ports: aya::maps::HashMap<&MapData, u64, u32> = self.map("WATCHED_PORTS")?;
        let keys: Result<Vec<u64>, _> = ports.keys().collect();
        let keys = keys.map_err(|source| LoadError::Map {
            map: "WATCHED_PORTS",
            source,
        })?;
        Ok(keys
            .into_iter()
            .map(|key| ((key >> 32) as u32, key as u16))
            .collect())
    }

    /// Adds the established TCP connection `socket` (with socket cookie `cookie`) to the
    /// socket map, as `sock_ops` adds the connections it sees opened.
    pub fn watch_socket(&mut self, cookie: u64, socket: BorrowedFd<'_>) -> AddSocket {
        let Ok(mut sockets) = self.map_mut::<aya::maps::SockHash<&mut MapData, u64>>("SOCKETS")
        else {
            return AddSocket::Refused;
        };
        match sockets.insert(cookie, socket, u64::from(BPF_NOEXIST)) {
            Ok(()) => AddSocket::Added,
            Err(aya::maps::MapError::SyscallError(error))
                if error.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                AddSocket::AlreadyIn
            }
            Err(_) => AddSocket::Refused,
        }
    }

    /// The ring buffer of finished events.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        self.take_ring("EVENTS")
    }

    /// The ring buffer map `name`, owned by the caller from now on.
    fn take_ring(&mut self, name: &'static str) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or(LoadError::MissingMap(name))?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map { map: name, source })
    }

    /// The kernel counters, summed over CPUs, indexed by `tracer_common::counters`.
    pub fn counters(&self) -> Result<[u64; NUM_COUNTERS as usize], LoadError> {
        let mut totals = [0u64; NUM_COUNTERS as usize];
        for (index, total) in totals.iter_mut().enumerate() {
            *total = self.counter(index as u32)?;
        }
        Ok(totals)
    }

    /// One counter, summed over the CPUs.
    pub fn counter(&self, index: u32) -> Result<u64, LoadError> {
        self.per_cpu_sum("COUNTERS", index)
    }

    /// Entry `index` of the per-CPU array `name`, summed over the CPUs.
    fn per_cpu_sum(&self, name: &'static str, index: u32) -> Result<u64, LoadError> {
        let array: PerCpuArray<&MapData, u64> = self.map(name)?;
        let values = array
            .get(&index, 0)
            .map_err(|source| LoadError::Map { map: name, source })?;
        Ok(values.iter().sum())
    }

    pub fn detach(&mut self) {
        let mut names: Vec<String> = self
            .ebpf
            .programs()
            .map(|(name, _)| name.to_owned())
            .collect();
        names.sort_by_key(|name| detach_rank(name));
        for name in names {
            let Some(program) = self.ebpf.program_mut(&name) else {
                continue;
            };
            let result = match program {
                // Programs of hooks not in use were never loaded.
                aya::programs::Program::UProbe(uprobe) if uprobe.fd().is_ok() => uprobe.unload(),
                // No request is injected after this: the headers still recorded are
                // counted unsent at exit, and no injection after the count goes uncounted.
                aya::programs::Program::SkMsg(send) if send.fd().is_ok() => send.unload(),
                _ => Ok(()),
            };
            if let Err(error) = result {
                log::warn!("detaching {name} failed: {error}");
            }
        }
    }

    /// The spans in flight at monotonic time `now_ns`, by what became of them: still
    /// running, started longer ago than the TTL (their end was never seen), or lost with a
    /// process in `gone` (see [`is_gone`]).
    pub fn inflight(&self, now_ns: u64, gone: &[(u32, u64)]) -> Result<InFlight, LoadError> {
        let mut counts = InFlight::default();
        let mut tally = |pid: u32, started: u64| {
            if is_gone(gone, pid, started) {
                counts.process_exited += 1;
            } else if now_ns.saturating_sub(started) > TTL_NS {
                counts.expired += 1;
            } else {
                counts.in_flight += 1;
            }
        };
        self.for_each_taken::<ServerInflight>(SERVER_INFLIGHT, |head| {
            tally(head.pid, head.start_ns)
        })?;
        self.for_each_taken::<ClientInflight>(CLIENT_INFLIGHT, |head| {
            tally(head.pid, head.start_ns)
        })?;
        Ok(counts)
    }

    /// The outgoing requests' headers recorded and never sent (see `INJECT_UNSENT`), to
    /// count at exit; 0 without injection's map.
    pub fn unsent_headers(&self) -> Result<u64, LoadError> {
        if self.ebpf.map(PENDING).is_none() {
            return Ok(0);
        }
        let mut unsent = 0;
        self.for_each_taken::<PendingHeader>(PENDING, |_| unsent += 1)?;
        Ok(unsent)
    }

    /// Calls `f` with the head of every taken slot of the slot array `name` (of `T`s).
    fn for_each_taken<T: Headed>(
        &self,
        name: &'static str,
        mut f: impl FnMut(SlotHead),
    ) -> Result<(), LoadError> {
        if let Some(slots) = self.mapped(name) {
            slots
                .scan(|_, head| {
                    f(*head);
                    false
                })
                .map_err(|source| LoadError::MapSlots { map: name, source })?;
            return Ok(());
        }
        let slots: Array<&MapData, T> = self.map(name)?;
        for slot in slots.iter().filter_map(Result::ok) {
            let head = slot.head();
            if head.key != 0 {
                f(head);
            }
        }
        Ok(())
    }

    /// Frees the in-flight slots of the spans lost with the processes in `gone` (see
    /// [`is_gone`]), and their server spans' link entries; returns how many spans were
    /// lost. Their slots would otherwise stay taken until the TTL, and be counted in
    /// flight at exit.
    ///
    /// The arrays are mapped into memory (see [`MappedSlots::scan`] for a probe
    /// that claims a slot as it is freed). One that is not is read a slot at a time and
    /// written back freed: a probe of another process that claims the very slot in
    /// between (its set full, this one the oldest) loses its start. That window is one
    /// system call wide, and the loss is counted (`unmatched_end`).
    pub fn release_gone(&mut self, gone: &[(u32, u64)]) -> Result<u64, LoadError> {
        if gone.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let servers = self.release::<ServerInflight>(SERVER_INFLIGHT, gone)?;
        let clients = self.release::<ClientInflight>(CLIENT_INFLIGHT, gone)?;
        for links in [SERVER_BY_GOID, SERVER_BY_CONTEXT] {
            self.release::<SpanLink>(links, gone)?;
        }
        log::debug!(
            "released {} spans of {} exited processes in {:?}",
            servers + clients,
            gone.len(),
            started.elapsed()
        );
        Ok(servers + clients)
    }

    /// Frees every slot of the slot array `name` (of `T`s) that `gone` says is lost;
    /// returns how many.
    fn release<T: Headed + Default>(
        &mut self,
        name: &'static str,
        gone: &[(u32, u64)],
    ) -> Result<u64, LoadError> {
        let lost = |head: &SlotHead| is_gone(gone, head.pid, head.start_ns);
        if let Some(slots) = self.mapped(name) {
            return slots
                .scan(|_, head| lost(head))
                .map_err(|source| LoadError::MapSlots { map: name, source });
        }
        let mut slots: Array<&mut MapData, T> = self.map_mut(name)?;
        let mut released = 0;
        for index in 0..slots.len() {
            // A slot that cannot be read or written is left to the TTL.
            let Ok(slot) = slots.get(&index, 0) else {
                continue;
            };
            let head = slot.head();
            if head.key != 0 && lost(&head) && slots.set(index, T::default(), 0).is_ok() {
                released += 1;
            }
        }
        Ok(released)
    }

    /// The slot array `name`, if it is mapped into memory.
    fn mapped(&self, name: &str) -> Option<&MappedSlots> {
        self.mapped
            .iter()
            .find(|(mapped, _)| *mapped == name)
            .map(|(_, slots)| slots)
    }

    fn map<'a, T>(&'a self, name: &'static str) -> Result<T, LoadError>
    where
        T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self.ebpf.map(name).ok_or(LoadError::MissingMap(name))?;
        T::try_from(map).map_err(|source| LoadError::Map { map: name, source })
    }

    fn map_mut<'a, T>(&'a mut self, name: &'static str) -> Result<T, LoadError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        T::try_from(map).map_err(|source| LoadError::Map { map: name, source })
    }
}

/// What became of a socket given to [`Loader::watch_socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddSocket {
    Added,
    /// `sock_ops` had added it.
    AlreadyIn,
    /// Closed meanwhile, or not a TCP connection the map takes.
    Refused,
}

/// `BPF_NOEXIST` of the kernel's `include/uapi/linux/bpf.h`: add, never replace.
const BPF_NOEXIST: u32 = 1;

/// The slot array `name` of `ebpf`, mapped into memory.
fn map_slots(ebpf: &Ebpf, name: &'static str) -> Result<MappedSlots, LoadError> {
    let Some(Map::Array(map)) = ebpf.map(name) else {
        return Err(LoadError::MissingMap(name));
    };
    let info = map
        .info()
        .map_err(|source| LoadError::Map { map: name, source })?;
    MappedSlots::map(
        std::os::fd::AsFd::as_fd(map.fd()),
        info.map_flags(),
        info.value_size(),
        info.max_entries(),
    )
    .map_err(|source| LoadError::MapSlots { map: name, source })
}

/// A slot type, read whole by system call when its array is not mapped.
trait Headed: aya::Pod {
    fn head(&self) -> SlotHead;
}

macro_rules! headed {
    ($ty:ty, $key:ident) => {
        impl Headed for $ty {
            fn head(&self) -> SlotHead {
                SlotHead {
                    key: self.$key,
                    pid: self.pid,
                    _pad: 0,
                    start_ns: self.start_ns,
                }
            }
        }
    };
}
headed!(ServerInflight, g);
headed!(ClientInflight, g);
headed!(SpanLink, key);
headed!(PendingHeader, conn);

/// The injection path's `sk_msg` and `sock_ops` programs.
const SEND: &str = "tracer_send";
const PROCESS_EXEC: &str = "tracer_process_exec";
const PROCESS_EXIT: &str = "tracer_process_exit";
const SOCKET_OPS: &str = "tracer_socket_ops";

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| program_error(name, source))
}

fn program_error(program: &'static str, source: aya::programs::ProgramError) -> LoadError {
    LoadError::Program { program, source }
}

/// 8 random bytes from the kernel.
fn random_u64() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// `error` and its causes, for a log line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// Whether `error` comes from a system call refused for lack of permission.
fn permission_denied(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The spans in flight when the tracer stops, by what became of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Still running (a handler or call that had not returned yet).
    pub in_flight: u64,
    /// Started longer ago than the TTL: their end was never seen.
    pub expired: u64,
    /// Lost with their process, which exited or ran another program.
    pub process_exited: u64,
}

/// Whether a span of process `pid` that started at `started_ns` (monotonic) was lost with
/// its process: `gone` lists `(pid, since_ns)` for each process that exited, or replaced
/// its program, at `since_ns`. A span that started after that belongs to the program
/// the process runs now (or to a new process that reused the pid).
pub fn is_gone(gone: &[(u32, u64)], pid: u32, started_ns: u64) -> bool {
    gone.iter()
        .any(|&(gone_pid, since_ns)| gone_pid == pid && started_ns <= since_ns)
}

#[cfg(test)]
mod tests {
    use tracer_common::inflight::SLOTS;

    use super::*;

    #[test]
    fn spans_are_lost_with_their_process_only_when_started_before_it_went() {
        let gone = [(10, 1_000), (20, u64::MAX)];
        assert!(is_gone(&gone, 10, 999));
        assert!(is_gone(&gone, 10, 1_000));
        // Started after the exec: the new program's span.
        assert!(!is_gone(&gone, 10, 1_001));
        assert!(is_gone(&gone, 20, 5));
        assert!(!is_gone(&gone, 30, 5));
        assert!(!is_gone(&[], 10, 5));
    }

    /// A server slot of goroutine `g` of process `pid`, started at `start_ns`.
    fn server(g: u64, pid: u32, start_ns: u64) -> ServerInflight {
        ServerInflight {
            g,
            pid,
            start_ns,
            req: 0xc000_1000,
            ..ServerInflight::default()
        }
    }

    /// Frees the slots of exited processes in the kernel's arrays, mapped and not, and
    /// says how long a pass takes each way.
    /// Needs root, as the end-to-end tests do (`cargo xtask test` runs both as root).
    #[test]
    fn the_slots_of_exited_processes_are_released_mapped_or_not() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "loading the eBPF maps needs root: run the tests as root"
        );
        let mut loader = Loader::load(&[]).expect("loading the eBPF maps");
        assert_eq!(
            loader
                .mapped
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>(),
            SCANNED
        );
        let gone = [(100, 1_000)];
        for mapped in [true, false] {
            if !mapped {
                loader.mapped.clear();
            }
            let slots = [
                (3, server(0xc000_0001, 100, 900)),
                (4, server(0xc000_0002, 100, 1_000)),
                // Started after the exec: the new program's.
                (5, server(0xc000_0003, 100, 1_001)),
                (SLOTS - 1, server(0xc000_0004, 200, 900)),
                (SLOTS - 2, server(0xc000_0005, 100, 10)),
            ];
            let mut servers: Array<&mut MapData, ServerInflight> =
                loader.map_mut(SERVER_INFLIGHT).expect("SERVER_INFLIGHT");
            for (index, slot) in slots {
                servers.set(index, slot, 0).expect("writing a slot");
            }
            let started = std::time::Instant::now();
            assert_eq!(loader.release_gone(&gone).expect("releasing"), 3);
            let took = started.elapsed();
            eprintln!(
                "one release pass, {}: {took:?}",
                if mapped {
                    "mapped"
                } else {
                    "one system call per slot"
                }
            );
            let servers: Array<&MapData, ServerInflight> =
                loader.map(SERVER_INFLIGHT).expect("SERVER_INFLIGHT");
            for (index, slot) in slots {
                let now = servers.get(&index, 0).expect("reading a slot");
                let freed = is_gone(&gone, slot.pid, slot.start_ns);
                assert_eq!(now.g, if freed { 0 } else { slot.g }, "slot {index}");
                assert_eq!(now.req, if freed && !mapped { 0 } else { slot.req });
            }
            let counts = loader.inflight(2_000, &[]).expect("counting");
            assert_eq!(counts.in_flight, 2);
            // Clean for the next round.
            assert_eq!(
                loader
                    .release_gone(&[(100, 2_000), (200, 2_000)])
                    .expect("releasing"),
                2
            );
            assert_eq!(
                loader.inflight(2_000, &[]).expect("counting"),
                InFlight::default()
            );
        }
    }
}
