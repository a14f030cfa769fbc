//! The three filters as plain Rust functions on `&[u8]`: the native
//! baseline. A small, faithful re-implementation of docs/filters.md (same
//! parsing rules, same rule order, same integer token bucket, same name
//! walk), configured from the same policy `[params]`. Counters are plain
//! integers. It exists only to be timed next to the Wasm filter and the eBPF
//! twin, and to cross-check their verdicts on the benchmark packets.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use wasmfw_engine::Verdict;
use wasmfw_policy::{Param, Policy};

// ---- parsing (docs/filters.md, "Parsing rules shared by all filters") ----

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    #[allow(dead_code)] // the benchmark frames are Ethernet; kept for the netfilter link
    RawIp,
}

#[derive(Clone, Copy)]
enum L4<'a> {
    Tcp {
        dst_port: u16,
        flags: u8,
    },
    Udp {
        dst_port: u16,
        payload: &'a [u8],
    },
    Icmp {
        ty: u8,
    },
    Icmpv6 {
        ty: u8,
    },
    /// Non-first fragment or another protocol: no rule applies.
    Other,
}

/// An address as 16 bytes, IPv4 as `::ffff:a.b.c.d`.
type Addr = [u8; 16];

struct Pkt<'a> {
    src: Addr,
    dst: Addr,
    l4: L4<'a>,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn mapped(b: &[u8]) -> Addr {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&b[..4]);
    a
}

/// `None`: not IPv4/IPv6 or a header does not fit (the packet passes).
fn parse(bytes: &[u8], link: Link) -> Option<Pkt<'_>> {
    let (v6, ip) = match link {
        Link::Ethernet => {
            let mut ethertype = be16(bytes, 12)?;
            let mut off = 14;
            for _ in 0..2 {
                if ethertype != 0x8100 && ethertype != 0x88a8 {
                    break;
                }
                ethertype = be16(bytes, off + 2)?;
                off += 4;
            }
            match ethertype {
                0x0800 => (false, bytes.get(off..)?),
                0x86dd => (true, bytes.get(off..)?),
                _ => return None,
            }
        }
        Link::RawIp => match bytes.first()? >> 4 {
            4 => (false, bytes),
            6 => (true, bytes),
            _ => return None,
        },
    };
    if !v6 {
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        let h = ip.get(..ihl)?;
        let (src, dst) = (mapped(&h[12..16]), mapped(&h[16..20]));
        if be16(h, 6)? & 0x1fff != 0 {
            return Some(Pkt { src, dst, l4: L4::Other });
        }
        return Some(Pkt { src, dst, l4: l4(false, h[9], ip.get(ihl..)?)? });
    }
    let h = ip.get(..40)?;
    let (src, dst): (Addr, Addr) = (h[8..24].try_into().ok()?, h[24..40].try_into().ok()?);
    let mut next = h[6];
    let mut off = 40;
    for _ in 0..4 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*ip.get(off + 1)?) + 1) * 8;
                next = ip.get(off..off + len)?[0];
                off += len;
            }
            44 => {
                let ext = ip.get(off..off + 8)?;
                if be16(ext, 2)? >> 3 != 0 {
                    return Some(Pkt { src, dst, l4: L4::Other });
                }
                next = ext[0];
                off += 8;
            }
            _ => break,
        }
    }
    if matches!(next, 0 | 43 | 60 | 44) {
        return Some(Pkt { src, dst, l4: L4::Other });
    }
    Some(Pkt { src, dst, l4: l4(true, next, ip.get(off..)?)? })
}

fn l4(v6: bool, proto: u8, b: &[u8]) -> Option<L4<'_>> {
    Some(match (proto, v6) {
        (6, _) => {
            b.get(..20)?;
            L4::Tcp { dst_port: be16(b, 2)?, flags: b[13] }
        }
        (17, _) => L4::Udp { dst_port: be16(b, 2)?, payload: b.get(8..)? },
        (1, false) => L4::Icmp { ty: b.get(..8)?[0] },
        (58, true) => L4::Icmpv6 { ty: b.get(..8)?[0] },
        _ => L4::Other,
    })
}

// ---- configuration from the policy's [params] -------------------------------

fn list(p: Option<&Param>) -> Result<Vec<String>> {
    match p {
        None => Ok(Vec::new()),
        Some(Param::List(l)) => Ok(l.clone()),
        Some(Param::Str(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Param::Str(s)) => Ok(s.split(',').map(str::to_string).collect()),
        Some(p) => bail!("expected a list, got {p:?}"),
    }
}

fn int(p: Option<&Param>, default: u64) -> Result<u64> {
    match p {
        None => Ok(default),
        Some(Param::Int(i)) if *i >= 0 => Ok(*i as u64),
        Some(p) => bail!("expected a non-negative integer, got {p:?}"),
    }
}

/// A prefix on the 16-byte address space.
#[derive(Clone, Copy)]
struct Cidr {
    addr: u128,
    plen: u32,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let ip: IpAddr = a.parse().map_err(|_| anyhow!("'{s}' is not an address or CIDR prefix"))?;
        let (addr, base, max) = match ip {
            IpAddr::V4(v4) => (u128::from_be_bytes(v4.to_ipv6_mapped().octets()), 96, 32),
            IpAddr::V6(v6) => (u128::from_be_bytes(v6.octets()), 0, 128),
        };
        let plen = match p {
            Some(p) => p.parse::<u32>().ok().filter(|p| *p <= max).ok_or_else(|| anyhow!("'{s}': bad prefix"))?,
            None => max,
        };
        Ok(Cidr { addr, plen: base + plen })
    }

    fn contains(&self, a: &Addr) -> bool {
        self.plen == 0 || (u128::from_be_bytes(*a) ^ self.addr) >> (128 - self.plen) == 0
    }
}

fn cidrs(p: Option<&Param>) -> Result<Vec<Cidr>> {
    list(p)?.iter().map(|s| Cidr::parse(s.trim())).collect()
}

fn matches_or_empty(l: &[Cidr], a: &Addr) -> bool {
    l.is_empty() || l.iter().any(|c| c.contains(a))
}

// ---- the filters ----------------------------------------------------------------

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
