//! `cargo xtask demo`: the main job, end to end, on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::deps::{root, run};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// A small capture: pings, TCP handshakes, a SYN burst, DNS queries.
pub fn sample_capture(path: &Path) -> Result<()> {
    let mut pkts: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut push = |t_ms: u64, v: Vec<u8>| pkts.push((t_ms, v));
    let ip = |a: u8| [10, 0, 0, a];
    for seq in 0..3u16 {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv4(ip(1), ip(2), 64).icmpv4_echo_request(7, seq).write(&mut v, &[0x42; 56])?;
        push(seq as u64 * 1000, v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv4(ip(2), ip(1), 64).icmpv4_echo_reply(7, seq).write(&mut v, &[0x42; 56])?;
        push(seq as u64 * 1000 + 1, v);
    }
    for i in 0..25u16 {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv4(ip(66), ip(2), 64).tcp(1000 + i, 80, 1, 64240).syn().write(&mut v, &[])?;
        push(3000, v);
    }
    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B).ipv4(ip(1), ip(2), 64).tcp(40000, 443, 1, 64240).syn().write(&mut v, &[])?;
    push(3001, v);
    for name in ["ads.example.com", "www.example.org"] {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv4(ip(1), ip(53), 64).udp(5353, 53).write(&mut v, &q)?;
        push(4000, v);
    }
    let mut w = PcapWriter::new(std::fs::File::create(path)?)?;
    for (t, data) in &pkts {
        w.write_packet(&PcapPacket::new(Duration::from_millis(*t), data.len() as u32, data))?;
    }
    Ok(())
}

fn wasmfw() -> Result<PathBuf> {
    run(Command::new("cargo").current_dir(root()).args(["build", "--quiet", "--release", "-p", "wasmfw"]))?;
    Ok(root().join("target/release/wasmfw"))
}

/// Builds the filters and replays a sample capture through each policy.
pub fn replay_demo() -> Result<()> {
    crate::filters::build()?;
    let bin = wasmfw()?;
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let pcap = dir.join("sample.pcap");
    sample_capture(&pcap)?;
    for policy in ["icmp.toml", "l4-dos.toml", "dns-block.toml"] {
        let p = root().join("policies").join(policy);
        println!("\n=== wasmfw check policies/{policy}");
        run(Command::new(&bin).arg("check").arg(&p))?;
        println!("=== wasmfw replay policies/{policy} --pcap target/demo/sample.pcap");
        run(Command::new(&bin).arg("replay").arg(&p).arg("--pcap").arg(&pcap))?;
    }
    Ok(())
}
