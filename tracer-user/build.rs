//! Builds the kernel programs (`tracer-ebpf`) for the BPF target with `aya-build`, so that
//! one `cargo build` produces a `tracer` binary with its programs embedded.
//! Set `AYA_BUILD_SKIP=1` for a host-only build (the binary then cannot attach).
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir)
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let ebpf_dir = root.join("tracer-ebpf");
    let common_dir = root.join("tracer-common");
    println!("cargo:rerun-if-changed={}", common_dir.display());
    // The BPF target needs `-Z build-std=core`; this lets the stable toolchain do that for
    // this one build without touching anything else.
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("stable"),
    )
    .context("building the kernel programs (is bpf-linker installed? run `cargo xtask setup`)")
}
