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
//!
//! `block` fills the map `dns_names` (and `dns_names_lens`) at init: keys
//! are the eBPF twin's {hash, length} of each name, so `wasmfw map set|del`
//! changes the list live (docs/filter-abi.md, "List maps"). A query's name
//! is hashed from its end, and only suffixes of a length in the list are
//! looked up.
#![no_std]

use wasmfw_filter_sdk::lists::{has_len, NAME_HASH_BASE};
use wasmfw_filter_sdk::{filter, ArrayVec, Config, Counter, Error, Filter, Ip, Link, NameKey, NameSet, Verdict};

const DNS_PORT: u16 = 53;
const DNS_HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;

struct DnsBlock {
    /// Blocked suffixes, as [`NameKey`]s (compared case-insensitively).
    block: NameSet,
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
            block: NameSet::declare(
                "dns_names",
                "dns_names_lens",
                config.list_of::<_, 64>("block", "not a domain name", domain)?.as_slice(),
            )?,
            max_pointer_hops: config.u32("max_pointer_hops", 8)?,
            blocked: Counter::declare("blocked")?,
            malformed: Counter::declare("malformed")?,
        })
    }

    #[inline(always)] // copied into the SDK's specialised entry points
    fn filter(&self, packet: &[u8], link: Link) -> Verdict {
        let Some(udp) = Ip::parse(packet, link).and_then(|ip| ip.udp()) else {
            return Verdict::Pass;
        };
        let dns = udp.payload;
        let Some(header) = dns.first_chunk::<DNS_HEADER_LEN>() else {
            return Verdict::Pass;
        };
        let is_query = header[2] & 0x80 == 0 && (header[4] | header[5]) != 0;
        if udp.dst_port != DNS_PORT || !is_query {
            return Verdict::Pass;
        }
        self.check_name(dns)
    }
}

impl DnsBlock {
    /// Reads the first question's name and matches it against the list.
    /// Out of line: only DNS queries pay for it.
    #[inline(never)]
    fn check_name(&self, dns: &[u8]) -> Verdict {
        let mut name = Name { dns, labels: ArrayVec::new(), text_len: 0 };
        if read_name(&mut name, DNS_HEADER_LEN, self.max_pointer_hops).is_none() {
            self.malformed.inc();
            return Verdict::Pass;
        }
        if self.blocked(&name) {
            self.blocked.inc();
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

/// Most labels a name of [`MAX_NAME_LEN`] bytes of text can have: each
/// takes at least one byte and a dot.
const MAX_LABELS: usize = MAX_NAME_LEN.div_ceil(2);

/// A name read from a DNS message, kept as where its labels are rather than
/// copied out as text: reading it costs per label, and only the bytes a
/// suffix needs are ever compared.
struct Name<'a> {
    /// The DNS message, from its header.
    dns: &'a [u8],
    /// Offsets in `dns` of each label's length byte, in name order; each
    /// label fits in `dns` (checked by `read_name`).
    labels: ArrayVec<u32, MAX_LABELS>,
    /// Length of the text form `a.b.c` (no trailing dot).
    text_len: usize,
}

impl Name<'_> {
    /// The label whose length byte is at `offset` in `dns`.
    fn label(&self, offset: u32) -> &[u8] {
        let start = offset as usize + 1;
        let len = self.dns.get(start - 1).map_or(0, |&b| usize::from(b));
        self.dns.get(start..start + len).unwrap_or(&[])
    }
}

impl DnsBlock {
    /// The name equals a blocked suffix or ends with `.` + one. The text is
    /// hashed from its end, a byte at a time, as its suffixes grow; each
    /// suffix that starts the text or follows a `.` and has a length in the
    /// list is looked up. Stops at the longest length in the list.
    #[inline(never)]
    fn blocked(&self, name: &Name) -> bool {
        let lens = self.block.lens();
        let Some(max_len) = longest(&lens) else {
            return false;
        };
        let mut suffix = Suffix { key: NameKey { hash: 0, len: 0 }, power: 1 };
        for (i, &offset) in name.labels.iter().rev().enumerate() {
            if i > 0 {
                // The dot between this label and the next one.
                if self.listed(&lens, suffix.key.hash, suffix.key.len) {
                    return true;
                }
                if !suffix.push(b'.', max_len) {
                    return false;
                }
            }
            for &b in name.label(offset).iter().rev() {
                if b == b'.' && self.listed(&lens, suffix.key.hash, suffix.key.len) {
                    return true;
                }
                if !suffix.push(b, max_len) {
                    return false;
                }
            }
        }
        self.listed(&lens, suffix.key.hash, suffix.key.len)
    }

