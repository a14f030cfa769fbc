//! Engines: the eBPF twin (BPF_PROG_TEST_RUN) and the Wasm filter
//! (`wasmfw replay --json`) run on the same packets, verdicts and counters
//! compared.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use wasmfw_ebpf::{Twin, XDP_DROP, XDP_PASS};
use wasmfw_policy::Policy;

use crate::packets::P;

fn write_pcap(path: &Path, pkts: &[P]) {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), header).unwrap();
    for (i, p) in pkts.iter().enumerate() {
        // 1 s + i microseconds: all within a millisecond or so.
        let ts = Duration::from_nanos(1_000_000_000 + i as u64 * 1000);
        w.write_packet(&PcapPacket::new(ts, p.1.len() as u32, &p.1)).unwrap();
    }
}

fn replay(policy: &Path, pcap: &Path) -> (Vec<String>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmfw"))
        .args(["replay", policy.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut verdicts = Vec::new();
    let mut summary = serde_json::Value::Null;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["summary"] == true {
            summary = v;
        } else {
            assert_eq!(v["index"].as_u64().unwrap() as usize, verdicts.len());
            verdicts.push(v["verdict"].as_str().unwrap().to_string());
        }
    }
    (verdicts, summary)
}

pub(crate) fn compare(name: &str, policy: &Path, pkts: &[P]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join(format!("{name}.pcap"));
    write_pcap(&pcap, pkts);
    let pol = Policy::load(policy).unwrap();
    let twin = Twin::for_filter(&pol.filter).unwrap();
    let loaded = wasmfw_ebpf::load(twin, &pol.params).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let ebpf: Vec<String> = pkts
        .iter()
        .map(|p| match loaded.test_run(&p.1).unwrap_or_else(|e| panic!("{name}: {}: {e:#}", p.0)) {
            XDP_PASS => "pass".to_string(),
            XDP_DROP => "drop".to_string(),
            other => format!("xdp action {other}"),
        })
        .collect();
    let (wasm, summary) = replay(policy, &pcap);
    assert_eq!(wasm.len(), pkts.len());
    let mut bad = 0;
    for (i, p) in pkts.iter().enumerate() {
        if wasm[i] != ebpf[i] {
            eprintln!("MISMATCH {name} #{i} {}: wasm {} ebpf {}", p.0, wasm[i], ebpf[i]);
            bad += 1;
        }
    }
    // Filter counters agree too (packets/pass/drop are eBPF-only extras).
    let counters = loaded.counters().unwrap();
    for (k, v) in &counters {
        if ["packets", "pass", "drop"].contains(&k.as_str()) {
            continue;
        }
        let w = summary["counters"][k].as_u64();
        if w != Some(*v) {
            eprintln!("MISMATCH {name} counter {k}: wasm {w:?} ebpf {v}");
            bad += 1;
        }
    }
    let drops = ebpf.iter().filter(|v| *v == "drop").count();
    eprintln!("{name}: {} packets, {drops} dropped, {bad} mismatches; ebpf counters {counters:?}", pkts.len());
    bad
}
