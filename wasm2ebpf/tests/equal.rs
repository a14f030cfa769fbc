//! The proof of the compiled tier on this host's kernel: the translated
//! program under BPF_PROG_TEST_RUN and the engine (the code `wasmfw
//! replay` runs) give the same verdict on every packet and the same
//! counters: the stock `icmp_drop` on the differential packet set, the
//! repository's pcaps and seeded random/mutated frames, and small
//! hand-written modules covering each instruction class, traps and fuel.
//!
//! Needs root and bpf(2) (else prints SKIPPED) and `cargo xtask
//! build-filters`. Run: `cargo test -p wasm2ebpf -- --nocapture`.

#[allow(dead_code)]
#[path = "../../ctl/tests/differential/packets.rs"]
mod packets;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasm2ebpf::{Compiled, XDP_DROP, XDP_PASS};
use wasmfw_engine::{abi, Env, Limits, Verdict};

/// Random and mutated frames per filter configuration.
const RANDOM_FRAMES: usize = 4_000;
/// Frames per hand-written module.
const WAT_FRAMES: usize = 300;
/// Stack of the thread that runs the engine: its debug build needs more
/// than a test thread's 2 MiB (as in bench/src/fuel.rs).
const TEST_STACK_BYTES: usize = 256 << 20;

/// Runs `f` on a thread with [`TEST_STACK_BYTES`] of stack.
fn big_stack(f: fn()) {
    let t = std::thread::Builder::new().stack_size(TEST_STACK_BYTES).spawn(f).unwrap();
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Why this host cannot run the proof, if it cannot: not root, or bpf(2)
/// refused.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: BPF_PROG_TEST_RUN needs CAP_BPF and CAP_NET_ADMIN".into());
    }
    if let Err(e) = wasmfw_xdp_bridge::sys::map_create(wasmfw_xdp_bridge::sys::BPF_MAP_TYPE_ARRAY, 4, 8, 1, "wf_probe")
    {
        return Some(format!("bpf() refused: {e}"));
    }
    None
}

/// Runs the test thread on one CPU: the filter's memory is per CPU in
/// both engines' sense only if every run sees the same copy.
fn pin() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let cpu = libc::sched_getcpu().max(0) as usize;
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set), 0, "sched_setaffinity");
    }
}

struct ReplayEnv;
impl Env for ReplayEnv {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _level: i32, _msg: &[u8]) {}
}

/// A seeded xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Both engines on every frame: same verdict per frame, same counters at
/// the end. Returns the number of drops.
fn compare(
    name: &str,
    wasm: &[u8],
    limits: Limits,
    config: &str,
    frames: &[(String, Vec<u8>)],
    per_frame: bool,
) -> usize {
    let (filter, mut inst) =
        wasmfw_engine::load(wasm, limits, config.as_bytes(), 1, Arc::new(ReplayEnv), 0).expect("engine load");
    let compiled = match Compiled::load(wasm, limits, config.as_bytes(), "wf_test") {
        Ok(c) => c,
        Err(e) => panic!("{name}: compiled tier refused: {e:#}"),
    };
    let engine_counters = |f: &wasmfw_engine::Filter| {
        let mut v = Vec::new();
        f.counters(|n, c| v.push((n.to_string(), c)));
        v
    };
    let mut drops = 0;
    for (label, frame) in frames {
        let want = inst[0].run(frame, abi::LINK_ETHERNET);
        let (action, _) = compiled.test_run(frame, 1).expect("test run");
        let want_action = match want.verdict {
            Verdict::Drop => XDP_DROP,
            Verdict::Pass => XDP_PASS,
        } as u32;
        assert_eq!(
            action,
            want_action,
            "{name}: frame {label} ({} bytes {:02x?}): engine {want:?}",
            frame.len(),
            frame
        );
        drops += usize::from(want.verdict == Verdict::Drop);
        if per_frame {
            assert_eq!(
                compiled.counters().unwrap(),
                engine_counters(&filter),
                "{name}: counters after {label} ({frame:02x?})"
            );
        }
    }
    assert_eq!(compiled.counters().unwrap(), engine_counters(&filter), "{name}: counters at the end");
    eprintln!("{name}: {} frames agree ({drops} dropped), program of {} instructions", frames.len(), compiled.insns);
    drops
}

