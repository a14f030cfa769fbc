//! `dns_block`, a DNS blocklist (docs/filters.md): drops UDP queries to
//! port 53 whose first question's name equals a blocked suffix or ends
//! with `.` + a blocked suffix (ASCII case-insensitive).
//!
//! The name is read label by label, following compression pointers: a loop
//! bounded only by the packet, which the eBPF verifier refuses and Wasm
//! runs under a fuel budget.
//!
//! Params: `block` (list of domain names), `max_pointer_hops` (8).
//! Counters: `blocked`, `malformed`.
#![no_std]

use wasmfw_filter_sdk::{filter, ArrayVec, Config, Counter, Error, Filter, Link, Packet, Verdict, L4};

const DNS_PORT: u16 = 53;
const DNS_HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;

struct DnsBlock {
    /// Suffixes, as written in the policy (compared case-insensitively).
    block: ArrayVec<&'static str, 64>,
    max_pointer_hops: u32,
    blocked: Counter,
    malformed: Counter,
}

/// A blocked name: dot-separated labels of 1..=63 bytes, at most 255 bytes.
fn domain(s: &'static str) -> Option<&'static str> {
    let ok = !s.is_empty() && s.len() <= MAX_NAME_LEN && s.split('.').all(|label| (1..=63).contains(&label.len()));
    ok.then_some(s)
}

impl Filter for DnsBlock {
    fn init(config: &Config) -> Result<Self, Error> {
        config.reject_unknown_keys(&["block", "max_pointer_hops"])?;
        Ok(DnsBlock {
            block: config.list_of("block", "not a domain name", domain)?,
            max_pointer_hops: config.u32("max_pointer_hops", 8)?,
            blocked: Counter::declare("blocked")?,
            malformed: Counter::declare("malformed")?,
        })
    }

    fn filter(&self, packet: &[u8], link: Link) -> Verdict {
        let Some(Packet { l4: L4::Udp(udp), .. }) = Packet::parse(packet, link) else {
            return Verdict::Pass;
        };
        let dns = udp.payload;
        let is_query = match (dns.get(2), dns.get(4..6)) {
            (Some(flags), Some(qdcount)) => flags & 0x80 == 0 && qdcount != [0, 0],
            _ => false,
        };
        if udp.dst_port != DNS_PORT || dns.len() < DNS_HEADER_LEN || !is_query {
            return Verdict::Pass;
        }
        let mut name = [0u8; MAX_NAME_LEN];
        let Some(len) = read_name(dns, DNS_HEADER_LEN, self.max_pointer_hops, &mut name) else {
            self.malformed.inc();
            return Verdict::Pass;
        };
        let name = name.get(..len).unwrap_or(&[]);
        if self.block.iter().any(|suffix| matches_suffix(name, suffix.as_bytes())) {
            self.blocked.inc();
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

/// Reads the name at `pos` of the DNS message `dns` into `out` as text
/// (`a.b.c`, no trailing dot) and returns its length, or `None` if it is
/// malformed: a label runs past the message, a length byte is `0b01xxxxxx`
/// or `0b10xxxxxx`, more than `max_hops` pointers are followed, or the text
/// exceeds 255 bytes.
fn read_name(dns: &[u8], mut pos: usize, max_hops: u32, out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let mut len = 0;
    let mut hops = 0;
    loop {
        let byte = *dns.get(pos)?;
        match byte >> 6 {
            0b00 if byte == 0 => return Some(len),
            0b00 => {
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
            0b11 => {
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

/// `name` equals `suffix` or ends with `.` + `suffix`, ignoring ASCII case.
fn matches_suffix(name: &[u8], suffix: &[u8]) -> bool {
    let Some(start) = name.len().checked_sub(suffix.len()) else {
        return false;
    };
    let tail_matches = name.get(start..).is_some_and(|tail| tail.eq_ignore_ascii_case(suffix));
    tail_matches && (start == 0 || name.get(start - 1) == Some(&b'.'))
}

filter!(DnsBlock);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;
    use wasmfw_filter_sdk::testing;

    const POLICY: &str = "block=ads.example.com,tracker.test\nmax_pointer_hops=8\n";

    fn wire(name: &str) -> Vec<u8> {
        let mut w = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            w.push(label.len() as u8);
            w.extend_from_slice(label.as_bytes());
        }
        w.push(0);
        w
    }

    /// A UDP/IPv4 packet to `port` with a DNS header and `question` after it.
    fn dns(port: u16, flags: u8, qdcount: u16, question: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(&[0x30, 0x39]);
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&[0x12, 0x34, flags, 0]);
        p.extend_from_slice(&qdcount.to_be_bytes());
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(question);
        p
    }

    fn query(name: &str) -> Vec<u8> {
        let mut q = wire(name);
        q.extend_from_slice(&[0, 1, 0, 1]);
        dns(53, 0x01, 1, &q)
    }

    fn init(text: &'static str) -> DnsBlock {
        testing::reset();
        DnsBlock::init(&Config::new(text)).unwrap()
    }

    #[test]
    fn suffix_matching() {
        let f = init(POLICY);
        for name in ["ads.example.com", "x.ads.example.com", "A.B.ADS.Example.COM", "tracker.test"] {
            assert_eq!(f.filter(&query(name), Link::RawIp), Verdict::Drop, "{name}");
        }
        for name in ["example.com", "badads.example.com", "ads.example.com.evil", "tracker.testing", "", "test"] {
            assert_eq!(f.filter(&query(name), Link::RawIp), Verdict::Pass, "{name}");
        }
        assert_eq!(testing::counter("blocked"), 4);
        assert_eq!(testing::counter("malformed"), 0);
    }

    #[test]
    fn only_queries_to_port_53() {
        let f = init(POLICY);
        let q = {
            let mut q = wire("ads.example.com");
            q.extend_from_slice(&[0, 1, 0, 1]);
            q
        };
        assert_eq!(f.filter(&dns(53, 0x01, 1, &q), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&dns(5353, 0x01, 1, &q), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&dns(53, 0x81, 1, &q), Link::RawIp), Verdict::Pass); // response
        assert_eq!(f.filter(&dns(53, 0x01, 0, &q), Link::RawIp), Verdict::Pass); // no question
                                                                                 // Shorter than a DNS header.
        let short = dns(53, 0, 1, &[]);
        assert_eq!(f.filter(&short[..short.len() - 1], Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("malformed"), 0);
    }

    #[test]
    fn compression_pointers() {
        let f = init(POLICY);
        // "x" then a pointer to "ads.example.com" placed after the question.
        // Question at 12: 01 'x' c0 <ptr>; target at 16.
        let mut q = std::vec![1, b'x', 0xc0, 16];
        q.extend_from_slice(&wire("ads.example.com"));
        assert_eq!(f.filter(&dns(53, 0, 1, &q), Link::RawIp), Verdict::Drop);
        // A pointer loop is malformed, whatever the hop limit.
        let looped = dns(53, 0, 1, &[0xc0, 12]);
        assert_eq!(f.filter(&looped, Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("malformed"), 1);
        // Exactly max_pointer_hops pointers are fine, one more is not.
        let chain = |n: usize| {
            let mut q = Vec::new();
            for i in 0..n {
                q.extend_from_slice(&[0xc0, (12 + 2 * (i + 1)) as u8]);
            }
            q.extend_from_slice(&wire("tracker.test"));
            dns(53, 0, 1, &q)
        };
        assert_eq!(f.filter(&chain(8), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&chain(9), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("malformed"), 2);
        let f0 = init("max_pointer_hops=0\nblock=tracker.test");
        assert_eq!(f0.filter(&chain(1), Link::RawIp), Verdict::Pass);
        assert_eq!(f0.filter(&chain(0), Link::RawIp), Verdict::Drop);
    }

    #[test]
    fn malformed_names() {
        let f = init(POLICY);
        let cases: [&[u8]; 6] = [
            &[3, b'a', b'd'],       // label runs past the payload
            &[3, b'a', b'd', b's'], // no terminating zero
            &[0x40, 0],             // 0b01 length byte
            &[0x80, 0],             // 0b10 length byte
            &[0xc0],                // pointer cut short
            &[0xc0, 0xff],          // pointer past the payload
        ];
        for (i, q) in cases.iter().enumerate() {
            assert_eq!(f.filter(&dns(53, 0, 1, q), Link::RawIp), Verdict::Pass, "case {i}");
            assert_eq!(testing::counter("malformed"), i as i64 + 1, "case {i}");
        }
        // 255 bytes of text (a.b.c, no trailing dot) are fine, 256 are not.
        let name = |lens: &[usize]| lens.iter().map(|&n| "a".repeat(n)).collect::<Vec<_>>().join(".");
        let ok = name(&[63, 63, 63, 63]);
        assert_eq!(ok.len(), 255);
        assert_eq!(f.filter(&query(&ok), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("malformed"), 6);
        let long = name(&[63, 63, 63, 62, 1]);
        assert_eq!(long.len(), 256);
        assert_eq!(f.filter(&query(&long), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("malformed"), 7);
        // A blocked suffix still matches at 255 bytes.
        let f = init(std::boxed::Box::leak(std::format!("block={}", name(&[63, 63])).into_boxed_str()));
        assert_eq!(f.filter(&query(&ok), Link::RawIp), Verdict::Drop);
    }

    #[test]
    fn rejects_bad_params() {
        for bad in
            ["blocks=a.com", "block=a..com", "block=.a.com", "block=a.com.", "block=a.com,", "max_pointer_hops=x"]
        {
            testing::reset();
            assert!(DnsBlock::init(&Config::new(bad)).is_err(), "{bad}");
        }
        let f = init("");
        assert!(f.block.is_empty());
        assert_eq!(f.max_pointer_hops, 8);
    }
}
