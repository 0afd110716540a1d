//! Target resolution ([`tracer::target::inspect`]) on real Go binaries built at test time
//! by each Go version the tests cover (like blazesym, which tests its ELF and DWARF code
//! on binaries it builds).
//!
//! The ground truth comes from Go itself: the `offsets` fixture (`tests/go/offsets/`)
//! prints the `unsafe.Offsetof` of each `net/http.Request` member the kernel programs read
//! and the `unsafe.Sizeof` of the struct, and the toolchain says
//! its version (`go env GOVERSION`). The probe points are checked against the bytes of the
//! binary, through the section headers rather than the program headers `inspect` uses.
//! Then the errors: stripped, non-Go, truncated and non-ELF files.
//!
//! These tests need the Go toolchains (the README's set-up command installs them), not
//! root.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use tracer::probes::{
    Hook, Site,
    net_http::{
        client,
        server::{self, HOOKS},
    },
};
use tracer::target::{
    self, FunctionSource, Inspection, TargetError,
    dwarf::SIZE,
    layout::Source,
    placement::{NOP5, Placement, PlacementKind},
};
use tracer_common::config::{MAP_BUCKETS, MAP_SWISS, NO_FIELD};
use tracer_tests::go::{self, Build, Toolchain};
use tracer_tests::process::{Fixture, STARTUP_TIMEOUT};

/// The fixture that prints the true layouts.
const FIXTURE: &str = "offsets";
/// The structs whose layout the fixture prints.
const REQUEST: &str = "net/http.Request";
const URL: &str = "net/url.URL";
const RESPONSE: &str = "net/http.Response";
/// `push rbp`.
const PUSH_RBP: u8 = 0x55;

/// What Go says about one binary: the `offsets` fixture's output.
struct Truth {
    /// `runtime.Version()`.
    go: String,
    /// `unsafe.Offsetof`, keyed like [`Inspection::offsets`]: `(struct, member)`.
    offsets: HashMap<(String, String), u64>,
    /// `unsafe.Sizeof`, by struct.
    sizes: HashMap<String, u64>,
}

impl Truth {
    /// Runs the fixture at `exe` and parses the JSON line it prints.
    fn of(exe: &Path) -> Self {
        let fixture = Fixture::spawn(exe, &[]).expect("start the offsets fixture");
        let line = fixture
            .wait_for_stdout_line("{", STARTUP_TIMEOUT)
            .expect("the offsets fixture prints its JSON line");
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the offsets fixture printed invalid JSON ({e}): {line}"));
        let number = |value: &serde_json::Value, what: &str| {
            value
                .as_u64()
                .unwrap_or_else(|| panic!("{what} is not a number in {line}"))
        };
        let object = |key: &str| {
            json[key]
                .as_object()
                .unwrap_or_else(|| panic!("no object {key:?} in {line}"))
        };
        let mut offsets = HashMap::new();
        for (strukt, members) in object("offsets") {
            let members = members
                .as_object()
                .unwrap_or_else(|| panic!("offsets of {strukt} are not an object in {line}"));
            for (member, offset) in members {
                let offset = number(offset, &format!("{strukt}.{member}"));
                offsets.insert((strukt.clone(), member.clone()), offset);
            }
        }
        let sizes = object("sizes")
            .iter()
            .map(|(strukt, size)| (strukt.clone(), number(size, strukt)))
            .collect();
        let go = json["go"]
            .as_str()
            .unwrap_or_else(|| panic!("no Go version in {line}"))
            .to_owned();
        Self { go, offsets, sizes }
    }
}

/// The structs the tracer asks for: the probe's fields and the header map's.
fn structs() -> Vec<(&'static str, &'static [&'static str])> {
    tracer::probes::net_http::fields()
}

/// The members of `strukt` the server and client probes read.
fn probe_fields(strukt: &str) -> Vec<&'static str> {
    let members: Vec<&str> = server::FIELDS
        .iter()
        .chain(client::FIELDS)
        .filter(|(name, _)| *name == strukt)
        .flat_map(|(_, members)| members.iter().copied())
        .collect();
    assert!(!members.is_empty(), "{strukt} is not read by any probe");
    members
}

