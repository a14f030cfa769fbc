//! `cargo xtask test`: every test, in the order that builds what the next
//! step needs. This is what `.ci/run` runs.

use std::process::Command;

use anyhow::{bail, Result};

use crate::deps::{root, run};

pub struct Options {
    /// Skip the guest kernel tests (they build a kernel on first use).
    pub no_guest: bool,
}

pub fn run_all(opts: &Options) -> Result<()> {
    let mut failed = Vec::new();
    let mut passed = Vec::new();
    let mut step = |name: &str, f: &dyn Fn() -> Result<()>| {
        eprintln!("\n### xtask test: {name}");
        match f() {
            Ok(()) => passed.push(name.to_string()),
            Err(e) => {
                eprintln!("### FAILED: {name}: {e:#}");
                failed.push(name.to_string());
            }
        }
    };
    step("install dependencies", &crate::deps::ensure_all);
    step("lint: rustfmt, clippy -D warnings, shellcheck (cargo xtask lint)", &crate::lint::run_all);
    step("build filters (wasm32v1-none)", &crate::filters::build);
    step("filters link without rust-lld on the PATH", &crate::filters::link_check);
    step("build eBPF programs (bpfel)", &crate::ebpf::build);
    step("cargo test (engine, policies, wasmfw, eBPF on veth)", &|| {
        run(Command::new("cargo").current_dir(root()).args(["test", "--workspace", "--", "--test-threads=1"]))
    });
    step("install (staged) and systemd-analyze verify of the unit", &crate::install::check);
    step("filter SDK and ABI tests (the verdict header is current)", &|| {
        run(Command::new("cargo").current_dir(root().join("filters")).args([
            "test",
            "-p",
            "wasmfw-filter-sdk",
            "-p",
            "wasmfw-abi",
        ]))
    });
    step("UML FP/XSTATE sizing through ptrace (the AMX fix, on this host)", &crate::guest::xstate_check);
    if !opts.no_guest {
        step("guest kernel tests", &crate::guest::test);
    }
    step("WebAssembly 1.0 spec suite, userspace and UML kernel (cargo xtask spec)", &|| {
        crate::spec::run(&crate::spec::Options {
            json: false,
            no_kernel: opts.no_guest,
            guest: "uml".into(),
            files: Vec::new(),
        })
    });
    eprintln!("\n### xtask test summary");
    for p in &passed {
        eprintln!("ok      {p}");
    }
    for f in &failed {
        eprintln!("FAILED  {f}");
    }
    println!("{} passed, {} failed", passed.len(), failed.len());
    if !failed.is_empty() {
        bail!("{} step(s) failed", failed.len());
    }
    Ok(())
}
