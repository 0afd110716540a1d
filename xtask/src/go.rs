//! Go programs: builds them offline with a pinned toolchain (see [`crate::setup`] for where
//! the toolchains live) and starts the servers among them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::cmd;
use crate::process::Running;

/// Builds the `main` package in `package_dir` into the executable `out` with `go`, offline
/// and without switching toolchains.
pub fn build(go: &Path, package_dir: &Path, out: &Path) -> Result<()> {
    build_tagged(go, package_dir, out, &[])
}

/// [`build`] with the build tags `tags` set.
pub fn build_tagged(go: &Path, package_dir: &Path, out: &Path, tags: &[&str]) -> Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut command = Command::new(go);
    command.args(["build", "-o"]).arg(out);
    if !tags.is_empty() {
        command.arg(format!("-tags={}", tags.join(",")));
    }
    cmd::run(
        command
            .arg(".")
            .current_dir(package_dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod"),
    )
}

/// A Go test server that announced `listening on ADDR` on its stdout (the convention of
/// the demo service, the bench server and the test fixtures).
pub struct Server {
    pub process: Running,
    pub addr: SocketAddr,
}

impl Server {
    /// Spawns `cmd` (which should pass `-addr 127.0.0.1:0`) and waits for its address.
    pub fn start(name: &str, cmd: &mut Command, deadline: Instant) -> Result<Self> {
        let process = Running::spawn(name, cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
        let line = process
            .stdout()?
            .wait_for("`listening on ADDR`", deadline, |l| {
                l.starts_with("listening on ")
            })?;
        let addr = listening_addr(&line)?;
        Ok(Self { process, addr })
    }
}

/// The address in `listening on 127.0.0.1:PORT`.
fn listening_addr(line: &str) -> Result<SocketAddr> {
    let addr = line.strip_prefix("listening on ").unwrap_or(line).trim();
    addr.parse()
        .with_context(|| format!("bad listening line {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let addr = listening_addr("listening on 127.0.0.1:8080").ok();
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert!(listening_addr("listening on nowhere").is_err());
    }
}
