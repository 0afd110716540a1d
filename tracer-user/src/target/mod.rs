//! Target resolution: everything the tracer learns from a binary before attaching to it.
//!
//! From the executable file alone: that it is a Go program and which Go version built it
//! ([`buildinfo`]), where the functions to probe are ([`elf`] symbols) and where on each
//! a probe is cheapest ([`placement`]), and the struct member offsets the kernel programs
//! need ([`dwarf`]).
pub mod buildinfo;
pub mod derive;
pub mod dwarf;
pub mod elf;
pub mod gomap;
pub mod gotype;
pub mod layout;
pub mod pclntab;
pub mod placement;
#[cfg(any(test, feature = "synthetic-elf"))]
pub mod synthetic;

use std::{collections::HashMap, path::Path};

use self::{buildinfo::BuildInfo, elf::Elf, placement::Placement};

/// Oldest Go release supported: the register ABI (`g` in R14, arguments in registers)
/// exists since Go 1.17, the inline build information since Go 1.18.
pub const MIN_GO: (u32, u32) = (1, 18);

/// Errors resolving a target binary.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "cannot read {path}: permission denied (executables other users may only read need CAP_DAC_READ_SEARCH)"
    )]
    ReadDenied { path: String },
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
    #[error("{path} ({version}) has no symbol table, and its Go function table is unreadable")]
    NoFunctions {
        path: String,
        version: String,
        #[source]
        source: pclntab::PclntabError,
    },
    #[error("{path} ({version}): cannot read struct layouts")]
    Layout {
        path: String,
        version: String,
        #[source]
        source: dwarf::DwarfError,
    },
    #[error(
        "{path} was built by {version}, which has no DWARF, whose type descriptors describe none of the structs the probes read, and whose struct layouts are not known (the table covers {known}): the tracer does not guess offsets"
    )]
    UnknownLayout {
        path: String,
        version: String,
        known: String,
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
            Site::Entry | Site::Once | Site::FirstInstruction | Site::Returns => None,
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

/// What [`inspect_bytes`] looks for to place `hooks`: the functions they probe (at their
/// entry, first instruction or returns), and their call sites.
pub fn sites(hooks: &[crate::probes::Hook]) -> (Vec<&'static str>, Vec<CallSite<'static>>) {
    let entries = hooks
        .iter()
        .filter(|hook| CallSite::of(hook).is_none())
        .map(|hook| hook.symbol)
        .collect();
    let calls = hooks.iter().filter_map(CallSite::of).collect();
    (entries, calls)
}

/// Where a binary's functions were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionSource {
    /// The ELF symbol table.
    Symbols,
    /// The Go function table (`.gopclntab`): the binary has no symbol table.
    Pclntab,
}

impl std::fmt::Display for FunctionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FunctionSource::Symbols => "symbol table",
            FunctionSource::Pclntab => "Go function table (.gopclntab)",
        })
    }
}

/// The struct layouts of a binary: its DWARF when it has some; else what its type
/// descriptors say, completed by the layout table's entry for its Go version. Without
/// DWARF, a release missing from the table must have everything derived (checked when the
/// kernel configuration is built); nothing derived and no table entry is an error.
fn layouts(
    path: &str,
    elf: &Elf<'_>,
    version: &str,
    structs: &[(&str, &[&str])],
    types: Option<(u64, u64)>,
) -> Result<layout::Layouts, TargetError> {
    let mut layouts = layout::Layouts::default();
    match dwarf::member_offsets(elf, structs) {
        Ok(offsets) => {
            layouts.fill(offsets, layout::Source::Dwarf);
            return Ok(layouts);
        }
        Err(dwarf::DwarfError::Missing) => {}
        Err(source) => {
            return Err(TargetError::Layout {
                path: path.into(),
                version: version.into(),
                source,
            });
        }
    }
    if let Some((start, end)) = types {
        let mut derived = derive::member_offsets(elf, start, end);
        derived.retain(|(strukt, member), _| {
            structs
                .iter()
                .any(|(s, members)| s == strukt && members.contains(&member.as_str()))
        });
        layouts.fill(derived, layout::Source::Derived);
    }
    match layout::release(version) {
        Some(release) => layouts.fill_from_table(release, structs),
        None if !layouts.offsets.is_empty() => {}
        None => {
            let releases = layout::releases();
            let known = match (releases.first(), releases.last()) {
                (Some(first), Some(last)) => format!("{} to {}", first.go, last.go),
                _ => "no release".to_owned(),
            };
            return Err(TargetError::UnknownLayout {
                path: path.into(),
                version: version.into(),
                known,
            });
        }
    }
    Ok(layouts)
}

