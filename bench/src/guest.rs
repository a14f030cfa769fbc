//! `wasmfw-bench guest`: inside a guest with wasmfw.ko inserted, ns per
//! packet of every benchmark packet on the kernel paths, as one JSON object
//! for `wasmfw-bench report` (kmod/tests/bench-guest.sh runs it):
//! - `test_run`: the Wasm filter in the module, `wasmfw test-run` (the
//!   module's own test-run ioctl, no XDP around it);
//! - `bridge_wasm`: xdp-bridge + the Wasm filter (kfunc `wasmfw_xdp_run`),
//!   BPF_PROG_TEST_RUN (`wasmfw test-run --hook xdp`, filter on `lo`);
//! - `bridge_native`: xdp-bridge + the filter in native Rust in the module
//!   (kfunc `wasmfw_xdp_native_icmp`; the module has it for icmp_drop only);
//! - `ebpf`: the eBPF twin, BPF_PROG_TEST_RUN (UML: interpreted, no JIT);
//! - `xdp_empty`: an empty XDP program, the test-run loop's fixed cost.
//!
//! Every path's verdict is checked against the packet's expected one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use wasmfw_policy::Policy;
use wasmfw_xdp_bridge::Bridge;

use crate::{ebpf, packets, FILTERS, L4_SYN_BURST};

