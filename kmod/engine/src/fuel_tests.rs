//! Tests of what host calls and bulk memory cost in fuel (`fuel.rs`): the
//! loop filters of `fuel_filters.rs` end in `fault_fuel` having paid for
//! every call as the table says, each host function charges exactly its
//! cost, a budget too short for a call stops it before it acts, and the
//! per-packet log cap.

use super::fuel::*;
use super::fuel_filters::HOST_IMPORTS;
use super::*;
use alloc::format;
use std::sync::Mutex;

/// `WASMFW_MAX_FUEL` (kmod/uapi), the most fuel a policy may give a packet.
const MAX_FUEL: u64 = 1_000_000;

#[derive(Default)]
struct CountingEnv {
    now_calls: AtomicU64,
    logs: Mutex<Vec<Vec<u8>>>,
    capped: AtomicU64,
    /// Count log lines without keeping them (no allocation in the env).
    quiet: std::sync::atomic::AtomicBool,
    quiet_logs: AtomicU64,
}

impl Env for CountingEnv {
    fn now_ns(&self) -> u64 {
        self.now_calls.fetch_add(1, Relaxed)
    }
    fn log(&self, _level: i32, msg: &[u8]) {
        if self.quiet.load(Relaxed) {
            self.quiet_logs.fetch_add(1, Relaxed);
        } else {
            self.logs.lock().unwrap().push(msg.to_vec());
        }
    }
    fn log_capped(&self, records: u64) {
        self.capped.fetch_add(records, Relaxed);
    }
}

fn load_with(wat: &str, fuel: u64) -> (Filter, Instance, Arc<CountingEnv>) {
    let env = Arc::new(CountingEnv::default());
    let wasm = wat::parse_str(wat).expect("test WAT parses");
    let limits =
        Limits { fuel, memory_limit: 2 * fuel_filters::BIG_MEMORY_BYTES, on_fault: Verdict::Drop, audit: false };
    let (f, mut v) = load(&wasm, limits, b"", 1, env.clone(), 7).expect("loads");
    (f, v.pop().unwrap(), env)
}

fn rounds(i: &Instance) -> u64 {
    let a = fuel_filters::ROUNDS_ADDR;
    u64::from(u32::from_le_bytes(i.memory.data(&i.store)[a..a + 4].try_into().unwrap()))
}

/// Fuel one round of each loop filter pays for its host calls or bulk
/// memory, as fuel.rs and wasmi's `bytes_copied_per_fuel` say.
fn round_cost(name: &str) -> u64 {
    let (k, v) = (fuel_filters::MAP_KEY, fuel_filters::MAP_VALUE);
    let bulk = |fill: u64, copy: u64| (fill + copy) / u64::from(BULK_BYTES_PER_FUEL);
    match name {
        "fuel_log.wasm" => log_cost(fuel_filters::LOG_BYTES),
        "fuel_map.wasm" => map_update_cost(k, v) + map_lookup_cost(k, v),
        "fuel_map_delete.wasm" => map_delete_cost(k),
        "fuel_counter.wasm" => COUNTER_ADD_COST,
        "fuel_now.wasm" => NOW_NS_COST,
        "fuel_bulk.wasm" => bulk(65520, 32752),
        "fuel_bulk_big.wasm" => bulk(1_048_560, 1_048_560),
        _ => panic!("no cost for {name}"),
    }
}

/// At most this much fuel per round goes to the loops' own instructions
/// (the round counter, arguments, the branch).
const ROUND_INSTRUCTIONS_MAX: u64 = 24;

/// Stack of the thread that runs the loops: unoptimised, this crate's
/// host-function trampolines keep wasmi's handlers from chaining by tail
/// calls, so a debug build's stack grows with every host call of a run
/// (~55,000 `counter_add` calls at the maximum fuel). Optimised builds
/// (the kernel's, `--release`) run them in constant stack.
const LOOP_TEST_STACK_BYTES: usize = 512 << 20;

#[test]
fn each_loop_filter_ends_in_fault_fuel_having_paid_for_every_call() {
    let t = std::thread::Builder::new().stack_size(LOOP_TEST_STACK_BYTES).spawn(check_loop_filters).unwrap();
    if let Err(panic) = t.join() {
        std::panic::resume_unwind(panic);
    }
}

