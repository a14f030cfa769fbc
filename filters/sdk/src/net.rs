//! Zero-copy header parsing, following the rules of `docs/filters.md`:
//! [`Ip`] checks the IP header(s) and reads the rest on demand (the lean
//! way, in fuel); [`Packet`] reads everything at once.
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

use crate::config::CidrList;
use crate::Link;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// The EtherTypes above as `u16::from_ne_bytes` reads them from a packet.
const ETH_P_IPV4_NE: u16 = ETH_P_IPV4.to_be();
const ETH_P_IPV6_NE: u16 = ETH_P_IPV6.to_be();
const ETH_P_8021Q_NE: u16 = ETH_P_8021Q.to_be();
const ETH_P_8021AD_NE: u16 = ETH_P_8021AD.to_be();
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
const IPV4_HLEN: usize = 20;
/// Offset of the source address; the destination follows it.
const IPV4_SRC: usize = 12;
const IPV6_HLEN: usize = 40;
const IPV6_SRC: usize = 8;
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

/// A parsed IP packet, every header read: what [`Packet::parse`] gives.
/// [`Ip`] reads the same headers lazily and costs less fuel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub version: IpVersion,
    pub src: Addr,
    pub dst: Addr,
    /// IPv4 protocol or the last IPv6 next header.
    pub protocol: u8,
    pub l4: L4<'a>,
}

impl<'a> Packet<'a> {
    /// Parses `bytes` starting at `link`. `None` means the packet is not
    /// IPv4/IPv6 or a header does not fit: filters let such packets pass.
    pub fn parse(bytes: &'a [u8], link: Link) -> Option<Packet<'a>> {
        let ip = Ip::parse(bytes, link)?;
        Some(Packet { version: ip.version, src: ip.src(), dst: ip.dst(), protocol: ip.protocol, l4: ip.l4()? })
    }
}

/// An IPv4 or IPv6 packet whose IP header(s) are checked and whose L4
/// header and addresses are read only when asked for: the lean way to look
/// at a packet. Wasm fuel pays for every instruction of a function a packet
/// goes through, so a filter that asks only for what it needs stays cheap.
///
/// The accessors follow the rules of [`Packet::parse`]: [`Ip::tcp`] is
/// `Some` exactly when `Packet::parse` gives `Some` with [`L4::Tcp`], and so
/// on; [`Ip::l4`] is `None` where `Packet::parse` is `None` because the L4
/// header does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip<'a> {
    /// From the IP header to the end of the packet; the fixed header fits.
    ip: &'a [u8],
    /// From the L4 header (after any IPv6 extension headers) to the end.
    l4: &'a [u8],
    version: IpVersion,
    /// IPv4 protocol or the last IPv6 next header.
    protocol: u8,
    /// A non-first fragment: no L4 header.
    fragment: bool,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Skips the VLAN tags of an Ethernet frame whose EtherType is a tag:
/// the offset of the IP header and its version.
#[cold]
#[inline(never)]
fn skip_vlan_tags(bytes: &[u8]) -> Option<(usize, IpVersion)> {
    let mut ethertype = be16(bytes, 12)?;
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = be16(bytes, off + 2)?;
        off += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IPV4 => Some((off, IpVersion::V4)),
        ETH_P_IPV6 => Some((off, IpVersion::V6)),
        _ => None,
    }
}

/// The EtherType of an Ethernet frame as `u16::from_ne_bytes` reads it (no
/// byte swap: Wasm has no instruction for it), and the rest of the frame.
#[inline(always)]
fn ethertype_ne(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (eth, rest) = bytes.split_first_chunk::<ETH_HLEN>()?;
    Some((u16::from_ne_bytes([eth[12], eth[13]]), rest))
}

/// An Ethernet frame with EtherType IPv4 and no VLAN tag: the test the
/// runtime makes before calling the filter's copy for such frames.
#[inline(always)]
pub(crate) fn is_untagged_ipv4(bytes: &[u8]) -> bool {
    matches!(ethertype_ne(bytes), Some((ETH_P_IPV4_NE, _)))
}

