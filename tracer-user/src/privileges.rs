//! What the tracer needs from the kernel, checked before anything is attempted so that a
//! missing capability or kernel feature is named instead of surfacing as an obscure error.

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_NICE: u32 = 23;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// A missing privilege or kernel feature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivilegeError {
    #[error("missing privileges: {0} needed to load and attach eBPF programs (run as root)")]
    Capabilities(String),
    #[error("kernel feature missing: {0}")]
    Kernel(&'static str),
}

/// The effective capability set of this process.
fn effective_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether this process has CAP_SYS_NICE, which a thread needs to leave the idle
/// scheduling class (see [`crate::priority`]).
pub fn has_sys_nice() -> bool {
    has_capability(CAP_SYS_NICE)
}

/// Whether capability `cap` is in this process's effective set.
fn has_capability(cap: u32) -> bool {
    effective_capabilities() & (1 << cap) != 0
}

/// Which capabilities are missing from `effective` (CAP_SYS_ADMIN stands in for both).
pub fn missing_capabilities(effective: u64) -> Option<String> {
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(format!("{} (or CAP_SYS_ADMIN)", missing.join(" and ")))
}

/// Whether this process has CAP_SYS_ADMIN: the kernel's uprobe perf events accept no
/// narrower capability (CAP_PERFMON is refused with EACCES; measured on Linux 6.18).
pub fn has_sys_admin() -> bool {
    has_capability(CAP_SYS_ADMIN)
}

/// Capabilities that are not required but whose absence limits what can be traced, with
/// what is lost, for the ones `effective` lacks.
pub fn limitations(effective: u64) -> Vec<String> {
    [
        (
            CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN: uprobes cannot be attached (the kernel's uprobe perf events require it)",
        ),
        (
            CAP_SYS_PTRACE,
            "CAP_SYS_PTRACE: processes of other users cannot be read, and connections opened before the tracer attached may carry no traceparent",
        ),
        (
            CAP_DAC_READ_SEARCH,
            "CAP_DAC_READ_SEARCH: executables this user may not read cannot be inspected",
        ),
    ]
    .into_iter()
    .filter(|(cap, _)| effective & (1u64 << cap) == 0)
    .map(|(_, what)| what.to_owned())
    .collect()
}

/// [`limitations`] of this process.
pub fn current_limitations() -> Vec<String> {
    limitations(effective_capabilities())
}

/// Warns once for each capability whose absence limits tracing.
pub fn warn_limitations() {
    for limitation in current_limitations() {
        log::warn!("capability missing: {limitation}");
    }
}

/// Kernel features the tracer relies on, with the release that brought each.
const KERNEL_FEATURES: &[((u8, u8), &str)] = &[
    ((5, 8), "BPF ring buffer (Linux 5.8)"),
    (
        (5, 15),
        "uprobe attach cookies, bpf_get_attach_cookie (Linux 5.15)",
    ),
];

/// The first kernel feature a kernel of version `(major, minor)` lacks.
/// Why `traceparent` injection cannot run here, if it cannot: its socket programs
/// (`sock_ops` on a cgroup, `sk_msg`) need CAP_NET_ADMIN (or CAP_SYS_ADMIN) and cgroup v2.
pub fn injection_blocker() -> Option<String> {
    let caps = effective_capabilities();
    if caps & ((1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)) == 0 {
        return Some("CAP_NET_ADMIN (or CAP_SYS_ADMIN) is missing".into());
    }
    if crate::process::cgroup2_mount().is_none() {
        return Some("no cgroup v2 hierarchy is mounted".into());
    }
    None
}

pub fn missing_kernel_feature(version: (u8, u8)) -> Option<&'static str> {
    KERNEL_FEATURES
        .iter()
        .find(|(since, _)| version < *since)
        .map(|(_, feature)| *feature)
}

/// `(major, minor)` of the running kernel, from `uname`.
fn kernel_release() -> Option<(u8, u8)> {
    // SAFETY: `utsname` is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates the release.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }.to_string_lossy();
    parse_release(&release)
}

/// `(major, minor)` of a release string such as `6.18.44-fc-v669`.
fn parse_release(release: &str) -> Option<(u8, u8)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Checks capabilities and kernel features.
pub fn check() -> Result<(), PrivilegeError> {
    if let Some(missing) = missing_capabilities(effective_capabilities()) {
        return Err(PrivilegeError::Capabilities(missing));
    }
    if let Some(feature) = kernel_release().and_then(missing_kernel_feature) {
        return Err(PrivilegeError::Kernel(feature));
    }
    if !std::path::Path::new("/sys/bus/event_source/devices/uprobe").exists() {
        return Err(PrivilegeError::Kernel("uprobes (CONFIG_UPROBE_EVENTS)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_kernel_features() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(missing_kernel_feature((6, 18)), None);
        assert_eq!(missing_kernel_feature((5, 15)), None);
        assert_eq!(
            missing_kernel_feature((5, 10)),
            Some("uprobe attach cookies, bpf_get_attach_cookie (Linux 5.15)")
        );
        assert_eq!(
            missing_kernel_feature((5, 4)),
            Some("BPF ring buffer (Linux 5.8)")
        );
        assert_eq!(
            PrivilegeError::Kernel("BPF ring buffer (Linux 5.8)").to_string(),
            "kernel feature missing: BPF ring buffer (Linux 5.8)"
        );
    }

    #[test]
    fn names_limiting_capabilities() {
        let all = (1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_PTRACE) | (1 << CAP_DAC_READ_SEARCH);
        assert!(limitations(all).is_empty());
        let lacking = limitations(1 << CAP_SYS_ADMIN);
        assert_eq!(lacking.len(), 2);
        assert!(lacking[0].starts_with("CAP_SYS_PTRACE"));
        assert!(lacking[1].starts_with("CAP_DAC_READ_SEARCH"));
        assert!(limitations(0)[0].starts_with("CAP_SYS_ADMIN"));
    }

    #[test]
    fn names_missing_capabilities() {
        assert_eq!(
            missing_capabilities(0).as_deref(),
            Some("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
        assert_eq!(
            missing_capabilities(1 << CAP_BPF).as_deref(),
            Some("CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
        assert_eq!(missing_capabilities(1 << CAP_SYS_ADMIN), None);
        assert_eq!(
            missing_capabilities((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
    }
}