fn check_loop_filters() {
    for (name, wat) in fuel_filters::all() {
        let (f, mut i, env) = load_with(&wat, MAX_FUEL);
        let cost = round_cost(name);
        for packet in 1..=2u64 {
            let before = rounds(&i);
            let o = i.run(&[0x45; 64], 2);
            assert_eq!((o.fault, o.verdict, o.fuel_used), (Some(Fault::Fuel), Verdict::Drop, MAX_FUEL), "{name}");
            assert_eq!(f.counter("fault_fuel"), Some(packet), "{name}");
            // The round that ran out is counted if it got past the counter.
            let counted = rounds(&i) - before;
            assert!(counted >= 1, "{name}: no round");
            assert!(
                (counted - 1) * cost <= MAX_FUEL && MAX_FUEL < (counted + 1) * (cost + ROUND_INSTRUCTIONS_MAX),
                "{name}: {counted} rounds in {MAX_FUEL} fuel at {cost} per round"
            );
        }
        match name {
            "fuel_log.wasm" => {
                // 16 records a packet reach the host; every other call is counted as capped.
                let logs = env.logs.lock().unwrap();
                assert_eq!(logs.len() as u64, 2 * u64::from(MAX_LOG_RECORDS_PER_PACKET));
                assert!(logs.iter().all(|l| l.len() == fuel_filters::LOG_BYTES));
                let calls = logs.len() as u64 + env.capped.load(Relaxed);
                assert!(calls + 2 >= rounds(&i) && calls <= rounds(&i), "{calls} log calls, {} rounds", rounds(&i));
            }
            "fuel_counter.wasm" => {
                let n = f.counter("rounds").unwrap();
                assert!(n + 2 >= rounds(&i) && n <= rounds(&i), "counter {n}, {} rounds", rounds(&i));
            }
            "fuel_now.wasm" => {
                let n = env.now_calls.load(Relaxed);
                assert!(n + 2 >= rounds(&i) && n <= rounds(&i), "{n} clock reads, {} rounds", rounds(&i));
            }
            "fuel_map.wasm" => {
                let mut entries = 0;
                assert!(f.map_for_each("fuelmap", |_, _, _| entries += 1));
                assert_eq!(entries, 1024, "the loop's 1024 keys");
            }
            _ => {}
        }
    }
}

/// A filter whose init declares the 64/256 map and a counter, and whose
/// `wasmfw_filter` runs `call` `n` times in straight-line code.
fn calls_filter(call: &str, n: usize) -> String {
    let body = call.repeat(n);
    format!(
        r#"(module
{HOST_IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 256) "fuelmaprounds")
  (func (export "wasmfw_abi_version") (result i32) i32.const 1)
  (func (export "wasmfw_buffer") (result i32) i32.const 1024)
  (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
  (func (export "wasmfw_init") (param i32) (result i32)
    (drop (call $map_declare (i32.const 1) (i32.const 64) (i32.const 256) (i32.const 64) (i32.const 256) (i32.const 7)))
    (drop (call $counter_declare (i32.const 263) (i32.const 6)))
    (i32.const 0))
  (func (export "wasmfw_filter") (param i32 i32) (result i32)
    {body}
    (i32.const 0)))"#
    )
}

#[test]
fn each_host_function_charges_exactly_its_cost() {
    let (k, v) = (fuel_filters::MAP_KEY, fuel_filters::MAP_VALUE);
    // (call, fuel of its Wasm instructions: one per const and call, drop is free, host cost)
    let cases: [(&str, u64, u64); 8] = [
        ("(call $log (i32.const 2) (i32.const 4096) (i32.const 256))", 4, log_cost(256)),
        ("(call $log (i32.const 2) (i32.const 4096) (i32.const 1))", 4, log_cost(1)),
        // A length past MAX_LOG_LEN is truncated, and charged as truncated.
        ("(call $log (i32.const 2) (i32.const 4096) (i32.const 9999))", 4, log_cost(abi::MAX_LOG_LEN)),
        ("(drop (call $map_update (i32.const 0) (i32.const 4096) (i32.const 8192)))", 4, map_update_cost(k, v)),
        ("(drop (call $map_lookup (i32.const 0) (i32.const 4096) (i32.const 8192)))", 4, map_lookup_cost(k, v)),
        ("(drop (call $map_delete (i32.const 0) (i32.const 4096)))", 3, map_delete_cost(k)),
        ("(call $counter_add (i32.const 0) (i64.const 1))", 3, COUNTER_ADD_COST),
        ("(drop (call $now_ns))", 1, NOW_NS_COST),
    ];
    for (call, ops, cost) in cases {
        let used = |n| {
            let (_, mut i, _) = load_with(&calls_filter(call, n), MAX_FUEL);
            let o = i.run(&[0; 64], 2);
            assert_eq!(o.fault, None, "{call}");
            o.fuel_used
        };
        assert_eq!(used(2) - used(1), ops + cost, "{call}: one more call");
    }
    // A map id that does not exist pays the fixed cost only.
    let call = "(drop (call $map_lookup (i32.const 9) (i32.const 4096) (i32.const 8192)))";
    let (_, mut a, _) = load_with(&calls_filter(call, 1), MAX_FUEL);
    let (_, mut b, _) = load_with(&calls_filter(call, 2), MAX_FUEL);
    assert_eq!(b.run(&[0; 64], 2).fuel_used - a.run(&[0; 64], 2).fuel_used, 4 + FUEL_HOST_CALL);
}