/// Every hook of the server and client probes, and of `--track-goroutines`.
fn hooks() -> Vec<Hook> {
    HOOKS
        .iter()
        .chain(client::HOOKS)
        .chain([&client::GOROUTINE_CREATED])
        .copied()
        .collect()
}

fn key(strukt: &str, member: &str) -> (String, String) {
    (strukt.to_owned(), member.to_owned())
}

/// Builds the fixture with the Go `version`, runs it and inspects it as the tracer does.
fn resolve(version: &str) -> (Toolchain, PathBuf, Truth, Inspection) {
    let toolchain = Toolchain::find(version).expect("Go toolchain");
    let exe = toolchain
        .build_fixture(FIXTURE)
        .expect("build the offsets fixture");
    let truth = Truth::of(&exe);
    let hooks = hooks();
    let (symbols, call_sites) = target::sites(&hooks);
    let bytes = std::fs::read(&exe).expect("read the fixture");
    let inspection = target::inspect_bytes(
        &exe.display().to_string(),
        &bytes,
        &symbols,
        &call_sites,
        &structs(),
    )
    .unwrap_or_else(|e| panic!("inspect {} (Go {version}): {e:?}", exe.display()));
    (toolchain, exe, truth, inspection)
}

/// Everything `inspect` learns from a binary built by Go `version`, checked against Go.
fn check_resolution(version: &str) {
    let (toolchain, exe, truth, inspection) = resolve(version);
    let go = toolchain.runtime_version();
    assert_eq!(truth.go, go, "runtime.Version() of the fixture");

    // Build information.
    assert_eq!(inspection.build.go_version, go, "build information of {go}");

    check_offsets(&toolchain, &exe, &truth, &inspection);
    check_probe_points(&toolchain, &exe, &inspection);
    check_config(&toolchain, &truth, &inspection);
}

/// DWARF member offsets and struct sizes equal `unsafe.Offsetof` and `unsafe.Sizeof`.
fn check_offsets(toolchain: &Toolchain, exe: &Path, truth: &Truth, inspection: &Inspection) {
    let go = toolchain.runtime_version();
    assert_eq!(
        truth.offsets.contains_key(&key(REQUEST, "Pattern")),
        toolchain.has_request_pattern(),
        "the fixture reports Request.Pattern exactly on Go 1.23+ ({go})"
    );
    for strukt in [REQUEST, URL, RESPONSE] {
        // Unexported members (`Request.ctx`) are out of the fixture's reach.
        for member in probe_fields(strukt)
            .into_iter()
            .filter(|m| m.starts_with(|c: char| c.is_ascii_uppercase()))
        {
            let key = key(strukt, member);
            assert_eq!(
                inspection.offsets.get(&key),
                truth.offsets.get(&key),
                "{strukt}.{member} with {go}: DWARF (left) against unsafe.Offsetof (right)"
            );
        }
    }
    // Nothing printed by the fixture goes unchecked.
    for (strukt, member) in truth.offsets.keys() {
        assert!(
            probe_fields(strukt).contains(&member.as_str()),
            "the fixture printed {strukt}.{member}, which the probe does not read"
        );
    }
    assert!(
        inspection.offsets.contains_key(&key("runtime.g", "goid")),
        "runtime.g.goid in the DWARF of {go}"
    );

    let wanted: &[(&str, &[&str])] = &[(REQUEST, &[SIZE])];
    let sizes = target::inspect(exe, &[], wanted)
        .unwrap_or_else(|e| panic!("inspect {} for struct sizes: {e:?}", exe.display()));
    assert_eq!(
        sizes.offsets.get(&key(REQUEST, SIZE)),
        truth.sizes.get(REQUEST),
        "size of {REQUEST} with {go}: DWARF (left) against unsafe.Sizeof (right)"
    );
}

