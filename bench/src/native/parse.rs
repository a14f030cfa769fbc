//! Parsing of the benchmark packets (docs/filters.md, "Parsing rules
//! shared by all filters").

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    #[allow(dead_code)] // the benchmark frames are Ethernet; kept for the netfilter link
    RawIp,
}

#[derive(Clone, Copy)]
pub(super) enum L4<'a> {
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
pub(super) type Addr = [u8; 16];

pub(super) struct Pkt<'a> {
    pub(super) src: Addr,
    pub(super) dst: Addr,
    pub(super) l4: L4<'a>,
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
pub(super) fn parse(bytes: &[u8], link: Link) -> Option<Pkt<'_>> {
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