/// Writes the policies as the bench uses them into `dir`: as in `policies/`,
/// except l4_dos's `syn_burst` (see `L4_SYN_BURST`). Returns each filter's
/// policy file.
pub fn write_policies(src: &Path, dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (filter, file) in FILTERS {
        let text = std::fs::read_to_string(src.join(file)).with_context(|| format!("{}", src.join(file).display()))?;
        let text = if filter == "l4_dos" {
            text.lines()
                .map(|l| {
                    if l.trim_start().starts_with("syn_burst") {
                        format!("syn_burst = {L4_SYN_BURST}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            text
        };
        let path = dir.join(file);
        std::fs::write(&path, text)?;
        out.push((filter, path));
    }
    Ok(out)
}

/// A classic pcap file (Ethernet) holding `frames`.
pub fn write_pcap(path: &Path, frames: &[&[u8]]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    // magic, v2.4, tz 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet)
    f.write_all(&0xa1b2c3d4u32.to_le_bytes())?;
    f.write_all(&2u16.to_le_bytes())?;
    f.write_all(&4u16.to_le_bytes())?;
    for v in [0u32, 0, 65535, 1] {
        f.write_all(&v.to_le_bytes())?;
    }
    for (i, fr) in frames.iter().enumerate() {
        for v in [i as u32, 0, fr.len() as u32, fr.len() as u32] {
            f.write_all(&v.to_le_bytes())?;
        }
        f.write_all(fr)?;
    }
    Ok(())
}

/// `wasmfw test-run POLICY --pcap PCAP --repeat N --json [--hook xdp]`:
/// (verdict, ns per run) per packet, in capture order.
fn wasmfw_test_run(wasmfw: &Path, policy: &Path, pcap: &Path, repeat: u32, xdp: bool) -> Result<Vec<(String, f64)>> {
    let mut cmd = Command::new(wasmfw);
    cmd.arg("test-run").arg(policy).arg("--pcap").arg(pcap).arg("--repeat").arg(repeat.to_string()).arg("--json");
    if xdp {
        cmd.args(["--hook", "xdp"]);
    }
    let out = cmd.output().with_context(|| format!("running {}", wasmfw.display()))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let verdict = v["verdict"].as_str().ok_or_else(|| anyhow!("no verdict in {l}"))?.to_string();
            let ns = v["ns_per_run"].as_f64().ok_or_else(|| anyhow!("no ns_per_run in {l}"))?;
            Ok((verdict, ns))
        })
        .collect()
}

fn xdp_verdict(ret: u32) -> &'static str {
    wasmfw_ebpf::xdp_verdict(ret).map_or("other", |v| v.as_str())
}

/// The fastest of several rounds: under a loaded host a UML guest's clock
/// keeps running while its process is descheduled, so slow rounds carry
/// other programs' time; the fastest is the least disturbed.
fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn run(repo: &Path, wasmfw: &Path, work: &Path, repeat: u32, rounds: u32) -> Result<()> {
    wasmfw_xdp_bridge::require_module()?;
    // The policies written under `work` find the repository's built filters.
    if std::env::var_os("WASMFW_FILTER_DIR").is_none() {
        std::env::set_var("WASMFW_FILTER_DIR", repo.join("target/filters"));
    }
    let rounds = rounds.max(1) as usize;
    let policies = write_policies(&repo.join("policies"), &work.join("policies"))?;
    let empty = wasmfw_xdp_bridge::load_empty()?;
    let native = Bridge::load_calling("wasmfw_xdp_native_icmp")?;
    let mut rows = Vec::new();
    for (filter, policy_path) in &policies {
        let policy = Policy::load(policy_path).map_err(|e| anyhow!("{e}"))?;
        let pkts = packets::all(&[filter])?;
        let pcap = work.join(format!("{filter}.pcap"));
        write_pcap(&pcap, &pkts.iter().map(|p| p.frame.as_slice()).collect::<Vec<_>>())?;
        eprintln!("guest bench: {filter}: {rounds} rounds of {repeat} runs per packet and path");
        // [round][packet] = (verdict, ns)
        let mut tr = Vec::new();
        let mut br = Vec::new();
        for _ in 0..rounds {
            tr.push(wasmfw_test_run(wasmfw, policy_path, &pcap, repeat, false)?);
            br.push(wasmfw_test_run(wasmfw, policy_path, &pcap, repeat, true)?);
        }
        for (i, p) in pkts.iter().enumerate() {
            let want = p.expect.as_str();
            for r in 0..rounds {
                // A benchmark of the wrong path is worse than none.
                let (t, b) = (tr[r].get(i).map(|x| x.0.as_str()), br[r].get(i).map(|x| x.0.as_str()));
                if t != Some(want) || b != Some(want) {
                    bail!("{filter} / {}: verdicts disagree: expected {want}, test-run {t:?}, bridge {b:?}", p.what);
                }
            }
            let tr_ns: Vec<f64> = tr.iter().map(|r| r[i].1).collect();
            let br_ns: Vec<f64> = br.iter().map(|r| r[i].1).collect();
            // dns_block's twin uses bpf_loop, whose callbacks need the JIT:
            // UML's interpreter refuses it. Recorded as not measurable.
            let (e_ns, e_err) = match crate::ebpf_verdict(&policy, &p.frame) {
                Ok(v) if v != p.expect => {
                    bail!("{filter} / {}: eBPF twin gave {} (expected {want})", p.what, v.as_str())
                }
                Ok(_) => {
                    let v = (0..rounds)
                        .map(|_| ebpf::run_ebpf_with(&policy.filter, &policy.params, &p.frame, repeat))
                        .collect::<Result<Vec<_>>>()?;
                    (Some(v), None)
                }
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            let mut empty_ns = Vec::new();
            for _ in 0..rounds {
                let (ret, ns) = empty.test_run(&p.frame, repeat)?;
                if ret != wasmfw_ebpf::XDP_PASS {
                    bail!("the empty XDP program returned {ret}");
                }
                empty_ns.push(ns as f64);
            }
            let nat = if *filter == "icmp_drop" {
                let mut v = Vec::new();
                for _ in 0..rounds {
                    let (ret, ns) = native.test_run(&p.frame, repeat)?;
                    if xdp_verdict(ret) != want {
                        bail!("{filter} / {}: native kfunc gave {} (expected {want})", p.what, xdp_verdict(ret));
                    }
                    v.push(ns as f64);
                }
                Some(v)
            } else {
                None
            };
            rows.push(json!({
                "filter": filter, "packet": p.what, "bytes": p.frame.len(), "verdict": want,
                "test_run_ns": min(&tr_ns), "bridge_wasm_ns": min(&br_ns), "bridge_native_ns": nat.as_deref().map(min),
                "ebpf_ns": e_ns.as_deref().map(min), "ebpf_error": e_err, "xdp_empty_ns": min(&empty_ns),
                "rounds_ns": {"test_run": tr_ns, "bridge_wasm": br_ns, "bridge_native": nat, "ebpf": e_ns, "xdp_empty": empty_ns},
            }));
        }
    }
    let guest = std::env::var("WASMFW_GUEST").unwrap_or_default();
    let v = json!({
        "guest": guest,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "bpf_jit": std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable").map(|s| s.trim().to_string()).ok(),
        "emulated": guest == "x86",
        "ebpf_interpreted": guest == "uml",
        "repeat": repeat,
        "rounds": rounds,
        "stat": "min",
        "rows": rows,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
