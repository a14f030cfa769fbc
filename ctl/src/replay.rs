//! `wasmfw replay`: every packet of a capture through the engine, in
//! userspace, under the limits the kernel applies.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use serde_json::json;
use wasmfw_engine::{abi, Fault};
use wasmfw_policy::Policy;

/// A packet from a capture, as the engine needs it.
pub struct Packet {
    pub ts: Duration,
    pub link: i32,
    pub data: Vec<u8>,
}

fn link_of(dl: DataLink) -> Result<i32> {
    match dl {
        DataLink::ETHERNET => Ok(abi::LINK_ETHERNET),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Ok(abi::LINK_RAW_IP),
        other => bail!("unsupported link type {other:?} (Ethernet and raw IP are supported)"),
    }
}

/// Reads every packet of a pcap or pcapng file.
pub fn read_capture(path: &Path) -> Result<Vec<Packet>> {
    let ctx = || path.display().to_string();
    let mut file = BufReader::new(File::open(path).with_context(ctx)?);
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).with_context(|| format!("{}: not a capture file (too short)", ctx()))?;
    file.seek(SeekFrom::Start(0))?;
    let mut out = Vec::new();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(file).map_err(|e| anyhow!("{}: {e}", ctx()))?;
        let mut links = Vec::new();
        while let Some(block) = r.next_block() {
            match block.map_err(|e| anyhow!("{}: packet {}: {e}", ctx(), out.len()))? {
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(p) => {
                    let dl = links.get(p.interface_id as usize).ok_or_else(|| {
                        anyhow!("{}: packet {} names unknown interface {}", ctx(), out.len(), p.interface_id)
                    })?;
                    out.push(Packet { ts: p.timestamp, link: link_of(*dl)?, data: p.data.into_owned() });
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(file).map_err(|e| anyhow!("{}: not a pcap or pcapng file: {e}", ctx()))?;
        let link = link_of(r.header().datalink).with_context(ctx)?;
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| anyhow!("{}: packet {}: {e}", ctx(), out.len()))?;
            out.push(Packet { ts: p.timestamp, link, data: p.data.into_owned() });
        }
    }
    Ok(out)
}

pub fn run(target: &Path, pcap: &Path, json: bool) -> Result<()> {
    let policy = Policy::load(target)?;
    let packets = read_capture(pcap)?;
    let mut loaded = crate::wasm::load(&policy, json)?;
    let mut total_fuel = 0u64;
    for (index, p) in packets.iter().enumerate() {
        loaded.env.now.store(p.ts.as_nanos() as u64, Relaxed);
        let o = loaded.instance.run(&p.data, p.link);
        total_fuel += o.fuel_used;
        let fault = o.fault.map(|f| match f {
            Fault::Trap => "trap",
            Fault::Fuel => "fuel",
        });
        if json {
            println!(
                "{}",
                json!({"index": index, "verdict": o.verdict.as_str(), "len": p.data.len(), "fuel": o.fuel_used, "fault": fault})
            );
        } else {
            println!(
                "{index:6} {:4} len {:5} fuel {:6}{}",
                o.verdict.as_str(),
                p.data.len(),
                o.fuel_used,
                fault.map(|f| format!(" fault: {f}")).unwrap_or_default()
            );
        }
    }
    let mut counters = serde_json::Map::new();
    loaded.filter.counters(|n, v| {
        counters.insert(n.to_string(), v.into());
    });
    if json {
        println!(
            "{}",
            json!({"summary": true, "filter": policy.filter, "packets": packets.len(), "fuel": total_fuel, "counters": counters})
        );
    } else {
        println!("--- {} packets through {} (fuel {total_fuel})", packets.len(), policy.filter);
        for (n, v) in &counters {
            println!("{n:>16} {v}");
        }
    }
    Ok(())
}
