//! The three filters (icmp_drop, l4_dos, dns_block) natively.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use anyhow::{anyhow, bail, Result};
use wasmfw_engine::Verdict;
use wasmfw_policy::Policy;

use super::config::{cidrs, int, list, matches_or_empty, Cidr};
use super::parse::{parse, Addr, Link, Pkt, L4};

/// One of the three filters, natively.
pub enum Native {
    IcmpDrop(IcmpDrop),
    L4Dos(L4Dos),
    DnsBlock(DnsBlock),
}

impl Native {
    /// The filter named by `policy.filter`, configured from its params.
    pub fn from_policy(policy: &Policy) -> Result<Native> {
        let p = |k: &str| policy.param(k);
        Ok(match policy.filter.as_str() {
            "icmp_drop" => Native::IcmpDrop(IcmpDrop { from: cidrs(p("from"))?, to: cidrs(p("to"))?, echo_dropped: 0 }),
            "l4_dos" => Native::L4Dos(L4Dos {
                allow: cidrs(p("allow"))?,
                blocked_ports: list(p("blocked_ports"))?
                    .iter()
                    .map(|s| s.trim().parse::<u16>().map_err(|_| anyhow!("bad port '{s}'")))
                    .collect::<Result<_>>()?,
                syn: Limit::new(int(p("syn_rate"), 100)?, int(p("syn_burst"), 200)?),
                udp: Limit::new(int(p("udp_rate"), 10_000)?, int(p("udp_burst"), 20_000)?),
                allowed: 0,
                blocked_port: 0,
            }),
            "dns_block" => Native::DnsBlock(DnsBlock {
                block: list(p("block"))?.iter().map(|s| s.trim().as_bytes().to_vec()).collect(),
                max_pointer_hops: int(p("max_pointer_hops"), 8)? as u32,
                blocked: 0,
                malformed: 0,
            }),
            other => bail!("no native version of filter '{other}'"),
        })
    }

    /// The verdict on one packet; `now` is the clock l4_dos reads.
    #[inline(never)]
    pub fn filter(&mut self, packet: &[u8], link: Link, now: u64) -> Verdict {
        match self {
            Native::IcmpDrop(f) => f.filter(packet, link),
            Native::L4Dos(f) => f.filter(packet, link, now),
            Native::DnsBlock(f) => f.filter(packet, link),
        }
    }
}

pub struct IcmpDrop {
    from: Vec<Cidr>,
    to: Vec<Cidr>,
    pub echo_dropped: u64,
}

