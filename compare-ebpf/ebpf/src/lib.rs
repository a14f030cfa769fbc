//! Shared parsing for the eBPF twins of the wasmfw filters. The rules are
//! those of docs/filters.md, "Parsing rules shared by all filters"; each
//! program (src/bin/*.rs) becomes one object in target/ebpf/.
#![no_std]

use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, PerfEventByteArray};
use aya_ebpf::programs::XdpContext;
use common::{AddrKey, CaptureConfig, CaptureMeta, CAPTURE_DROP, CAPTURE_PASS, CAPTURE_SNAPLEN};
pub use wasmfw_ebpf_common as common;

pub const XDP_DROP: u32 = aya_ebpf::bindings::xdp_action::XDP_DROP;
pub const XDP_PASS: u32 = aya_ebpf::bindings::xdp_action::XDP_PASS;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// Sizes of the L4 headers that must fit before a filter looks at them.
pub const ICMP_HDR: usize = 8;
pub const TCP_HDR: usize = 20;
pub const UDP_HDR: usize = 8;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// A pointer to `len` bytes at `off`, if they are inside the packet.
#[inline(always)]
pub fn bytes_at(ctx: &XdpContext, off: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + len > end {
        return None;
    }
    Some((start + off) as *const u8)
}

#[inline(always)]
pub fn u8_at(ctx: &XdpContext, off: usize) -> Option<u8> {
    let p = bytes_at(ctx, off, 1)?;
    Some(unsafe { *p })
}

#[inline(always)]
pub fn be16_at(ctx: &XdpContext, off: usize) -> Option<u16> {
    let p = bytes_at(ctx, off, 2)?;
    Some(unsafe { u16::from_be_bytes([*p, *p.add(1)]) })
}

/// What the shared parser found: the L4 protocol, where its header starts
/// and the addresses.
pub struct L4 {
    pub proto: u8,
    /// Offset of the L4 header from the start of the frame.
    pub off: usize,
    pub v6: bool,
    /// Source and destination: IPv4 in the first 4 bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

impl L4 {
    /// The LPM key (prefix length, data) of the source: see [`AddrKey`].
    #[inline(always)]
    pub fn src_key(&self) -> (u32, AddrKey) {
        (128, self.src16())
    }
    #[inline(always)]
    pub fn dst_key(&self) -> (u32, AddrKey) {
        (128, map16(self.v6, &self.dst))
    }
    /// The 16-byte bucket key: IPv6 as is, IPv4 as `::ffff:a.b.c.d`.
    #[inline(always)]
    pub fn src16(&self) -> [u8; 16] {
        map16(self.v6, &self.src)
    }
}

#[inline(always)]
fn map16(v6: bool, a: &[u8; 16]) -> [u8; 16] {
    if v6 {
        *a
    } else {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]
    }
}

/// Parses Ethernet (up to two VLAN tags), IPv4 or IPv6 (up to 4 extension
/// headers). `None` means "pass": not IP, truncated, a later fragment.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Option<L4> {
    let mut off = 14usize;
    let mut et = be16_at(ctx, 12)?;
    // Up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8).
    if et == 0x8100 || et == 0x88a8 {
        et = be16_at(ctx, off + 2)?;
        off += 4;
        if et == 0x8100 || et == 0x88a8 {
            et = be16_at(ctx, off + 2)?;
            off += 4;
        }
    }
    let mut l4 = L4 { proto: 0, off: 0, v6: false, src: [0; 16], dst: [0; 16] };
    match et {
        0x0800 => {
            // Fixed 20 bytes first: the verifier tracks constant-size checks
            // only, so fields are read through this pointer before the
            // variable-length (ihl) check.
            let p = bytes_at(ctx, off, 20)?;
            let (b0, frag, proto) = unsafe { (*p, u16::from_be_bytes([*p.add(6), *p.add(7)]), *p.add(9)) };
            let mut i = 0;
            while i < 4 {
                l4.src[i] = unsafe { *p.add(12 + i) };
                l4.dst[i] = unsafe { *p.add(16 + i) };
                i += 1;
            }
            let ihl = (b0 & 0x0f) as usize;
            if ihl < 5 {
                return None;
            }
            let hlen = ihl * 4;
            bytes_at(ctx, off, hlen)?;
            if frag & 0x1fff != 0 {
                return None;
            }
            l4.proto = proto;
            l4.off = off + hlen;
        }
        0x86dd => {
            let p = bytes_at(ctx, off, 40)?;
            let mut nh = unsafe { *p.add(6) };
            let mut i = 0;
            while i < 16 {
                l4.src[i] = unsafe { *p.add(8 + i) };
                l4.dst[i] = unsafe { *p.add(24 + i) };
                i += 1;
            }
            l4.v6 = true;
            off += 40;
            let mut i = 0;
            while i < 4 {
                match nh {
                    0 | 43 | 60 => {
                        let p = bytes_at(ctx, off, 2)?;
                        let (next, hl) = unsafe { (*p, *p.add(1)) };
                        let len = (hl as usize + 1) * 8;
                        bytes_at(ctx, off, len)?;
                        nh = next;
                        off += len;
                    }
                    44 => {
                        let p = bytes_at(ctx, off, 8)?;
                        let (next, fo) = unsafe { (*p, u16::from_be_bytes([*p.add(2), *p.add(3)])) };
                        if fo >> 3 != 0 {
                            return None;
                        }
                        nh = next;
                        off += 8;
                    }
                    _ => break,
                }
                i += 1;
            }
            if matches!(nh, 0 | 43 | 60 | 44) {
                return None; // more than 4 extension headers
            }
            l4.proto = nh;
            l4.off = off;
        }
        _ => return None,
    }
    Some(l4)
}

