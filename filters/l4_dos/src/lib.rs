//! `l4_dos`, L4 DoS rules (docs/filters.md). For IPv4/IPv6 TCP and UDP, in
//! this order:
//!
//! 1. source in `allow` -> pass (counter `allowed`);
//! 2. destination port in `blocked_ports` -> drop (`blocked_port`);
//! 3. TCP SYN without ACK -> a token from the source's SYN bucket, or drop
//!    (`syn_limited`);
//! 4. UDP -> a token from the source's UDP bucket, or drop (`udp_limited`);
//! 5. pass.
//!
//! Params: `syn_rate` (100), `syn_burst` (200), `udp_rate` (10000),
//! `udp_burst` (20000), `blocked_ports`, `allow`. A rate of 0 disables
//! that limit. `blocked_ports` and `allow` fill the maps of those names
//! (and `allow_lens`) at init; `wasmfw map set|del` changes them live
//! (docs/filter-abi.md, "List maps").
#![no_std]

use wasmfw_filter_sdk::{
    filter, now_ns, Addr, CidrSet, Config, Counter, Error, Filter, HashMap, Ip, Link, Pod, PortSet, Verdict,
};

/// Nano-tokens per token.
const TOKEN: u64 = 1_000_000_000;
/// Refill is computed over at most an hour of elapsed time.
const MAX_ELAPSED_NS: u64 = 3600 * 1_000_000_000;
const BUCKETS: u32 = 16384;

/// Token bucket state, per source address (the map key, 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    /// Nano-tokens.
    tokens: u64,
    last_ns: u64,
}

// SAFETY: two u64, no padding, every bit pattern valid.
unsafe impl Pod for Bucket {}

struct Limit {
    rate: u64,
    /// The bucket size in nano-tokens (`burst * TOKEN`, checked in `burst`).
    full: u64,
    buckets: HashMap<Addr, Bucket>,
    limited: Counter,
}

impl Limit {
    fn new(rate: u64, burst: u64, map: &'static str, counter: &'static str) -> Result<Self, Error> {
        let full = burst * TOKEN; // checked in `burst`
        Ok(Limit { rate, full, buckets: HashMap::declare(map, BUCKETS)?, limited: Counter::declare(counter)? })
    }

    /// Takes one token from `src`'s bucket; false (and counted) if none is left.
    fn take(&self, src: &Addr, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let full = self.full;
        let mut b = match self.buckets.get(src) {
            None => Bucket { tokens: full, last_ns: now },
            Some(b) => {
                // Saturating arithmetic gives the exact result: anything that
                // would overflow is above `full` anyway.
                let elapsed = now.saturating_sub(b.last_ns).min(MAX_ELAPSED_NS);
                Bucket { tokens: full.min(b.tokens.saturating_add(refill(elapsed, self.rate))), last_ns: now }
            }
        };
        let ok = b.tokens >= TOKEN;
        if ok {
            b.tokens -= TOKEN;
        }
        if self.buckets.insert(src, &b).is_err() {
            return true; // map full: fail open, like a full eBPF map
        }
        if !ok {
            self.limited.inc();
        }
        ok
    }
}

/// Rates up to this never overflow `elapsed * rate` (elapsed is at most
/// `MAX_ELAPSED_NS`), so they need no 128-bit product.
const MAX_EXACT_RATE: u64 = u64::MAX / MAX_ELAPSED_NS;

/// `elapsed * rate`, saturating, for `elapsed <= MAX_ELAPSED_NS`. The
/// overflow check of `saturating_mul` is a 128-bit multiply, a long
/// library call in Wasm: only rates above `MAX_EXACT_RATE` pay for it.
#[inline(always)]
fn refill(elapsed: u64, rate: u64) -> u64 {
    if rate <= MAX_EXACT_RATE {
        elapsed * rate
    } else {
        refill_huge_rate(elapsed, rate)
    }
}

#[cold]
#[inline(never)]
fn refill_huge_rate(elapsed: u64, rate: u64) -> u64 {
    elapsed.saturating_mul(rate)
}

/// A bucket size, small enough that `burst * TOKEN` fits in a u64.
fn burst(config: &Config, key: &'static str, default: u64) -> Result<u64, Error> {
    let burst = config.u64(key, default)?;
    match burst.checked_mul(TOKEN) {
        Some(_) => Ok(burst),
        None => Err(Error::Param { key, why: "too large (at most 18446744073)", value: config.str(key, "") }),
    }
}

struct L4Dos {
    allow: CidrSet,
    blocked_ports: PortSet,
    syn: Limit,
    udp: Limit,
    allowed: Counter,
    blocked_port: Counter,
}

