//! `cargo xtask build-test-filters`: deliberately broken filters and a
//! capture for the kernel module's guest tests (kmod/tests/), written to
//! target/test-filters/:
//!
//! - `loop.wasm`: a valid ABI v1 filter whose `wasmfw_filter` never returns
//!   (only fuel stops it);
//! - `oob.wasm`: a valid ABI v1 filter that loads far outside its memory
//!   (a trap on every packet);
//! - `ok.wasm`: the same skeleton returning pass (the control case);
//! - `garbage.wasm`: pseudo-random bytes, not a Wasm module at all;
//! - `deep.wasm`: a loop of 8 rounds per packet byte, then the deepest call
//!   chain the engine allows with a host call at the bottom, then drop
//!   (kmod/tests/t_stack.sh measures the kernel stack a packet uses);
//!   `too_deep.wasm`: one call deeper, a trap on every packet;
//! - `log.wasm`: passes everything and logs `echo seq=NNNNN` (info, the
//!   ICMP sequence number, 5 digits) for every IPv4 echo request, at
//!   either hook (kmod/tests/t_log.sh);
//! - `big.wasm`: ~1 MiB of code and a `wasmfw_init` that spends most of
//!   the init fuel: a slow load (kmod/tests/t_rtnl.sh);
//! - `fuel_*.wasm`: filters that loop forever on one host function or on
//!   bulk memory (`wasmfw_engine::fuel_filters`), for
//!   kmod/tests/t_fuelcost.sh: the worst packet's time whatever the fuel
//!   is spent on;
//! - `mixed.pcap`: IPv4/IPv6 echo requests and replies, TCP SYNs, UDP, for
//!   `wasmfw test-run` against `wasmfw replay`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::deps::root;

/// A minimal ABI v1 filter (the exports the engine requires) whose
/// `wasmfw_filter(len, link) -> verdict` body is `body`.
fn wat_filter(body: &str) -> Result<Vec<u8>> {
    let text = format!(
        r#"(module {ABI_V1_MEMORY_AND_BUFFER}
          (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
          (func (export "wasmfw_filter") (param i32 i32) (result i32) {body}))"#
    );
    Ok(wat::parse_str(text)?)
}

/// The memory and buffer exports every ABI v1 filter here shares.
const ABI_V1_MEMORY_AND_BUFFER: &str = r#"
          (memory (export "memory") 1)
          (func (export "wasmfw_abi_version") (result i32) i32.const 1)
          (func (export "wasmfw_buffer") (result i32) i32.const 1024)
          (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)"#;

/// Wasm frames the engine allows (kmod/engine/src/load.rs MAX_RECURSION).
const MAX_RECURSION: u32 = 256;

/// `deep.wasm` (`extra` = 0) and `too_deep.wasm` (`extra` = 1): a loop
/// bounded by the packet's length, then `wasmfw_filter` -> `$rec` chain of
/// MAX_RECURSION + `extra` frames in all, calling the host's `now_ns` at the
/// bottom; returns drop when it gets back.
fn deep_filter(extra: u32) -> Result<Vec<u8>> {
    let depth = MAX_RECURSION + extra - 2; // `$rec(depth)` .. `$rec(0)` plus wasmfw_filter
    let text = format!(
        r#"(module
          (import "wasmfw" "now_ns" (func $now (result i64)))
          {ABI_V1_MEMORY_AND_BUFFER}
          (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
          (func $rec (param $n i32) (result i32)
            (if (result i32) (i32.eqz (local.get $n))
              (then (drop (call $now)) (i32.const 0))
              (else (call $rec (i32.sub (local.get $n) (i32.const 1))))))
          (func (export "wasmfw_filter") (param $len i32) (param $link i32) (result i32)
            (local $i i32)
            (local.set $i (i32.shl (local.get $len) (i32.const 3)))
            (block $done (loop $again
              (br_if $done (i32.eqz (local.get $i)))
              (local.set $i (i32.sub (local.get $i) (i32.const 1)))
              (br $again)))
            (i32.or (call $rec (i32.const {depth})) (i32.const 1))))"#
    );
    Ok(wat::parse_str(text)?)
}

/// `big.wasm`: a filter of ~0.95 MiB of code, under WASMFW_MAX_WASM (BIG_FUNCS functions the filter
/// never calls) whose `wasmfw_init` spends most of the init fuel: a load
/// that compiles and initialises for seconds per instance under qemu TCG,
/// for t_rtnl.sh to show that rtnl never waits behind it. Passes everything.
fn big_filter() -> Result<Vec<u8>> {
    const BIG_FUNCS: usize = 1900;
    const ADDS_PER_FUNC: usize = 100;
    // 1.5 M rounds exhaust the 10 M init fuel (wasmfw check): 1 M stays under.
    const INIT_ROUNDS: u32 = 1_000_000;
    let body = "(i32.add (i32.const 12345))".repeat(ADDS_PER_FUNC);
    let funcs: String =
        (0..BIG_FUNCS).map(|i| format!("(func $f{i} (param i32) (result i32) local.get 0 {body})\n")).collect();
    let text = format!(
        r#"(module {ABI_V1_MEMORY_AND_BUFFER}
          (func (export "wasmfw_init") (param i32) (result i32)
            (local $i i32)
            (local.set $i (i32.const {INIT_ROUNDS}))
            (block $done (loop $again
              (br_if $done (i32.eqz (local.get $i)))
              (local.set $i (i32.sub (local.get $i) (i32.const 1)))
              (br $again)))
            i32.const 0)
          (func (export "wasmfw_filter") (param i32 i32) (result i32) i32.const 0)
          {funcs})"#
    );
    Ok(wat::parse_str(text)?)
}

