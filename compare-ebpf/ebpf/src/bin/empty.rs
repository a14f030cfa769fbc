//! An empty XDP program: the baseline for BPF_PROG_TEST_RUN timings.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use wasmfw_ebpf_progs::XDP_PASS;

#[xdp]
pub fn empty(_ctx: XdpContext) -> u32 {
    XDP_PASS
}