    /// `suffix` has a listed length and is in the list.
    /// The hash and length come as scalars: the walk's state then stays in
    /// Wasm locals instead of memory.
    #[inline(never)]
    fn listed(&self, lens: &[u64; 4], hash: u64, len: u64) -> bool {
        has_len(lens, len as usize) && self.block.contains_key(&NameKey { hash, len })
    }
}

/// The longest length set in a lengths mask.
fn longest(lens: &[u64; 4]) -> Option<u64> {
    (0..4).rev().find(|&w| lens[w] != 0).map(|w| 64 * w as u64 + 63 - u64::from(lens[w].leading_zeros()))
}

/// The key of a suffix of the text built from its end: the hash of
/// `b_0 .. b_n-1` is `sum b_i * P^(n-1-i)`, so a byte put in front adds
/// `b * P^n`.
struct Suffix {
    key: NameKey,
    /// `P^len`.
    power: u64,
}

impl Suffix {
    /// Puts `b` in front; false (nothing done) if the suffix would exceed
    /// `max_len` bytes.
    #[inline(always)]
    fn push(&mut self, b: u8, max_len: u64) -> bool {
        if self.key.len >= max_len {
            return false;
        }
        let lower = if b.is_ascii_uppercase() { b | 0x20 } else { b };
        self.key.hash = self.key.hash.wrapping_add(u64::from(lower).wrapping_mul(self.power));
        self.power = self.power.wrapping_mul(NAME_HASH_BASE);
        self.key.len += 1;
        true
    }
}

/// Reads the name at `pos` of `name.dns` into `name`; `None` if it is
/// malformed: a label runs past the message, a length byte is `0b01xxxxxx`
/// or `0b10xxxxxx`, more than `max_hops` pointers are followed, or the text
/// exceeds 255 bytes.
///
/// Every failure means the same (malformed), so each is caught where it is
/// cheapest: a label that runs past the message by the read of the byte
/// after it, a text too long at the end (it only grows) or by the label
/// list filling up first.
fn read_name(name: &mut Name, mut pos: usize, max_hops: u32) -> Option<()> {
    let dns = name.dns;
    // The text length plus one: each label with one byte for a dot.
    let mut len_with_dots = 0;
    let mut hops = 0;
    loop {
        let run_end = read_labels(dns, pos, &mut name.labels)?;
        // The labels of the run and their length bytes (standing for dots).
        len_with_dots += run_end - pos;
        pos = run_end;
        let byte = *dns.get(pos)?;
        match byte >> 6 {
            0b00 => break, // the zero byte: the end of the name
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
    name.text_len = len_with_dots.saturating_sub(1);
    (name.text_len <= MAX_NAME_LEN).then_some(())
}

/// Records the run of labels at `pos` up to the first byte that is not a
/// label length (the end of the name, a pointer, a reserved form) and
/// returns where that byte is. Its own function: wasmi charges a loop's
/// whole body on every iteration, and the compiler would otherwise lay
/// code that runs after the loop inside it.
#[inline(never)]
fn read_labels(dns: &[u8], mut pos: usize, labels: &mut ArrayVec<u32, MAX_LABELS>) -> Option<usize> {
    loop {
        let len = *dns.get(pos)?;
        if len == 0 || len >= 0x40 {
            return Some(pos);
        }
        labels.push(u32::try_from(pos).ok()?).ok()?;
        pos += 1 + usize::from(len);
    }
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
        assert_eq!(testing::map_len("dns_names"), Some(0));
        assert_eq!(f.max_pointer_hops, 8);
    }

    /// `name` is blocked when `dns_names` holds just `suffix`, set as
    /// `wasmfw map set` would (the key and the lengths mask).
    fn blocked_by(f: &DnsBlock, name: &Name, suffix: &[u8]) -> bool {
        let key = NameKey::of(suffix);
        let mut bytes = key.hash.to_le_bytes().to_vec();
        bytes.extend_from_slice(&key.len.to_le_bytes());
        let mut lens = [0u8; 32];
        if suffix.len() < 256 {
            lens[suffix.len() / 8] |= 1 << (suffix.len() % 8);
        }
        testing::map_set("dns_names", &bytes, &[1]);
        testing::map_set("dns_names_lens", &0u32.to_le_bytes(), &lens);
        let blocked = f.blocked(name);
        testing::map_del("dns_names", &bytes);
        blocked
    }

    /// A name added live is blocked from the next query; deleted, it passes.
    #[test]
    fn live_list_edits() {
        let f = init(POLICY);
        assert_eq!(f.filter(&query("www.Example.org"), Link::RawIp), Verdict::Pass);
        let key = NameKey::of(b"example.org");
        let mut bytes = key.hash.to_le_bytes().to_vec();
        bytes.extend_from_slice(&key.len.to_le_bytes());
        testing::map_set("dns_names", &bytes, &[1]);
        // Not seen until its length is in the mask (`wasmfw map set` sets both).
        assert_eq!(f.filter(&query("www.Example.org"), Link::RawIp), Verdict::Pass);
        let mut lens = [0u8; 32];
        for n in [11, 12, 15] {
            lens[n / 8] |= 1 << (n % 8);
        }
        testing::map_set("dns_names_lens", &0u32.to_le_bytes(), &lens);
        assert_eq!(f.filter(&query("www.Example.org"), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&query("ads.example.com"), Link::RawIp), Verdict::Drop);
        assert!(testing::map_del("dns_names", &bytes));
        assert_eq!(f.filter(&query("www.Example.org"), Link::RawIp), Verdict::Pass);
    }

    /// How this filter read and matched names before issue 10 (the text
    /// copied out, then compared): the reference for the lean version.
    mod reference {
        extern crate std;
        use std::vec::Vec;

        pub fn read_name(dns: &[u8], mut pos: usize, max_hops: u32) -> Option<Vec<u8>> {
            let mut out = Vec::new();
            let mut hops = 0;
            loop {
                let byte = *dns.get(pos)?;
                match byte >> 6 {
                    0b00 if byte == 0 => return Some(out),
                    0b00 => {
                        let label = dns.get(pos + 1..pos + 1 + usize::from(byte))?;
                        if !out.is_empty() {
                            out.push(b'.');
                        }
                        out.extend_from_slice(label);
                        if out.len() > 255 {
                            return None;
                        }
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

        pub fn matches_suffix(name: &[u8], suffix: &[u8]) -> bool {
            let Some(start) = name.len().checked_sub(suffix.len()) else {
                return false;
            };
            let tail_matches = name.get(start..).is_some_and(|tail| tail.eq_ignore_ascii_case(suffix));
            tail_matches && (start == 0 || name.get(start - 1) == Some(&b'.'))
        }
    }

    /// The lean name reader and matcher agree with the reference on random
    /// messages: labels with dots and mixed case in them, pointers (also
    /// looping), names near 255 bytes, truncations, random bytes; and on
    /// suffixes cut from the name's own text at every position.
    #[test]
    fn lean_matching_agrees_with_the_reference() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let f = init("");
        let alphabet = b"abcXYZ.-09";
        let (mut names, mut matched) = (0, 0);
        for _ in 0..20_000 {
            let mut dns = std::vec![0u8; DNS_HEADER_LEN];
            for _ in 0..next(4) {
                // Some labels to point at, before the question or after it.
                dns.extend_from_slice(&[1 + next(3) as u8, b'x', b'.', b'Y', 0]);
            }
            let question = dns.len();
            for _ in 0..next(40) {
                match next(10) {
                    0 => dns.extend_from_slice(&[0xc0, next(dns.len() as u64 + 4) as u8]),
                    1 => dns.push(0x40 | next(64) as u8),
                    _ => {
                        let len = [1, 2, 7, 63][next(4) as usize];
                        dns.push(len as u8);
                        dns.extend((0..len).map(|_| alphabet[next(alphabet.len() as u64) as usize]));
                    }
                }
            }
            dns.push(0);
            if next(4) == 0 {
                let n = next(dns.len() as u64) as usize;
                dns.truncate(n.max(question));
            }
            let hops = next(10) as u32;
            let want = reference::read_name(&dns, question, hops);
            let mut name = Name { dns: &dns, labels: ArrayVec::new(), text_len: 0 };
            let got = read_name(&mut name, question, hops);
            assert_eq!(got.is_some(), want.is_some(), "{dns:02x?}");
            let Some(text) = want else { continue };
            names += 1;
            assert_eq!(name.text_len, text.len());
            let mut suffixes: Vec<Vec<u8>> = (0..text.len()).map(|i| text[i..].to_vec()).collect();
            suffixes.extend(suffixes.clone().into_iter().map(|s| s.to_ascii_uppercase()));
            suffixes.extend([
                b"x".to_vec(),
                b"x.y".to_vec(),
                b"zz.abc".to_vec(),
                [b"q.".as_slice(), &text[..]].concat(),
            ]);
            for suffix in suffixes {
                let want = reference::matches_suffix(&text, &suffix);
                assert_eq!(
                    blocked_by(&f, &name, &suffix),
                    want,
                    "{:?} vs {:?}",
                    text.escape_ascii(),
                    suffix.escape_ascii()
                );
                matched += usize::from(want);
            }
        }
        assert!(names > 2_000 && matched > 10_000, "{names} names, {matched} matches");
    }
}
