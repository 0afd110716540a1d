//! Go toolchains and the fixtures built with them.
//!
//! A toolchain for version `V` lives at `$TRACER_TOOLS/go/V/go/bin/go` (`TRACER_TOOLS`
//! defaults to `$HOME/.cache/tracer-tools`); Go 1.19 may instead be Debian's
//! `/usr/lib/go-1.19/bin/go`. Fixtures are the `package main` directories under
//! `tests/go/`; [`Toolchain::build_fixture`] builds one into
//! `<workspace>/target/go-fixtures/<version>/<name>` and rebuilds it only when a source
//! file is newer than the binary. Builds use no module proxy (standard library only)
//! and no cgo unless [`Build::cgo`] asks for it.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::{Context, Error, Result, workspace_root};

/// The Go version most tests use.
pub const DEFAULT: &str = "1.24.11";
/// The oldest Go version the tracer supports.
pub const OLDEST: &str = "1.19";
/// The newest Go version the tests cover.
pub const NEWEST: &str = "1.27.3";
/// Every Go version the tests cover, oldest first.
pub const ALL: &[&str] = &[
    "1.19", "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// One installed Go toolchain.
#[derive(Debug, Clone)]
pub struct Toolchain {
    version: String,
    go: PathBuf,
    runtime_version: String,
}

impl Toolchain {
    /// Finds the toolchain for `version` (e.g. `"1.24.11"`, `"1.19"`) and asks it for its
    /// exact runtime version.
    pub fn find(version: &str) -> Result<Self> {
        let candidates = toolchain_candidates(version)?;
        let Some(go) = candidates.iter().find(|path| path.is_file()) else {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::new(format!(
                "Go {version} is not installed (looked for {}): run the README's set-up \
                 command, which installs the Go toolchains the tests use",
                tried.join(", ")
            )));
        };
        let mut toolchain = Self {
            version: version.to_owned(),
            go: go.clone(),
            runtime_version: String::new(),
        };
        let output = toolchain
            .command()
            .args(["env", "GOVERSION"])
            .output()
            .context(format_args!("run {} env GOVERSION", go.display()))?;
        if !output.status.success() {
            return Err(Error::new(format!(
                "{} env GOVERSION failed ({}): {}",
                go.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        toolchain.runtime_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(toolchain)
    }

    /// The version it was looked up by, e.g. `"1.24.11"` or `"1.19"`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What `runtime.Version()` says in programs it builds, e.g. `"go1.24.11"`: the
    /// expected `process.runtime.version`.
    pub fn runtime_version(&self) -> &str {
        &self.runtime_version
    }

    /// The `go` command.
    pub fn go(&self) -> &Path {
        &self.go
    }

    /// The minor version: 24 for `"1.24.11"`.
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|minor| minor.parse().ok())
            .unwrap_or(0)
    }

    /// Whether net/http sets `Request.Pattern` (Go 1.23+), so that the tracer can report
    /// `http.route` for requests the fixture routes with a pattern.
    pub fn has_request_pattern(&self) -> bool {
        self.minor() >= 23
    }

    /// A `go` command set up for hermetic builds: this toolchain only, no module proxy,
    /// no workspace file, no cgo.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.go);
        command
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null());
        if env::var_os("GOCACHE").is_none()
            && env::var_os("HOME").is_none()
            && env::var_os("XDG_CACHE_HOME").is_none()
        {
            // Go needs a build cache and finds none without HOME.
            command.env("GOCACHE", fixtures_dir().join("gocache"));
        }
        command
    }

    /// Builds the fixture `tests/go/<name>` (with symbols and DWARF) and returns the
    /// binary's path, `<workspace>/target/go-fixtures/<version>/<name>`.
    pub fn build_fixture(&self, name: &str) -> Result<PathBuf> {
        self.build(name, Build::DEFAULT)
    }

    /// Builds the fixture `tests/go/<name>` stripped (`-ldflags=-s -w`: no symbol table,
    /// no DWARF) into `<workspace>/target/go-fixtures/<version>/<name>-stripped`.
    pub fn build_fixture_stripped(&self, name: &str) -> Result<PathBuf> {
        self.build(
            name,
            Build {
                stripped: true,
                ..Build::DEFAULT
            },
        )
    }

    /// Builds the fixture `tests/go/<name>` the way `build` says into
    /// `<workspace>/target/go-fixtures/<version>/<name><build.suffix()>`.
    pub fn build(&self, name: &str, build: Build) -> Result<PathBuf> {
        let source = fixture_source(name);
        if !source.join("go.mod").is_file() {
            return Err(Error::new(format!(
                "no Go fixture {name}: {} has no go.mod",
                source.display()
            )));
        }
        let out_dir = fixtures_dir().join(&self.version);
        let file_name = format!("{name}{}", build.suffix());
        let out = out_dir.join(&file_name);

        // Threads of one test binary build one at a time; separate test binaries may
        // build the same fixture at once, which the temporary name and the atomic rename
        // make safe.
        static BUILDING: Mutex<()> = Mutex::new(());
        let _building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
        if is_up_to_date(&out, &source)? {
            return Ok(out);
        }
        fs::create_dir_all(&out_dir).context(format_args!("create {}", out_dir.display()))?;
        let temporary = out_dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let mut command = self.command();
        command
            .current_dir(&source)
            .arg("build")
            .arg("-o")
            .arg(&temporary);
        let mut ldflags = Vec::new();
        if build.stripped {
            ldflags.extend(["-s", "-w"]);
        }
        if build.cgo {
            command.env("CGO_ENABLED", "1");
            ldflags.push("-linkmode=external");
        }
        if build.pie {
            command.arg("-buildmode=pie");
        }
        if !ldflags.is_empty() {
            command.arg(format!("-ldflags={}", ldflags.join(" ")));
        }
        command.arg(".");
        let output = command
            .output()
            .context(format_args!("run {}", self.go.display()))?;
        if !output.status.success() {
            let _ = fs::remove_file(&temporary);
            return Err(Error::new(format!(
                "building fixture {name} with Go {} failed ({}):\n{}",
                self.version,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )));
        }
        fs::rename(&temporary, &out).context(format_args!(
            "rename {} to {}",
            temporary.display(),
            out.display()
        ))?;
        Ok(out)
    }
}