/// An Ethernet frame with EtherType IPv6 and no VLAN tag.
#[inline(always)]
pub(crate) fn is_untagged_ipv6(bytes: &[u8]) -> bool {
    matches!(ethertype_ne(bytes), Some((ETH_P_IPV6_NE, _)))
}

/// A raw IP packet with version 4: as above, for `Link::RawIp`.
#[inline(always)]
pub(crate) fn is_raw_ipv4(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(b) if b >> 4 == 4)
}

/// Where the IPv6 extension headers end: small enough to come back from a
/// call in one register.
#[derive(Clone, Copy)]
struct Ipv6End {
    /// Offset of the L4 header: at most 40 + 4 * 2048.
    l4_off: u16,
    /// The last next header.
    next: u8,
    /// A fragment header with a non-zero offset was met.
    fragment: bool,
}

/// Follows at most [`MAX_IPV6_EXT_HEADERS`] extension headers of the IPv6
/// packet `ip`. More than that: `next` is an extension header, which the
/// accessors see as another protocol.
#[inline(never)]
fn ipv6_ext_headers(ip: &[u8]) -> Option<Ipv6End> {
    let header = ip.get(..IPV6_HLEN)?;
    let mut next = header[6];
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
                    return Some(Ipv6End { l4_off: off as u16, next, fragment: true });
                }
                next = ext[0];
                off += 8;
            }
            _ => break,
        }
    }
    // `off` <= 40 + 4 * 256 * 8: it fits in a u16.
    Some(Ipv6End { l4_off: off as u16, next, fragment: false })
}

/// The address at `v4_off` or `v6_off` of an IP header whose fixed part
/// fits (checked by [`Ip::parse`], so neither falls back).
#[inline(always)]
fn addr_at(ip: &[u8], version: IpVersion, v4_off: usize, v6_off: usize) -> Addr {
    match version {
        IpVersion::V4 => Addr::from_v4(array(ip, v4_off).unwrap_or_default()),
        IpVersion::V6 => Addr(array(ip, v6_off).unwrap_or_default()),
    }
}

/// The IPv4 address `v4` is in the non-empty `list`. Out of line (empty
/// lists are the common case), and no 16-byte address is built.
#[inline(never)]
fn v4_in(list: &CidrList, v4: [u8; 4]) -> bool {
    list.contains_v4(v4)
}

/// As [`v4_in`] for IPv6.
#[inline(never)]
fn v6_in(list: &CidrList, ip: &[u8], off: usize) -> bool {
    list.contains(&Addr(array(ip, off).unwrap_or_default()))
}

impl<'a> Ip<'a> {
    /// Checks the headers of `bytes` starting at `link` up to the L4
    /// header. `None` as for [`Packet::parse`], except that the L4 header is
    /// checked only by the accessors.
    #[inline(always)]
    pub fn parse(bytes: &'a [u8], link: Link) -> Option<Ip<'a>> {
        // VLAN tags and IPv6 extension headers are walked out of line, so
        // that untagged IPv4 does not pay for them.
        let (ip, version) = match link {
            Link::Ethernet => {
                let (ethertype, rest) = ethertype_ne(bytes)?;
                match ethertype {
                    ETH_P_IPV4_NE => (rest, IpVersion::V4),
                    ETH_P_IPV6_NE => (rest, IpVersion::V6),
                    ETH_P_8021Q_NE | ETH_P_8021AD_NE => {
                        let (off, version) = skip_vlan_tags(bytes)?;
                        (bytes.get(off..)?, version)
                    }
                    _ => return None,
                }
            }
            Link::RawIp => match bytes.first()? >> 4 {
                4 => (bytes, IpVersion::V4),
                6 => (bytes, IpVersion::V6),
                _ => return None,
            },
        };
        let (l4_off, protocol, fragment) = match version {
            IpVersion::V4 => {
                let (fixed, _) = ip.split_first_chunk::<IPV4_HLEN>()?;
                let ihl = usize::from(fixed[0] & 0x0f);
                if ihl < 5 {
                    return None;
                }
                (ihl * 4, fixed[9], (fixed[6] & 0x1f) | fixed[7] != 0)
            }
            IpVersion::V6 => {
                let end = ipv6_ext_headers(ip)?;
                (usize::from(end.l4_off), end.next, end.fragment)
            }
        };
        Some(Ip { ip, l4: ip.get(l4_off..)?, version, protocol, fragment })
    }
    #[inline]
    pub fn version(&self) -> IpVersion {
        self.version
    }

    /// IPv4 protocol or the last IPv6 next header.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// A non-first fragment: no L4 header.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.fragment
    }

