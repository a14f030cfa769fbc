//! `l4_dos`: allow-list, blocked destination ports, per-source SYN and UDP
//! token buckets (docs/filters.md; integer arithmetic identical to the Wasm
//! twin, the clock is bpf_ktime_get_ns). The loader limits rates to
//! MAX_RATE and bursts to MAX_BURST so that no product overflows u64 (BPF has
//! no 128-bit multiply for overflow checks).
#![no_std]
#![no_main]
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use wasmfw_ebpf_progs::{
    be16_at, bytes_at,
    common::{AddrKey, Bucket, L4Config, BUCKET_ENTRIES, MAX_CIDRS, MAX_ELAPSED_NS, MAX_PORTS, NANO},
    count, counters, parse, u8_at, verdict, PROTO_TCP, PROTO_UDP, TCP_HDR, UDP_HDR, XDP_DROP, XDP_PASS,
};

#[map]
static l4_cfg: Array<L4Config> = Array::with_max_entries(1, 0);
#[map]
static allow: LpmTrie<AddrKey, u8> = LpmTrie::with_max_entries(MAX_CIDRS, 0);
#[map]
static blocked_ports: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);
#[map]
static syn_buckets: HashMap<[u8; 16], Bucket> = HashMap::with_max_entries(BUCKET_ENTRIES, 0);
#[map]
static udp_buckets: HashMap<[u8; 16], Bucket> = HashMap::with_max_entries(BUCKET_ENTRIES, 0);

counters!(packets, pass, drop, allowed, blocked_port, syn_limited, udp_limited);

#[xdp]
pub fn l4_dos(ctx: XdpContext) -> u32 {
    verdict!(&ctx, filter(&ctx))
}

/// Takes one token from the source's bucket; false = none left (drop).
#[inline(always)]
fn take(map: &HashMap<[u8; 16], Bucket>, src: &[u8; 16], rate: u64, burst: u64) -> bool {
    let now = unsafe { bpf_ktime_get_ns() };
    let cap = burst * NANO;
    match map.get_ptr_mut(src) {
        Some(b) => {
            let b = unsafe { &mut *b };
            let elapsed = now.saturating_sub(b.last_ns);
            let add = core::cmp::min(elapsed, MAX_ELAPSED_NS) * rate;
            let mut tokens = core::cmp::min(cap, b.tokens + add);
            let ok = tokens >= NANO;
            if ok {
                tokens -= NANO;
            }
            b.tokens = tokens;
            b.last_ns = now;
            ok
        }
        None => {
            let mut tokens = cap;
            let ok = tokens >= NANO;
            if ok {
                tokens -= NANO;
            }
            let fresh = Bucket { tokens, last_ns: now };
            // A full map fails open, as docs/filters.md says.
            if map.insert(src, &fresh, BPF_NOEXIST as u64).is_err() {
                return true;
            }
            ok
        }
    }
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let Some(l4) = parse(ctx) else { return XDP_PASS };
    let tcp = match l4.proto {
        PROTO_TCP => true,
        PROTO_UDP => false,
        _ => return XDP_PASS,
    };
    if bytes_at(ctx, l4.off, if tcp { TCP_HDR } else { UDP_HDR }).is_none() {
        return XDP_PASS;
    }
    let cfg = match l4_cfg.get(0) {
        Some(c) => *c,
        None => return XDP_PASS,
    };
    // 1. allow-list
    if cfg.allow_set != 0 {
        let (plen, k) = l4.src_key();
        if allow.get(Key::new(plen, k)).is_some() {
            count!(allowed);
            return XDP_PASS;
        }
    }
    // 2. blocked destination ports
    let Some(dport) = be16_at(ctx, l4.off + 2) else { return XDP_PASS };
    if cfg.ports_set != 0 && unsafe { blocked_ports.get(&dport) }.is_some() {
        count!(blocked_port);
        debug!(ctx, "l4_dos: blocked port {}", dport);
        return XDP_DROP;
    }
    let src = l4.src16();
    if tcp {
        // 3. SYN without ACK
        let Some(flags) = u8_at(ctx, l4.off + 13) else { return XDP_PASS };
        if flags & 0x02 != 0 && flags & 0x10 == 0 && cfg.syn_rate != 0 {
            if !take(&syn_buckets, &src, cfg.syn_rate, cfg.syn_burst) {
                count!(syn_limited);
                return XDP_DROP;
            }
        }
    } else if cfg.udp_rate != 0 {
        // 4. UDP
        if !take(&udp_buckets, &src, cfg.udp_rate, cfg.udp_burst) {
            count!(udp_limited);
            return XDP_DROP;
        }
    }
    XDP_PASS
}