impl IcmpDrop {
    fn filter(&mut self, packet: &[u8], link: Link) -> Verdict {
        let Some(pkt) = parse(packet, link) else { return Verdict::Pass };
        let echo = matches!(pkt.l4, L4::Icmp { ty: 8 } | L4::Icmpv6 { ty: 128 });
        if echo && matches_or_empty(&self.from, &pkt.src) && matches_or_empty(&self.to, &pkt.dst) {
            self.echo_dropped += 1;
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

/// FxHash-style hasher for the bucket maps (the Wasm engine's maps use
/// foldhash, the kernel's htab jhash; std's SipHash would dominate here).
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

const TOKEN: u64 = 1_000_000_000;
const MAX_ELAPSED_NS: u64 = 3600 * TOKEN;
const BUCKETS: usize = 16384;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: u64,
    last_ns: u64,
}

struct Limit {
    rate: u64,
    burst: u64,
    buckets: HashMap<Addr, Bucket, BuildHasherDefault<FxHasher>>,
    limited: u64,
}

impl Limit {
    fn new(rate: u64, burst: u64) -> Limit {
        Limit { rate, burst, buckets: HashMap::with_capacity_and_hasher(BUCKETS, Default::default()), limited: 0 }
    }

    /// The token bucket of docs/filters.md, integer only.
    fn take(&mut self, src: &Addr, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let full = self.burst.saturating_mul(TOKEN);
        let mut b = match self.buckets.get(src) {
            None if self.buckets.len() >= BUCKETS => return true, // full: fail open, uncounted
            None => Bucket { tokens: full, last_ns: now },
            Some(b) => {
                let elapsed = now.saturating_sub(b.last_ns).min(MAX_ELAPSED_NS);
                Bucket { tokens: full.min(b.tokens.saturating_add(elapsed.saturating_mul(self.rate))), last_ns: now }
            }
        };
        let ok = b.tokens >= TOKEN;
        if ok {
            b.tokens -= TOKEN;
        } else {
            self.limited += 1;
        }
        self.buckets.insert(*src, b);
        ok
    }
}

pub struct L4Dos {
    allow: Vec<Cidr>,
    blocked_ports: Vec<u16>,
    syn: Limit,
    udp: Limit,
    pub allowed: u64,
    pub blocked_port: u64,
}

impl L4Dos {
    fn filter(&mut self, packet: &[u8], link: Link, now: u64) -> Verdict {
        let Some(pkt) = parse(packet, link) else { return Verdict::Pass };
        let (dst_port, limit) = match pkt.l4 {
            L4::Tcp { dst_port, flags } => {
                (dst_port, (flags & 0x02 != 0 && flags & 0x10 == 0).then_some(&mut self.syn))
            }
            L4::Udp { dst_port, .. } => (dst_port, Some(&mut self.udp)),
            _ => return Verdict::Pass,
        };
        if self.allow.iter().any(|c| c.contains(&pkt.src)) {
            self.allowed += 1;
            return Verdict::Pass;
        }
        if self.blocked_ports.contains(&dst_port) {
            self.blocked_port += 1;
            return Verdict::Drop;
        }
        match limit {
            Some(l) => {
                if l.take(&pkt.src, now) {
                    Verdict::Pass
                } else {
                    Verdict::Drop
                }
            }
            None => Verdict::Pass,
        }
    }
}

pub struct DnsBlock {
    block: Vec<Vec<u8>>,
    max_pointer_hops: u32,
    pub blocked: u64,
    pub malformed: u64,
}

impl DnsBlock {
    fn filter(&mut self, packet: &[u8], link: Link) -> Verdict {
        let Some(Pkt { l4: L4::Udp { dst_port, payload: dns }, .. }) = parse(packet, link) else {
            return Verdict::Pass;
        };
        if dst_port != 53 || dns.len() < 12 || dns[2] & 0x80 != 0 || dns[4..6] == [0, 0] {
            return Verdict::Pass;
        }
        let mut name = [0u8; 255];
        let Some(len) = read_name(dns, 12, self.max_pointer_hops, &mut name) else {
            self.malformed += 1;
            return Verdict::Pass;
        };
        let name = &name[..len];
        if self.block.iter().any(|s| matches_suffix(name, s)) {
            self.blocked += 1;
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

/// The first question's name as dotted text; `None` = malformed.
fn read_name(dns: &[u8], mut pos: usize, max_hops: u32, out: &mut [u8; 255]) -> Option<usize> {
    let (mut len, mut hops) = (0usize, 0u32);
    loop {
        let byte = *dns.get(pos)?;
        match byte >> 6 {
            0 if byte == 0 => return Some(len),
            0 => {
                let label = dns.get(pos + 1..pos + 1 + usize::from(byte))?;
                let dot = usize::from(len > 0);
                let dst = out.get_mut(len..len + dot + label.len())?;
                dst[dot..].copy_from_slice(label);
                if dot == 1 {
                    dst[0] = b'.';
                }
                len += dot + label.len();
                pos += 1 + label.len();
            }
            3 => {
                hops += 1;
                if hops > max_hops {
                    return None;
                }
                pos = usize::from(byte & 0x3f) << 8 | usize::from(*dns.get(pos + 1)?);
            }
            _ => return None,
        }
    }
}

fn matches_suffix(name: &[u8], suffix: &[u8]) -> bool {
    let Some(start) = name.len().checked_sub(suffix.len()) else { return false };
    name[start..].eq_ignore_ascii_case(suffix) && (start == 0 || name[start - 1] == b'.')
}
