//! Engine tests on hand-written WAT modules: the ABI checks, faults and
//! their recovery, limits, maps and counters.

use super::*;
use alloc::string::ToString;
use alloc::{format, vec};
use std::sync::Mutex;

struct TestEnv {
    now: AtomicU64,
    logs: Mutex<Vec<(i32, String)>>,
}

impl Env for TestEnv {
    fn now_ns(&self) -> u64 {
        self.now.load(Relaxed)
    }
    fn log(&self, level: i32, msg: &[u8]) {
        self.logs.lock().unwrap().push((level, String::from_utf8_lossy(msg).into_owned()));
    }
}

fn env() -> Arc<TestEnv> {
    Arc::new(TestEnv { now: AtomicU64::new(0), logs: Mutex::new(Vec::new()) })
}

const LIMITS: Limits = Limits { fuel: 10_000, memory_limit: 131_072, on_fault: Verdict::Pass, audit: false };

/// A filter in WAT. Packet byte 0 selects a behaviour:
/// 0xff drop, 0xfe loop forever, 0xfd read out of bounds, 0xfc return 7,
/// 0xfb grow memory by one page (drop if it worked), 0xfa drop if the
/// shadow stack pointer moved, 0xf9 count the packet in a hash map keyed by
/// byte 1 and drop from the 3rd on, 0xf8 drop if now_ns == 42.
/// Init declares a hash map, a per-CPU array and a counter; it rejects a
/// config starting with 'x' after logging why.
const FILTER: &str = r#"
(module
  (import "wasmfw" "map_declare" (func $map_declare (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasmfw" "map_lookup" (func $map_lookup (param i32 i32 i32) (result i32)))
  (import "wasmfw" "map_update" (func $map_update (param i32 i32 i32) (result i32)))
  (import "wasmfw" "counter_declare" (func $counter_declare (param i32 i32) (result i32)))
  (import "wasmfw" "counter_add" (func $counter_add (param i32 i64)))
  (import "wasmfw" "now_ns" (func $now_ns (result i64)))
  (import "wasmfw" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $sp (export "__stack_pointer") (mut i32) (i32.const 60000))
  (global $map (mut i32) (i32.const -1))
  (global $ctr (mut i32) (i32.const -1))
  (data (i32.const 100) "hitsarrseen")
  (data (i32.const 200) "param x: rejected")
  (func (export "wasmfw_abi_version") (result i32) i32.const 1)
  (func (export "wasmfw_buffer") (result i32) i32.const 1024)
  (func (export "wasmfw_buffer_len") (result i32) i32.const 16384)
  (func (export "wasmfw_init") (param $len i32) (result i32)
    (if (i32.and (i32.gt_s (local.get $len) (i32.const 0))
                 (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 120)))
      (then (call $log (i32.const 0) (i32.const 200) (i32.const 17)) (return (i32.const -1))))
    (global.set $map (call $map_declare (i32.const 1) (i32.const 1) (i32.const 8) (i32.const 4) (i32.const 100) (i32.const 4)))
    (drop (call $map_declare (i32.const 2) (i32.const 4) (i32.const 8) (i32.const 4) (i32.const 104) (i32.const 3)))
    (global.set $ctr (call $counter_declare (i32.const 107) (i32.const 4)))
    (i32.or (global.get $map) (global.get $ctr)))
  (func (export "wasmfw_filter") (param $len i32) (param $link i32) (result i32)
    (local $b i32)
    (global.set $sp (i32.sub (global.get $sp) (i32.const 64)))
    (local.set $b (i32.load8_u (i32.const 1024)))
    (if (i32.eq (local.get $b) (i32.const 0xfe)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $b) (i32.const 0xfd)) (then (drop (i32.load (i32.const 0x7ffffff0)))))
    (if (i32.eq (local.get $b) (i32.const 0xfc)) (then (return (i32.const 7))))
    (global.set $sp (i32.add (global.get $sp) (i32.const 64)))
    (call $counter_add (global.get $ctr) (i64.const 1))
    (if (i32.eq (local.get $b) (i32.const 0xff)) (then (return (i32.const 1))))
    (if (i32.eq (local.get $b) (i32.const 0xfb))
      (then (return (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))))
    (if (i32.eq (local.get $b) (i32.const 0xfa))
      (then (return (i32.ne (global.get $sp) (i32.const 60000)))))
    (if (i32.eq (local.get $b) (i32.const 0xf8))
      (then (return (i64.eq (call $now_ns) (i64.const 42)))))
    (if (i32.eq (local.get $b) (i32.const 0xf9))
      (then
        (i64.store (i32.const 512) (i64.const 0))
        (drop (call $map_lookup (global.get $map) (i32.const 1025) (i32.const 512)))
        (i64.store (i32.const 512) (i64.add (i64.load (i32.const 512)) (i64.const 1)))
        (drop (call $map_update (global.get $map) (i32.const 1025) (i32.const 512)))
        (return (i64.ge_u (i64.load (i32.const 512)) (i64.const 3)))))
    i32.const 0))
"#;

fn load_wat(src: &str, limits: Limits, config: &[u8], slots: usize) -> Result<(Filter, Vec<Instance>), LoadError> {
    let wasm = wat::parse_str(src).expect("test WAT parses");
    load(&wasm, limits, config, slots, env(), 1)
}

fn one(limits: Limits) -> (Filter, Instance) {
    let (f, mut v) = load_wat(FILTER, limits, b"", 1).unwrap();
    (f, v.pop().unwrap())
}

#[test]
fn verdicts_and_counters() {
    let (f, mut i) = one(LIMITS);
    assert_eq!(i.run(&[0xff, 0], 1).verdict, Verdict::Drop);
    let o = i.run(&[0x00, 0], 1);
    assert_eq!((o.verdict, o.fault), (Verdict::Pass, None));
    assert!(o.fuel_used > 0 && o.fuel_used < 1000, "{}", o.fuel_used);
    assert_eq!(f.counter("packets"), Some(2));
    assert_eq!(f.counter("drop"), Some(1));
    assert_eq!(f.counter("pass"), Some(1));
    assert_eq!(f.counter("seen"), Some(2));
}

#[test]
fn audit_mode_passes_drops_and_counts_them() {
    let (f, mut i) = one(Limits { audit: true, ..LIMITS });
    assert_eq!(i.run(&[0xff, 0], 1).verdict, Verdict::Pass);
    assert_eq!(i.run(&[0x00, 0], 1).verdict, Verdict::Pass);
    // on_fault = drop is a drop verdict too: passed, counted.
    let (f2, mut d) = one(Limits { audit: true, on_fault: Verdict::Drop, ..LIMITS });
    assert_eq!(d.run(&[0xfe], 1).verdict, Verdict::Pass);
    assert_eq!(f2.counter("audit_would_drop"), Some(1));
    assert_eq!((f.counter("drop"), f.counter("pass"), f.counter("audit_would_drop")), (Some(1), Some(1), Some(1)));
    let (e, mut n) = one(LIMITS);
    assert_eq!(n.run(&[0xff, 0], 1).verdict, Verdict::Drop);
    assert_eq!(e.counter("audit_would_drop"), Some(0));
}

#[test]
fn endless_loop_runs_out_of_fuel_and_instance_recovers() {
    let (f, mut i) = one(LIMITS);
    let o = i.run(&[0xfe], 1);
    assert_eq!((o.verdict, o.fault), (Verdict::Pass, Some(Fault::Fuel)));
    let (f2, mut d) = one(Limits { on_fault: Verdict::Drop, ..LIMITS });
    let o = d.run(&[0xfe], 1);
    assert_eq!((o.verdict, o.fault), (Verdict::Drop, Some(Fault::Fuel)));
    assert!(o.fuel_used >= LIMITS.fuel - 1, "{}", o.fuel_used);
    assert_eq!(f2.counter("fault_fuel"), Some(1));
    assert_eq!(i.run(&[0xff], 1).verdict, Verdict::Drop);
    assert_eq!(f.counter("fault_fuel"), Some(1));
}

#[test]
fn out_of_bounds_and_bad_verdict_are_traps_and_stack_pointer_is_restored() {
    let (f, mut i) = one(Limits { on_fault: Verdict::Drop, ..LIMITS });
    for _ in 0..2000 {
        // Each trap leaves the shadow stack 64 bytes lower unless restored.
        assert_eq!(i.run(&[0xfd], 1).fault, Some(Fault::Trap));
        assert_eq!(i.run(&[0xfc], 1).fault, Some(Fault::Trap));
    }
    assert_eq!(
        i.run(&[0xfa], 1),
        Outcome { verdict: Verdict::Pass, fault: None, fuel_used: i.run(&[0xfa], 1).fuel_used, audited: false }
    );
    assert_eq!(f.counter("fault_trap"), Some(4000));
    assert_eq!(f.counter("drop"), Some(4000));
}

#[test]
fn memory_does_not_grow_on_the_packet_path() {
    // Growing allocates; a packet run must not: memory.grow returns -1
    // there (a plain failure, not a fault), however far below the limit.
    let (f, mut i) = one(Limits { memory_limit: 1 << 20, ..LIMITS });
    for _ in 0..3 {
        let o = i.run(&[0xfb], 1);
        assert_eq!((o.verdict, o.fault), (Verdict::Pass, None));
    }
    assert_eq!(f.counter("fault_trap"), Some(0));
}

#[test]
fn memory_growth_in_init_is_capped_by_the_limit() {
    // wasmfw_init grows by one page twice: the first fits the 2-page limit,
    // the second does not; init returns how many failed (0 = ok).
    let src = FILTER.replace(
        "(global.set $map (call $map_declare",
        "(if (i32.ne (i32.add (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (i32.const 1)) (then (return (i32.const -9))))\n    (global.set $map (call $map_declare",
    );
    assert!(load_wat(&src, LIMITS, b"", 1).is_ok());
    let err = load_wat(&src, Limits { memory_limit: 3 * 65536, ..LIMITS }, b"", 1).err().unwrap();
    assert!(matches!(err, LoadError::Init { code: -9, .. }), "{err}");
}

#[test]
fn initial_memory_over_the_limit_is_refused() {
    let err = load_wat(FILTER, Limits { memory_limit: 0, ..LIMITS }, b"", 1).err().unwrap();
    assert!(err.to_string().contains("initial memory of 65536 bytes exceeds the memory limit"), "{err}");
}

#[test]
fn hash_map_is_shared_between_slots_and_readable() {
    let (f, mut v) = load_wat(FILTER, LIMITS, b"", 2).unwrap();
    assert_eq!(v[0].run(&[0xf9, 7], 1).verdict, Verdict::Pass);
    assert_eq!(v[1].run(&[0xf9, 7], 1).verdict, Verdict::Pass);
    assert_eq!(v[0].run(&[0xf9, 7], 1).verdict, Verdict::Drop);
    assert_eq!(v[1].run(&[0xf9, 8], 1).verdict, Verdict::Pass);
    let mut seen = Vec::new();
    assert!(f.map_for_each("hits", |_, k, val| seen.push((k[0], u64::from_le_bytes(val.try_into().unwrap())))));
    seen.sort();
    assert_eq!(seen, vec![(7, 3), (8, 1)]);
    // Userspace can reset an entry; 4 entries max, then full.
    assert_eq!(f.map_update("hits", &[7], &0u64.to_le_bytes()), 0);
    assert_eq!(v[0].run(&[0xf9, 7], 1).verdict, Verdict::Pass);
    for k in [1u8, 2] {
        assert_eq!(f.map_update("hits", &[k], &0u64.to_le_bytes()), 0);
    }
    assert_eq!(f.map_update("hits", &[3], &0u64.to_le_bytes()), abi::E_FULL);
    assert_eq!(f.map_delete("hits", &[1]), 1);
    assert_eq!(f.map_update("hits", &[2, 2], &0u64.to_le_bytes()), abi::E_INVAL);
    let mut arr = 0;
    f.map_for_each("arr", |_, _, _| arr += 1);
    assert_eq!(arr, 8, "per-CPU array: 4 entries x 2 slots");
    assert_eq!(f.counter("seen"), Some(5));
}

#[test]
fn clock_comes_from_the_host() {
    let e = env();
    let wasm = wat::parse_str(FILTER).unwrap();
    let (_, mut v) = load(&wasm, LIMITS, b"", 1, e.clone(), 1).unwrap();
    assert_eq!(v[0].run(&[0xf8], 1).verdict, Verdict::Pass);
    e.now.store(42, Relaxed);
    assert_eq!(v[0].run(&[0xf8], 1).verdict, Verdict::Drop);
}

#[test]
fn init_rejection_carries_the_filters_message() {
    let err = load_wat(FILTER, LIMITS, b"x=1\n", 1).err().unwrap();
    assert_eq!(err, LoadError::Init { code: -1, message: "param x: rejected".into() });
}

/// FILTER with `code` run at the end of `wasmfw_filter`, before it returns pass.
fn with_tail(code: &str) -> String {
    let at = FILTER.rfind("i32.const 0))").unwrap();
    format!("{}{code}\n    {}", &FILTER[..at], &FILTER[at..])
}

/// FILTER with one more top-level item.
fn with_item(item: &str) -> String {
    let at = FILTER.rfind(')').unwrap();
    format!("{}{item}\n)", &FILTER[..at])
}

fn abi_error(src: &str) -> String {
    load_wat(src, LIMITS, b"", 1).err().expect("load must fail").to_string()
}

#[test]
fn abi_violations_are_refused_with_a_reason() {
    let e = abi_error(&FILTER.replace(
        "i32.const 1)\n  (func (export \"wasmfw_buffer\")",
        "i32.const 2)\n  (func (export \"wasmfw_buffer\")",
    ));
    assert!(e.contains("built for ABI version 2"), "{e}");
    let e = abi_error(&FILTER.replace("(export \"wasmfw_filter\")", ""));
    assert!(e.contains("missing export wasmfw_filter"), "{e}");
    let e = abi_error(&FILTER.replace("\"wasmfw\" \"log\"", "\"wasmfw\" \"format_disk\""));
    assert!(e.contains("imports unknown function wasmfw.format_disk"), "{e}");
    let e = abi_error(&FILTER.replace("\"wasmfw\" \"log\"", "\"env\" \"log\""));
    assert!(e.contains("imports unknown function env.log"), "{e}");
    let e = abi_error(
        &FILTER
            .replace("(func $now_ns (result i64))", "(func $now_ns (result i32))")
            .replace("(call $now_ns)", "(i64.extend_i32_u (call $now_ns))"),
    );
    assert!(e.contains("import wasmfw.now_ns has type"), "{e}");
    let e = abi_error(&FILTER.replace("i32.const 16384)", "i32.const 100)"));
    assert!(e.contains("buffer at 1024 of 100 bytes"), "{e}");
    let e = abi_error(&FILTER.replace("i32.const 16384)", "i32.const 65000)"));
    assert!(e.contains("inside the 65536-byte memory"), "{e}");
}

#[test]
fn floats_and_garbage_are_invalid() {
    let e = abi_error(&with_item("(func (result f32) f32.const 1)"));
    assert!(e.starts_with("invalid module:"), "{e}");
    let wasm = wat::parse_str(FILTER).unwrap();
    for bad in [&b""[..], b"\0asm", b"hello world", &wasm[..wasm.len() / 2]] {
        let e = load(bad, LIMITS, b"", 1, env(), 1).err().unwrap();
        assert!(matches!(e, LoadError::Invalid(_)), "{e}");
    }
}

#[test]
fn declarations_after_init_are_refused() {
    let src = with_tail(
        "(if (i32.eq (local.get $b) (i32.const 0x01)) (then (return (i32.eq (call $counter_declare (i32.const 107) (i32.const 4)) (i32.const -4)))))
    (if (i32.eq (local.get $b) (i32.const 0x02)) (then (return (i32.eq (call $map_declare (i32.const 1) (i32.const 1) (i32.const 8) (i32.const 4) (i32.const 100) (i32.const 2)) (i32.const -4)))))",
    );
    let (f, mut v) = load_wat(&src, LIMITS, b"", 1).unwrap();
    assert_eq!(v[0].run(&[1], 1).verdict, Verdict::Drop);
    assert_eq!(v[0].run(&[2], 1).verdict, Verdict::Drop);
    let mut names = Vec::new();
    f.counters(|n, _| names.push(n.to_string()));
    assert_eq!(names, ["packets", "pass", "drop", "fault_trap", "fault_fuel", "audit_would_drop", "seen"]);
}

#[test]
fn host_calls_with_bad_pointers_trap() {
    let src = with_tail("(if (i32.eq (local.get $b) (i32.const 0x03)) (then (drop (call $map_lookup (global.get $map) (i32.const 65536) (i32.const 0)))))
    (if (i32.eq (local.get $b) (i32.const 0x04)) (then (call $log (i32.const 2) (i32.const -8) (i32.const 16))))
    (if (i32.eq (local.get $b) (i32.const 0x05)) (then (return (call $map_lookup (i32.const 9) (i32.const 0) (i32.const 0)))))");
    let (f, mut v) = load_wat(&src, Limits { on_fault: Verdict::Drop, ..LIMITS }, b"", 1).unwrap();
    assert_eq!(v[0].run(&[3], 1).fault, Some(Fault::Trap));
    assert_eq!(v[0].run(&[4], 1).fault, Some(Fault::Trap));
    // An unknown map id is an error code (-1, not a verdict: a trap).
    assert_eq!(v[0].run(&[5], 1).fault, Some(Fault::Trap));
    assert_eq!(f.counter("fault_trap"), Some(3));
}

/// Counts this thread's heap allocations (tests run on parallel threads).
pub(crate) mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    std::thread_local! {
        static COUNT: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    }

    pub struct Counting;

    // SAFETY: forwards to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| {
                let (n, max) = c.get();
                c.set((n + 1, max.max(layout.size())));
            });
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// (allocations, largest size) made by `f` on this thread.
    pub fn during(f: impl FnOnce()) -> (u64, usize) {
        COUNT.with(|c| c.set((0, 0)));
        f();
        COUNT.with(|c| c.get())
    }
}

