//! Installs missing Debian packages, so a fresh machine needs nothing by hand.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Everything `cargo xtask test` may need, as (file that proves it, package).
const ALL: &[(&str, &str)] = &[
    ("/usr/bin/rustc", "rustc-web"),
    ("/usr/bin/cargo", "cargo-web"),
    ("/usr/lib/rustlib/src/rust/library/core/Cargo.toml", "rust-web-src"),
    // The filters' linker (filters/.cargo/wasm-ld): lld of the same LLVM
    // as rustc-web. rust-lld is not on a fresh machine's PATH.
    ("/usr/lib/llvm-22/bin/wasm-ld", "lld-22"),
    // ctl/tests/uapi_layout.rs compiles the module's C header.
    ("/usr/bin/cc", "gcc"),
    ("/usr/include/linux/ioctl.h", "linux-libc-dev"),
    ("/usr/sbin/ip", "iproute2"),
    ("/usr/bin/ping", "iputils-ping"),
    ("/usr/sbin/hping3", "hping3"),
    ("/usr/sbin/bpftool", "bpftool"),
    // The guest tests (kmod/tests) run host binaries inside the guests.
    ("/usr/bin/jq", "jq"),
    ("/usr/bin/python3", "python3"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/bin/busybox", "busybox-static"),
    // `wasmfw capture` files are checked with tshark (kmod/tests/t_capture.sh,
    // ctl/tests/ebpf_capture.rs).
    ("/usr/bin/tshark", "tshark"),
    // `cargo xtask lint` checks every shell script.
    ("/usr/bin/shellcheck", "shellcheck"),
];

/// Installs the packages whose marker files are missing.
pub fn ensure(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted.iter().filter(|(f, _)| !Path::new(f).exists()).map(|(_, p)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))
}

pub fn ensure_all() -> Result<()> {
    ensure(ALL)
}

/// Debian's rustc-web (the only toolchain here with library sources for
/// -Zbuild-std) and the filters' linker.
pub fn ensure_rustc_web() -> Result<()> {
    ensure(&ALL[..4])
}

/// Runs a command, failing with its command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// The repository root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}