    /// Source address (IPv4 as `::ffff:a.b.c.d`).
    #[inline(always)]
    pub fn src(&self) -> Addr {
        self.addr(IPV4_SRC, IPV6_SRC)
    }

    /// Destination address (IPv4 as `::ffff:a.b.c.d`).
    #[inline(always)]
    pub fn dst(&self) -> Addr {
        self.addr(IPV4_SRC + 4, IPV6_SRC + 16)
    }

    /// The source is in `list` (no 16-byte address built for IPv4).
    #[inline]
    pub fn src_in(&self, list: &CidrList) -> bool {
        self.in_list(list, IPV4_SRC, IPV6_SRC)
    }

    /// The destination is in `list`.
    #[inline]
    pub fn dst_in(&self, list: &CidrList) -> bool {
        self.in_list(list, IPV4_SRC + 4, IPV6_SRC + 16)
    }

    #[inline(always)]
    fn addr(&self, v4_off: usize, v6_off: usize) -> Addr {
        addr_at(self.ip, self.version, v4_off, v6_off)
    }

    #[inline]
    fn in_list(&self, list: &CidrList, v4_off: usize, v6_off: usize) -> bool {
        !list.is_empty()
            && match self.version {
                IpVersion::V4 => v4_in(list, array(self.ip, v4_off).unwrap_or_default()),
                IpVersion::V6 => v6_in(list, self.ip, v6_off),
            }
    }

