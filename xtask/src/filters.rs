//! Builds the Wasm filters with Debian's rustc-web and -Zbuild-std.

use crate::deps::{ensure_rustc_web, root, run};
use anyhow::{Context, Result};
use std::process::Command;

const TARGET: &str = "wasm32v1-none";

pub fn build() -> Result<()> {
    ensure_rustc_web()?;
    let root = root();
    let target_dir = root.join("target/wasm");
    run(Command::new("cargo")
        .current_dir(root.join("filters"))
        .env("RUSTC", "/usr/bin/rustc")
        // -Zbuild-std is unstable; rustc-web is a stable compiler.
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .args(["build", "--release", "--workspace", "--target", TARGET, "-Zbuild-std=core,alloc"])
        .arg("--target-dir")
        .arg(&target_dir))?;
    let out = root.join("target/filters");
    std::fs::create_dir_all(&out)?;
    let built = target_dir.join(TARGET).join("release");
    let mut n = 0;
    for entry in std::fs::read_dir(&built).with_context(|| format!("reading {}", built.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let dest = out.join(path.file_name().expect("file name"));
            std::fs::copy(&path, &dest).with_context(|| format!("copying to {}", dest.display()))?;
            n += 1;
        }
    }
    eprintln!("xtask: {n} filters in {}", out.display());
    Ok(())
}

/// The fresh-machine linker check (issue 8): one filter builds and links
/// with a HOME without rustup and a PATH whose first `rust-lld` is a stub
/// that fails, so neither a `rust-lld` on the PATH (Debian's rust-web-llvm
/// leaves a dangling /usr/bin/rust-lld -> lld-22 on a fresh machine) nor
/// one inside a toolchain can be what links it.
pub fn link_check() -> Result<()> {
    ensure_rustc_web()?;
    let root = root();
    let home = root.join("target/linkcheck/home");
    let stub_dir = root.join("target/linkcheck/bin");
    let target_dir = root.join("target/linkcheck");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&stub_dir)?;
    let stub = stub_dir.join("rust-lld");
    std::fs::write(&stub, "#!/bin/sh\necho 'linkcheck: rust-lld on the PATH was used' >&2\nexit 1\n")?;
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let path = format!("{}:/usr/bin:/bin", stub_dir.display());
    let clean_env = |cmd: &mut Command| {
        cmd.env_clear().env("PATH", &path).env("HOME", &home);
    };
    let mut build = Command::new("/usr/bin/cargo");
    clean_env(&mut build);
    run(build
        .current_dir(root.join("filters"))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["build", "--quiet", "--release", "-p", "icmp_drop", "--target", TARGET, "-Zbuild-std=core,alloc"])
        .arg("--target-dir")
        .arg(&target_dir))?;
    let wasm = target_dir.join(TARGET).join("release/icmp_drop.wasm");
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    anyhow::ensure!(bytes.starts_with(b"\0asm"), "{} is not a wasm module", wasm.display());
    anyhow::ensure!(
        !bytes.windows(11).any(|w| w == b"__heap_base"),
        "{} exports __heap_base: it was not linked through filters/.cargo/wasm-ld",
        wasm.display()
    );
    eprintln!(
        "xtask: icmp_drop links with a failing rust-lld first on the PATH and no rustup in reach ({} bytes)",
        bytes.len()
    );
    Ok(())
}