/// Frames from a pcap (Ethernet), if it exists.
fn pcap_frames(path: &Path, out: &mut Vec<(String, Vec<u8>)>) -> bool {
    let Ok(file) = std::fs::File::open(path) else { return false };
    let mut r = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
    let mut i = 0;
    while let Some(p) = r.next_packet() {
        let p = p.expect("pcap packet");
        if p.data.len() >= 14 {
            out.push((format!("{}#{i}", path.display()), p.data.to_vec()));
        }
        i += 1;
    }
    true
}

/// Each base frame cut, bytes flipped and header fields randomised, plus
/// random bytes after an Ethernet/IPv4 or IPv6 header.
fn random_frames(bases: &[(String, Vec<u8>)], seed: u64, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let mut f = if i % 4 == 3 || bases.is_empty() {
            let mut f = vec![0u8; 14 + rng.below(80)];
            f.iter_mut().for_each(|b| *b = rng.next() as u8);
            let (et, ver) = if rng.below(2) == 0 { ([8, 0], 0x45) } else { ([0x86, 0xdd], 0x60) };
            f[12..14].copy_from_slice(&et);
            if f.len() > 14 {
                f[14] = ver;
            }
            f
        } else {
            bases[rng.below(bases.len())].1.clone()
        };
        for _ in 0..rng.below(4) {
            let at = rng.below(f.len());
            f[at] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            let cut = 14 + rng.below(f.len() - 13);
            f.truncate(cut.min(f.len()));
        }
        out.push((format!("random #{i} (seed {seed})"), f));
    }
    out
}

fn stock_limits(fuel: u64) -> Limits {
    Limits { fuel, memory_limit: 131_072, on_fault: Verdict::Pass, audit: false }
}

#[test]
fn icmp_drop_agrees_with_the_engine() {
    big_stack(icmp_drop);
}

fn icmp_drop() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED icmp_drop_agrees_with_the_engine: {why}");
        return;
    }
    pin();
    let path = root().join("target/filters/icmp_drop.wasm");
    let wasm =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask build-filters`", path.display()));
    let mut frames = Vec::new();
    let mut common = Vec::new();
    packets::packets_common(&mut common);
    packets::packets_dns(&mut common);
    packets::packets_l4(&mut common);
    packets::truncations(&mut common);
    frames.extend(common.into_iter().map(|p| (p.0, p.1)));
    let pcap = root().join("target/demo/sample.pcap");
    if !pcap_frames(&pcap, &mut frames) {
        eprintln!("note: {} absent (`cargo xtask demo --replay` makes it)", pcap.display());
    }
    let bases = frames.clone();
    frames.extend(random_frames(&bases, 0x005e_ed1c, RANDOM_FRAMES));
    let drops = compare("icmp_drop", &wasm, stock_limits(20_000), "from=\nto=\n", &frames, false);
    assert!(drops > 0, "no frame dropped: the comparison saw only one verdict");
    compare(
        "icmp_drop (lists)",
        &wasm,
        stock_limits(20_000),
        "from=10.0.0.0/24,fd00::/8\nto=10.0.0.2,fd00::2\n",
        &frames,
        false,
    );
    compare("icmp_drop (audit)", &wasm, Limits { audit: true, ..stock_limits(20_000) }, "", &frames, false);
}

/// The stock filter `name`'s frames: the differential set (with the l4
/// floods for l4_dos), the demo pcap, and seeded mutations of both.
fn stock_frames(l4: bool, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut common = Vec::new();
    packets::packets_common(&mut common);
    if l4 {
        packets::packets_l4(&mut common);
    } else {
        packets::packets_dns(&mut common);
    }
    packets::truncations(&mut common);
    let mut frames: Vec<(String, Vec<u8>)> = common.into_iter().map(|p| (p.0, p.1)).collect();
    let pcap = root().join("target/demo/sample.pcap");
    if !pcap_frames(&pcap, &mut frames) {
        eprintln!("note: {} absent (`cargo xtask demo --replay` makes it)", pcap.display());
    }
    let bases = frames.clone();
    frames.extend(random_frames(&bases, seed, RANDOM_FRAMES));
    frames
}

fn stock_wasm(name: &str) -> Vec<u8> {
    let path = root().join(format!("target/filters/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask build-filters`", path.display()))
}

#[test]
fn l4_dos_agrees_with_the_engine() {
    big_stack(l4_dos);
}