/// Every hook is found, with an emulated probe point on the instruction `inspect` says.
fn check_probe_points(toolchain: &Toolchain, exe: &Path, inspection: &Inspection) {
    let go = toolchain.runtime_version();
    let bytes = fs::read(exe).expect("read the fixture");
    let file = object::File::parse(bytes.as_slice()).expect("parse the fixture as ELF");
    let text = file.section_by_name(".text").expect("a .text section");
    let (text_offset, text_len) = text.file_range().expect(".text has bytes in the file");

    let all = hooks();
    for hook in &all {
        if inspection.point(hook).is_none() && !tracer::run::is_missing(inspection, &all, hook) {
            // The same function under its name in another Go release's layout was found.
            continue;
        }
        let point = inspection.point(hook).unwrap_or_else(|| {
            panic!(
                "{} ({}) not found in the fixture built by {go}",
                hook.symbol,
                if hook.required {
                    "required"
                } else {
                    "optional"
                }
            )
        });
        let Placement {
            offset,
            emulated,
            what,
        } = point.placement;
        let at = format!(
            "{} at {:#x}{:+#x} ({go})",
            hook.symbol, point.function, offset
        );

        // The file offset, recomputed from the section headers.
        let address = point.function + offset;
        assert!(
            address >= text.address() && address < text.address() + text.size(),
            "{at}: not in .text"
        );
        let in_text = address - text.address();
        assert!(in_text < text_len, "{at}: beyond the bytes of .text");
        assert_eq!(
            point.file_offset,
            text_offset + in_text,
            "{at}: file offset"
        );
        let file_offset = usize::try_from(point.file_offset).expect("file offset fits usize");
        let code = bytes
            .get(file_offset..)
            .filter(|code| code.len() >= 2)
            .unwrap_or_else(|| panic!("{at}: file offset {file_offset:#x} is beyond the file"));

        assert!(emulated, "{at}: {what} is single-stepped, not emulated");
        if what == PlacementKind::CalledNop {
            // Where the kernel makes probes on 5-byte nops calls: one of those, and on a
            // call site the call right after it.
            assert!(
                matches!(hook.site, Site::AtCall(_) | Site::Once),
                "{at}: a nop for {:?}",
                hook.site
            );
            assert_eq!(
                code.get(..5),
                Some(&NOP5[..]),
                "{at}: not a 5-byte nop at file offset {file_offset:#x}"
            );
            if matches!(hook.site, Site::AtCall(_)) {
                assert_eq!(code.get(5), Some(&0xe8), "{at}: no call after the nop");
            }
            continue;
        }
        if matches!(hook.site, Site::AtCall(_)) {
            // The call instruction itself (e8 rel32).
            assert_eq!(what, PlacementKind::AtCall, "{at}: placement");
            assert_eq!(
                code[0], 0xe8,
                "{at}: not a call at file offset {file_offset:#x}"
            );
            continue;
        }
        if matches!(hook.site, Site::AfterCall(_)) {
            // Right after the call, a conditional jump (its result tested).
            assert_eq!(what, PlacementKind::AfterCall, "{at}: placement");
            assert!(
                is_jcc(code),
                "{at}: the bytes at file offset {file_offset:#x} are not a conditional jump: \
                 {:02x?}",
                &code[..2]
            );
            continue;
        }
        if toolchain.minor() >= 21 {
            assert_eq!(what, PlacementKind::PushFramePointer, "{at}: placement");
        } else {
            assert_eq!(what, PlacementKind::StackCheckBranch, "{at}: placement");
        }
        match what {
            PlacementKind::PushFramePointer => assert_eq!(
                code[0], PUSH_RBP,
                "{at}: the byte at file offset {file_offset:#x} is not push rbp"
            ),
            PlacementKind::StackCheckBranch => assert!(
                is_jcc(code),
                "{at}: the bytes at file offset {file_offset:#x} are not a conditional \
                 jump: {:02x?}",
                &code[..2]
            ),
            PlacementKind::OtherEmulated
            | PlacementKind::FirstInstruction
            | PlacementKind::AtCall
            | PlacementKind::Return
            | PlacementKind::AfterCall
            | PlacementKind::CalledNop => {}
        }
    }
    // Two HTTP/2 functions are named in two layouts each; a binary has one of each.
    assert_eq!(
        inspection.functions.len(),
        hooks()
            .iter()
            .filter(|h| matches!(h.site, Site::Entry | Site::Once))
            .count()
            - 2,
        "only the requested functions are resolved: {:?}",
        inspection.functions.keys()
    );
}

