//! What a filter's fuel pays for besides its own instructions: host calls
//! and bulk memory, and the per-packet cap on log records. One table, the
//! same in the kernel and in `wasmfw replay` (this crate is both).
//!
//! wasmi charges about one fuel unit per Wasm instruction; in the UML guest
//! (native speed) a plain loop costs 1.0-1.5 ns per unit, so
//! `WASMFW_MAX_FUEL` (10^6) stands for ~1-1.5 ms per packet. A host call
//! is one instruction to wasmi but does far more (a lock shared by every
//! CPU, a clock read, a copy or hash of up to 320 bytes), so each host
//! function charges fuel for that work from inside the call, before doing
//! it: a filter that spends all its fuel on host calls or on bulk memory
//! then costs about as much time per packet as one that spends it on
//! arithmetic.
//!
//! How the costs were derived: kmod/tests/t_fuelcost.sh times each loop
//! filter of `fuel_filters.rs` with `wasmfw test-run` in UML at
//! `WASMFW_MAX_FUEL` (2026-12-04, a loaded 2-core Intel Xeon host); the
//! time of one round, less its ~10 instructions at the plain loop's rate,
//! is the host call's; each cost below is that in ns, at ~1 ns per unit
//! (the plain loop's fastest rate, so the costs err high). The measured
//! worst packets with these costs are in docs/safety.md.

/// Fixed cost of any host call: wasmi's call into the host and back, the
/// argument and pointer checks. `counter_add` (nothing else) took ~23 ns.
pub const FUEL_HOST_CALL: u64 = 20;
/// Taking and releasing a lock shared with other CPUs and process context
/// (a map's `spinlock_t`; the log ring's, with interrupts off): ~10 ns
/// uncontended (`map_delete` of an absent 64-byte key took ~37 ns: the
/// call, the lock, the key hashed).
pub const FUEL_LOCK: u64 = 10;
/// One read of the monotonic clock (`ktime_get_ns`): `now_ns` took ~64 ns,
/// the call included.
pub const FUEL_CLOCK: u64 = 40;
/// Bytes a host call copies, hashes or compares per fuel unit (a map's key
/// and value, `log`'s message): `map_update`/`map_lookup` with a 64-byte
/// key and a 256-byte value took ~105 ns each (issue 16: 18.2 ms a packet
/// with free calls), i.e. ~0.25 ns a byte after the call and the lock.
pub const HOST_BYTES_PER_FUEL: u64 = 4;

/// Bytes `memory.fill`, `memory.copy`, `memory.init` (and the table
/// operations, by element size) move per fuel unit, on top of the
/// instruction's own unit: wasmi's `bytes_copied_per_fuel` (its default, 64,
/// let fills at the maximum fuel take 3.2 ms a packet, issue 16). Within a
/// 64 KiB memory they move a byte in ~0.02 ns; fills and copies of 1 MiB
/// over a 16 MiB memory (out of the caches) in ~0.13 ns: 8 bytes ~1 ns.
pub const BULK_BYTES_PER_FUEL: u32 = 8;

/// Log records one packet may write; later `log` calls in the same run
/// write nothing and are counted in the filter's `log_dropped`. They are
/// still charged in full, so the fuel a packet uses does not depend on the
/// cap. Lines logged by `wasmfw_init` are not capped (its fuel bounds them).
pub const MAX_LOG_RECORDS_PER_PACKET: u32 = 16;

/// Fuel for a host call that copies, hashes or compares `bytes` bytes, on
/// top of the fixed costs `fixed`.
pub(crate) const fn host_cost(fixed: u64, bytes: usize) -> u64 {
    FUEL_HOST_CALL + fixed + (bytes as u64).div_ceil(HOST_BYTES_PER_FUEL)
}

/// `map_lookup`: lock, key copied in, hashed and compared, value copied out.
pub const fn map_lookup_cost(key_size: usize, value_size: usize) -> u64 {
    host_cost(FUEL_LOCK, key_size + value_size)
}
/// `map_update`: lock, key hashed and compared, key and value copied in.
pub const fn map_update_cost(key_size: usize, value_size: usize) -> u64 {
    host_cost(FUEL_LOCK, key_size + value_size)
}
/// `map_delete`: lock, key hashed and compared.
pub const fn map_delete_cost(key_size: usize) -> u64 {
    host_cost(FUEL_LOCK, key_size)
}
/// `counter_add`: one per-CPU add.
pub const COUNTER_ADD_COST: u64 = FUEL_HOST_CALL;
/// `now_ns`: one clock read.
pub const NOW_NS_COST: u64 = FUEL_HOST_CALL + FUEL_CLOCK;
/// `log` of `len` bytes (after truncation to `MAX_LOG_LEN`): the ring's
/// lock, a clock read, the message copied.
pub const fn log_cost(len: usize) -> u64 {
    host_cost(FUEL_LOCK + FUEL_CLOCK, len)
}
/// `map_declare` and `counter_declare` (only in `wasmfw_init`): a call and
/// the name's bytes; the map's allocation is init's, bounded by the ABI's
/// map limits.
pub const fn declare_cost(name_len: usize) -> u64 {
    host_cost(0, name_len)
}