/// Rates of 1 per second: the engine's clock stands still here and
/// BPF_PROG_TEST_RUN's moves for well under a second, so no bucket
/// refills in either and the verdicts depend on the bursts only.
fn l4_dos() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED l4_dos_agrees_with_the_engine: {why}");
        return;
    }
    pin();
    let wasm = stock_wasm("l4_dos");
    let frames = stock_frames(true, 0x14d05);
    let config = "syn_rate=1\nsyn_burst=5\nudp_rate=1\nudp_burst=5\nblocked_ports=23,2323\nallow=10.99.0.0/16\n";
    let drops = compare("l4_dos", &wasm, stock_limits(50_000), config, &frames, false);
    assert!(drops > 0, "no frame dropped");
}

#[test]
fn dns_block_agrees_with_the_engine() {
    big_stack(dns_block);
}

fn dns_block() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED dns_block_agrees_with_the_engine: {why}");
        return;
    }
    pin();
    let wasm = stock_wasm("dns_block");
    let frames = stock_frames(false, 0xd25);
    let config = "block=ads.example.com,tracker.test\nmax_pointer_hops=8\n";
    let drops = compare("dns_block", &wasm, stock_limits(200_000), config, &frames, false);
    assert!(drops > 0, "no frame dropped");
}

/// A module with the ABI's exports whose filter computes the i64 `expr`
/// from the frame (`$a $b`: i32 at 14 and 18, `$A $B`: i64 at 22 and 30),
/// adds it to counter 0 and returns its low bit as the verdict.
fn wat_module(expr: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "wasmfw" "counter_declare" (func $cd (param i32 i32) (result i32)))
  (import "wasmfw" "counter_add" (func $ca (param i32 i64)))
  (memory (export "memory") 1)
  (global $g (export "g") (mut i64) (i64.const 7))
  (global $k i32 (i32.const 3))
  (data (i32.const 4096) "r")
  (func (export "wasmfw_abi_version") (result i32) i32.const 1)
  (func (export "wasmfw_buffer") (result i32) i32.const 0)
  (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
  (func (export "wasmfw_init") (param i32) (result i32)
    (drop (call $cd (i32.const 4096) (i32.const 1))) i32.const 0)
  (func $helper (param i64 i64) (result i64)
    (if (result i64) (i64.eqz (local.get 1)) (then (return (local.get 0))) (else (i64.add (i64.mul (local.get 0) (i64.const 3)) (local.get 1)))))
  (func $outer (param i64) (result i64) (call $helper (local.get 0) (i64.const 5)))
  (func (export "wasmfw_filter") (param $len i32) (param $link i32) (result i32)
    (local $a i32) (local $b i32) (local $A i64) (local $B i64) (local $v i64) (local $i i32)
    (local.set $a (i32.load (i32.const 14)))
    (local.set $b (i32.load (i32.const 18)))
    (local.set $A (i64.load (i32.const 22)))
    (local.set $B (i64.load (i32.const 30)))
    (local.set $v {expr})
    (call $ca (i32.const 0) (local.get $v))
    (i32.wrap_i64 (i64.and (local.get $v) (i64.const 1)))))"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// Frames whose operands are edge values (0, 1, -1, MIN, MAX, small
/// shifts) or random.
fn operand_frames(seed: u64, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let edges32: [u32; 8] = [0, 1, u32::MAX, 0x8000_0000, 0x7fff_ffff, 31, 32, 0xfff0];
    let edges64: [u64; 8] = [0, 1, u64::MAX, 1 << 63, i64::MAX as u64, 63, 64, 0xffff];
    (0..n)
        .map(|i| {
            let mut f = vec![0u8; 64];
            f.iter_mut().for_each(|b| *b = rng.next() as u8);
            let pick32 = |rng: &mut Rng| if rng.below(2) == 0 { edges32[rng.below(8)] } else { rng.next() as u32 };
            let (a, b) = (pick32(&mut rng), pick32(&mut rng));
            let pick64 = |rng: &mut Rng| if rng.below(2) == 0 { edges64[rng.below(8)] } else { rng.next() };
            let (x, y) = (pick64(&mut rng), pick64(&mut rng));
            f[14..18].copy_from_slice(&a.to_le_bytes());
            f[18..22].copy_from_slice(&b.to_le_bytes());
            f[22..30].copy_from_slice(&x.to_le_bytes());
            f[30..38].copy_from_slice(&y.to_le_bytes());
            (format!("operands #{i}"), f)
        })
        .collect()
}