/// Whether `code` starts with a conditional jump (`jcc rel8` or `jcc rel32`).
fn is_jcc(code: &[u8]) -> bool {
    matches!(code, [0x70..=0x7f, ..] | [0x0f, 0x80..=0x8f, ..])
}

/// The kernel configuration builds, with the true offsets and the binary's map layout.
fn check_config(toolchain: &Toolchain, truth: &Truth, inspection: &Inspection) {
    let go = toolchain.runtime_version();
    let config = server::config(&inspection.offsets)
        .unwrap_or_else(|e| panic!("kernel configuration for {go}: {e}"));
    let true_offset = |strukt: &str, member: &str| {
        truth
            .offsets
            .get(&key(strukt, member))
            .map_or(NO_FIELD, |&offset| {
                u32::try_from(offset).expect("offset fits u32")
            })
    };
    let fields = [
        ("Method", config.req_method, REQUEST),
        ("RequestURI", config.req_request_uri, REQUEST),
        ("ProtoMajor", config.req_proto_major, REQUEST),
        ("ProtoMinor", config.req_proto_minor, REQUEST),
        ("Header", config.req_header, REQUEST),
        ("Host", config.req_host, REQUEST),
        ("RemoteAddr", config.req_remote_addr, REQUEST),
        ("TLS", config.req_tls, REQUEST),
        ("Pattern", config.req_pattern, REQUEST),
        ("URL", config.req_url, REQUEST),
        ("Scheme", config.url_scheme, URL),
        ("Host", config.url_host, URL),
        ("Path", config.url_path, URL),
        ("RawQuery", config.url_raw_query, URL),
        ("StatusCode", config.resp_status_code, RESPONSE),
    ];
    for (member, configured, strukt) in fields {
        assert_eq!(
            configured,
            true_offset(strukt, member),
            "configured offset of {strukt}.{member} with {go}"
        );
    }
    let goid = inspection.offsets[&key("runtime.g", "goid")];
    assert_eq!(u64::from(config.g_goid), goid, "runtime.g.goid with {go}");

    let (kind, name) = if toolchain.minor() >= 24 {
        (MAP_SWISS, "swiss tables")
    } else {
        (MAP_BUCKETS, "buckets")
    };
    assert_eq!(
        config.header_map.kind, kind,
        "header map layout of {go}: expected {name}, got {:?}",
        config.header_map
    );
}

#[test]
fn resolves_the_oldest_go() {
    check_resolution(go::OLDEST);
}

#[test]
fn resolves_the_default_go() {
    check_resolution(go::DEFAULT);
}

#[test]
fn resolves_the_newest_go() {
    check_resolution(go::NEWEST);
}

/// The module information after the version begins and ends with 16 bytes of sentinels
/// that are not UTF-8 (`debug/buildinfo` strips them, see `readBuildInfo` in
/// <https://go.dev/src/debug/buildinfo/buildinfo.go>).
#[test]
fn reads_the_main_module() {
    let (toolchain, _, _, inspection) = resolve(go::DEFAULT);
    assert_eq!(
        inspection.build.main_module.as_deref(),
        Some("fixture/offsets"),
        "main module in the build information of {}",
        toolchain.runtime_version()
    );
}

/// Inspects the binary at `exe` as the tracer does, with every hook.
fn inspect(exe: &Path) -> Result<Inspection, TargetError> {
    let hooks = hooks();
    let (symbols, call_sites) = target::sites(&hooks);
    let bytes = fs::read(exe).expect("read the fixture");
    target::inspect_bytes(
        &exe.display().to_string(),
        &bytes,
        &symbols,
        &call_sites,
        &structs(),
    )
}