impl Filter for L4Dos {
    fn init(config: &Config) -> Result<Self, Error> {
        config.reject_unknown_keys(&["syn_rate", "syn_burst", "udp_rate", "udp_burst", "blocked_ports", "allow"])?;
        Ok(L4Dos {
            allow: CidrSet::declare("allow", "allow_lens", config.cidrs("allow")?.0.as_slice())?,
            blocked_ports: PortSet::declare("blocked_ports", config.ports("blocked_ports")?.as_slice())?,
            syn: Limit::new(
                config.u64("syn_rate", 100)?,
                burst(config, "syn_burst", 200)?,
                "syn_buckets",
                "syn_limited",
            )?,
            udp: Limit::new(
                config.u64("udp_rate", 10_000)?,
                burst(config, "udp_burst", 20_000)?,
                "udp_buckets",
                "udp_limited",
            )?,
            allowed: Counter::declare("allowed")?,
            blocked_port: Counter::declare("blocked_port")?,
        })
    }

    #[inline(always)] // copied into the SDK's specialised entry points
    fn filter(&self, packet: &[u8], link: Link) -> Verdict {
        let Some(ip) = Ip::parse(packet, link) else {
            return Verdict::Pass;
        };
        let (dst_port, limit) = if let Some(tcp) = ip.tcp() {
            (tcp.dst_port, (tcp.syn() && !tcp.ack()).then_some(&self.syn))
        } else if let Some(udp) = ip.udp() {
            (udp.dst_port, Some(&self.udp))
        } else {
            return Verdict::Pass;
        };
        if self.allow.contains(&ip.src()) {
            self.allowed.inc();
            return Verdict::Pass;
        }
        if self.blocked_ports.contains(dst_port) {
            self.blocked_port.inc();
            return Verdict::Drop;
        }
        match limit {
            Some(limit) if !limit.take(&ip.src(), now_ns()) => Verdict::Drop,
            _ => Verdict::Pass,
        }
    }
}

