//! `icmp_drop`, the ICMP interceptor (docs/filters.md): drops ICMPv4 echo
//! requests (type 8) and ICMPv6 echo requests (type 128), optionally only
//! from/to some addresses.
//!
//! Params: `from`, `to` (lists of CIDR; empty = any). Counter: `echo_dropped`.
#![no_std]

use wasmfw_filter_sdk::{filter, CidrList, Config, Counter, Error, Filter, Icmp, Ip, IpVersion, Link, Verdict};

struct IcmpDrop {
    from: CidrList,
    to: CidrList,
    /// Both lists are empty: every echo request is dropped (checked once
    /// per packet instead of twice).
    any: bool,
    echo_dropped: Counter,
}

impl Filter for IcmpDrop {
    fn init(config: &Config) -> Result<Self, Error> {
        config.reject_unknown_keys(&["from", "to"])?;
        let (from, to) = (config.cidrs("from")?, config.cidrs("to")?);
        Ok(IcmpDrop {
            from,
            to,
            any: from.is_empty() && to.is_empty(),
            echo_dropped: Counter::declare("echo_dropped")?,
        })
    }

    #[inline(always)] // copied into the SDK's specialised entry points
    fn filter(&self, packet: &[u8], link: Link) -> Verdict {
        let Some(ip) = Ip::parse(packet, link) else {
            return Verdict::Pass;
        };
        let Some(icmp) = ip.icmp() else {
            return Verdict::Pass;
        };
        let echo_request = match ip.version() {
            IpVersion::V4 => Icmp::ECHO_REQUEST,
            IpVersion::V6 => Icmp::V6_ECHO_REQUEST,
        };
        if icmp.ty != echo_request {
            return Verdict::Pass;
        }
        if self.any || self.addresses_match(packet, link) {
            self.echo_dropped.inc();
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

impl IcmpDrop {
    /// `from` and `to` match the packet (an empty list means any address).
    /// Out of line, so that with both lists empty no packet pays for it, and
    /// parsing again: cheaper than handing the parsed headers over in memory.
    #[inline(never)]
    fn addresses_match(&self, packet: &[u8], link: Link) -> bool {
        let Some(ip) = Ip::parse(packet, link) else {
            return false;
        };
        (self.from.is_empty() || ip.src_in(&self.from)) && (self.to.is_empty() || ip.dst_in(&self.to))
    }
}

filter!(IcmpDrop);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;
    use wasmfw_filter_sdk::testing;

    fn ping4(src: [u8; 4], ty: u8) -> Vec<u8> {
        let mut p = std::vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 0, 0, 2]);
        p.extend_from_slice(&[ty, 0, 0, 0, 0, 1, 0, 1]);
        p
    }

    fn ping6(ty: u8) -> Vec<u8> {
        let mut p = std::vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[ty, 0, 0, 0, 0, 1, 0, 1]);
        p
    }

    #[test]
    fn drops_echo_requests_only() {
        testing::reset();
        let f = IcmpDrop::init(&Config::new("from=\nto=\n")).unwrap();
        assert_eq!(f.filter(&ping4([10, 0, 0, 1], 8), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&ping4([10, 0, 0, 1], 0), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&ping6(128), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&ping6(129), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&ping4([10, 0, 0, 1], 8)[..27], Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("echo_dropped"), 2);
    }

    #[test]
    fn from_and_to_lists() {
        testing::reset();
        let f = IcmpDrop::init(&Config::new("from=10.0.0.0/24,fd00::/8\nto=10.0.0.2,fd00::2\n")).unwrap();
        assert_eq!(f.filter(&ping4([10, 0, 0, 1], 8), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&ping4([10, 0, 1, 1], 8), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&ping6(128), Link::RawIp), Verdict::Drop);
        testing::reset();
        let f = IcmpDrop::init(&Config::new("to=10.0.0.3")).unwrap();
        assert_eq!(f.filter(&ping4([10, 0, 0, 1], 8), Link::RawIp), Verdict::Pass);
    }

    #[test]
    fn rejects_bad_params() {
        testing::reset();
        assert!(IcmpDrop::init(&Config::new("form=10.0.0.1")).is_err());
        assert!(IcmpDrop::init(&Config::new("from=10.0.0.256")).is_err());
    }
}
