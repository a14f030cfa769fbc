//! EXAMPLE THE VERIFIER REJECTS (kept on purpose; a test loads it and checks
//! the complaint). The natural dns_block: walk the question name label by
//! label, straight over the packet, until the zero byte. The loop is bounded
//! only by the packet length, so the verifier cannot prove it terminates
//! within its limits and refuses the program.
#![no_std]
#![no_main]
#![allow(non_upper_case_globals)]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use wasmfw_ebpf_progs::{be16_at, count, counters, parse, verdict, PROTO_UDP, XDP_DROP, XDP_PASS};

counters!(packets, pass, drop, blocked, malformed);

#[xdp]
pub fn dns_block_pktlen(ctx: XdpContext) -> u32 {
    verdict!(&ctx, filter(&ctx))
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let Some(l4) = parse(ctx) else { return XDP_PASS };
    if l4.proto != PROTO_UDP || be16_at(ctx, l4.off + 2) != Some(53) {
        return XDP_PASS;
    }
    let data = ctx.data();
    let end = ctx.data_end();
    let mut pos = l4.off + 8 + 12;
    let mut labels = 0u32;
    // Bounded by the packet only: each label moves `pos` forward.
    loop {
        // The length byte and the label's first byte (or the byte after
        // the final zero) must be in the packet.
        if data + pos + 2 > end {
            count!(malformed);
            return XDP_PASS;
        }
        let len = unsafe { *((data + pos) as *const u8) } as usize;
        if len == 0 {
            break;
        }
        labels += 1;
        pos += 1 + len;
    }
    if labels > 3 {
        count!(blocked);
        return XDP_DROP;
    }
    XDP_PASS
}