/// The per-packet logger: IPv4 echo requests (Ethernet at XDP, raw IP at
/// netfilter) are logged with their sequence number; every packet passes.
fn log_filter() -> Result<Vec<u8>> {
    let text = r#"(module
      (import "wasmfw" "log" (func $log (param i32 i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "echo seq=")
      (func (export "wasmfw_abi_version") (result i32) i32.const 1)
      (func (export "wasmfw_buffer") (result i32) i32.const 1024)
      (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
      (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
      (func (export "wasmfw_filter") (param $len i32) (param $link i32) (result i32)
        (local $l3 i32) (local $icmp i32) (local $seq i32) (local $i i32)
        (local.set $l3 (i32.add (i32.const 1024)
          (select (i32.const 14) (i32.const 0) (i32.eq (local.get $link) (i32.const 1)))))
        (if (i32.ne (i32.shr_u (i32.load8_u (local.get $l3)) (i32.const 4)) (i32.const 4))
          (then (return (i32.const 0))))
        (if (i32.ne (i32.load8_u offset=9 (local.get $l3)) (i32.const 1))
          (then (return (i32.const 0))))
        (local.set $icmp (i32.add (local.get $l3)
          (i32.shl (i32.and (i32.load8_u (local.get $l3)) (i32.const 15)) (i32.const 2))))
        (if (i32.ne (i32.load8_u (local.get $icmp)) (i32.const 8))
          (then (return (i32.const 0))))
        (local.set $seq (i32.or (i32.shl (i32.load8_u offset=6 (local.get $icmp)) (i32.const 8))
                                (i32.load8_u offset=7 (local.get $icmp))))
        (local.set $i (i32.const 13))
        (loop $digit
          (i32.store8 (local.get $i) (i32.add (i32.const 48) (i32.rem_u (local.get $seq) (i32.const 10))))
          (local.set $seq (i32.div_u (local.get $seq) (i32.const 10)))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $digit (i32.ge_u (local.get $i) (i32.const 9))))
        (call $log (i32.const 2) (i32.const 0) (i32.const 14))
        (i32.const 0)))"#;
    Ok(wat::parse_str(text)?)
}

/// Deterministic "random" bytes (xorshift64), so the file is reproducible.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Echo requests/replies over IPv4 and IPv6, TCP SYNs and a UDP datagram:
/// icmp.toml drops exactly the echo requests.
fn mixed_capture(path: &Path) -> Result<()> {
    let v4 = |a: u8| [10, 0, 0, a];
    let v6 = |a: u8| {
        let mut x = [0u8; 16];
        x[0] = 0xfd;
        x[15] = a;
        x
    };
    let mut pkts: Vec<Vec<u8>> = Vec::new();
    for seq in 0..3u16 {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv4(v4(1), v4(2), 64).icmpv4_echo_request(7, seq).write(&mut v, &[0x42; 56])?;
        pkts.push(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(B, A).ipv4(v4(2), v4(1), 64).icmpv4_echo_reply(7, seq).write(&mut v, &[0x42; 56])?;
        pkts.push(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B).ipv6(v6(1), v6(2), 64).icmpv6_echo_request(9, seq).write(&mut v, &[0x24; 56])?;
        pkts.push(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(B, A).ipv6(v6(2), v6(1), 64).icmpv6_echo_reply(9, seq).write(&mut v, &[0x24; 56])?;
        pkts.push(v);
    }
    for port in [22u16, 80, 443] {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4(v4(1), v4(2), 64)
            .tcp(40000 + port, port, 1, 64240)
            .syn()
            .write(&mut v, &[])?;
        pkts.push(v);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv6(v6(1), v6(2), 64)
            .tcp(40000 + port, port, 1, 64240)
            .syn()
            .write(&mut v, &[])?;
        pkts.push(v);
    }
    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B).ipv4(v4(1), v4(2), 64).udp(5353, 53).write(&mut v, &[0u8; 32])?;
    pkts.push(v);
    let mut w = PcapWriter::new(std::fs::File::create(path)?)?;
    for (i, data) in pkts.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64 * 10), data.len() as u32, data))?;
    }
    Ok(())
}

pub fn build() -> Result<()> {
    let out = root().join("target/test-filters");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let files: [(&str, Vec<u8>); 8] = [
        ("loop.wasm", wat_filter("(loop $l (br $l)) i32.const 0")?),
        // 0x7fff0000 is far past the single 64 KiB page: every packet traps.
        ("oob.wasm", wat_filter("i32.const 0x7fff0000 i32.load drop i32.const 0")?),
        ("ok.wasm", wat_filter("i32.const 0")?),
        ("garbage.wasm", garbage(512)),
        ("deep.wasm", deep_filter(0)?),
        ("too_deep.wasm", deep_filter(1)?),
        ("log.wasm", log_filter()?),
        ("big.wasm", big_filter()?),
    ];
    let mut fuel_loops = Vec::new();
    for (name, text) in wasmfw_engine::fuel_filters::all() {
        fuel_loops.push((name, wat::parse_str(&text).with_context(|| name.to_string())?));
    }
    for (name, bytes) in files.iter().chain(&fuel_loops) {
        let p = out.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    mixed_capture(&out.join("mixed.pcap"))?;
    eprintln!("xtask: {} test filters and mixed.pcap in {}", files.len() + fuel_loops.len(), out.display());
    Ok(())
}
