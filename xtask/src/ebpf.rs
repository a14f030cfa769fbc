//! `cargo xtask build-ebpf`: builds the eBPF twins (compare-ebpf/ebpf) into
//! target/ebpf/<program>.o.
//!
//! Toolchain: Debian's rustc-web (`/usr/bin/rustc`, RUSTC_BOOTSTRAP=1) for
//! target bpfel-unknown-none, whose prebuilt `core` comes with the package
//! libstd-rust-web-dev-bpf, and bpf-linker 0.13.0 built against LLVM 22
//! (llvm-22-dev), installed with `cargo install` into
//! `${WASMFW_CACHE:-$HOME/.cache/wasmfw}/tools` (skipped when that version
//! is already there). aya-build is not used: its build.rs runs
//! `rustup run nightly`, which this machine does not have.

use crate::deps::{ensure, root, run};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

const BPF_LINKER_VERSION: &str = "0.13.0";
const TARGET: &str = "bpfel-unknown-none";
/// Programs built into objects: the twins, the empty baseline and the two
/// examples the verifier rejects (kept on purpose, see compare-ebpf/README.md).
pub const PROGRAMS: &[&str] = &["icmp_drop", "l4_dos", "dns_block", "empty", "dns_block_pktlen", "dns_block_ptr"];

const PACKAGES: &[(&str, &str)] = &[
    ("/usr/bin/rustc", "rustc-web"),
    ("/usr/lib/llvm-22/lib/libLLVM.so", "llvm-22-dev"),
    ("/usr/lib/rustlib/bpfel-unknown-none/lib", "libstd-rust-web-dev-bpf"),
];

fn cache_dir() -> PathBuf {
    match std::env::var_os("WASMFW_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/wasmfw"),
    }
}

/// Installs bpf-linker into the tool cache unless the right version is there.
fn ensure_bpf_linker() -> Result<PathBuf> {
    let tools = cache_dir().join("tools");
    let bin = tools.join("bin/bpf-linker");
    if bin.is_file() {
        let out = Command::new(&bin).arg("--version").output();
        if let Ok(out) = out {
            if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) {
                return Ok(bin);
            }
        }
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} into {}", tools.display());
    let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
    run(Command::new("nice")
        .args(["-n", "10", "cargo", "install", &format!("bpf-linker@{BPF_LINKER_VERSION}")])
        .args(["--locked", "--no-default-features", "--features", "llvm-22"])
        .arg("--root")
        .arg(&tools)
        .arg("--target-dir")
        .arg(cache_dir().join("build/bpf-linker"))
        .env("LLVM_PREFIX", "/usr/lib/llvm-22")
        .env("PATH", path))?;
    if !bin.is_file() {
        bail!("bpf-linker was not installed at {}", bin.display());
    }
    Ok(bin)
}

pub fn build() -> Result<()> {
    ensure(PACKAGES)?;
    let linker = ensure_bpf_linker()?;
    let root = root();
    let target_dir = root.join("target/ebpf-build");
    let path = format!("{}:{}", linker.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    run(Command::new("nice")
        .args(["-n", "10", "cargo", "build", "--release", "--bins"])
        .current_dir(root.join("compare-ebpf/ebpf"))
        .env("RUSTC", "/usr/bin/rustc")
        // bpfel-unknown-none needs unstable flags; rustc-web is a stable compiler.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("PATH", path)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .arg("--target-dir")
        .arg(&target_dir))?;
    let out = root.join("target/ebpf");
    std::fs::create_dir_all(&out)?;
    let built = target_dir.join(TARGET).join("release");
    for p in PROGRAMS {
        let src = built.join(p);
        let dest = out.join(format!("{p}.o"));
        std::fs::copy(&src, &dest).with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
    }
    eprintln!("xtask: {} eBPF objects in {}", PROGRAMS.len(), out.display());
    Ok(())
}
