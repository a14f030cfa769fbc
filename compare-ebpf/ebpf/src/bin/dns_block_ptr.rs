//! EXAMPLE THE VERIFIER REJECTS (kept on purpose; a test loads it and checks
//! the complaint). The natural way to follow DNS compression pointers: jump
//! to the pointer's target and keep walking, at most `max_pointer_hops`
//! times, a bound that is read from the policy at run time. The verifier
//! has to walk every possible hop count and every byte position.
#![no_std]
#![no_main]
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use wasmfw_ebpf_progs::{be16_at, common::DnsConfig, count, counters, parse, verdict, PROTO_UDP, XDP_DROP, XDP_PASS};

#[map]
static dns_cfg: Array<DnsConfig> = Array::with_max_entries(1, 0);

counters!(packets, pass, drop, blocked, malformed);

#[xdp]
pub fn dns_block_ptr(ctx: XdpContext) -> u32 {
    verdict!(&ctx, filter(&ctx))
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let Some(l4) = parse(ctx) else { return XDP_PASS };
    if l4.proto != PROTO_UDP || be16_at(ctx, l4.off + 2) != Some(53) {
        return XDP_PASS;
    }
    let max_hops = match dns_cfg.get(0) {
        Some(c) => c.max_pointer_hops,
        None => 8,
    };
    let data = ctx.data();
    let end = ctx.data_end();
    let dns = l4.off + 8;
    let mut pos = dns + 12;
    let mut hops = 0u32;
    let mut name_len = 0usize;
    loop {
        if data + pos + 2 > end {
            count!(malformed);
            return XDP_PASS;
        }
        let b = unsafe { *((data + pos) as *const u8) };
        if b & 0xc0 == 0xc0 {
            hops += 1;
            if hops > max_hops {
                count!(malformed);
                return XDP_PASS;
            }
            let lo = unsafe { *((data + pos + 1) as *const u8) };
            pos = dns + ((((b & 0x3f) as usize) << 8) | lo as usize);
            continue;
        }
        if b == 0 {
            break;
        }
        name_len += b as usize + 1;
        if name_len > 255 {
            count!(malformed);
            return XDP_PASS;
        }
        pos += 1 + b as usize;
    }
    if hops > 0 {
        count!(blocked);
        return XDP_DROP;
    }
    XDP_PASS
}
