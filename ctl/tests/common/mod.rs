//! Shared by the `wasmfw` integration tests: packets built with etherparse,
//! captures written with pcap-file, and the `wasmfw` binary run on them;
//! `lab`: the network namespaces of the eBPF tests.
// Every test binary that says `mod common;` compiles all of this and uses
// only part of it: what one binary leaves unused is not dead code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use etherparse::{PacketBuilder, PacketBuilderStep, VlanId};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

pub mod lab;

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A filter built by `cargo xtask build-filters`.
pub fn filter(name: &str) -> PathBuf {
    let p = root().join("target/filters").join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-filters` first", p.display());
    p
}

pub fn policy(name: &str) -> PathBuf {
    filter("icmp_drop"); // policies name filters that must be built
    root().join("policies").join(name)
}

/// A policy file in `dir` for `filter` with extra top-level lines and params.
pub fn write_policy(dir: &Path, filter_name: &str, top: &str, params: &str) -> PathBuf {
    let p = dir.join(format!("{filter_name}-{}.toml", unique()));
    let text = format!("filter = {:?}\n{top}\n[params]\n{params}\n", filter(filter_name).display().to_string());
    std::fs::write(&p, text).unwrap();
    p
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A packet with its capture time.
#[derive(Clone)]
pub struct Pkt {
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

pub fn build<T>(b: PacketBuilderStep<T>, payload: &[u8]) -> Vec<u8>
where
    PacketBuilderStep<T>: Writable,
{
    b.bytes(payload)
}

/// etherparse's final builder steps all have `write`; this names it once.
pub trait Writable {
    fn bytes(self, payload: &[u8]) -> Vec<u8>;
}

macro_rules! writable {
    ($($t:ty),*) => {$(
        impl Writable for PacketBuilderStep<$t> {
            fn bytes(self, payload: &[u8]) -> Vec<u8> {
                let mut v = Vec::with_capacity(self.size(payload.len()));
                self.write(&mut v, payload).unwrap();
                v
            }
        }
    )*};
}
writable!(etherparse::Icmpv4Header, etherparse::Icmpv6Header, etherparse::TcpHeader, etherparse::UdpHeader);

pub fn eth() -> PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(MAC_A, MAC_B)
}

pub fn vlan(id: u16) -> VlanId {
    VlanId::try_new(id).unwrap()
}

pub fn v4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

pub fn echo4(src: &str, dst: &str) -> Vec<u8> {
    build(eth().ipv4(v4(src), v4(dst), 64).icmpv4_echo_request(1, 1), &[0x55; 56])
}

pub fn syn4(src: &str, dst: &str, dport: u16) -> Vec<u8> {
    build(eth().ipv4(v4(src), v4(dst), 64).tcp(40000, dport, 1, 64240).syn(), &[])
}

pub fn udp4(src: &str, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    build(eth().ipv4(v4(src), v4(dst), 64).udp(40000, dport), payload)
}

/// Writes a pcap (Ethernet unless `link` says otherwise).
pub fn write_pcap(dir: &Path, pkts: &[Pkt], link: DataLink) -> PathBuf {
    let p = dir.join(format!("cap-{}.pcap", unique()));
    let header =
        PcapHeader { datalink: link, ts_resolution: pcap_file::TsResolution::NanoSecond, ..Default::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(&p).unwrap(), header).unwrap();
    for k in pkts {
        let ts = Duration::from_nanos(k.ts_ns);
        w.write_packet(&PcapPacket::new(ts, k.data.len() as u32, &k.data)).unwrap();
    }
    p
}

/// Packets all captured at time 1 s.
pub fn at_once(data: Vec<Vec<u8>>) -> Vec<Pkt> {
    data.into_iter().map(|data| Pkt { ts_ns: 1_000_000_000, data }).collect()
}

pub fn wasmfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmfw")).args(args).output().unwrap()
}

/// `wasmfw replay --json`: the verdict of every packet and the summary.
pub fn replay(target: &Path, pcap: &Path) -> (Vec<String>, serde_json::Value) {
    let out = wasmfw(&["replay", target.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut verdicts = Vec::new();
    let mut summary = None;
    for (i, line) in String::from_utf8(out.stdout).unwrap().lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["summary"] == true {
            summary = Some(v);
        } else {
            assert_eq!(v["index"], i, "packets are numbered from 0 in order");
            verdicts.push(v["verdict"].as_str().unwrap().to_string());
        }
    }
    (verdicts, summary.expect("a summary line"))
}

/// Replays Ethernet packets and returns their verdicts and the summary.
pub fn verdicts(target: &Path, pkts: &[Pkt]) -> (Vec<String>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    replay(target, &write_pcap(dir.path(), pkts, DataLink::ETHERNET))
}

/// Expands "pass"/"drop" shorthand: `v(&[("pass", 20), ("drop", 10)])`.
pub fn expect(parts: &[(&str, usize)]) -> Vec<String> {
    parts.iter().flat_map(|(v, n)| std::iter::repeat_n(v.to_string(), *n)).collect()
}

/// Runs wasmfw expecting failure; returns its one-line error.
pub fn fails(args: &[&str]) -> String {
    let out = wasmfw(args);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        !out.status.success(),
        "expected failure of {args:?}, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.lines().count(), 1, "error must be one line: {err}");
    assert!(err.starts_with("wasmfw: "), "{err}");
    err
}
