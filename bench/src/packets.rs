//! The benchmark packets: Ethernet + IPv4 frames built with etherparse,
//! padded to an exact size, each meant to take one interesting path of its
//! filter (the expected verdict is checked against every engine).

use anyhow::Result;
use etherparse::PacketBuilder;
use wasmfw_engine::Verdict;

/// Source of every packet: not in l4-dos.toml's `allow` (10.99.0.0/16), so
/// l4_dos applies its rules.
pub const SRC: [u8; 4] = [192, 0, 2, 1];
pub const DST: [u8; 4] = [10, 0, 0, 2];
const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Frame sizes asked for (without FCS). A DNS query for the short names
/// does not fit in 64 bytes: those frames are as short as they can be.
pub const SMALL: usize = 64;
pub const LARGE: usize = 1500;

pub struct BenchPacket {
    pub filter: &'static str,
    /// What the packet is and the path it takes.
    pub what: String,
    pub expect: Verdict,
    pub frame: Vec<u8>,
}

fn eth_ip() -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv4(SRC, DST, 64)
}

/// Pads the L4 payload so the frame is `size` bytes (or as small as the
/// headers and `payload` allow).
fn pad(headers: usize, mut payload: Vec<u8>, size: usize) -> Vec<u8> {
    let want = size.saturating_sub(headers);
    if payload.len() < want {
        payload.resize(want, 0);
    }
    payload
}

fn icmp_echo(size: usize) -> Result<Vec<u8>> {
    let b = eth_ip().icmpv4_echo_request(0x1234, 1);
    let payload = pad(b.size(0), vec![0x55; 8], size);
    let mut out = Vec::with_capacity(size);
    b.write(&mut out, &payload)?;
    Ok(out)
}

/// TCP from `SRC`:40000 to `port`; `syn` = SYN without ACK, else ACK.
fn tcp(size: usize, port: u16, syn: bool) -> Result<Vec<u8>> {
    let b = eth_ip().tcp(40000, port, 1000, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let payload = pad(b.size(0), Vec::new(), size);
    let mut out = Vec::with_capacity(size);
    b.write(&mut out, &payload)?;
    Ok(out)
}

/// The wire form of a name (`a.b` -> `1 a 1 b 0`).
fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.split('.') {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

/// A UDP DNS query (one question, RD set) for `name`; the payload is padded
/// after the question (QDCOUNT = 1, so the padding is never parsed as a name).
fn dns_query(size: usize, name: &str) -> Result<Vec<u8>> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&wire(name));
    q.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    let b = eth_ip().udp(40000, 53);
    let payload = pad(b.size(0), q, size);
    let mut out = Vec::with_capacity(size);
    b.write(&mut out, &payload)?;
    Ok(out)
}

/// A 255-byte name (the longest allowed): 30 labels `labNNNN` and `suffix`
/// (15 bytes): 33 labels, so the walk really copies and scans something.
fn long_name(suffix: &str) -> String {
    let mut n = String::new();
    for i in 0..30 {
        n.push_str(&format!("lab{i:04}."));
    }
    n.push_str(suffix);
    n
}

/// Every benchmark packet, for every size, in table order.
pub fn all(filters: &[&'static str]) -> Result<Vec<BenchPacket>> {
    let mut out = Vec::new();
    for &filter in filters {
        for size in [SMALL, LARGE] {
            let sz = if size == SMALL { "64B" } else { "1500B" };
            let mut add = |what: String, expect: Verdict, frame: Vec<u8>| {
                out.push(BenchPacket { filter, what, expect, frame });
            };
            match filter {
                "icmp_drop" => {
                    add(format!("ICMP echo request {sz}"), Verdict::Drop, icmp_echo(size)?);
                    add(format!("TCP ACK :80 {sz}"), Verdict::Pass, tcp(size, 80, false)?);
                }
                "l4_dos" => {
                    add(format!("TCP SYN :80 in rate {sz}"), Verdict::Pass, tcp(size, 80, true)?);
                    add(format!("TCP SYN :23 blocked {sz}"), Verdict::Drop, tcp(size, 23, true)?);
                }
                "dns_block" => {
                    if size == SMALL {
                        add("DNS ads.example.com".into(), Verdict::Drop, dns_query(size, "ads.example.com")?);
                        add("DNS ads.example.org".into(), Verdict::Pass, dns_query(size, "ads.example.org")?);
                    } else {
                        add(
                            format!("DNS 255B name, blocked {sz}"),
                            Verdict::Drop,
                            dns_query(size, &long_name("ads.example.com"))?,
                        );
                        add(
                            format!("DNS 255B name, allowed {sz}"),
                            Verdict::Pass,
                            dns_query(size, &long_name("ads.example.org"))?,
                        );
                    }
                }
                other => anyhow::bail!("no benchmark packets for filter '{other}'"),
            }
        }
    }
    Ok(out)
}
