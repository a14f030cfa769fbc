//! Types shared by the eBPF twins (`compare-ebpf/ebpf`) and their loader
//! (`compare-ebpf/loader`, crate `wasmfw-ebpf`). Every map value or key
//! that crosses the kernel/user boundary is defined here, `#[repr(C)]`, with
//! no padding holes.
#![no_std]

/// Key data of the address LPM tries (`icmp_from`, `icmp_to`, `allow`):
/// the 16-byte address, IPv4 mapped to `::ffff:a.b.c.d` with prefix length
/// `96 + len`, exactly as the Wasm twins' `Cidr` compares (so `::/0` also
/// matches IPv4 sources there and here).
pub type AddrKey = [u8; 16];
/// Entries per address list (docs/filters.md: at most 64).
pub const MAX_CIDRS: u32 = 64;

/// 1 token, in nano-tokens.
pub const NANO: u64 = 1_000_000_000;
/// Longest idle time credited to a bucket (1 hour).
pub const MAX_ELAPSED_NS: u64 = NANO * 3600;
/// Largest rate (tokens per second) and burst the eBPF twin accepts:
/// min(elapsed, 1 h) * rate + burst * 1e9 stays below 2^64.
pub const MAX_RATE: u64 = 1_000_000;
pub const MAX_BURST: u64 = 1_000_000_000;
/// Entries of `syn_buckets` / `udp_buckets`.
pub const BUCKET_ENTRIES: u32 = 16384;
/// Entries of `blocked_ports`.
pub const MAX_PORTS: u32 = 1024;

/// `icmp_cfg[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpConfig {
    /// Non-zero if `from` is non-empty (then the source must match it).
    pub from_set: u32,
    /// Non-zero if `to` is non-empty.
    pub to_set: u32,
}

/// `l4_cfg[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L4Config {
    pub syn_rate: u64,
    pub syn_burst: u64,
    pub udp_rate: u64,
    pub udp_burst: u64,
    /// Non-zero if `allow` is non-empty.
    pub allow_set: u32,
    /// Non-zero if `blocked_ports` is non-empty.
    pub ports_set: u32,
}

/// Value of `syn_buckets` / `udp_buckets` (key: 16-byte address, IPv4 as
/// `::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Nano-tokens (1 token = 1e9).
    pub tokens: u64,
    pub last_ns: u64,
}

/// Longest name, in text form (`a.b.c`, no trailing dot), as the Wasm twin.
pub const DNS_MAX_NAME: u32 = 255;
/// Largest `max_pointer_hops` the eBPF twin accepts (bounds its loop).
pub const DNS_MAX_HOPS: u32 = 64;
/// DNS payload bytes copied to the scratch buffer; names (and compression
/// pointers) beyond this offset are treated as running past the payload.
pub const DNS_SCRATCH: u32 = 2048;
/// Label boundaries of one name: the start and one after every dot of the
/// text form (at most 255 dots in 255 bytes).
pub const DNS_MAX_LABELS: u32 = 256;

/// `dns_cfg[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub max_pointer_hops: u32,
    /// Most labels in any `block` entry: only that many suffixes are looked up.
    pub max_block_labels: u32,
}

/// Key of the `dns_block` hash map: a polynomial hash of the lowercased
/// suffix in presentation form (`example.com`) and its length.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub hash: u64,
    pub len: u64,
}

/// Hash base (odd, so it is invertible modulo 2^64).
pub const HASH_P: u64 = 0x100_0000_01b3;
/// HASH_P^-1 modulo 2^64.
pub const HASH_P_INV: u64 = inverse(HASH_P);

const fn inverse(a: u64) -> u64 {
    // Newton: x <- x * (2 - a x), doubling the correct low bits each step.
    let mut x: u64 = a; // correct to 3 bits for odd a
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// ASCII lowercase, as both twins compare names.
#[inline(always)]
pub const fn lower(b: u8) -> u8 {
    if b >= b'A' && b <= b'Z' {
        b | 0x20
    } else {
        b
    }
}

/// The [`NameKey`] of a name in presentation form (`ads.example.com`).
pub fn name_key(name: &[u8]) -> NameKey {
    let mut h: u64 = 0;
    let mut i = 0;
    while i < name.len() {
        h = h.wrapping_mul(HASH_P).wrapping_add(lower(name[i]) as u64);
        i += 1;
    }
    NameKey { hash: h, len: name.len() as u64 }
}

/// `run_cfg[0]`, every twin: how its verdicts are applied.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// Non-zero: audit mode, every packet passes and each drop verdict is
    /// counted in `audit_would_drop` (and in `drop`, which counts verdicts).
    pub audit: u32,
}

/// Counters: one per-CPU array (one u64 slot) per name. Every program has
/// `packets`, `pass`, `drop` plus its own, named as in docs/filters.md.
/// `drop` counts the filter's drop verdicts, also those audit mode passed
/// (`audit_would_drop`), as the kernel engine counts them.
pub const COMMON_COUNTERS: [&str; 4] = ["packets", "pass", "drop", "audit_would_drop"];
pub const ICMP_COUNTERS: [&str; 1] = ["echo_dropped"];
pub const L4_COUNTERS: [&str; 4] = ["allowed", "blocked_port", "syn_limited", "udp_limited"];
pub const DNS_COUNTERS: [&str; 2] = ["blocked", "malformed"];

/// `wasmfw capture` on a twin: bits of [`CaptureConfig::verdicts`], and
/// the most bytes of a packet one capture record carries, those of the
/// kernel engine (crate wasmfw-uapi). The twins never fault, so
/// `CAPTURE_FAULT` never matches there.
pub use wasmfw_uapi::{CAPTURE_DROP, CAPTURE_FAULT, CAPTURE_PASS, CAPTURE_SNAPLEN};

/// `wasmfw_cap_cfg[0]`: all zero (capture off) unless `wasmfw capture` runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureConfig {
    /// CAPTURE_* bits: which verdicts to record; 0 = off.
    pub verdicts: u32,
    /// Bytes of each packet to copy, at most CAPTURE_SNAPLEN.
    pub snaplen: u32,
}

/// What precedes the packet bytes in each `wasmfw_capture` perf record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureMeta {
    /// bpf_ktime_get_ns() (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// CAPTURE_PASS or CAPTURE_DROP.
    pub verdict: u32,
    /// The frame's length (its linear part, which is what XDP sees).
    pub orig_len: u32,
    /// Bytes that follow this header.
    pub caplen: u32,
    pub pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), plain integers, no padding.
    unsafe impl aya::Pod for super::CaptureConfig {}
    // SAFETY: repr(C), plain integers, no padding.
    unsafe impl aya::Pod for super::IcmpConfig {}
    unsafe impl aya::Pod for super::L4Config {}
    unsafe impl aya::Pod for super::Bucket {}
    unsafe impl aya::Pod for super::DnsConfig {}
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::RunConfig {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn inverse_is_inverse() {
        assert_eq!(super::HASH_P.wrapping_mul(super::HASH_P_INV), 1);
    }
}