/// A copy of `exe` whose build information (and every other mention) names Go `to`
/// instead of `from`, both the same length: a Go release the tracer has not seen. The
/// copy is `exe`'s path with `-as-<to>` appended.
pub fn relabel(exe: &Path, from: &str, to: &str) -> Result<PathBuf> {
    patch(exe, &[(from, to)], &format!("as-{to}"))
}

/// A copy of `exe` with every occurrence of each `from` replaced by its `to` (the same
/// length), at `exe`'s path with `-<suffix>` appended.
pub fn patch(exe: &Path, replacements: &[(&str, &str)], suffix: &str) -> Result<PathBuf> {
    let mut bytes = fs::read(exe).context(format_args!("read {}", exe.display()))?;
    for (from, to) in replacements {
        if from.len() != to.len() {
            return Err(Error::new(format!("{from} and {to} differ in length")));
        }
        let mut replaced = 0;
        let mut at = 0;
        while at + from.len() <= bytes.len() {
            if &bytes[at..at + from.len()] == from.as_bytes() {
                bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
                replaced += 1;
                at += from.len();
            } else {
                at += 1;
            }
        }
        if replaced == 0 {
            return Err(Error::new(format!("{from} not found in {}", exe.display())));
        }
    }
    let name = exe.file_name().unwrap_or_default().to_string_lossy();
    let out = exe.with_file_name(format!("{name}-{suffix}"));
    // Written aside and renamed: another test may be running the previous copy.
    let temporary = exe.with_file_name(format!(".{name}-{suffix}.{}.tmp", std::process::id()));
    fs::write(&temporary, bytes).context(format_args!("write {}", temporary.display()))?;
    let permissions = fs::metadata(exe)
        .context(format_args!("stat {}", exe.display()))?
        .permissions();
    fs::set_permissions(&temporary, permissions)
        .context(format_args!("chmod {}", temporary.display()))?;
    fs::rename(&temporary, &out).context(format_args!("rename to {}", out.display()))?;
    Ok(out)
}

