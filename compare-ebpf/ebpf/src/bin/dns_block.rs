//! `dns_block`: drops DNS queries whose first question name equals a
//! blocked suffix or ends with `.` + a blocked suffix (docs/filters.md).
//!
//! What eBPF can do: the Wasm twin walks the name with a loop bounded only
//! by the packet; the verifier refuses that (see dns_block_pktlen.rs and
//! dns_block_ptr.rs). Here:
//! - the DNS payload (up to DNS_SCRATCH = 2048 bytes) is copied into a
//!   per-CPU scratch buffer with bpf_xdp_load_bytes, so every later access
//!   is a masked index into a map value;
//! - the name is walked one byte per bpf_loop callback (the verifier checks
//!   the callback once), at most 255 text bytes + 128 length bytes +
//!   max_pointer_hops (<= 64) pointers + 1 steps;
//! - instead of comparing strings, it keeps a polynomial hash of the name
//!   and, at each label boundary, the prefix hash and HASH_P^-pos; the hash
//!   of each suffix is then H - h_k * P^n * P^-pos_k, looked up (with its
//!   length) in the `dns_names` hash map the loader fills.
#![no_std]
#![no_main]
#![allow(non_upper_case_globals)]

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use wasmfw_ebpf_progs::{
    be16_at, bytes_at,
    common::{lower, DnsConfig, NameKey, DNS_MAX_HOPS, DNS_MAX_LABELS, DNS_MAX_NAME, DNS_SCRATCH, HASH_P, HASH_P_INV},
    count, counters, parse, verdict, PROTO_UDP, UDP_HDR, XDP_DROP, XDP_PASS,
};

#[map]
static dns_cfg: Array<DnsConfig> = Array::with_max_entries(1, 0);
#[map]
static dns_names: HashMap<NameKey, u8> = HashMap::with_max_entries(1024, 0);
#[map]
static dns_scratch: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

counters!(packets, pass, drop, blocked, malformed);

const MASK: u64 = DNS_SCRATCH as u64 - 1;
const LMASK: u64 = DNS_MAX_LABELS as u64 - 1;
/// Steps of the walk: text bytes, length bytes (at most 128), pointers, the end.
const STEPS: u32 = DNS_MAX_NAME + 128 + DNS_MAX_HOPS + 2;
const RUNNING: u64 = 0;
const DONE: u64 = 1;
const MALFORMED: u64 = 2;

/// Per-CPU scratch: the walk state lives here, not on the stack, so the
/// verifier does not track its values and the callback's states converge
/// after one iteration (since 6.8 bpf_loop callbacks are verified like
/// loops; precise stack values would be explored step by step).
#[repr(C)]
struct Scratch {
    w: Walk,
    payload: [u8; DNS_SCRATCH as usize],
    prefix_hash: [u64; DNS_MAX_LABELS as usize],
    prefix_ipow: [u64; DNS_MAX_LABELS as usize],
    prefix_pos: [u64; DNS_MAX_LABELS as usize],
}

#[repr(C)]
struct Walk {
    /// Next byte to read in the scratch payload.
    pos: u64,
    /// Label bytes still to read.
    rem: u64,
    /// Payload bytes available.
    n: u64,
    hops: u64,
    max_hops: u64,
    /// Hash, P^len and P^-len of the name so far (presentation form).
    h: u64,
    pw: u64,
    ipw: u64,
    /// Presentation length so far.
    len: u64,
    /// Label boundaries recorded.
    nb: u64,
    state: u64,
}

#[inline(always)]
fn push(w: &mut Walk, b: u8) {
    w.h = w.h.wrapping_mul(HASH_P).wrapping_add(lower(b) as u64);
    w.pw = w.pw.wrapping_mul(HASH_P);
    w.ipw = w.ipw.wrapping_mul(HASH_P_INV);
    w.len += 1;
}

/// Records a label boundary: the suffix starting here may be blocked.
#[inline(always)]
fn boundary(s: &mut Scratch, w: &mut Walk) {
    let k = (w.nb & LMASK) as usize;
    s.prefix_hash[k] = w.h;
    s.prefix_ipow[k] = w.ipw;
    s.prefix_pos[k] = w.len;
    if w.nb < DNS_MAX_LABELS as u64 {
        w.nb += 1;
    }
}