#[test]
fn a_call_the_budget_cannot_pay_is_a_fuel_fault_and_does_nothing() {
    let call = "(call $log (i32.const 2) (i32.const 4096) (i32.const 256))";
    let (_, mut i, env) = load_with(&calls_filter(call, 1), MAX_FUEL);
    let enough = i.run(&[0; 64], 2).fuel_used;
    assert_eq!(env.logs.lock().unwrap().len(), 1);
    let (f, mut short, env) = load_with(&calls_filter(call, 1), enough - 1);
    let o = short.run(&[0; 64], 2);
    assert_eq!((o.fault, o.fuel_used), (Some(Fault::Fuel), enough - 1));
    assert_eq!(f.counter("fault_fuel"), Some(1));
    assert!(env.logs.lock().unwrap().is_empty(), "the unpaid log call wrote a record");
}

#[test]
fn log_records_are_capped_per_packet_and_the_rest_counted() {
    let cap = MAX_LOG_RECORDS_PER_PACKET as usize;
    let call = "(call $log (i32.const 2) (i32.const 4096) (i32.const 8))";
    let (_, mut i, env) = load_with(&calls_filter(call, cap + 5), MAX_FUEL);
    for packet in 1..=3 {
        assert_eq!(i.run(&[0; 64], 2).fault, None);
        assert_eq!(env.logs.lock().unwrap().len(), packet * cap, "records after packet {packet}");
        assert_eq!(env.capped.load(Relaxed), packet as u64 * 5, "capped after packet {packet}");
    }
    // Under the cap nothing is counted.
    let (_, mut j, env) = load_with(&calls_filter(call, cap), MAX_FUEL);
    j.run(&[0; 64], 2);
    assert_eq!((env.logs.lock().unwrap().len(), env.capped.load(Relaxed)), (cap, 0));
}

#[test]
fn bulk_memory_pays_per_byte() {
    // memory.fill of n bytes: its 1 + the consts (3), plus n / BULK_BYTES_PER_FUEL.
    let fill = |n: u32| {
        let wat = calls_filter(&format!("(memory.fill (i32.const 16) (i32.const 1) (i32.const {n}))"), 1);
        let (_, mut i, _) = load_with(&wat, MAX_FUEL);
        i.run(&[0; 64], 2).fuel_used
    };
    assert_eq!(fill(65_000) - fill(0), 65_000 / u64::from(BULK_BYTES_PER_FUEL));
}

#[test]
fn host_call_fuel_faults_and_capped_logs_allocate_at_most_the_trap_error() {
    // The loops end in a host call's OutOfFuel (or wasmi's): one boxed
    // error per fault, from the kernel's per-CPU pool (<= 128 bytes).
    let t = std::thread::Builder::new()
        .stack_size(LOOP_TEST_STACK_BYTES)
        .spawn(|| {
            for (name, wat) in fuel_filters::all() {
                let (_, mut i, env) = load_with(&wat, MAX_FUEL);
                env.quiet.store(true, Relaxed);
                let (n, max) = tests::counting::during(|| {
                    for _ in 0..3 {
                        assert_eq!(i.run(&[0; 64], 2).fault, Some(Fault::Fuel), "{name}");
                    }
                });
                assert!(n <= 3 && max <= 128, "{name}: {n} allocations for 3 fuel faults, largest {max} bytes");
            }
        })
        .unwrap();
    if let Err(panic) = t.join() {
        std::panic::resume_unwind(panic);
    }
}
