//! Which container a process runs in, from its cgroup path.
//!
//! Container runtimes name the cgroup of each container after its id, a 64-digit hex
//! string, in one of a few forms:
//!
//! | runtime                        | cgroup path (last components)                         |
//! |--------------------------------|-------------------------------------------------------|
//! | Docker, cgroupfs driver        | `/docker/<id>`                                        |
//! | Docker, systemd driver         | `/system.slice/docker-<id>.scope`                     |
//! | containerd (Kubernetes)        | `/kubepods.slice/…-pod<uid>.slice/cri-containerd-<id>.scope` or `/kubepods/besteffort/pod<uid>/<id>` |
//! | CRI-O                          | `…/crio-<id>.scope` (`crio-conmon-<id>` is its monitor, not the container) |
//! | Podman                         | `…/libpod-<id>.scope` (sometimes with `/container` below it) |
//!
//! Seen from inside a cgroup namespace the path is relative (`/../../…`); the id is
//! still its last container-like component.

/// The container and pod a process's cgroup names, when it names any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The container id (64 lowercase hex digits).
    pub container_id: Option<String>,
    /// The Kubernetes pod UID (`8-4-4-4-12` hex digits).
    pub pod_uid: Option<String>,
}

/// Prefixes runtimes put before the id in a cgroup directory name.
const PREFIXES: [&str; 5] = [
    "docker-",
    "cri-containerd-",
    "crio-",
    "libpod-",
    "containerd-",
];

impl Placement {
    /// The placement of process `pid` (from `/proc/PID/cgroup`).
    pub fn of(pid: u32) -> Self {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|text| Self::parse(&text))
            .unwrap_or_default()
    }

    /// The placement a `/proc/PID/cgroup` text names: the unified (v2) line first, else
    /// the v1 lines in order.
    pub fn parse(cgroup: &str) -> Self {
        let paths = cgroup.lines().filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, _controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            Some((line.starts_with("0::"), path))
        });
        let (unified, legacy): (Vec<_>, Vec<_>) = paths.partition(|(unified, _)| *unified);
        unified
            .into_iter()
            .chain(legacy)
            .map(|(_, path)| Self::of_path(path))
            .find(|p| p.container_id.is_some())
            .unwrap_or_default()
    }

    /// The placement one cgroup path names.
    fn of_path(path: &str) -> Self {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let container_id = components
            .iter()
            .rev()
            .find_map(|component| container_id(component));
        Self {
            pod_uid: container_id
                .as_ref()
                .and_then(|_| components.iter().rev().find_map(|c| pod_uid(c))),
            container_id,
        }
    }
}

/// The container id a cgroup directory name holds.
fn container_id(component: &str) -> Option<String> {
    if component.starts_with("crio-conmon-") {
        return None;
    }
    let name = component.strip_suffix(".scope").unwrap_or(component);
    let id = PREFIXES
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    is_hex(id, 64).then(|| id.to_ascii_lowercase())
}

/// The pod UID a cgroup directory name holds: `pod<uid>` (cgroupfs) or
/// `kubepods-<class>-pod<uid with _ for ->.slice` (systemd).
fn pod_uid(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let at = name.rfind("pod")?;
    let uid = name[at + 3..].replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    (groups.len() == shape.len() && groups.iter().zip(shape).all(|(g, n)| is_hex(g, n)))
        .then(|| uid.to_ascii_lowercase())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a8c0d2b1e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";
    const UID: &str = "5f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

    fn placement(cgroup: &str) -> Placement {
        Placement::parse(cgroup)
    }

    #[test]
    fn docker_both_drivers() {
        let cgroupfs = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n0::/docker/{ID}\n");
        assert_eq!(placement(&cgroupfs).container_id.as_deref(), Some(ID));
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        let p = placement(&systemd);
        assert_eq!(p.container_id.as_deref(), Some(ID));
        assert_eq!(p.pod_uid, None);
    }

    #[test]
    fn kubernetes_containerd_systemd_and_cgroupfs() {
        let systemd_uid = UID.replace('-', "_");
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
        );
        let p = placement(&systemd);
        assert_eq!(p.container_id.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
        let cgroupfs = format!("0::/kubepods/besteffort/pod{UID}/{ID}\n");
        let p = placement(&cgroupfs);
        assert_eq!(p.container_id.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn crio_but_not_its_monitor() {
        let uid = UID.replace('-', "_");
        let crio = format!("0::/kubepods.slice/kubepods-pod{uid}.slice/crio-{ID}.scope\n");
        assert_eq!(placement(&crio).container_id.as_deref(), Some(ID));
        let conmon = format!("0::/kubepods.slice/kubepods-pod{uid}.slice/crio-conmon-{ID}.scope\n");
        assert_eq!(placement(&conmon), Placement::default());
    }

    #[test]
    fn podman_with_a_nested_cgroup() {
        let podman = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(placement(&podman).container_id.as_deref(), Some(ID));
    }

    #[test]
    fn relative_path_inside_a_cgroup_namespace() {
        let uid = UID.replace('-', "_");
        let relative =
            format!("0::/../../kubepods-besteffort-pod{uid}.slice/cri-containerd-{ID}.scope\n");
        let p = placement(&relative);
        assert_eq!(p.container_id.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn v1_only_hierarchies_and_upper_case() {
        let upper = ID.to_ascii_uppercase();
        let v1 = format!("4:memory:/docker/{upper}\n1:name=systemd:/docker/{upper}\n");
        assert_eq!(placement(&v1).container_id.as_deref(), Some(ID));
    }

    #[test]
    fn no_container() {
        for text in [
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            "0::/\n",
            "0::/system.slice/docker.service\n",
            "0::/kubepods.slice/kubepods-burstable.slice\n",
            "",
            "garbage",
        ] {
            assert_eq!(placement(text), Placement::default(), "{text:?}");
        }
    }
}
