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
/// with a PATH of `/usr/bin:/bin` and a HOME without rustup, so neither a
/// `rust-lld` on the PATH nor one inside a toolchain can be what links it.
pub fn link_check() -> Result<()> {
    ensure_rustc_web()?;
    let root = root();
    let home = root.join("target/linkcheck/home");
    let target_dir = root.join("target/linkcheck");
    std::fs::create_dir_all(&home)?;
    let clean_env = |cmd: &mut Command| {
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", &home);
    };
    let mut probe = Command::new("/bin/sh");
    clean_env(&mut probe);
    if probe.args(["-c", "command -v rust-lld"]).output()?.status.success() {
        anyhow::bail!("rust-lld is on /usr/bin:/bin: this check would not prove anything here");
    }
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
    eprintln!("xtask: icmp_drop links with PATH=/usr/bin:/bin and no rustup in reach ({} bytes)", bytes.len());
    Ok(())
}
