//! `wasmfw-bench xdp`: inside a guest with wasmfw.ko loaded and the Wasm
//! `icmp_drop` attached at XDP on `lo` (`wasmfw load
//! target/filters/icmp_drop.wasm --iface lo`), one table of ns/packet via
//! BPF_PROG_TEST_RUN: an empty XDP program, the eBPF twin, xdp-bridge + the
//! Wasm filter (kfunc wasmfw_xdp_run), and xdp-bridge + the same filter
//! written natively in Rust in the module (kfunc wasmfw_xdp_native_icmp).

use anyhow::{bail, Result};
use serde_json::json;
use wasmfw_engine::Verdict;
use wasmfw_xdp_bridge::Bridge;

use crate::{ebpf, packets};

/// The bridge's XDP action as a verdict (anything but XDP_DROP passes).
fn verdict(ret: u32) -> Verdict {
    wasmfw_ebpf::xdp_verdict(ret).unwrap_or(Verdict::Pass)
}

pub fn run(repeat: u32, json_out: bool) -> Result<()> {
    let empty = wasmfw_xdp_bridge::load_empty()?;
    let wasm = Bridge::load()?;
    let native = Bridge::load_calling("wasmfw_xdp_native_icmp")?;
    let guest = std::env::var("WASMFW_GUEST").unwrap_or_default();
    let note = match guest.as_str() {
        "x86" => "x86 guest under qemu TCG: every figure is EMULATED time (relative ratios only)",
        "uml" => "UML guest: no eBPF JIT (programs interpreted), module code at native speed",
        _ => "host kernel",
    };
    if !json_out {
        println!("# XDP test runs (BPF_PROG_TEST_RUN, repeat {repeat}); {note}");
        println!(
            "{:<28} {:>5} {:>7} {:>9} {:>9} {:>12} {:>13} {:>9} {:>11}",
            "packet",
            "bytes",
            "verdict",
            "empty ns",
            "ebpf ns",
            "bridge+wasm",
            "bridge+native",
            "wasm/ebpf",
            "native/ebpf"
        );
    }
    for p in packets::all(&["icmp_drop"])? {
        let (e_ret, e_ns) = empty.test_run(&p.frame, repeat)?;
        let ebpf_ns = ebpf::run_ebpf("icmp_drop", &p.frame, repeat)?;
        let (w_ret, w_ns) = wasm.test_run(&p.frame, repeat)?;
        let (n_ret, n_ns) = native.test_run(&p.frame, repeat)?;
        // A benchmark of the wrong path is worse than none.
        if e_ret != 2 || verdict(w_ret) != p.expect || verdict(n_ret) != p.expect {
            bail!("{}: verdicts disagree (expected {:?}, wasm {w_ret}, native {n_ret}); is icmp_drop attached at XDP on lo?", p.what, p.expect);
        }
        let r = |a: u32| a as f64 / ebpf_ns.max(1.0);
        if json_out {
            println!(
                "{}",
                json!({"packet": p.what, "bytes": p.frame.len(), "verdict": p.expect.as_str(), "empty_ns": e_ns,
                "ebpf_ns": ebpf_ns, "bridge_wasm_ns": w_ns, "bridge_native_ns": n_ns, "guest": guest, "emulated": guest == "x86"})
            );
        } else {
            println!(
                "{:<28} {:>5} {:>7} {:>9} {:>9.0} {:>12} {:>13} {:>8.1}x {:>10.1}x",
                p.what,
                p.frame.len(),
                p.expect.as_str(),
                e_ns,
                ebpf_ns,
                w_ns,
                n_ns,
                r(w_ns),
                r(n_ns)
            );
        }
    }
    Ok(())
}
