//! What the kernel says about a process under measurement: its descriptors (and what
//! each is: a BPF map, program, link, perf event), their `/proc/PID/fdinfo` fields, its
//! peak memory, and the per-program BPF statistics (`kernel.bpf_stats_enabled`).
use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// One open descriptor of a process.
pub struct Fd {
    /// What it points to, e.g. `anon_inode:bpf-map`.
    pub target: String,
    info: PathBuf,
}

impl Fd {
    /// A numeric field of its fdinfo, e.g. `memlock` or `prog_id`.
    pub fn field(&self, name: &str) -> Option<u64> {
        let text = fs::read_to_string(&self.info).ok()?;
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().parse().ok())?
        })
    }
}

/// Every open descriptor of process `pid`.
pub fn fds(pid: u32) -> Result<Vec<Fd>> {
    let dir = format!("/proc/{pid}/fd");
    let mut fds = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let entry = entry?;
        let target = fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info = PathBuf::from(format!(
            "/proc/{pid}/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ));
        fds.push(Fd { target, info });
    }
    Ok(fds)
}

/// A `kB` field of `/proc/PID/status` (e.g. `VmHWM:`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The BPF programs process `pid` holds: name, runs and nanoseconds run so far (counted
/// while [`StatsOn`] is alive).
pub fn programs(pid: u32) -> Result<Vec<(String, u64, u64)>> {
    let ids: Vec<u64> = fds(pid)?
        .iter()
        .filter(|fd| fd.target == "anon_inode:bpf-prog")
        .filter_map(|fd| fd.field("prog_id"))
        .collect();
    Ok(aya::programs::loaded_programs()
        .flatten()
        .filter(|p| ids.contains(&u64::from(p.id())))
        .map(|p| {
            let name = p.name_as_str().unwrap_or("?").to_owned();
            let nanos = u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX);
            (name, p.run_count(), nanos)
        })
        .filter(|(_, runs, _)| *runs > 0)
        .collect())
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled` on while it lives, as it was afterwards.
pub struct StatsOn {
    before: String,
}

impl StatsOn {
    pub fn enable() -> Result<Self> {
        let before =
            fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(Self { before })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, self.before.trim());
    }
}

/// Time every CPU of the machine spent busy so far, in nanoseconds: user, nice, system,
/// irq and softirq of `/proc/stat`'s `cpu` line (idle, iowait and time stolen by the
/// hypervisor left out).
pub fn busy_ns() -> Result<u64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().context("a /proc/stat field"))
        .collect::<Result<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = ticks[..] else {
        anyhow::bail!("short cpu line in /proc/stat: {line}");
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz)
        .ok()
        .filter(|&hz| hz > 0)
        .context("clock ticks")?;
    Ok((user + nice + system + irq + softirq) * (1_000_000_000 / hz))
}