    /// The TCP header (at least 20 bytes), if this is TCP and not a fragment.
    #[inline]
    pub fn tcp(&self) -> Option<Tcp<'a>> {
        if self.protocol != IPPROTO_TCP || self.fragment {
            return None;
        }
        let h = self.l4.first_chunk::<TCP_HLEN>()?;
        Some(Tcp {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            flags: h[13],
            bytes: self.l4,
        })
    }

    /// The UDP header, if this is UDP and not a fragment.
    #[inline]
    pub fn udp(&self) -> Option<Udp<'a>> {
        if self.protocol != IPPROTO_UDP || self.fragment {
            return None;
        }
        let (h, payload) = self.l4.split_first_chunk::<UDP_HLEN>()?;
        Some(Udp { src_port: u16::from_be_bytes([h[0], h[1]]), dst_port: u16::from_be_bytes([h[2], h[3]]), payload })
    }

    /// The ICMP header in IPv4 or the ICMPv6 header in IPv6 (see
    /// [`Ip::version`]), if not a fragment.
    #[inline]
    pub fn icmp(&self) -> Option<Icmp<'a>> {
        let icmp = match self.version {
            IpVersion::V4 => IPPROTO_ICMP,
            IpVersion::V6 => IPPROTO_ICMPV6,
        };
        if self.protocol != icmp || self.fragment {
            return None;
        }
        let h = self.l4.first_chunk::<ICMP_HLEN>()?;
        Some(Icmp { ty: h[0], code: h[1], bytes: self.l4 })
    }

    /// What follows the IP header(s); `None` if that L4 header does not fit.
    pub fn l4(&self) -> Option<L4<'a>> {
        if self.fragment {
            return Some(L4::Fragment);
        }
        Some(match (self.protocol, self.version) {
            (IPPROTO_TCP, _) => L4::Tcp(self.tcp()?),
            (IPPROTO_UDP, _) => L4::Udp(self.udp()?),
            (IPPROTO_ICMP, IpVersion::V4) => L4::Icmp(self.icmp()?),
            (IPPROTO_ICMPV6, IpVersion::V6) => L4::Icmpv6(self.icmp()?),
            (protocol, _) => L4::Other(protocol),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
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

    /// The parser this SDK had before issue 10's lean rewrite, unchanged:
    /// the reference the lean one must agree with on every input.
    mod reference {
        use super::super::*;

        impl<'a> Packet<'a> {
            /// The parser before the lean SDK (issue 10), kept as the reference.
            pub fn parse_reference(bytes: &'a [u8], link: Link) -> Option<Packet<'a>> {
                Self::parse_ref(bytes, link)
            }

            fn parse_ref(bytes: &'a [u8], link: Link) -> Option<Packet<'a>> {
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
                    IpVersion::V4 => Self::ref_v4(ip),
                    IpVersion::V6 => Self::ref_v6(ip),
                }
            }

            fn ref_v4(ip: &'a [u8]) -> Option<Packet<'a>> {
                let ihl = usize::from(ip.first()? & 0x0f);
                if ihl < 5 {
                    return None;
                }
                let header = ip.get(..ihl * 4)?;
                let frag_offset = be16(header, 6)? & 0x1fff;
                let protocol = *header.get(9)?;
                let src = Addr::from_v4(array(header, 12)?);
                let dst = Addr::from_v4(array(header, 16)?);
                let l4 =
                    if frag_offset != 0 { L4::Fragment } else { ref_l4(IpVersion::V4, protocol, ip.get(ihl * 4..)?)? };
                Some(Packet { version: IpVersion::V4, src, dst, protocol, l4 })
            }

            fn ref_v6(ip: &'a [u8]) -> Option<Packet<'a>> {
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
                                return Some(Packet {
                                    version: IpVersion::V6,
                                    src,
                                    dst,
                                    protocol: next,
                                    l4: L4::Fragment,
                                });
                            }
                            next = ext[0];
                            off += 8;
                        }
                        _ => break,
                    }
                }
                let l4 = match next {
                    IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT => L4::Other(next),
                    _ => ref_l4(IpVersion::V6, next, ip.get(off..)?)?,
                };
                Some(Packet { version: IpVersion::V6, src, dst, protocol: next, l4 })
            }
        }

        fn ref_l4(version: IpVersion, protocol: u8, b: &[u8]) -> Option<L4<'_>> {
            Some(match (protocol, version) {
                (IPPROTO_TCP, _) => {
                    b.get(..TCP_HLEN)?;
                    L4::Tcp(Tcp { src_port: be16(b, 0)?, dst_port: be16(b, 2)?, flags: *b.get(13)?, bytes: b })
                }
                (IPPROTO_UDP, _) => {
                    L4::Udp(Udp { src_port: be16(b, 0)?, dst_port: be16(b, 2)?, payload: b.get(UDP_HLEN..)? })
                }
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
    }

    /// Seeds for the comparison below: every shape the parser knows.
    fn seed_packets() -> Vec<(Vec<u8>, Link)> {
        let echo6 = [128u8, 0, 0, 0, 0, 1, 0, 1];
        let mut ips = std::vec![
            ipv4(1, 0, &ECHO),
            ipv4(6, 0, &tcp(80, Tcp::SYN)),
            ipv4(17, 0, &[0, 1, 0, 53, 0, 8, 0, 0, 1, 2]),
            ipv4(6, 0x2001, &tcp(80, 2)),
            ipv4(47, 0, &[1, 2, 3, 4]),
            ipv6(58, &echo6),
            ipv6(6, &tcp(443, Tcp::ACK)),
            ipv6(
                0,
                &[60, 0, 0, 0, 0, 0, 0, 0, 17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 53, 0, 8, 0, 0]
            ),
            ipv6(44, &[17, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 53, 0, 8, 0, 0]),
            ipv6(44, &[6, 0, 0, 9, 0, 0, 0, 7, 0, 1, 0, 53, 0, 8, 0, 0]),
            ipv6(1, &ECHO),
        ];
        let mut v4_options = ipv4(17, 0, &[1, 2, 3, 4, 0, 1, 0, 53, 0, 8, 0, 0]);
        v4_options[0] = 0x46;
        ips.push(v4_options);
        let mut out = Vec::new();
        for ip in ips {
            let ethertype = if ip[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
            for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100], &[0x8100, 0x8100, 0x8100]] {
                out.push((eth(tags, ethertype, &ip), Link::Ethernet));
            }
            out.push((ip, Link::RawIp));
        }
        out
    }

    /// The lean parser (`Packet::parse` on top of `Ip`) gives exactly what
    /// the reference gives, on the seeds, every prefix of them and many
    /// mutations; the `Ip` accessors agree with it too.
    #[test]
    fn lean_parser_agrees_with_the_reference() {
        let lists = [
            CidrList::default(),
            config::Config::new("l=10.0.0.0/24").cidrs("l").unwrap(),
            config::Config::new("l=2001:db8::/32,10.0.0.2").cidrs("l").unwrap(),
            config::Config::new("l=::/0").cidrs("l").unwrap(),
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut checked = 0;
        for (seed, link) in seed_packets() {
            let mut variants: Vec<Vec<u8>> = (0..=seed.len()).map(|n| seed[..n].to_vec()).collect();
            for _ in 0..3000 {
                let mut q = seed.clone();
                for _ in 0..1 + next() % 3 {
                    let i = next() as usize % q.len();
                    q[i] = match next() % 4 {
                        0 => 0,
                        1 => [0x45, 0x46, 0x60, 0x08, 0x86, 0xdd, 0x81, 0x88, 0xa8][next() as usize % 9],
                        2 => [0, 1, 6, 17, 43, 44, 58, 60][next() as usize % 8],
                        _ => next() as u8,
                    };
                }
                variants.push(q);
            }
            for q in &variants {
                for link in [link, Link::Ethernet, Link::RawIp] {
                    let want = Packet::parse_reference(q, link);
                    let got = Packet::parse(q, link);
                    assert_eq!(got, want, "{link:?} {q:02x?}");
                    let ip = Ip::parse(q, link);
                    // `Ip::parse` fails only where the reference does; the
                    // reference fails beyond that only on an L4 header that
                    // does not fit, which is where `Ip::l4` is `None`.
                    assert_eq!(ip.is_some_and(|ip| ip.l4().is_some()), want.is_some(), "{q:02x?}");
                    let (Some(ip), Some(want)) = (ip, want) else { continue };
                    assert_eq!(ip.tcp().map(L4::Tcp), matches!(want.l4, L4::Tcp(_)).then_some(want.l4));
                    assert_eq!(ip.udp().map(L4::Udp), matches!(want.l4, L4::Udp(_)).then_some(want.l4));
                    let icmp = matches!(want.l4, L4::Icmp(_) | L4::Icmpv6(_));
                    assert_eq!(ip.icmp().is_some(), icmp);
                    assert_eq!(
                        (ip.version(), ip.protocol(), ip.is_fragment()),
                        (want.version, want.protocol, want.l4 == L4::Fragment)
                    );
                    for list in &lists {
                        assert_eq!(ip.src_in(list), list.contains(&want.src));
                        assert_eq!(ip.dst_in(list), list.contains(&want.dst));
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "only {checked} packets parsed");
    }
}
