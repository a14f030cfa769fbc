//! `cargo xtask install`: puts wasmfw where a system looks for it:
//! `PREFIX/bin/wasmfw`, the filters and eBPF objects under
//! `PREFIX/lib/wasmfw/`, shell completions and the man page generated from
//! the CLI's clap definition, the systemd unit (`packaging/`), and an empty
//! policy directory; with `--module KO`, the kernel module. `--destdir`
//! stages everything under a directory (packaging, tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::deps::{root, run};

pub struct Options {
    pub prefix: PathBuf,
    pub destdir: Option<PathBuf>,
    pub policy_dir: PathBuf,
    pub unit_dir: PathBuf,
    pub module: Option<PathBuf>,
}

/// `path` under `--destdir`, if any.
fn staged(destdir: &Option<PathBuf>, path: &Path) -> PathBuf {
    match destdir {
        Some(d) => d.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.parent().expect("a file path"))?;
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    eprintln!("xtask: installed {}", to.display());
    Ok(())
}

fn write(to: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(to.parent().expect("a file path"))?;
    std::fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    eprintln!("xtask: installed {}", to.display());
    Ok(())
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

pub fn install(o: &Options) -> Result<()> {
    let root = root();
    run(Command::new("cargo").current_dir(&root).args(["build", "--release", "-p", "wasmfw"]))?;
    crate::filters::build()?;
    let at = |p: PathBuf| staged(&o.destdir, &p);
    let bin = o.prefix.join("bin");
    let lib = o.prefix.join("lib/wasmfw");
    let share = o.prefix.join("share");
    let wasmfw = root.join("target/release/wasmfw");
    copy(&wasmfw, &at(bin.join("wasmfw")))?;
    for dir in ["filters", "ebpf"] {
        let Ok(rd) = std::fs::read_dir(root.join("target").join(dir)) else {
            eprintln!("xtask: target/{dir} not built, skipped (cargo xtask build-{dir})");
            continue;
        };
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "wasm" || x == "o") {
                copy(&e.path(), &at(lib.join(dir).join(e.file_name())))?;
            }
        }
    }
    for (shell, path) in [
        ("bash", share.join("bash-completion/completions/wasmfw")),
        ("zsh", share.join("zsh/site-functions/_wasmfw")),
        ("fish", share.join("fish/vendor_completions.d/wasmfw.fish")),
    ] {
        write(&at(path), &output(Command::new(&wasmfw).args(["completions", shell]))?)?;
    }
    write(&at(share.join("man/man1/wasmfw.1")), &output(Command::new(&wasmfw).arg("manpage"))?)?;
    copy(&root.join("README.md"), &at(share.join("doc/wasmfw/README.md")))?;
    let unit = std::fs::read_to_string(root.join("packaging/wasmfw.service.in"))?
        .replace("@BINDIR@", &bin.display().to_string())
        .replace("@POLICYDIR@", &o.policy_dir.display().to_string())
        .replace("@DOCDIR@", &share.join("doc/wasmfw").display().to_string());
    write(&at(o.unit_dir.join("wasmfw.service")), unit.as_bytes())?;
    std::fs::create_dir_all(at(o.policy_dir.clone()))?;
    install_module(o)?;
    Ok(())
}

/// `--module KO`: a wasmfw.ko built for the running kernel (one with
/// CONFIG_RUST; `kmod/build-module.sh` builds it for the project's guest
/// kernels) goes to /lib/modules/RELEASE/extra, where `modprobe wasmfw`
/// (the unit's ExecStartPre) finds it.
fn install_module(o: &Options) -> Result<()> {
    let Some(ko) = &o.module else {
        eprintln!("xtask: no --module given: the kernel module is not installed (the eBPF engine needs none)");
        return Ok(());
    };
    let release = String::from_utf8(output(Command::new("uname").arg("-r"))?)?.trim().to_string();
    copy(ko, &staged(&o.destdir, &PathBuf::from(format!("/lib/modules/{release}/extra/wasmfw.ko"))))?;
    if o.destdir.is_none() {
        run(Command::new("depmod").arg(&release))?;
    }
    Ok(())
}

/// The `cargo xtask test` step: install into a scratch prefix, then check
/// that the pieces are there and that `systemd-analyze verify` accepts the
/// unit (its paths point into the scratch prefix, so it checks real files).
pub fn check() -> Result<()> {
    let scratch = root().join("target/install-check");
    let _ = std::fs::remove_dir_all(&scratch);
    let o = Options {
        prefix: scratch.join("usr/local"),
        destdir: None,
        policy_dir: scratch.join("etc/wasmfw/policies"),
        unit_dir: scratch.join("etc/systemd/system"),
        module: None,
    };
    install(&o)?;
    let wasmfw = o.prefix.join("bin/wasmfw");
    let version = String::from_utf8(output(Command::new(&wasmfw).arg("--version"))?)?;
    anyhow::ensure!(version.starts_with("wasmfw "), "installed wasmfw --version printed {version:?}");
    for f in [
        "share/man/man1/wasmfw.1",
        "share/bash-completion/completions/wasmfw",
        "share/zsh/site-functions/_wasmfw",
        "share/fish/vendor_completions.d/wasmfw.fish",
        "lib/wasmfw/filters/icmp_drop.wasm",
    ] {
        let p = o.prefix.join(f);
        anyhow::ensure!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 0), "{} missing or empty", p.display());
    }
    let unit = o.unit_dir.join("wasmfw.service");
    crate::deps::ensure(&[("/usr/bin/systemd-analyze", "systemd")])?;
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success() && !err.contains("wasmfw.service"),
        "systemd-analyze verify {}: {err}",
        unit.display()
    );
    eprintln!("xtask: install into {} complete; systemd-analyze verify accepts the unit", scratch.display());
    Ok(())
}