filter!(L4Dos);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;
    use wasmfw_filter_sdk::testing;

    const POLICY: &str =
        "syn_rate=10\nsyn_burst=20\nudp_rate=1000\nudp_burst=2000\nblocked_ports=23,2323\nallow=10.99.0.0/16\n";

    fn v4(src: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = std::vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 0, 0, 2]);
        p.extend_from_slice(l4);
        p
    }

    fn tcp(src: [u8; 4], port: u16, flags: u8) -> Vec<u8> {
        let mut t = std::vec![0x30, 0x39];
        t.extend_from_slice(&port.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x50, flags, 0, 0, 0, 0, 0, 0]);
        v4(src, 6, &t)
    }

    fn udp(src: [u8; 4], port: u16) -> Vec<u8> {
        let mut u = std::vec![0x30, 0x39];
        u.extend_from_slice(&port.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        v4(src, 17, &u)
    }

    fn init(text: &'static str) -> L4Dos {
        testing::reset();
        L4Dos::init(&Config::new(text)).unwrap()
    }

    const A: [u8; 4] = [192, 0, 2, 1];

    #[test]
    fn rule_order() {
        let f = init(POLICY);
        // Allowed sources bypass blocked ports and limits.
        assert_eq!(f.filter(&tcp([10, 99, 1, 1], 23, 2), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("allowed"), 1);
        assert_eq!(f.filter(&tcp(A, 23, 0x10), Link::RawIp), Verdict::Drop);
        assert_eq!(f.filter(&udp(A, 2323), Link::RawIp), Verdict::Drop);
        assert_eq!(testing::counter("blocked_port"), 2);
        // Blocked ports do not take tokens.
        assert_eq!(testing::map_len("syn_buckets"), Some(0));
        assert_eq!(testing::map_len("udp_buckets"), Some(0));
        // ICMP is not TCP/UDP: not even counted as allowed.
        let icmp = v4([10, 99, 1, 1], 1, &[8, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(f.filter(&icmp, Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("allowed"), 1);
    }

    /// The lists live in maps: an edit there changes the next verdict.
    #[test]
    fn lists_are_live_maps() {
        let f = init(POLICY);
        assert_eq!(testing::map_len("blocked_ports"), Some(2));
        assert_eq!(f.filter(&tcp(A, 8080, 0x10), Link::RawIp), Verdict::Pass);
        testing::map_set("blocked_ports", &8080u16.to_le_bytes(), &[1]);
        assert_eq!(f.filter(&tcp(A, 8080, 0x10), Link::RawIp), Verdict::Drop);
        testing::map_del("blocked_ports", &23u16.to_le_bytes());
        assert_eq!(f.filter(&tcp(A, 23, 0x10), Link::RawIp), Verdict::Pass);
        // allow: key u32 LE prefix length + masked address; `allow_lens`
        // says which lengths to try (what `wasmfw map set` maintains).
        let mut key = 120u32.to_le_bytes().to_vec();
        key.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 0]);
        testing::map_set("allow", &key, &[1]);
        assert_eq!(f.filter(&tcp(A, 8080, 0x10), Link::RawIp), Verdict::Drop);
        let mut lens = [0u8; 32];
        lens[112 / 8] |= 1 << (112 % 8);
        lens[120 / 8] |= 1 << (120 % 8);
        testing::map_set("allow_lens", &0u32.to_le_bytes(), &lens);
        assert_eq!(f.filter(&tcp(A, 8080, 0x10), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("allowed"), 1);
    }

    #[test]
    fn syn_bucket() {
        let f = init(POLICY);
        testing::set_now(5_000_000_000);
        for _ in 0..20 {
            assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Pass);
        }
        assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Drop);
        // SYN-ACK and plain ACK are not limited.
        assert_eq!(f.filter(&tcp(A, 80, 0x12), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&tcp(A, 80, 0x10), Link::RawIp), Verdict::Pass);
        // Another source has its own bucket.
        assert_eq!(f.filter(&tcp([192, 0, 2, 2], 80, 0x02), Link::RawIp), Verdict::Pass);
        // 10/s: one token every 100 ms; 99.999999 ms is not enough.
        testing::set_now(5_099_999_999);
        assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Drop);
        testing::set_now(5_100_000_000);
        assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Pass);
        assert_eq!(testing::counter("syn_limited"), 2);
        // The clock going backwards refills nothing.
        testing::set_now(1);
        assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Drop);
        // A long pause refills to the burst, not beyond.
        testing::set_now(1 + 1_000 * 1_000_000_000);
        for _ in 0..20 {
            assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Pass);
        }
        assert_eq!(f.filter(&tcp(A, 80, 0x02), Link::RawIp), Verdict::Drop);
    }

    #[test]
    fn bucket_arithmetic_is_exact() {
        let f = init("udp_rate=3\nudp_burst=1\n");
        testing::set_now(0);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        // 333333333 ns * 3 = 999999999 nano-tokens: not a token yet.
        testing::set_now(333_333_333);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Drop);
        // The failed attempt kept the partial refill and moved `last`.
        let b = f.udp.buckets.get(&Addr::from_v4(A)).unwrap();
        assert_eq!(b, Bucket { tokens: 999_999_999, last_ns: 333_333_333 });
        testing::set_now(333_333_334);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        // Capped at the burst (1 token) before taking one.
        assert_eq!(f.udp.buckets.get(&Addr::from_v4(A)).unwrap().tokens, 0);
    }

    #[test]
    fn huge_values_saturate_exactly() {
        let f = init("udp_rate=18446744073709551615\nudp_burst=18446744073\n");
        testing::set_now(u64::MAX);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        testing::set_now(0);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        testing::set_now(u64::MAX);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        assert_eq!(f.udp.buckets.get(&Addr::from_v4(A)).unwrap().tokens, 18_446_744_073 * TOKEN - TOKEN);
    }

    #[test]
    fn zero_rate_disables() {
        let f = init("udp_rate=0\nudp_burst=0\nsyn_burst=0\n");
        for _ in 0..5 {
            assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Pass);
        }
        assert_eq!(testing::map_len("udp_buckets"), Some(0));
        // burst 0 with a rate: every SYN is dropped.
        assert_eq!(f.filter(&tcp(A, 80, 2), Link::RawIp), Verdict::Drop);
    }

    #[test]
    fn rejects_bad_params() {
        testing::reset();
        for bad in [
            "syn_rate=-1",
            "syn_rate=ten",
            "udp_burst=18446744074",
            "blocked_ports=65536",
            "blocked_ports=23;2323",
            "allow=10.99.0.0/33",
            "allowed=10.0.0.0/8",
            "syn_rate",
        ] {
            testing::reset();
            assert!(L4Dos::init(&Config::new(bad)).is_err(), "{bad}");
        }
        testing::reset();
        let e = L4Dos::init(&Config::new("syn_rat=1")).err().unwrap();
        assert_eq!(std::format!("{e}"), "param syn_rat: unknown parameter");
    }

    #[test]
    fn fail_open_when_full() {
        let f = init("udp_rate=1\nudp_burst=0\n");
        // burst 0 drops everything while the map has room...
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Drop);
        for i in 1..BUCKETS {
            let src = [172, 16, (i >> 8) as u8, i as u8];
            assert_eq!(f.filter(&udp(src, 53), Link::RawIp), Verdict::Drop);
        }
        // ...and passes new sources once it is full.
        assert_eq!(f.filter(&udp([192, 0, 2, 99], 53), Link::RawIp), Verdict::Pass);
        assert_eq!(f.filter(&udp(A, 53), Link::RawIp), Verdict::Drop);
        assert_eq!(testing::counter("udp_limited"), i64::from(BUCKETS) + 1);
    }
}
