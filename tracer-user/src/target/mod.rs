//! Target resolution: everything the tracer learns from a binary before attaching to it.
//!
//! From the executable file alone: that it is a Go program and which Go version built it
//! ([`buildinfo`]), where the functions to probe are ([`elf`] symbols) and where on each
//! a probe is cheapest ([`placement`]), and the struct member offsets the kernel programs
//! need ([`dwarf`]).
pub mod buildinfo;
pub mod dwarf;
pub mod elf;
pub mod gomap;
pub mod gotype;
pub mod pclntab;
pub mod placement;

use std::{collections::HashMap, path::Path};

use self::{buildinfo::BuildInfo, elf::Elf, placement::Placement};

/// Oldest Go release supported: the register ABI (`g` in R14, arguments in registers)
/// exists since Go 1.17, the inline build information since Go 1.18.
pub const MIN_GO: (u32, u32) = (1, 18);

/// Errors resolving a target binary.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Go program: not an ELF file")]
    NotElf {
        path: String,
        #[source]
        source: elf::ElfError,
    },
    #[error("{path} is not a Go program")]
    NotGo {
        path: String,
        #[source]
        source: buildinfo::BuildInfoError,
    },
    #[error("{path} was built by {version}: Go versions older than go{}.{} are not supported", MIN_GO.0, MIN_GO.1)]
    UnsupportedGo { path: String, version: String },
    #[error("{path} ({version}) has no symbol table: stripped binaries are not supported yet")]
    Stripped { path: String, version: String },
    #[error("{path} ({version}): cannot read struct layouts")]
    Layout {
        path: String,
        version: String,
        #[source]
        source: dwarf::DwarfError,
    },
    #[error("{path}: cannot read the code of {function}")]
    Code {
        path: String,
        function: String,
        #[source]
        source: elf::ElfError,
    },
}

/// Where a probe goes in one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePoint {
    /// Virtual address of the function.
    pub function: u64,
    /// File offset of the probed instruction.
    pub file_offset: u64,
    pub placement: Placement,
}

/// A probe point at a call: in `caller`, on its call to `callee` (`after`: false) or just
/// after that call returns (`after`: true).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallSite<'a> {
    pub caller: &'a str,
    pub callee: &'a str,
    pub after: bool,
}

impl<'a> CallSite<'a> {
    /// The call site of `hook`, `None` for a function entry.
    pub fn of(hook: &crate::probes::Hook) -> Option<CallSite<'static>> {
        use crate::probes::Site;
        match hook.site {
            Site::Entry => None,
            Site::AtCall(callee) => Some(CallSite {
                caller: hook.symbol,
                callee,
                after: false,
            }),
            Site::AfterCall(callee) => Some(CallSite {
                caller: hook.symbol,
                callee,
                after: true,
            }),
        }
    }
}

/// What [`inspect_bytes`] looks for to place `hooks`: the functions whose entry they
/// probe, and their call sites.
pub fn sites(hooks: &[crate::probes::Hook]) -> (Vec<&'static str>, Vec<CallSite<'static>>) {
    let entries = hooks
        .iter()
        .filter(|hook| hook.site == crate::probes::Site::Entry)
        .map(|hook| hook.symbol)
        .collect();
    let calls = hooks.iter().filter_map(CallSite::of).collect();
    (entries, calls)
}

/// What was learned from one binary.
#[derive(Debug)]
pub struct Inspection {
    pub build: BuildInfo,
    /// Probe points of the requested functions that exist in the binary.
    pub functions: HashMap<String, ProbePoint>,
    /// Probe points at the requested calls, by `(caller, callee, after)`.
    pub call_sites: HashMap<(String, String, bool), ProbePoint>,
    /// Member offsets of the requested structs.
    pub offsets: dwarf::Offsets,
    /// Where the Go type descriptors start (`type:*`), which type names are relative to.
    pub types_base: Option<u64>,
    /// The loadable segments, to read the binary's static data by virtual address.
    pub segments: Vec<elf::Segment>,
    /// Where the `context.Canceled` variable (an `error`) is in the running process: in a
    /// position-dependent executable only (the Go default), else `None`.
    pub context_canceled: Option<u64>,
    /// Whether the binary's virtual addresses are the running process's (a
    /// position-dependent executable, the Go default on linux/amd64).
    pub fixed_address: bool,
}