#[global_allocator]
static COUNTING: counting::Counting = counting::Counting;

/// The packet path never allocates, except the error value wasmi boxes for
/// each fault (one small allocation, freed before `run` returns; the
/// kernel serves it from a per-CPU pool of 256-byte blocks, never from the
/// heap). Memory growth attempts and hash map churn allocate nothing.
#[test]
fn packet_path_allocations() {
    let (_, mut i) = one(LIMITS);
    let (n, _) = counting::during(|| {
        for k in 0..20_000u32 {
            i.run(&[0xf9, (k % 251) as u8], 1); // map lookup + update
            i.run(&[0xfb], 1); // memory.grow, refused
            i.run(&[0x00], 1);
        }
    });
    assert_eq!(n, 0, "allocations by plain runs, map churn and memory.grow");
    for (pkt, fault) in [(0xfe, Fault::Fuel), (0xfd, Fault::Trap), (0xfc, Fault::Trap)] {
        let (n, max) = counting::during(|| {
            for _ in 0..1000 {
                assert_eq!(i.run(&[pkt], 1).fault, Some(fault));
            }
        });
        assert!(n <= 1000 && max <= 128, "packet {pkt:#x}: {n} allocations for 1000 faults, largest {max} bytes");
    }
    // Hash map churn through the control path's delete, then the packet
    // path's inserts again: deletes leave no tombstones to rehash.
    let (f, mut v) = load_wat(
        &FILTER.replace(
            "(i32.const 8) (i32.const 4) (i32.const 100) (i32.const 4)",
            "(i32.const 8) (i32.const 200) (i32.const 100) (i32.const 4)",
        ),
        LIMITS,
        b"",
        1,
    )
    .unwrap();
    let (n, _) = counting::during(|| {
        for round in 0..200u32 {
            for k in 0..200u32 {
                v[0].run(&[0xf9, ((k + round) % 256) as u8], 1);
            }
            for k in 0..256u32 {
                f.map_delete("hits", &[k as u8]);
            }
        }
    });
    // map_delete looks the map up by name (an Arc clone, no allocation).
    assert_eq!(n, 0, "allocations during hash map churn");
}

