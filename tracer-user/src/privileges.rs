//! What the tracer needs from the kernel, checked before anything is attempted so that a
//! missing capability or kernel feature is named instead of surfacing as an obscure error.

const CAP_SYS_ADMIN: u32 = 21;
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

/// Checks capabilities and kernel features.
pub fn check() -> Result<(), PrivilegeError> {
    if let Some(missing) = missing_capabilities(effective_capabilities()) {
        return Err(PrivilegeError::Capabilities(missing));
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