fn wat_cases() -> Vec<String> {
    let mut cases = Vec::new();
    let u = |e: String| format!("(i64.extend_i32_u {e})");
    for op in [
        "add", "sub", "mul", "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr", "div_s", "div_u", "rem_s",
        "rem_u", "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u",
    ] {
        cases.push(u(format!("(i32.{op} (local.get $a) (local.get $b))")));
        let i64_op = format!("(i64.{op} (local.get $A) (local.get $B))");
        let cmp = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"].contains(&op);
        cases.push(if cmp { u(i64_op) } else { i64_op });
    }
    for op in ["clz", "ctz", "popcnt", "eqz", "extend8_s", "extend16_s"] {
        cases.push(u(format!("(i32.{op} (local.get $a))")));
        let e = format!("(i64.{op} (local.get $A))");
        cases.push(if op == "eqz" { u(e) } else { e });
    }
    cases.push("(i64.extend32_s (local.get $A))".into());
    cases.push("(i64.extend_i32_s (local.get $a))".into());
    cases.push(u("(i32.wrap_i64 (local.get $A))".into()));
    cases.push("(select (local.get $A) (local.get $B) (local.get $a))".into());
    // Shifts by the small edge counts (31, 32) with 64-bit operands.
    cases.push("(i64.shl (local.get $A) (i64.extend_i32_u (local.get $a)))".into());
    // Memory: every width, in and out of bounds (the address is the
    // operand's low 16 bits: the last bytes of the page, or beyond).
    for (load, signed_load) in [
        ("i64.load8_u", "i64.load8_s"),
        ("i64.load16_u", "i64.load16_s"),
        ("i64.load32_u", "i64.load32_s"),
        ("i64.load", "i64.load"),
    ] {
        cases.push(format!(
            "(i64.add ({load} offset=3 (i32.and (local.get $b) (i32.const 0xffff))) ({signed_load} (i32.const 20)))"
        ));
    }
    for (store, load) in [
        ("i64.store8", "i64.load"),
        ("i64.store16", "i64.load"),
        ("i64.store32", "i64.load"),
        ("i64.store", "i64.load"),
    ] {
        cases.push(format!(
            "(block (result i64) ({store} offset=2 (i32.and (local.get $b) (i32.const 0xffff)) (local.get $A)) ({load} offset=2 (i32.and (local.get $b) (i32.const 0xfff8))))"
        ));
    }
    cases.push(
        "(block (result i64) (i32.store8 (i32.const 3000) (local.get $a)) (i32.store16 (i32.const 3001) (local.get $b)) (i32.store (i32.const 3003) (local.get $a)) (i64.extend_i32_u (i32.add (i32.load8_s (i32.const 3000)) (i32.add (i32.load16_s (i32.const 3001)) (i32.load (i32.const 3003))))))".into(),
    );
    cases.push(u("(i32.add (memory.size) (memory.grow (i32.const 1)))".into()));
    // Globals (mutable: kept across frames, reset after a fault) and constants.
    cases.push("(block (result i64) (global.set $g (i64.add (global.get $g) (local.get $A))) (i64.add (global.get $g) (i64.extend_i32_u (global.get $k))))".into());
    cases.push("(block (result i64) (global.set $g (i64.add (global.get $g) (i64.const 1))) (if (i32.eqz (i32.and (local.get $a) (i32.const 3))) (then unreachable)) (global.get $g))".into());
    // Control: if/else, loops, br_if, br_table with and without values, calls.
    cases.push(
        "(if (result i64) (i32.and (local.get $a) (i32.const 1)) (then (local.get $A)) (else (local.get $B)))".into(),
    );
    cases.push("(block (result i64) (local.set $v (i64.const 0)) (local.set $i (i32.and (local.get $a) (i32.const 15))) (block $out (loop $l (br_if $out (i32.eqz (local.get $i))) (local.set $v (i64.add (local.get $v) (i64.extend_i32_u (local.get $i)))) (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br $l))) (local.get $v))".into());
    cases.push("(block (result i64) (local.set $v (i64.const 5)) (block $w (block $y (block $x (br_table $x $y $w (i32.and (local.get $a) (i32.const 3)))) (local.set $v (i64.const 1)) (br $w)) (local.set $v (i64.const 2))) (local.get $v))".into());
    cases.push("(block $o (result i64) (i64.add (block $p (result i64) (br_table $o $p $o (local.get $A) (i32.and (local.get $a) (i32.const 3)))) (i64.const 1000)))".into());
    cases.push("(block $o (result i64) (drop (br_if $o (local.get $B) (i32.and (local.get $a) (i32.const 1)))) (local.get $A))".into());
    cases.push("(i64.add (call $helper (local.get $A) (local.get $B)) (call $outer (local.get $B)))".into());
    // Traps and fuel.
    cases.push(
        "(if (result i64) (i32.eqz (i32.and (local.get $a) (i32.const 7))) (then unreachable) (else (local.get $B)))"
            .into(),
    );
    cases.push("(if (result i64) (i32.eq (i32.and (local.get $a) (i32.const 3)) (i32.const 1)) (then (loop $l (br $l)) (i64.const 0)) (else (local.get $A)))".into());
    cases
}