/// How a fixture is built: the cells of the build matrix users' binaries come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    pub stripped: bool,
    /// `-buildmode=pie`: a position-independent executable.
    pub pie: bool,
    /// `CGO_ENABLED=1` and `-ldflags=-linkmode=external`: linked by the C linker, with C
    /// code before Go's.
    pub cgo: bool,
}

impl Build {
    /// `go build` with no options and no cgo.
    pub const DEFAULT: Self = Self {
        stripped: false,
        pie: false,
        cgo: false,
    };

    /// Every combination.
    pub fn all() -> Vec<Self> {
        let mut builds = Vec::new();
        for stripped in [false, true] {
            for pie in [false, true] {
                for cgo in [false, true] {
                    builds.push(Self { stripped, pie, cgo });
                }
            }
        }
        builds
    }

    /// What the binary's name gets after the fixture's: `-stripped`, `-pie`, `-cgo`, in
    /// that order, for each option set.
    pub fn suffix(&self) -> String {
        let mut suffix = String::new();
        for (set, name) in [
            (self.stripped, "-stripped"),
            (self.pie, "-pie"),
            (self.cgo, "-cgo"),
        ] {
            if set {
                suffix.push_str(name);
            }
        }
        suffix
    }
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = self.suffix();
        f.write_str(if suffix.is_empty() {
            "default"
        } else {
            &suffix[1..]
        })
    }
}

/// The source directory of fixture `name`: `tests/go/<name>`.
pub fn fixture_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("go").join(name)
}

/// Where fixtures are built: `<workspace>/target/go-fixtures`.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("target").join("go-fixtures")
}

/// Where the README's set-up command puts the tools: `$TRACER_TOOLS`, or
/// `$HOME/.cache/tracer-tools`.
pub fn tools_dir() -> Result<PathBuf> {
    match env::var_os("TRACER_TOOLS") {
        Some(tools) => Ok(PathBuf::from(tools)),
        None => {
            let home = env::var_os("HOME").ok_or_else(|| {
                Error::new("neither TRACER_TOOLS nor HOME is set: cannot find the tools")
            })?;
            Ok(PathBuf::from(home).join(".cache").join("tracer-tools"))
        }
    }
}

/// The paths where the toolchain for `version` may be, in order of preference.
fn toolchain_candidates(version: &str) -> Result<Vec<PathBuf>> {
    let tools = tools_dir()?;
    let mut candidates = vec![tools.join("go").join(version).join("go/bin/go")];
    if version == OLDEST {
        // Debian's golang-1.19-go.
        candidates.push(PathBuf::from(format!("/usr/lib/go-{version}/bin/go")));
    }
    Ok(candidates)
}

/// Whether `binary` exists and is at least as new as every file under `source`.
fn is_up_to_date(binary: &Path, source: &Path) -> Result<bool> {
    let built = match fs::metadata(binary) {
        Ok(metadata) => metadata
            .modified()
            .context(format_args!("mtime of {}", binary.display()))?,
        Err(_) => return Ok(false),
    };
    Ok(newest_mtime(source)? <= built)
}

/// The newest modification time of the files under `dir`, recursively.
fn newest_mtime(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).context(format_args!("read {}", dir.display()))? {
            let entry = entry.context(format_args!("read {}", dir.display()))?;
            let metadata = entry
                .metadata()
                .context(format_args!("stat {}", entry.path().display()))?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let modified = metadata
                    .modified()
                    .context(format_args!("mtime of {}", entry.path().display()))?;
                newest = newest.max(modified);
            }
        }
    }
    Ok(newest)
}