/// The first packet that calls as deep as the engine allows allocates
/// nothing: the call stack was grown to the limit at load.
#[test]
fn deepest_call_chain_allocates_nothing_on_the_first_packet() {
    let src = r#"(module
      (memory (export "memory") 1)
      (func (export "wasmfw_abi_version") (result i32) i32.const 1)
      (func (export "wasmfw_buffer") (result i32) i32.const 1024)
      (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
      (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
      (func $rec (param $n i32) (result i32)
        (if (result i32) (i32.eqz (local.get $n))
          (then (i32.const 1))
          (else (call $rec (i32.sub (local.get $n) (i32.const 1))))))
      (func (export "wasmfw_filter") (param i32 i32) (result i32)
        (call $rec (i32.const 254))))"#; // 255 frames of $rec + wasmfw_filter = the limit
    let (_, mut v) = load_wat(src, LIMITS, b"", 1).unwrap();
    let (n, _) = counting::during(|| assert_eq!(v[0].run(&[0], 1).fault, None));
    assert_eq!(n, 0, "allocations by the first packet at the deepest allowed call chain");
}

/// A full 65,536-entry hash map comes out page by page, every entry once.
#[test]
fn full_hash_map_dumps_in_pages() {
    let src = FILTER.replace(
        "(i32.const 1) (i32.const 1) (i32.const 8) (i32.const 4) (i32.const 100) (i32.const 4)",
        "(i32.const 1) (i32.const 4) (i32.const 8) (i32.const 65536) (i32.const 100) (i32.const 4)",
    );
    let (f, _) = load_wat(&src, LIMITS, b"", 1).unwrap();
    for k in 0..65_536u32 {
        assert_eq!(f.map_update("hits", &k.to_le_bytes(), &u64::from(k).to_le_bytes()), 0);
    }
    assert_eq!(f.map_update("hits", &65_536u32.to_le_bytes(), &0u64.to_le_bytes()), abi::E_FULL);
    let (mut seen, mut cursor, mut pages) = (vec![false; 65_536], 0u64, 0);
    loop {
        let mut room = 1000; // entries per page
        let next = f
            .map_dump("hits", cursor, |_, k, v| {
                if room == 0 {
                    return false;
                }
                room -= 1;
                let k = u32::from_le_bytes(k.try_into().unwrap());
                assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), u64::from(k));
                assert!(!seen[k as usize], "key {k} twice");
                seen[k as usize] = true;
                true
            })
            .unwrap();
        pages += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(pages, 66);
    assert_eq!(f.map_dump("nope", 0, |_, _, _| true), None);
}

#[test]
fn builtin_and_host_counter_names_are_reserved() {
    // Init succeeds only if declaring each reserved name gives E_EXISTS.
    let src = r#"
    (module
      (import "wasmfw" "counter_declare" (func $counter_declare (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "packetslog_dropped")
      (func (export "wasmfw_abi_version") (result i32) i32.const 1)
      (func (export "wasmfw_buffer") (result i32) i32.const 1024)
      (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
      (func (export "wasmfw_init") (param i32) (result i32)
        (if (i32.ne (call $counter_declare (i32.const 100) (i32.const 7)) (i32.const -5)) (then (return (i32.const -1))))
        (if (i32.ne (call $counter_declare (i32.const 107) (i32.const 11)) (i32.const -5)) (then (return (i32.const -2))))
        i32.const 0)
      (func (export "wasmfw_filter") (param i32 i32) (result i32) i32.const 0))
    "#;
    assert!(load_wat(src, LIMITS, b"", 1).is_ok());
}
