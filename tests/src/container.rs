//! A container made by hand: a program in its own mount and pid namespaces (`unshare`),
//! its root a tmpfs only that namespace sees (`pivot_root`), its cgroup named like a
//! container runtime's (e.g. `…/docker-<id>.scope`). Its network is the host's, so its
//! loopback port is reachable from the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::go::Toolchain;
use crate::process::{Fixture, HttpServer};
use crate::{Context, Error, Result};

/// Where the program sits inside the container (no such path on the host).
pub const INSIDE_PATH: &str = "/app/server";

/// The `net_http_server` fixture running in a container; stopped (and its cgroup
/// removed) on drop.
pub struct Container {
    server: Option<HttpServer>,
    /// The program's pid as the host sees it (the fixture's pid is `unshare`'s).
    pid: u32,
    id: String,
    /// The cgroup directories made for it, deepest first.
    cgroups: Vec<PathBuf>,
    root: PathBuf,
}

impl Container {
    /// Starts `exe` (a static `net_http_server` built by `toolchain`) as
    /// [`INSIDE_PATH`] in a new container whose id is `id` (64 hex digits), in the
    /// cgroup `cgroup` (relative to the cgroup v2 mount, e.g.
    /// `tests/docker-<id>.scope`).
    pub fn start(toolchain: &Toolchain, exe: &Path, id: &str, cgroup: &str) -> Result<Self> {
        let mount = cgroup2_mount()?;
        let mut cgroups = Vec::new();
        let mut dir = mount.clone();
        for component in cgroup.split('/').filter(|c| !c.is_empty()) {
            dir = dir.join(component);
            if !dir.is_dir() {
                std::fs::create_dir(&dir)
                    .context(format_args!("create the cgroup {}", dir.display()))?;
                cgroups.insert(0, dir.clone());
            }
        }
        let cgroup = dir;
        // The mount point of the container's root: an empty directory on the host.
        let root = std::env::temp_dir().join(format!("tracer-container-{}", &id[..12]));
        std::fs::create_dir_all(&root).context("create the root mount point")?;
        let inside = format!(
            "mount -t tmpfs tmpfs {root} && mkdir -p {root}/app {root}/old && \
             cp {exe} {root}{INSIDE_PATH} && cd {root} && pivot_root . old && \
             exec {INSIDE_PATH}",
            root = root.display(),
            exe = exe.display(),
        );
        let outside = format!(
            "echo $$ > {procs} && exec unshare --mount --pid --fork --kill-child sh -c '{inside}'",
            procs = cgroup.join("cgroup.procs").display(),
        );
        let mut command = Command::new("sh");
        command.args(["-c", &outside]);
        let fixture = Fixture::spawn_command(command, INSIDE_PATH)?;
        let unshare = fixture.pid();
        let server = HttpServer::from_fixture(fixture, toolchain.clone())?;
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .context("read the children of unshare")?;
        let pid = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::new(format!("unshare (pid {unshare}) has no child")))?;
        Ok(Self {
            server: Some(server),
            pid,
            id: id.to_owned(),
            cgroups,
            root,
        })
    }

    /// The server inside.
    pub fn server(&self) -> &HttpServer {
        self.server.as_ref().expect("running until dropped")
    }

    /// The program's pid on the host.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Killing unshare kills the program (--kill-child); then the cgroup is empty.
        drop(self.server.take());
        for cgroup in &self.cgroups {
            crate::poll_until(std::time::Duration::from_secs(5), || {
                std::fs::remove_dir(cgroup).ok()
            });
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// Where the cgroup v2 hierarchy is mounted.
fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    mounts
        .lines()
        .find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            (after.split_whitespace().next()? == "cgroup2")
                .then(|| before.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })
        .ok_or_else(|| Error::new("no cgroup v2 hierarchy is mounted"))
}
