//! End-to-end: `tracer doctor --binary PATH` says where everything it needs comes from,
//! and why tracing will not work when it will not: a stripped binary (supported: functions
//! from the Go function table, offsets from its type descriptors), a binary with DWARF, a
//! Go release newer than the table without DWARF (traced from its type descriptors; refused,
//! naming the version and the member, when they lack a struct), a program that is not Go,
//! and a Go program without `net/http`. These tests need root (doctor checks privileges).

use tracer_tests::go::{self, Build, Toolchain};
use tracer_tests::process::HTTP_SERVER_FIXTURE;
use tracer_tests::tracer::{self, RUN_TIMEOUT, TracerOutput};

/// `tracer doctor --binary PATH`.
fn doctor(path: &std::path::Path) -> TracerOutput {
    tracer::run(
        ["doctor".as_ref(), "--binary".as_ref(), path.as_os_str()],
        RUN_TIMEOUT,
    )
    .expect("run tracer doctor")
}

fn assert_says(output: &TracerOutput, expected: &[&str]) {
    for line in expected {
        assert!(output.stdout.contains(line), "{line:?} in\n{output}");
    }
}

#[test]
fn a_stripped_binary_is_supported_and_says_where_everything_came_from() {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let go = toolchain.runtime_version();
    let exe = toolchain
        .build(
            HTTP_SERVER_FIXTURE,
            Build {
                stripped: true,
                pie: true,
                cgo: true,
            },
        )
        .expect("build the stripped fixture");
    let output = doctor(&exe);
    assert_eq!(output.code(), Some(0), "{output}");
    assert_says(
        &output,
        &[
            &format!("go: {go} (main module fixture/net_http_server"),
            "binary: position-independent executable, cgo on, symbol table no (stripped), DWARF no",
            "functions: from the Go function table (.gopclntab)",
            "members from type descriptors",
            "  runtime.g: goid=",
            "net/http.serverHandler.ServeHTTP+0xa (push rbp, emulated)",
            "propagation: extract=on (w3c, b3), inject=on",
            "kernel: ",
            "verdict: tracing will work",
        ],
    );
}

#[test]
fn a_binary_with_dwarf_takes_its_offsets_from_dwarf() {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::NEWEST).expect("Go toolchain");
    let exe = toolchain
        .build_fixture(HTTP_SERVER_FIXTURE)
        .expect("build the fixture");
    let output = doctor(&exe);
    assert_eq!(output.code(), Some(0), "{output}");
    assert_says(
        &output,
        &[
            "binary: executable, cgo off, symbol table yes, DWARF yes",
            "functions: from the symbol table",
            "members from DWARF",
            "verdict: tracing will work",
        ],
    );
}

#[test]
fn an_unknown_go_release_is_traced_from_its_type_descriptors_or_refused_by_name() {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::NEWEST).expect("Go toolchain");
    let go = toolchain.runtime_version();
    let future = format!("go1.99.{}", "9".repeat(go.len() - "go1.99.".len()));
    let stripped = toolchain
        .build_fixture_stripped(HTTP_SERVER_FIXTURE)
        .expect("build the stripped fixture");
    let exe = go::relabel(&stripped, go, &future).expect("relabel");
    let output = doctor(&exe);
    assert_eq!(output.code(), Some(0), "{output}");
    assert_says(
        &output,
        &[
            &format!("go: {future}"),
            "members from type descriptors",
            "verdict: tracing will work",
        ],
    );
    // Without a descriptor for net/http.Request, nothing says where its members are.
    let exe = go::patch(
        &stripped,
        &[(go, &future), ("*http.Request", "*http.Requesx")],
        "unknowable",
    )
    .expect("patch");
    let output = doctor(&exe);
    assert_eq!(output.code(), Some(1), "{output}");
    assert_says(
        &output,
        &[
            &format!("{future}: unsupported struct layout"),
            "net/http.Request.Method is not in the binary's DWARF, its type descriptors or the layout table",
            "verdict: tracing will not work",
        ],
    );
}

#[test]
fn a_program_that_is_not_go_is_named() {
    tracer_tests::require_root();
    let output = doctor(std::path::Path::new("/bin/true"));
    assert_eq!(output.code(), Some(1), "{output}");
    assert_says(
        &output,
        &["is not a Go program", "verdict: tracing will not work"],
    );
}

#[test]
fn a_go_program_without_net_http_is_named() {
    tracer_tests::require_root();
    let toolchain = Toolchain::find(go::DEFAULT).expect("Go toolchain");
    let exe = toolchain
        .build_fixture_stripped("no_http")
        .expect("build the no_http fixture");
    let output = doctor(&exe);
    assert_eq!(output.code(), Some(1), "{output}");
    assert_says(
        &output,
        &[
            "has no net/http server functions (net/http.serverHandler.ServeHTTP not found)",
            "verdict: tracing will not work",
        ],
    );
}
