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
