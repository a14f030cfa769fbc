//! Zero-copy header parsing, following the rules of `docs/filters.md`:
//!
//! - Ethernet: up to two VLAN tags (`0x8100`, `0x88a8`) are skipped; other
//!   EtherTypes than IPv4 and IPv6 give `None`.
//! - Raw IP: the version nibble picks IPv4 or IPv6.
//! - IPv4: `ihl >= 5` and the whole header must fit. A non-first fragment
//!   has no L4 header: [`L4::Fragment`].
//! - IPv6: at most 4 extension headers (hop-by-hop 0, routing 43,
//!   destination options 60, fragment 44) are followed; a fragment header
//!   with a non-zero offset gives [`L4::Fragment`]; a 5th gives
//!   [`L4::Other`] with that extension header's number.
//! - Any header that does not fit in the packet: `None`.
//!
//! Fixed L4 header sizes: TCP 20 bytes, UDP 8, ICMP and ICMPv6 8. ICMP is
//! protocol 1 in IPv4, ICMPv6 is next header 58 in IPv6; the other
//! combinations are [`L4::Other`].

use core::fmt;

use crate::Link;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const MAX_VLAN_TAGS: usize = 2;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPV6_HLEN: usize = 40;
const MAX_IPV6_EXT_HEADERS: usize = 4;

const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const ICMP_HLEN: usize = 8;

/// An IPv6 address, or an IPv4 address mapped to `::ffff:a.b.c.d`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// `::ffff:a.b.c.d`.
    pub const fn from_v4(a: [u8; 4]) -> Addr {
        Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]])
    }

    /// The IPv4 address if this is `::ffff:a.b.c.d`.
    pub fn to_v4(&self) -> Option<[u8; 4]> {
        match self.0 {
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => Some([a, b, c, d]),
            _ => None,
        }
    }

    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    pub fn from_u128(v: u128) -> Addr {
        Addr(v.to_be_bytes())
    }
}

impl fmt::Display for Addr {
    /// Dotted quad for mapped IPv4, else eight hex groups (not compressed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some([a, b, c, d]) = self.to_v4() {
            return write!(f, "{a}.{b}.{c}.{d}");
        }
        for (i, g) in self.0.chunks_exact(2).enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{:x}", u16::from_be_bytes([g[0], g[1]]))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

/// A TCP header; `bytes` starts at it and runs to the end of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Byte 13: CWR ECE URG ACK PSH RST SYN FIN.
    pub flags: u8,
    pub bytes: &'a [u8],
}

impl Tcp<'_> {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn syn(&self) -> bool {
        self.flags & Self::SYN != 0
    }

    pub fn ack(&self) -> bool {
        self.flags & Self::ACK != 0
    }
}

/// A UDP header; `payload` is everything after it to the end of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// An ICMP or ICMPv6 header; `bytes` starts at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp<'a> {
    pub ty: u8,
    pub code: u8,
    pub bytes: &'a [u8],
}

impl Icmp<'_> {
    /// ICMPv4 echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// ICMPv6 echo request.
    pub const V6_ECHO_REQUEST: u8 = 128;
}