/// One step of the name walk: one label byte, one length byte or one pointer.
extern "C" fn step(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = dns_scratch.get_ptr_mut(0) else { return 1 };
    let s = unsafe { &mut *s };
    let w = unsafe { &mut *(&mut s.w as *mut Walk) };
    if w.rem > 0 {
        let b = s.payload[(w.pos & MASK) as usize];
        push(w, b);
        if b == b'.' {
            // A dot inside a label is a boundary in the text form too.
            boundary(s, w);
        }
        w.pos += 1;
        w.rem -= 1;
        return 0;
    }
    if w.pos >= w.n {
        w.state = MALFORMED; // runs past the payload
        return 1;
    }
    let b = s.payload[(w.pos & MASK) as usize];
    if b == 0 {
        w.state = DONE;
        return 1;
    }
    match b & 0xc0 {
        0xc0 => {
            if w.pos + 1 >= w.n {
                w.state = MALFORMED;
                return 1;
            }
            w.hops += 1;
            if w.hops > w.max_hops {
                w.state = MALFORMED;
                return 1;
            }
            let lo = s.payload[((w.pos + 1) & MASK) as usize];
            w.pos = (((b & 0x3f) as u64) << 8) | lo as u64;
            0
        }
        0x00 => {
            let l = b as u64;
            if w.pos + 1 + l > w.n {
                w.state = MALFORMED;
                return 1;
            }
            let dot = (w.len > 0) as u64;
            if w.len + dot + l > DNS_MAX_NAME as u64 {
                w.state = MALFORMED; // the text form exceeds 255 bytes
                return 1;
            }
            if dot != 0 {
                push(w, b'.');
                boundary(s, w);
            }
            w.rem = l;
            w.pos += 1;
            0
        }
        _ => {
            w.state = MALFORMED; // 0b01xxxxxx / 0b10xxxxxx
            1
        }
    }
}

#[xdp]
pub fn dns_block(ctx: XdpContext) -> u32 {
    verdict!(&ctx, filter(&ctx))
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let Some(l4) = parse(ctx) else { return XDP_PASS };
    if l4.proto != PROTO_UDP || bytes_at(ctx, l4.off, UDP_HDR).is_none() {
        return XDP_PASS;
    }
    if be16_at(ctx, l4.off + 2) != Some(53) {
        return XDP_PASS;
    }
    let dns = l4.off + UDP_HDR;
    // A query: 12-byte header, QR clear, QDCOUNT >= 1.
    let Some(h) = bytes_at(ctx, dns, 12) else { return XDP_PASS };
    let (flags, qd) = unsafe { (*h.add(2), u16::from_be_bytes([*h.add(4), *h.add(5)])) };
    if flags & 0x80 != 0 || qd == 0 {
        return XDP_PASS;
    }
    let total = ctx.data_end() - ctx.data();
    let cfg = match dns_cfg.get(0) {
        Some(c) => *c,
        None => return XDP_PASS,
    };
    let Some(s) = dns_scratch.get_ptr_mut(0) else { return XDP_PASS };
    let mut n = (total - dns) as u64;
    if n > DNS_SCRATCH as u64 {
        n = DNS_SCRATCH as u64;
    }
    // n is in 12..=2048; this form shows the verifier 1..=2048.
    let n32 = ((n as u32).wrapping_sub(1) & (DNS_SCRATCH - 1)) + 1;
    let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, dns as u32, (*s).payload.as_mut_ptr() as *mut c_void, n32) };
    if r != 0 {
        return XDP_PASS;
    }
    let mut dummy: u64 = 0;
    unsafe {
        (*s).w = Walk {
            pos: 12,
            rem: 0,
            n,
            hops: 0,
            max_hops: cfg.max_pointer_hops as u64,
            h: 0,
            pw: 1,
            ipw: 1,
            len: 0,
            nb: 1,
            state: RUNNING,
        };
        (*s).prefix_hash[0] = 0;
        (*s).prefix_ipow[0] = 1;
        (*s).prefix_pos[0] = 0;
        bpf_loop(STEPS, step as *mut c_void, &mut dummy as *mut u64 as *mut c_void, 0);
    }
    let w = unsafe { &(*s).w };
    if w.state != DONE {
        count!(malformed);
        return XDP_PASS;
    }
    // Look up the name and each suffix that starts after a dot, from the
    // shortest, at most max_block_labels of them.
    let mut i: u64 = 0;
    while i < DNS_MAX_LABELS as u64 {
        if i >= w.nb || i >= cfg.max_block_labels as u64 {
            break;
        }
        let k = ((w.nb - 1 - i) & LMASK) as usize;
        let (ph, pi, pp) = unsafe { ((*s).prefix_hash[k], (*s).prefix_ipow[k], (*s).prefix_pos[k]) };
        let key =
            NameKey { hash: w.h.wrapping_sub(ph.wrapping_mul(w.pw).wrapping_mul(pi)), len: w.len.wrapping_sub(pp) };
        if unsafe { dns_names.get(&key) }.is_some() {
            count!(blocked);
            debug!(ctx, "dns_block: query blocked");
            return XDP_DROP;
        }
        i += 1;
    }
    XDP_PASS
}