#[test]
fn instruction_classes_agree_with_the_engine() {
    big_stack(instruction_classes);
}

fn instruction_classes() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED instruction_classes_agree_with_the_engine: {why}");
        return;
    }
    pin();
    let frames = operand_frames(0xc0ffee, WAT_FRAMES);
    let limits = Limits { fuel: 10_000, memory_limit: 2 * 65_536, on_fault: Verdict::Drop, audit: false };
    let mut faults = [0u64; 2];
    for expr in wat_cases() {
        let wasm = wat_module(&expr);
        compare(&expr, &wasm, limits, "", &frames, true);
        let (filter, mut inst) = wasmfw_engine::load(&wasm, limits, b"", 1, Arc::new(ReplayEnv), 0).unwrap();
        for (_, f) in &frames {
            inst[0].run(f, abi::LINK_ETHERNET);
        }
        faults[0] += filter.counter("fault_trap").unwrap();
        faults[1] += filter.counter("fault_fuel").unwrap();
    }
    // The cases must have reached both kinds of fault for the comparison to mean anything.
    assert!(faults[0] > 0 && faults[1] > 0, "faults seen (trap, fuel): {faults:?}");
}

/// The translation alone (no bpf() needed) of a module's filter body.
fn translate_only(funcs: &str) -> Result<(), String> {
    let text = format!(
        r#"(module (import "wasmfw" "log" (func $log (param i32 i32 i32)))
        (memory (export "memory") 1) (table 1 funcref) (type $t (func (result i32)))
        {funcs})"#
    );
    let wasm = wat::parse_str(&text).unwrap();
    let m = wasm2ebpf::Module::parse(&wasm).map_err(|e| e.to_string())?;
    let target = wasm2ebpf::Target {
        mem_size: 65_536,
        buffer: (0, 2048),
        globals: Vec::new(),
        maps: Vec::new(),
        counters: 0,
        fuel: 100,
        on_fault: Verdict::Pass,
        audit: false,
        mem_fd: -1,
        counters_fd: -1,
    };
    wasm2ebpf::translate::translate(&m, &target).map(drop).map_err(|e| format!("{e:#}"))
}

#[test]
fn refusals_name_the_instruction_and_offset() {
    let filter = |body: &str| format!(r#"(func (export "wasmfw_filter") (param i32 i32) (result i32) {body})"#);
    let e = translate_only(&filter("(call_indirect (type $t) (i32.const 0))")).unwrap_err();
    assert!(e.contains("CallIndirect") && e.contains("at offset 0x"), "{e}");
    let e = translate_only(&filter("(call $log (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 0)")).unwrap_err();
    assert!(e.contains("log on the packet path") && e.contains("at offset 0x"), "{e}");
    let e = translate_only(&format!(
        "{} (func $r (param i32) (result i32) (call $r (local.get 0)))",
        filter("(call $r (i32.const 1))")
    ))
    .unwrap_err();
    assert!(e.contains("recursive"), "{e}");
    let e = translate_only(&filter("(i32.load (i32.const 0)) (f32.const 1) (drop)")).unwrap_err();
    assert!(e.contains("F32Const") && e.contains("not supported"), "{e}");
    translate_only(&filter("(i32.load (i32.const 0))")).unwrap();
}