/// What follows the IP header(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4<'a> {
    Tcp(Tcp<'a>),
    Udp(Udp<'a>),
    /// ICMP in IPv4.
    Icmp(Icmp<'a>),
    /// ICMPv6 in IPv6.
    Icmpv6(Icmp<'a>),
    /// A non-first fragment: no L4 header.
    Fragment,
    /// Another protocol (or a 5th IPv6 extension header), with its number.
    Other(u8),
}

/// A parsed IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub version: IpVersion,
    pub src: Addr,
    pub dst: Addr,
    /// IPv4 protocol or the last IPv6 next header.
    pub protocol: u8,
    pub l4: L4<'a>,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

impl<'a> Packet<'a> {
    /// Parses `bytes` starting at `link`. `None` means the packet is not
    /// IPv4/IPv6 or a header does not fit: filters let such packets pass.
    pub fn parse(bytes: &'a [u8], link: Link) -> Option<Packet<'a>> {
        let (version, ip) = match link {
            Link::Ethernet => {
                let mut ethertype = be16(bytes, 12)?;
                let mut off = ETH_HLEN;
                for _ in 0..MAX_VLAN_TAGS {
                    if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
                        break;
                    }
                    ethertype = be16(bytes, off + 2)?;
                    off += VLAN_HLEN;
                }
                let version = match ethertype {
                    ETH_P_IPV4 => IpVersion::V4,
                    ETH_P_IPV6 => IpVersion::V6,
                    _ => return None,
                };
                (version, bytes.get(off..)?)
            }
            Link::RawIp => match bytes.first()? >> 4 {
                4 => (IpVersion::V4, bytes),
                6 => (IpVersion::V6, bytes),
                _ => return None,
            },
        };
        match version {
            IpVersion::V4 => Self::parse_v4(ip),
            IpVersion::V6 => Self::parse_v6(ip),
        }
    }

    fn parse_v4(ip: &'a [u8]) -> Option<Packet<'a>> {
        let ihl = usize::from(ip.first()? & 0x0f);
        if ihl < 5 {
            return None;
        }
        let header = ip.get(..ihl * 4)?;
        let frag_offset = be16(header, 6)? & 0x1fff;
        let protocol = *header.get(9)?;
        let src = Addr::from_v4(array(header, 12)?);
        let dst = Addr::from_v4(array(header, 16)?);
        let l4 = if frag_offset != 0 { L4::Fragment } else { parse_l4(IpVersion::V4, protocol, ip.get(ihl * 4..)?)? };
        Some(Packet { version: IpVersion::V4, src, dst, protocol, l4 })
    }

    fn parse_v6(ip: &'a [u8]) -> Option<Packet<'a>> {
        let header = ip.get(..IPV6_HLEN)?;
        let src = Addr(array(header, 8)?);
        let dst = Addr(array(header, 24)?);
        let mut next = *header.get(6)?;
        let mut off = IPV6_HLEN;
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            match next {
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                    let len = (usize::from(*ip.get(off + 1)?) + 1) * 8;
                    let ext = ip.get(off..off + len)?;
                    next = ext[0];
                    off += len;
                }
                IPPROTO_FRAGMENT => {
                    let ext = ip.get(off..off + 8)?;
                    if be16(ext, 2)? >> 3 != 0 {
                        return Some(Packet { version: IpVersion::V6, src, dst, protocol: next, l4: L4::Fragment });
                    }
                    next = ext[0];
                    off += 8;
                }
                _ => break,
            }
        }
        let l4 = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT => L4::Other(next),
            _ => parse_l4(IpVersion::V6, next, ip.get(off..)?)?,
        };
        Some(Packet { version: IpVersion::V6, src, dst, protocol: next, l4 })
    }
}

fn parse_l4(version: IpVersion, protocol: u8, b: &[u8]) -> Option<L4<'_>> {
    Some(match (protocol, version) {
        (IPPROTO_TCP, _) => {
            b.get(..TCP_HLEN)?;
            L4::Tcp(Tcp { src_port: be16(b, 0)?, dst_port: be16(b, 2)?, flags: *b.get(13)?, bytes: b })
        }
        (IPPROTO_UDP, _) => L4::Udp(Udp { src_port: be16(b, 0)?, dst_port: be16(b, 2)?, payload: b.get(UDP_HLEN..)? }),
        (IPPROTO_ICMP, IpVersion::V4) | (IPPROTO_ICMPV6, IpVersion::V6) => {
            b.get(..ICMP_HLEN)?;
            let icmp = Icmp { ty: *b.first()?, code: *b.get(1)?, bytes: b };
            if version == IpVersion::V4 {
                L4::Icmp(icmp)
            } else {
                L4::Icmpv6(icmp)
            }
        }
        _ => L4::Other(protocol),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const V4_SRC: [u8; 4] = [10, 0, 0, 1];
    const V4_DST: [u8; 4] = [10, 0, 0, 2];

    fn ipv4(protocol: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0x45, 0, 0, 0, 0, 0];
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, protocol, 0, 0]);
        p.extend_from_slice(&V4_SRC);
        p.extend_from_slice(&V4_DST);
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(1);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(2);
        p.extend_from_slice(rest);
        p
    }

    fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0; 12];
        for t in tags {
            p.extend_from_slice(&t.to_be_bytes());
            p.extend_from_slice(&[0, 5]);
        }
        p.extend_from_slice(&ethertype.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn tcp(dst_port: u16, flags: u8) -> Vec<u8> {
        let mut t = std::vec![0x30, 0x39];
        t.extend_from_slice(&dst_port.to_be_bytes());
        t.extend_from_slice(&[0; 9]);
        t.push(flags);
        t.extend_from_slice(&[0; 6]);
        t
    }

    const ECHO: [u8; 8] = [8, 0, 0, 0, 0, 1, 0, 1];

    #[test]
    fn raw_ipv4_icmp() {
        let p = ipv4(1, 0, &ECHO);
        let pkt = Packet::parse(&p, Link::RawIp).unwrap();
        assert_eq!(pkt.src, Addr::from_v4(V4_SRC));
        assert_eq!(pkt.dst.to_v4(), Some(V4_DST));
        assert!(matches!(pkt.l4, L4::Icmp(Icmp { ty: 8, code: 0, .. })));
        // Truncated ICMP header.
        assert_eq!(Packet::parse(&p[..p.len() - 1], Link::RawIp), None);
    }

    #[test]
    fn ethernet_vlans() {
        let ip = ipv4(6, 0, &tcp(80, Tcp::SYN));
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100]] {
            let p = eth(tags, 0x0800, &ip);
            let pkt = Packet::parse(&p, Link::Ethernet).unwrap();
            match pkt.l4 {
                L4::Tcp(t) => {
                    assert_eq!((t.src_port, t.dst_port), (12345, 80));
                    assert!(t.syn() && !t.ack());
                }
                l4 => panic!("{l4:?}"),
            }
        }
        // A third tag is not skipped: EtherType 0x8100 is not IP.
        assert_eq!(Packet::parse(&eth(&[0x8100, 0x8100, 0x8100], 0x0800, &ip), Link::Ethernet), None);
        assert_eq!(Packet::parse(&eth(&[], 0x0806, &ip), Link::Ethernet), None);
        // Truncated in the VLAN tag or the Ethernet header.
        let p = eth(&[0x8100], 0x0800, &ip);
        assert_eq!(Packet::parse(&p[..16], Link::Ethernet), None);
        assert_eq!(Packet::parse(&p[..13], Link::Ethernet), None);
        assert_eq!(Packet::parse(&[], Link::Ethernet), None);
        assert_eq!(Packet::parse(&[], Link::RawIp), None);
    }

    #[test]
    fn ipv4_header_rules() {
        let mut p = ipv4(17, 0, &[0, 1, 0, 53, 0, 8, 0, 0, 0xaa]);
        let pkt = Packet::parse(&p, Link::RawIp).unwrap();
        assert!(matches!(pkt.l4, L4::Udp(Udp { src_port: 1, dst_port: 53, payload: [0xaa] })));
        // IHL < 5.
        p[0] = 0x44;
        assert_eq!(Packet::parse(&p, Link::RawIp), None);
        // IHL larger than the packet.
        p[0] = 0x4f;
        assert_eq!(Packet::parse(&p, Link::RawIp), None);
        // IHL 6 with options: L4 starts after them.
        let mut p = ipv4(17, 0, &[1, 2, 3, 4, 0, 1, 0, 53, 0, 8, 0, 0]);
        p[0] = 0x46;
        assert!(matches!(Packet::parse(&p, Link::RawIp).unwrap().l4, L4::Udp(Udp { src_port: 1, dst_port: 53, .. })));
        // Version nibble.
        p[0] = 0x55;
        assert_eq!(Packet::parse(&p, Link::RawIp), None);
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment (MF set, offset 0): parsed.
        let p = ipv4(1, 0x2000, &ECHO);
        assert!(matches!(Packet::parse(&p, Link::RawIp).unwrap().l4, L4::Icmp(_)));
        // Non-first fragment: no L4, even if the bytes would parse.
        let p = ipv4(1, 0x2001, &ECHO);
        assert_eq!(Packet::parse(&p, Link::RawIp).unwrap().l4, L4::Fragment);
        let p = ipv4(1, 0x0001, &[]);
        assert_eq!(Packet::parse(&p, Link::RawIp).unwrap().l4, L4::Fragment);
    }

    #[test]
    fn ipv6_ext_headers() {
        let echo6 = [128, 0, 0, 0, 0, 1, 0, 1];
        let p = ipv6(58, &echo6);
        let pkt = Packet::parse(&p, Link::RawIp).unwrap();
        assert!(matches!(pkt.l4, L4::Icmpv6(Icmp { ty: 128, .. })));
        assert_eq!(pkt.src.0[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(pkt.src.0[15], 1);
        // Via Ethernet.
        assert_eq!(Packet::parse(&eth(&[], 0x86dd, &p), Link::Ethernet), Some(pkt));

        // n extension headers (hop-by-hop, then dest opts of 16 bytes).
        let with_ext = |n: usize| {
            let mut rest = Vec::new();
            let first = if n == 0 { 58 } else { 0 };
            for i in 0..n {
                let next = if i + 1 == n { 58 } else { 60 };
                if i % 2 == 0 {
                    rest.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
                } else {
                    rest.extend_from_slice(&[next, 1]);
                    rest.extend_from_slice(&[0; 14]);
                }
            }
            rest.extend_from_slice(&echo6);
            ipv6(first, &rest)
        };
        for n in 0..=4 {
            let p = with_ext(n);
            let l4 = Packet::parse(&p, Link::RawIp).unwrap().l4;
            assert!(matches!(l4, L4::Icmpv6(Icmp { ty: 128, .. })), "{n}: {l4:?}");
        }
        assert_eq!(Packet::parse(&with_ext(5), Link::RawIp).unwrap().l4, L4::Other(60));
        // Truncated extension header.
        let p = with_ext(2);
        assert_eq!(Packet::parse(&p[..40 + 8 + 10], Link::RawIp), None);

        // Fragment header: offset 0 is followed, anything else is a fragment.
        let mut rest = std::vec![17, 0, 0, 1, 0, 0, 0, 7];
        rest.extend_from_slice(&[0, 1, 0, 53, 0, 8, 0, 0]);
        assert!(matches!(Packet::parse(&ipv6(44, &rest), Link::RawIp).unwrap().l4, L4::Udp(_)));
        rest[2..4].copy_from_slice(&(1u16 << 3).to_be_bytes());
        assert_eq!(Packet::parse(&ipv6(44, &rest), Link::RawIp).unwrap().l4, L4::Fragment);
        // ICMP (1) in IPv6 is not ICMPv6.
        assert_eq!(Packet::parse(&ipv6(1, &ECHO), Link::RawIp).unwrap().l4, L4::Other(1));
        // Truncated fixed header.
        assert_eq!(Packet::parse(&p[..39], Link::RawIp), None);
    }

    #[test]
    fn truncated_l4() {
        assert_eq!(Packet::parse(&ipv4(6, 0, &tcp(80, 2)[..19]), Link::RawIp), None);
        assert_eq!(Packet::parse(&ipv4(17, 0, &[0; 7]), Link::RawIp), None);
        assert!(Packet::parse(&ipv4(17, 0, &[0; 8]), Link::RawIp).is_some());
        assert_eq!(Packet::parse(&ipv4(47, 0, &[]), Link::RawIp).unwrap().l4, L4::Other(47));
    }

    #[test]
    fn never_panics_on_prefixes() {
        let p = eth(&[0x8100], 0x86dd, &ipv6(0, &[6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]));
        for link in [Link::Ethernet, Link::RawIp] {
            for n in 0..=p.len() {
                let _ = Packet::parse(&p[..n], link);
            }
            for seed in 0..2000u32 {
                let mut q = p.clone();
                let i = (seed as usize * 7) % q.len();
                q[i] = (seed.wrapping_mul(2654435761) >> 24) as u8;
                let _ = Packet::parse(&q, link);
            }
        }
    }
}
