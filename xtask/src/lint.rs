//! `cargo xtask lint`: the style gate, the first step of `cargo xtask test`:
//! rustfmt on every Rust file, clippy with `-D warnings` on the host
//! crates, shellcheck on every shell script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::deps::{root, run};

/// shellcheck's lowest severity that fails the gate: errors and warnings,
/// not the info/style notes.
const SHELLCHECK_SEVERITY: &str = "warning";

/// Findings accepted in one script, with why. `kmod/guest/kernel.sh` is
/// part of the kernel cache key (`kernel_hash` in kmod/guest/lib.sh), so an
/// edit rebuilds every guest kernel: its `$(config_fragments)` word
/// splitting (paths without spaces, by construction) waits for its next
/// real change.
const SHELLCHECK_ACCEPTED: &[(&str, &str)] = &[("kmod/guest/kernel.sh", "SC2046")];

/// Workspaces whose crates clippy checks for the host, with the packages
/// (empty: the whole workspace). Only host-buildable crates: the filters
/// are wasm32 cdylibs, engine-ffi and the eBPF programs are no_std objects
/// with their own panic handlers (their rustc lints still apply when the
/// project's scripts build them).
const CLIPPY: &[(&str, &[&str])] = &[(".", &[]), ("filters", &["wasmfw-abi", "wasmfw-filter-sdk"])];

pub fn run_all() -> Result<()> {
    let mut failed = Vec::new();
    for (name, check) in [("rustfmt", fmt as fn() -> Result<()>), ("clippy", clippy), ("shellcheck", shellcheck)] {
        eprintln!("xtask lint: {name}");
        if let Err(e) = check() {
            eprintln!("xtask lint: {name} FAILED: {e:#}");
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Tracked files whose path matches one of the git pathspecs.
fn tracked(pathspecs: &[&str]) -> Result<Vec<PathBuf>> {
    let out = Command::new("git").current_dir(root()).arg("ls-files").arg("-z").args(pathspecs).output()?;
    if !out.status.success() {
        bail!("git ls-files failed");
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).as_ref()))
        .collect())
}

/// Every tracked Rust file, the module's and the guests' included (they are
/// in no cargo workspace), against the root `rustfmt.toml`.
fn fmt() -> Result<()> {
    let files = tracked(&["*.rs"])?;
    run(Command::new("rustfmt")
        .current_dir(root())
        .args(["--check", "--edition", "2021", "--config-path", "rustfmt.toml"])
        .args(&files))
    .context("rustfmt --check (fix with: cargo xtask lint --fix)")
}

/// Rewrites every tracked Rust file in the root style.
pub fn fmt_fix() -> Result<()> {
    let files = tracked(&["*.rs"])?;
    run(Command::new("rustfmt")
        .current_dir(root())
        .args(["--edition", "2021", "--config-path", "rustfmt.toml"])
        .args(&files))
}

fn clippy() -> Result<()> {
    for (dir, packages) in CLIPPY {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root().join(dir)).args(["clippy", "--all-targets", "--quiet"]);
        if packages.is_empty() {
            cmd.arg("--workspace");
        }
        for p in *packages {
            cmd.args(["-p", p]);
        }
        run(cmd.args(["--", "-D", "warnings"])).with_context(|| format!("cargo clippy in {dir}"))?;
    }
    Ok(())
}

/// Every tracked script: `*.sh`, and the extensionless ones with a shell
/// shebang (`.ci/run`, the filters' linker wrapper).
fn shellcheck() -> Result<()> {
    crate::deps::ensure(&[("/usr/bin/shellcheck", "shellcheck")])?;
    let mut scripts = tracked(&["*.sh"])?;
    for f in tracked(&[".ci/*", "*/.cargo/*"])? {
        let head = std::fs::read(root().join(&f)).unwrap_or_default();
        if head.starts_with(b"#!/bin/bash")
            || head.starts_with(b"#!/usr/bin/env bash")
            || head.starts_with(b"#!/bin/sh")
        {
            scripts.push(f);
        }
    }
    let check = |files: &[PathBuf], exclude: Option<&str>| {
        let mut cmd = Command::new("shellcheck");
        cmd.current_dir(root()).args(["-x", "-S", SHELLCHECK_SEVERITY]);
        if let Some(codes) = exclude {
            cmd.args(["-e", codes]);
        }
        run(cmd.args(files))
    };
    let (accepted, rest): (Vec<PathBuf>, Vec<PathBuf>) =
        scripts.into_iter().partition(|f| SHELLCHECK_ACCEPTED.iter().any(|(p, _)| f.as_path() == Path::new(p)));
    check(&rest, None)?;
    for f in accepted {
        let codes = SHELLCHECK_ACCEPTED.iter().find(|(p, _)| f.as_path() == Path::new(p)).map(|(_, c)| *c);
        check(std::slice::from_ref(&f), codes)?;
    }
    Ok(())
}
