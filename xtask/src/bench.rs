//! `cargo xtask bench [--quick]`: every benchmark in one go, one table.
//! Builds what is missing (filters, eBPF twins, wasmfw, wasmfw-bench, the
//! UML kernel and wasmfw.ko), then
//! 1. host: `wasmfw-bench --json` (Wasm engine and native Rust in
//!    userspace, eBPF twins with the JIT via BPF_PROG_TEST_RUN) into
//!    target/bench/host.json;
//! 2. UML guest: kmod/tests/bench-guest.sh (the module's test-run,
//!    xdp-bridge and Wasm, xdp-bridge and native kfunc, interpreted eBPF
//!    twins; throughput over veth) into target/bench/guest-uml.json and throughput-uml.jsonl;
//! 3. `wasmfw-bench report`: the merged table on stdout,
//!    target/bench/results.json and target/bench/results.svg.
//!
//! Not part of `cargo xtask test`: benchmarks are not tests.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::deps::{root, run};

pub struct Options {
    /// Shorter rounds and floods: a smoke run in a few minutes.
    pub quick: bool,
    /// Skip the guest (host figures only).
    pub no_guest: bool,
}

fn cache() -> std::path::PathBuf {
    match std::env::var_os("WASMFW_CACHE") {
        Some(d) => d.into(),
        None => Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/wasmfw"),
    }
}

/// Runs a command and returns its stdout (stderr passes through).
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub fn run_all(o: &Options) -> Result<()> {
    let root = root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    // Stale inputs must not end up in this run's table.
    for f in ["host.json", "guest-uml.json", "throughput-uml.jsonl", "source.json"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    // What was measured: the commit, and whether the engine or module had
    // uncommitted changes (the module is built from the working tree).
    let commit = output(Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(&root))?;
    let dirty =
        output(Command::new("git").args(["status", "--porcelain", "--", "kmod", "filters"]).current_dir(&root))?;
    std::fs::write(
        out.join("source.json"),
        format!(
            "{{\"commit\": \"{}\", \"kmod_or_filters_uncommitted\": {}}}\n",
            commit.trim(),
            !dirty.trim().is_empty()
        ),
    )?;

    eprintln!("xtask bench: building (filters, eBPF twins, wasmfw, wasmfw-bench)");
    crate::filters::build()?;
    if !root.join("target/ebpf/empty.o").is_file() {
        crate::ebpf::build()?;
    }
    run(Command::new("nice")
        .args(["cargo", "build", "--quiet", "--release", "-p", "wasmfw", "-p", "wasmfw-bench"])
        .current_dir(&root))?;
    let bench = root.join("target/release/wasmfw-bench");
    host(o, &bench, &out)?;
    if !o.no_guest {
        guest(o, &root, &out)?;
    }
    report(&bench, &out)
}

/// Host: `wasmfw-bench --json` into `out/host.json`.
fn host(o: &Options, bench: &Path, out: &Path) -> Result<()> {
    eprintln!("xtask bench: host: Wasm engine and native Rust in userspace, eBPF twins with the JIT");
    let mut host = Command::new(bench);
    host.arg("--json");
    if o.quick {
        host.args(["--rounds", "3", "--round-ms", "40"]);
    }
    let json = output(&mut host)?;
    std::fs::write(out.join("host.json"), json)?;
    Ok(())
}

/// UML guest: kmod/tests/bench-guest.sh into `out/guest-uml.json` and
/// `out/throughput-uml.jsonl`.
fn guest(o: &Options, root: &Path, out: &Path) -> Result<()> {
    let g = root.join("kmod/guest");
    eprintln!("xtask bench: UML guest: kernel and wasmfw.ko");
    run(Command::new(g.join("kernel.sh")).args(["build", "uml"]).stdout(std::process::Stdio::null()))?;
    let ko = output(Command::new("nice").arg(root.join("kmod/build-module.sh")).arg("uml"))?;
    let ko = ko.lines().last().unwrap_or("").trim().to_string();
    if !Path::new(&ko).is_file() {
        bail!("kmod/build-module.sh uml printed no module path (got '{ko}')");
    }
    let scratch = cache().join("scratch/bench-uml");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    // (runs per figure and round, rounds, seconds per flood, floods per configuration)
    let (runs, rounds, secs, floods) = if o.quick { (10_000, 3, 1, 2) } else { (20_000, 10, 3, 3) };
    eprintln!(
        "xtask bench: UML guest: kernel paths (fastest of {rounds} x {runs} runs), throughput (best of {floods} x {secs} s floods)"
    );
    let mut child = Command::new(g.join("boot.sh"))
        .args(["uml", "--init"])
        .arg(root.join("kmod/tests/bench-guest.sh"))
        .args(["--env", &format!("WASMFW_KO={ko}")])
        .args(["--env", &format!("WASMFW_BENCH_RUNS={runs}")])
        .args(["--env", &format!("WASMFW_BENCH_ROUNDS={rounds}")])
        .args(["--env", &format!("WASMFW_BENCH_SECS={secs}")])
        .args(["--env", &format!("WASMFW_BENCH_TP_ROUNDS={floods}")])
        .args(["--timeout", "1500", "--scratch"])
        .arg(&scratch)
        .arg("--log")
        .arg(out.join("uml.log"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run kmod/guest/boot.sh")?;
    // The whole console goes to uml.log; show only the script's progress.
    let stdout = child.stdout.take().context("no stdout")?;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        if line.starts_with("  [bench]") || line.starts_with("guest bench:") || line.starts_with("[guest]") {
            eprintln!("{line}");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the UML guest failed ({status}): see {}", out.join("uml.log").display());
    }
    for f in ["guest-uml.json", "throughput-uml.jsonl"] {
        std::fs::copy(scratch.join(f), out.join(f)).with_context(|| format!("the guest wrote no {f}"))?;
    }
    Ok(())
}

/// One table, results.json, results.svg: `wasmfw-bench report`.
fn report(bench: &Path, out: &Path) -> Result<()> {
    run(Command::new(bench).arg("report").arg("--dir").arg(out).arg("--out").arg(out))
}