/// A stripped binary (no symbol table, no DWARF) resolves to what the same program built
/// with both resolves to: functions from the Go function table, layouts from the table.
#[test]
fn stripped_binaries_resolve_like_unstripped_ones() {
    for version in go::ALL {
        let toolchain = Toolchain::find(version).expect("Go toolchain");
        let go = toolchain.runtime_version();
        let full = inspect(&toolchain.build_fixture(FIXTURE).expect("build"))
            .unwrap_or_else(|e| panic!("{go}: {e}"));
        let exe = toolchain
            .build_fixture_stripped(FIXTURE)
            .expect("build the stripped fixture");
        let stripped = inspect(&exe).unwrap_or_else(|e| panic!("{go} stripped: {e}"));
        assert_eq!(stripped.function_source, FunctionSource::Pclntab, "{go}");
        assert_eq!(full.function_source, FunctionSource::Symbols, "{go}");
        for hook in hooks() {
            let (a, b) = (full.point(&hook), stripped.point(&hook));
            // The file offsets differ (stripping moves nothing in memory): compare
            // addresses and placements.
            assert_eq!(
                a.map(|p| (p.function, p.placement)),
                b.map(|p| (p.function, p.placement)),
                "{go}: probe point of {hook:?}"
            );
        }
        assert_eq!(stripped.offsets, full.offsets, "{go}: offsets");
        assert!(
            stripped
                .offset_sources
                .values()
                .all(|s| *s == Source::Derived),
            "{go}: offsets from the type descriptors"
        );
        assert!(
            full.offset_sources.values().all(|s| *s == Source::Dwarf),
            "{go}: offsets from DWARF"
        );
        assert_eq!(stripped.layout_release, None, "{go}: no table entry needed");
        // Where the type descriptors are (checked against the symbol table in
        // `the_function_table_agrees_with_the_symbol_table`; the stripped build's data
        // moved).
        assert!(
            stripped.types_base.is_some(),
            "{go}: type descriptors found"
        );
    }
}

/// A Go release newer than the table resolves from what the binary says: its DWARF, or
/// without DWARF its type descriptors. When the descriptors lack a struct the probes need,
/// the kernel configuration is refused naming it, never guessed.
#[test]
fn an_unknown_go_release_resolves_from_the_binary_or_is_refused() {
    let toolchain = Toolchain::find(go::NEWEST).expect("Go toolchain");
    let go = toolchain.runtime_version();
    let future = format!("go1.99.{}", "9".repeat(go.len() - "go1.99.".len()));
    let with_dwarf = go::relabel(
        &toolchain.build_fixture(FIXTURE).expect("build"),
        go,
        &future,
    )
    .expect("relabel");
    let inspection = inspect(&with_dwarf).expect("a future release with DWARF resolves");
    assert_eq!(inspection.build.go_version, future);
    assert!(inspection.layout_release.is_none());
    assert!(
        inspection
            .offset_sources
            .values()
            .all(|s| *s == Source::Dwarf)
    );
    let dwarf_offsets = inspection.offsets;

    let stripped = toolchain.build_fixture_stripped(FIXTURE).expect("build");
    let future_stripped = go::relabel(&stripped, go, &future).expect("relabel");
    let inspection = inspect(&future_stripped).expect("a future stripped release resolves");
    assert!(inspection.layout_release.is_none(), "no table entry used");
    assert!(
        inspection
            .offset_sources
            .values()
            .all(|s| *s == Source::Derived)
    );
    assert_eq!(inspection.offsets, dwarf_offsets, "derived offsets");
    server::config(&inspection.offsets).expect("a kernel configuration");

    // The same with `*http.Request`'s descriptor renamed: its members cannot be derived.
    let unknowable = go::patch(
        &stripped,
        &[(go, &future), ("*http.Request", "*http.Requesx")],
        "unknowable",
    )
    .expect("patch");
    let inspection = inspect(&unknowable).expect("other structs still resolve");
    let error = server::config(&inspection.offsets).expect_err("Request is unknown");
    assert_eq!(
        error.to_string(),
        "struct member net/http.Request.Method is not in the binary's DWARF, its type descriptors or the layout table"
    );
}

