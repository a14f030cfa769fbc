//! `icmp_drop`: drops ICMPv4 echo requests (type 8) and ICMPv6 echo requests
//! (type 128), optionally only from/to listed prefixes (docs/filters.md).
#![no_std]
#![no_main]
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, LpmTrie},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use wasmfw_ebpf_progs::{
    bytes_at,
    common::{AddrKey, IcmpConfig, MAX_CIDRS},
    count, counters, parse, u8_at, verdict, ICMP_HDR, PROTO_ICMP, PROTO_ICMPV6, XDP_DROP, XDP_PASS,
};

#[map]
static icmp_cfg: Array<IcmpConfig> = Array::with_max_entries(1, 0);
#[map]
static icmp_from: LpmTrie<AddrKey, u8> = LpmTrie::with_max_entries(MAX_CIDRS, 0);
#[map]
static icmp_to: LpmTrie<AddrKey, u8> = LpmTrie::with_max_entries(MAX_CIDRS, 0);

counters!(packets, pass, drop, echo_dropped);

#[xdp]
pub fn icmp_drop(ctx: XdpContext) -> u32 {
    verdict!(&ctx, filter(&ctx))
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let Some(l4) = parse(ctx) else { return XDP_PASS };
    let echo = match l4.proto {
        PROTO_ICMP if !l4.v6 => 8,
        PROTO_ICMPV6 if l4.v6 => 128,
        _ => return XDP_PASS,
    };
    if bytes_at(ctx, l4.off, ICMP_HDR).is_none() {
        return XDP_PASS;
    }
    if u8_at(ctx, l4.off) != Some(echo) {
        return XDP_PASS;
    }
    let cfg = match icmp_cfg.get(0) {
        Some(c) => *c,
        None => IcmpConfig::default(),
    };
    if cfg.from_set != 0 {
        let (plen, k) = l4.src_key();
        if icmp_from.get(Key::new(plen, k)).is_none() {
            return XDP_PASS;
        }
    }
    if cfg.to_set != 0 {
        let (plen, k) = l4.dst_key();
        if icmp_to.get(Key::new(plen, k)).is_none() {
            return XDP_PASS;
        }
    }
    count!(echo_dropped);
    debug!(ctx, "icmp_drop: echo request dropped");
    XDP_DROP
}