/// Declares one per-CPU counter map (one u64 slot) per name, plus what
/// every twin's [`verdict!`] needs: the `audit_would_drop` counter and the
/// `run_cfg` map (audit mode, [`common::RunConfig`]).
#[macro_export]
macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[allow(non_upper_case_globals)]
        #[aya_ebpf::macros::map]
        static run_cfg: aya_ebpf::maps::Array<$crate::common::RunConfig> =
            aya_ebpf::maps::Array::with_max_entries(1, 0);
        $crate::counters!(@each audit_would_drop, $($name),*);
    };
    (@each $($name:ident),*) => {
        $(
            #[allow(non_upper_case_globals)]
            #[aya_ebpf::macros::map]
            static $name: aya_ebpf::maps::PerCpuArray<u64> =
                aya_ebpf::maps::PerCpuArray::with_max_entries(1, 0);
        )*
    };
}

/// Adds one to a counter declared with [`counters!`].
#[macro_export]
macro_rules! count {
    ($name:ident) => {
        if let Some(p) = $name.get_ptr_mut(0) {
            unsafe { *p += 1 };
        }
    };
}

/// `wasmfw capture` (ctl/src/capture.rs): the configuration it sets while
/// it runs (zero, i.e. off, otherwise) and the perf ring records go to.
/// Every twin has both (they live in this library); the ring's size
/// (max_entries 0) becomes the number of CPUs at load.
#[map]
#[allow(non_upper_case_globals)]
static wasmfw_cap_cfg: Array<CaptureConfig> = Array::with_max_entries(1, 0);
#[map]
#[allow(non_upper_case_globals)]
static wasmfw_capture: PerfEventByteArray = PerfEventByteArray::new(0);

/// Records the frame with its verdict if a capture asks for that verdict:
/// a [`CaptureMeta`] and then the first `caplen` bytes of the frame, which
/// bpf_perf_event_output copies from the XDP context itself (the length in
/// the flags' upper half, as xdpdump does). Off, this is one array lookup
/// and a branch.
#[inline(always)]
pub fn capture(ctx: &XdpContext, v: u32) {
    let Some(cfg) = wasmfw_cap_cfg.get(0) else { return };
    let bit = if v == XDP_DROP { CAPTURE_DROP } else { CAPTURE_PASS };
    if cfg.verdicts & bit == 0 {
        return;
    }
    let len = (ctx.data_end() - ctx.data()) as u32;
    let mut caplen = if cfg.snaplen < CAPTURE_SNAPLEN { cfg.snaplen } else { CAPTURE_SNAPLEN };
    if caplen > len {
        caplen = len;
    }
    // SAFETY: a helper call with no memory arguments.
    let ts_ns = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    let meta = CaptureMeta { ts_ns, verdict: bit, orig_len: len, caplen, pad: 0 };
    // SAFETY: CaptureMeta is repr(C) plain integers without padding.
    let bytes = unsafe {
        core::slice::from_raw_parts((&meta as *const CaptureMeta).cast::<u8>(), core::mem::size_of::<CaptureMeta>())
    };
    wasmfw_capture.output(ctx, bytes, caplen);
}

/// Counts `packets` and the verdict and hands the filter's verdict to
/// [`capture`]; in audit mode (`run_cfg`) a drop is counted (`drop`,
/// `audit_would_drop`) and the packet passes.
#[macro_export]
macro_rules! verdict {
    ($ctx:expr, $v:expr) => {{
        let v: u32 = $v;
        $crate::capture($ctx, v);
        $crate::count!(packets);
        if v == $crate::XDP_DROP {
            $crate::count!(drop);
            if run_cfg.get(0).is_some_and(|c| c.audit != 0) {
                $crate::count!(audit_would_drop);
                $crate::XDP_PASS
            } else {
                v
            }
        } else {
            $crate::count!(pass);
            v
        }
    }};
}