#[test]
fn refuses_elf_files_that_are_not_go() {
    let own = std::env::current_exe().expect("the test's own executable");
    for path in [Path::new("/bin/true"), own.as_path()] {
        match target::inspect(path, &["main.main"], &structs()) {
            Err(TargetError::NotGo { .. }) => {}
            other => panic!("{}: expected NotGo, got {other:?}", path.display()),
        }
    }
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("tracer-resolve-{}-{name}", std::process::id()));
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn truncated_go_binaries_are_errors() {
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let exe = toolchain
        .build_fixture(FIXTURE)
        .expect("build the offsets fixture");
    let bytes = fs::read(&exe).expect("read the fixture");
    let symbols: Vec<&str> = HOOKS.iter().map(|hook| hook.symbol).collect();

    // The first page holds the ELF header and the program and section headers (the Go
    // linker writes them first) but not what they point to.
    let file = TempFile::new("truncated-page", &bytes[..4096]);
    match target::inspect(&file.0, &symbols, &structs()) {
        Err(TargetError::NotElf { .. } | TargetError::NotGo { .. }) => {}
        other => {
            panic!("the first 4096 bytes of a Go binary: expected NotElf or NotGo, got {other:?}")
        }
    }

    // Cut anywhere, a binary is an error (whichever), never a success or a panic.
    for len in [0, 64, bytes.len() / 2, bytes.len() - 1] {
        let file = TempFile::new(&format!("truncated-{len}"), &bytes[..len]);
        if let Ok(inspection) = target::inspect(&file.0, &symbols, &structs()) {
            panic!(
                "the first {len} of {} bytes of a Go binary: expected an error, got {inspection:?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn refuses_files_that_are_not_elf() {
    // xorshift64: the same bytes on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let file = TempFile::new("random", &random);
    match target::inspect(&file.0, &["main.main"], &structs()) {
        Err(TargetError::NotElf { .. }) => {}
        other => panic!("random bytes: expected NotElf, got {other:?}"),
    }
}

/// Without symbols, functions come from the Go function table: on every Go version and
/// every kind of build that keeps its symbol table (so there is something to compare
/// with), each function in the table is where the symbol table says, including when the
/// C linker put C code before Go's (cgo) and in position-independent executables.
#[test]
fn the_function_table_agrees_with_the_symbol_table() {
    for version in go::ALL {
        let toolchain = Toolchain::find(version).expect("Go toolchain");
        for build in Build::all().into_iter().filter(|build| !build.stripped) {
            let exe = toolchain
                .build(FIXTURE, build)
                .unwrap_or_else(|e| panic!("build the offsets fixture ({build}): {e}"));
            let bytes = fs::read(&exe).expect("read the fixture");
            let elf = target::elf::Elf::parse(&bytes).expect("parse the fixture");
            let table = target::pclntab::Pclntab::parse(&elf)
                .unwrap_or_else(|e| panic!("Go {version} {build}: function table: {e}"));
            // A name may have two functions: the function and its ABI wrapper, whose
            // symbol (not its name in the table) ends in `.abi0` before Go 1.21.
            let mut symbols: HashMap<&[u8], Vec<u64>> = HashMap::new();
            for symbol in elf.file.symbols() {
                if let (object::SymbolKind::Text, Ok(name)) = (symbol.kind(), symbol.name_bytes()) {
                    let name = name.strip_suffix(b".abi0").unwrap_or(name);
                    symbols.entry(name).or_default().push(symbol.address());
                }
            }
            let mut compared = 0;
            for (name, function) in table.functions() {
                let Some(addresses) = symbols.get(name) else {
                    continue;
                };
                assert!(
                    addresses.contains(&function.address),
                    "Go {version} {build}: {} at {:#x}, symbols at {addresses:x?}",
                    String::from_utf8_lossy(name),
                    function.address
                );
                compared += 1;
            }
            assert!(
                compared > 1000,
                "Go {version} {build}: only {compared} functions in both tables"
            );
            // The module data also says where the type descriptors start.
            assert_eq!(
                table.types(&elf, toolchain.minor()),
                elf.types_base(),
                "Go {version} {build}: type descriptors"
            );
            let wanted: Vec<&str> = hooks().iter().map(|hook| hook.symbol).collect();
            let found = table.lookup(&wanted);
            let by_symbol = elf.functions(&wanted);
            for hook in hooks() {
                assert_eq!(
                    found.get(hook.symbol).map(|f| f.address),
                    by_symbol.get(hook.symbol).map(|f| f.address),
                    "Go {version} {build}: {} in the function table and the symbol table",
                    hook.symbol
                );
            }
        }
    }
}
