//! ns per run under BPF_PROG_TEST_RUN of each stock filter compiled
//! (wasm2ebpf), its hand-written aya twin and the empty XDP program
//! (`r0 = XDP_PASS; exit`), in the same process, rounds interleaved; each
//! figure raw and minus the empty program. Needs root and `cargo xtask
//! build-filters`; the twins need `cargo xtask build-ebpf` (else "-"). Run:
//!   cargo run --release -p wasm2ebpf --example bench [-- ROUNDS REPEAT]

use std::path::Path;
use std::time::Duration;

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use etherparse::PacketBuilder;
use wasm2ebpf::Compiled;
use wasmfw_ebpf::Twin;
use wasmfw_engine::{Limits, Verdict};
use wasmfw_xdp_bridge::sys::{self, Insn};

/// Rounds (each runs every program once) and runs per measurement.
const ROUNDS: usize = 11;
const REPEAT: u32 = 200_000;

fn frame(twin: Twin) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut v = Vec::new();
    match twin {
        Twin::IcmpDrop => b.icmpv4_echo_request(1, 1).write(&mut v, &[0x55; 32]),
        Twin::L4Dos => b.tcp(40000, 80, 1, 64240).syn().write(&mut v, &[]),
        Twin::DnsBlock => {
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in ["www", "example", "org"] {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            b.udp(40000, 53).write(&mut v, &q)
        }
    }
    .expect("frame");
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(ROUNDS);
    let repeat = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(REPEAT);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("{rounds} rounds x {repeat} runs, median ns per run (raw / minus empty)");
    println!("{:<10} {:>8} {:>16} {:>16} {:>8} {:>6}", "filter", "empty", "twin", "compiled", "c/t", "insns");
    for twin in Twin::ALL {
        let wasm = std::fs::read(root.join(format!("target/filters/{}.wasm", twin.name())))
            .context("run `cargo xtask build-filters`")?;
        let limits = Limits { fuel: 200_000, memory_limit: 131_072, on_fault: Verdict::Pass, audit: false };
        let compiled = Compiled::load(&wasm, limits, b"", "wf_bench")?;
        let loaded = wasmfw_ebpf::load(twin, &[]).map_err(|e| eprintln!("{}: no twin: {e:#}", twin.name())).ok();
        let empty = sys::prog_load_xdp(&[Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)], &[], "wf_empty")?;
        let f = frame(twin);
        let (mut e, mut t, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            e.push(sys::prog_test_run(empty.as_raw_fd(), &f, repeat)?.1 as f64);
            if let Some(l) = &loaded {
                t.push(l.bench(&f, repeat).map(|d: Duration| d.as_nanos() as f64)?);
            }
            c.push(compiled.test_run(&f, repeat)?.1 as f64);
        }
        let (e, c) = (median(e), median(c));
        let (twin_col, ratio) = if t.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            let t = median(t);
            (format!("{t:.1} / {:.1}", t - e), format!("{:.2}", (c - e) / (t - e)))
        };
        println!(
            "{:<10} {e:>8.1} {twin_col:>16} {:>16} {ratio:>8} {:>6}",
            twin.name(),
            format!("{c:.1} / {:.1}", c - e),
            compiled.insns
        );
    }
    Ok(())
}