/// What was learned from one binary.
#[derive(Debug)]
pub struct Inspection {
    pub build: BuildInfo,
    /// Probe points of the requested functions that exist in the binary.
    pub functions: HashMap<String, ProbePoint>,
    /// The `ret` instructions of each of those functions (for [`Site::Returns`]).
    ///
    /// [`Site::Returns`]: crate::probes::Site::Returns
    pub returns: HashMap<String, Vec<ProbePoint>>,
    /// The point each of those functions passes once per call, where it has one and the
    /// kernel makes a probe there a call (see [`placement::kernel_calls_nop_probes`]), for
    /// [`Site::Once`] (which is at the entry otherwise).
    ///
    /// [`Site::Once`]: crate::probes::Site::Once
    pub once: HashMap<String, ProbePoint>,
    /// Probe points at the requested calls, by `(caller, callee, after)`.
    pub call_sites: HashMap<(String, String, bool), ProbePoint>,
    /// Member offsets of the requested structs.
    pub offsets: dwarf::Offsets,
    /// Where each offset came from.
    pub offset_sources: HashMap<(String, String), layout::Source>,
    /// The Go release of the layout table used, if it was.
    pub layout_release: Option<&'static str>,
    /// Where the functions were found.
    pub function_source: FunctionSource,
    /// Whether the binary has DWARF debug information.
    pub dwarf: bool,
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
    /// The probe points of `hook` in the binary: none when it lacks the function or call,
    /// one per `ret` for [`Site::Returns`], else one.
    ///
    /// [`Site::Returns`]: crate::probes::Site::Returns
    pub fn points(&self, hook: &crate::probes::Hook) -> Vec<ProbePoint> {
        use crate::probes::Site;
        match (hook.site, CallSite::of(hook)) {
            (Site::Returns, _) => self.returns.get(hook.symbol).cloned().unwrap_or_default(),
            (Site::Once, _) => self
                .once
                .get(hook.symbol)
                .or_else(|| self.functions.get(hook.symbol))
                .copied()
                .into_iter()
                .collect(),
            (Site::FirstInstruction, _) => self
                .functions
                .get(hook.symbol)
                .and_then(|entry| {
                    Some(ProbePoint {
                        function: entry.function,
                        // The entry point's instruction is in the same segment.
                        file_offset: entry.file_offset.checked_sub(entry.placement.offset)?,
                        placement: Placement {
                            offset: 0,
                            emulated: false,
                            what: placement::PlacementKind::FirstInstruction,
                        },
                    })
                })
                .into_iter()
                .collect(),
            (_, None) => self
                .functions
                .get(hook.symbol)
                .copied()
                .into_iter()
                .collect(),
            (_, Some(site)) => self
                .call_sites
                .get(&(site.caller.to_owned(), site.callee.to_owned(), site.after))
                .copied()
                .into_iter()
                .collect(),
        }
    }

    /// Whether the binary has where `hook` goes.
    pub fn has(&self, hook: &crate::probes::Hook) -> bool {
        !self.points(hook).is_empty()
    }

    /// The probe point of `hook` (the first, for [`Site::Returns`]), if the binary has it.
    ///
    /// [`Site::Returns`]: crate::probes::Site::Returns
    pub fn point(&self, hook: &crate::probes::Hook) -> Option<ProbePoint> {
        self.points(hook).first().copied()
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
    let (_, minor, _) = buildinfo::parse_version(&version).unwrap_or_default();
    // Functions from the symbol table, else from the Go function table, which stripping
    // keeps.
    let table = pclntab::Pclntab::parse(&elf);
    let function_source = if elf.has_symbols() {
        FunctionSource::Symbols
    } else {
        FunctionSource::Pclntab
    };
    let lookup = |names: &[&str]| -> Result<HashMap<String, elf::Function>, TargetError> {
        match (function_source, &table) {
            (FunctionSource::Symbols, _) => Ok(elf.functions(names)),
            (FunctionSource::Pclntab, Ok(table)) => Ok(table.lookup(names)),
            (FunctionSource::Pclntab, Err(source)) => Err(TargetError::NoFunctions {
                path: path.into(),
                version: version.clone(),
                source: source.clone(),
            }),
        }
    };
    let types = table
        .as_ref()
        .ok()
        .and_then(|table| table.types_range(&elf, minor));
    let layouts = layouts(path, &elf, &version, structs, types)?;
    let mut points = HashMap::new();
    let mut returns = HashMap::new();
    let mut once = HashMap::new();
    let called_nops = placement::kernel_calls_nop_probes();
    for (name, function) in lookup(functions)? {
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
        let file_offset = function
            .address
            .checked_add(placement.offset)
            .ok_or(elf::ElfError::NotLoaded(function.address))
            .and_then(|address| elf.file_offset(address))
            .map_err(code_error)?;
        if function.size > 0 {
            let code = elf
                .code(function.address, function.size)
                .map_err(code_error)?;
            let start = elf.file_offset(function.address).map_err(code_error)?;
            let rets = placement::returns(code, function.address)
                .into_iter()
                .map(|ret| ProbePoint {
                    function: function.address,
                    file_offset: start.saturating_add(ret.offset),
                    placement: ret,
                })
                .collect();
            returns.insert(name.clone(), rets);
            if called_nops && let Some(point) = placement::once_point(code, function.address) {
                once.insert(
                    name.clone(),
                    ProbePoint {
                        function: function.address,
                        file_offset: start.saturating_add(point.offset),
                        placement: point,
                    },
                );
            }
        }
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
    let caller_functions = lookup(&callers)?;
    let callee_functions = lookup(&callees)?;
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
            placement::at_call(code, caller.address, callee.address, called_nops)
        };
        let Some(placement) = placement else {
            continue;
        };
        let file_offset = caller
            .address
            .checked_add(placement.offset)
            .ok_or(elf::ElfError::NotLoaded(caller.address))
            .and_then(|address| elf.file_offset(address))
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
        returns,
        once,
        call_sites: sites,
        offsets: layouts.offsets,
        offset_sources: layouts.sources,
        layout_release: layouts.release,
        function_source,
        dwarf: elf.section_address(".debug_info").is_some(),
        types_base: elf.types_base().or_else(|| {
            table
                .as_ref()
                .ok()
                .and_then(|table| table.types(&elf, minor))
        }),
        segments: elf.segments(),
        context_canceled: elf
            .is_fixed_address()
            .then(|| elf.data_symbol("context.Canceled"))
            .flatten(),
        fixed_address: elf.is_fixed_address(),
    })
}
