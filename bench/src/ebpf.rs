//! eBPF side of the benchmarks: the filters' eBPF twins (compare-ebpf/) and
//! an empty XDP program, timed by the kernel with BPF_PROG_TEST_RUN
//! (`repeat` runs of one frame; the kernel reports the mean per run).
//! Needs root (CAP_BPF) and `cargo xtask build-ebpf`.
//!
//! Note: with `repeat` > 1 the program sees the same frame every time, so
//! l4_dos drains the source's bucket and then measures the drop path.

use anyhow::Result;
use wasmfw_ebpf::Twin;
use wasmfw_policy::Param;

/// ns per packet of the eBPF twin of `filter` (`icmp_drop`, `l4_dos`,
/// `dns_block`, or a path/`.wasm` name with that stem) with default
/// parameters, on `packet` (an Ethernet frame, at least 14 bytes).
pub fn run_ebpf(filter: &str, packet: &[u8], repeat: u32) -> Result<f64> {
    run_ebpf_with(filter, &[], packet, repeat)
}

/// As [`run_ebpf`], with a policy's parameters (`Policy::params`).
pub fn run_ebpf_with(filter: &str, params: &[(String, Param, usize)], packet: &[u8], repeat: u32) -> Result<f64> {
    let loaded = wasmfw_ebpf::load(Twin::for_filter(filter)?, params)?;
    Ok(loaded.bench(packet, repeat)?.as_nanos() as f64)
}

/// ns per packet of an empty XDP program (returns XDP_PASS): the fixed cost
/// of BPF_PROG_TEST_RUN + XDP, to subtract from the figures above.
pub fn run_ebpf_empty(packet: &[u8], repeat: u32) -> Result<f64> {
    wasmfw_ebpf::bench_empty(packet, repeat)
}
