//! The fuel-cost test filters, as WAT: each `wasmfw_filter` loops forever
//! on one host function (or on bulk memory), so only fuel stops it. One
//! definition for two users: the engine's tests (`tests.rs`: each ends in
//! `fault_fuel`, charged as `fuel.rs` says) and `cargo xtask
//! build-test-filters` (xtask/src/testfilters.rs), which writes them to
//! target/test-filters/ for kmod/tests/t_fuelcost.sh (the time of the
//! worst packet in the kernel). Unused by the engine itself.
//!
//! Every loop counts its rounds in the i32 at address 0 (memory persists
//! from packet to packet), so a test can tell how many host calls a
//! packet's fuel bought. Text only: no dependency, usable from no_std.

/// Where the loop filters keep their round counter.
pub const ROUNDS_ADDR: usize = 0;
/// Key and value sizes of the map loops: the ABI's largest (64, 256).
pub const MAP_KEY: usize = 64;
pub const MAP_VALUE: usize = 256;
/// Bytes each `log` call of `fuel_log.wasm` logs (the ABI's longest line).
pub const LOG_BYTES: usize = 256;
/// Linear memory of `fuel_bulk_big.wasm` (256 pages, 16 MiB): its fills
/// and copies of 1 MiB chunks run out of the CPU's caches.
pub const BIG_MEMORY_BYTES: u64 = 16 << 20;

/// Every `wasmfw` host function, imported under its own name (`$log`...).
pub const HOST_IMPORTS: &str = r#"  (import "wasmfw" "map_declare" (func $map_declare (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasmfw" "map_lookup" (func $map_lookup (param i32 i32 i32) (result i32)))
  (import "wasmfw" "map_update" (func $map_update (param i32 i32 i32) (result i32)))
  (import "wasmfw" "map_delete" (func $map_delete (param i32 i32) (result i32)))
  (import "wasmfw" "counter_declare" (func $counter_declare (param i32 i32) (result i32)))
  (import "wasmfw" "counter_add" (func $counter_add (param i32 i64)))
  (import "wasmfw" "now_ns" (func $now_ns (result i64)))
  (import "wasmfw" "log" (func $log (param i32 i32 i32)))"#;

/// The skeleton of every loop filter: the ABI v1 exports, the host
/// imports, `pages` of memory, `init` (returns 0 unless it failed) and the
/// loop's body (`br $again` closes it).
fn module(pages: u32, init: &str, body: &str) -> alloc::string::String {
    alloc::format!(
        r#"(module
{HOST_IMPORTS}
  (memory (export "memory") {pages})
  (global $id (mut i32) (i32.const -1))
  (data (i32.const 256) "fuelmaprounds")
  (func (export "wasmfw_abi_version") (result i32) i32.const 1)
  (func (export "wasmfw_buffer") (result i32) i32.const 1024)
  (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
  (func (export "wasmfw_init") (param i32) (result i32) {init})
  (func (export "wasmfw_filter") (param i32 i32) (result i32)
    (loop $again
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
      {body})
    (i32.const 0)))"#
    )
}

/// Declares the 64-byte-key, 256-byte-value hash map `fuelmap` as `$id`.
const DECLARE_MAP: &str = "(global.set $id (call $map_declare (i32.const 1) (i32.const 64) (i32.const 256) \
     (i32.const 4096) (i32.const 256) (i32.const 7))) (i32.shr_s (global.get $id) (i32.const 31))";
/// Declares the counter `rounds` as `$id`.
const DECLARE_COUNTER: &str =
    "(global.set $id (call $counter_declare (i32.const 263) (i32.const 6))) (i32.shr_s (global.get $id) (i32.const 31))";
/// The map loops' key at 4096 takes the round number mod 1024 in its first
/// bytes: 1024 distinct keys, all in the map after the first packet.
const KEY_FROM_ROUND: &str = "(i32.store (i32.const 4096) (i32.and (i32.load (i32.const 0)) (i32.const 1023)))";

/// `(file name, WAT)` of every fuel-cost loop filter.
pub fn all() -> [(&'static str, alloc::string::String); 7] {
    [
        // log: 256-byte info lines.
        (
            "fuel_log.wasm",
            module(1, "(i32.const 0)", "(call $log (i32.const 2) (i32.const 4096) (i32.const 256)) (br $again)"),
        ),
        // map_update then map_lookup, 64-byte keys and 256-byte values.
        (
            "fuel_map.wasm",
            module(
                1,
                DECLARE_MAP,
                &alloc::format!(
                    "{KEY_FROM_ROUND} (drop (call $map_update (global.get $id) (i32.const 4096) (i32.const 8192))) \
                     (drop (call $map_lookup (global.get $id) (i32.const 4096) (i32.const 12288))) (br $again)"
                ),
            ),
        ),
        // map_delete of keys not in the map (64-byte keys hashed and looked up).
        (
            "fuel_map_delete.wasm",
            module(
                1,
                DECLARE_MAP,
                &alloc::format!(
                    "{KEY_FROM_ROUND} (drop (call $map_delete (global.get $id) (i32.const 4096))) (br $again)"
                ),
            ),
        ),
        (
            "fuel_counter.wasm",
            module(1, DECLARE_COUNTER, "(call $counter_add (global.get $id) (i64.const 1)) (br $again)"),
        ),
        ("fuel_now.wasm", module(1, "(i32.const 0)", "(drop (call $now_ns)) (br $again)")),
        // memory.fill of the whole page but the counter, then memory.copy of its upper half down.
        (
            "fuel_bulk.wasm",
            module(
                1,
                "(i32.const 0)",
                "(memory.fill (i32.const 16) (i32.const 0x5a) (i32.const 65520)) \
                 (memory.copy (i32.const 16) (i32.const 32784) (i32.const 32752)) (br $again)",
            ),
        ),
        // 1 MiB fills and copies walking a 16 MiB memory: out of cache.
        (
            "fuel_bulk_big.wasm",
            module(
                256,
                "(i32.const 0)",
                "(memory.fill (i32.add (i32.const 16) (i32.shl (i32.and (i32.load (i32.const 0)) (i32.const 15)) \
                 (i32.const 20))) (i32.const 0x5a) (i32.const 1048560)) \
                 (memory.copy (i32.add (i32.const 16) (i32.shl (i32.and (i32.add (i32.load (i32.const 0)) \
                 (i32.const 8)) (i32.const 15)) (i32.const 20))) (i32.add (i32.const 16) (i32.shl (i32.and \
                 (i32.load (i32.const 0)) (i32.const 15)) (i32.const 20))) (i32.const 1048560)) (br $again)",
            ),
        ),
    ]
}