impl Inspection {
    /// The probe point of `hook`, if the binary has it.
    pub fn point(&self, hook: &crate::probes::Hook) -> Option<&ProbePoint> {
        match CallSite::of(hook) {
            None => self.functions.get(hook.symbol),
            Some(site) => {
                self.call_sites
                    .get(&(site.caller.to_owned(), site.callee.to_owned(), site.after))
            }
        }
    }
}

/// Reads the binary at `path` and resolves the given functions and struct members.
pub fn inspect(
    path: &Path,
    functions: &[&str],
    structs: &[(&str, &[&str])],
) -> Result<Inspection, TargetError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TargetError::Read {
        path: shown.clone(),
        source,
    })?;
    inspect_bytes(&shown, &data, functions, &[], structs)
}

/// [`inspect`] on the bytes of a binary; `path` is only used in messages.
pub fn inspect_bytes(
    path: &str,
    data: &[u8],
    functions: &[&str],
    call_sites: &[CallSite<'_>],
    structs: &[(&str, &[&str])],
) -> Result<Inspection, TargetError> {
    let elf = Elf::parse(data).map_err(|source| TargetError::NotElf {
        path: path.into(),
        source,
    })?;
    let section = elf.section(".go.buildinfo");
    let build =
        buildinfo::parse(section.as_deref(), data).map_err(|source| TargetError::NotGo {
            path: path.into(),
            source,
        })?;
    let version = build.go_version.clone();
    match buildinfo::parse_version(&version) {
        Some((major, minor, _)) if (major, minor) >= MIN_GO => {}
        _ => {
            return Err(TargetError::UnsupportedGo {
                path: path.into(),
                version,
            });
        }
    }
    if !elf.has_symbols() {
        return Err(TargetError::Stripped {
            path: path.into(),
            version,
        });
    }
    let offsets = dwarf::member_offsets(&elf, structs).map_err(|source| TargetError::Layout {
        path: path.into(),
        version: version.clone(),
        source,
    })?;
    let mut points = HashMap::new();
    for (name, function) in elf.functions(functions) {
        let code_error = |source| TargetError::Code {
            path: path.into(),
            function: name.clone(),
            source,
        };
        let len = if function.size == 0 {
            64
        } else {
            function.size.min(64)
        };
        let code = elf.code(function.address, len).map_err(code_error)?;
        let placement = placement::entry_point(code, function.address);
        let file_offset = elf
            .file_offset(function.address + placement.offset)
            .map_err(code_error)?;
        points.insert(
            name,
            ProbePoint {
                function: function.address,
                file_offset,
                placement,
            },
        );
    }
    let callers: Vec<&str> = call_sites.iter().map(|site| site.caller).collect();
    let callees: Vec<&str> = call_sites.iter().map(|site| site.callee).collect();
    let caller_functions = elf.functions(&callers);
    let callee_functions = elf.functions(&callees);
    let mut sites = HashMap::new();
    for site in call_sites {
        let (Some(caller), Some(callee)) = (
            caller_functions.get(site.caller),
            callee_functions.get(site.callee),
        ) else {
            continue;
        };
        let code_error = |source| TargetError::Code {
            path: path.into(),
            function: site.caller.to_owned(),
            source,
        };
        let code = elf.code(caller.address, caller.size).map_err(code_error)?;
        let placement = if site.after {
            placement::after_call(code, caller.address, callee.address)
        } else {
            placement::at_call(code, caller.address, callee.address)
        };
        let Some(placement) = placement else {
            continue;
        };
        let file_offset = elf
            .file_offset(caller.address + placement.offset)
            .map_err(code_error)?;
        sites.insert(
            (site.caller.to_owned(), site.callee.to_owned(), site.after),
            ProbePoint {
                function: caller.address,
                file_offset,
                placement,
            },
        );
    }
    Ok(Inspection {
        build,
        functions: points,
        call_sites: sites,
        offsets,
        types_base: elf.types_base(),
        segments: elf.segments(),
        context_canceled: elf
            .is_fixed_address()
            .then(|| elf.data_symbol("context.Canceled"))
            .flatten(),
        fixed_address: elf.is_fixed_address(),
    })
}
