//! Filter ABI v1: what a wasmfw filter module exports and imports.
//!
//! This crate is the single source of truth shared by the filter SDK
//! (wasm32v1-none), the engine (kernel and userspace) and `wasmfw`. It holds
//! only numbers and names; `docs/filter-abi.md` explains them.
#![no_std]

/// ABI version a host accepts; returned by the export [`EXPORT_ABI_VERSION`].
pub const ABI_VERSION: u32 = 1;

/// Module name of every host import.
pub const IMPORT_MODULE: &str = "wasmfw";

// ---- exports a filter must provide ----------------------------------------
/// `() -> i32`: the ABI version the filter was built for.
pub const EXPORT_ABI_VERSION: &str = "wasmfw_abi_version";
/// `() -> i32`: address of the filter's I/O buffer in its linear memory.
pub const EXPORT_BUFFER: &str = "wasmfw_buffer";
/// `() -> i32`: size in bytes of that buffer.
pub const EXPORT_BUFFER_LEN: &str = "wasmfw_buffer_len";
/// `(config_len: i32) -> i32`: called once per instance with the
/// configuration in the buffer; 0 = ok, negative = rejected.
pub const EXPORT_INIT: &str = "wasmfw_init";
/// `(packet_len: i32, link: i32) -> i32`: called per packet with the packet
/// in the buffer; returns a verdict.
pub const EXPORT_FILTER: &str = "wasmfw_filter";
/// The filter's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Optional mutable i32 global: the shadow stack pointer. A trap unwinds
/// without restoring it, so hosts reset every exported mutable global to
/// its post-init value after a fault; exporting it keeps faults from
/// leaking stack.
pub const EXPORT_STACK_POINTER: &str = "__stack_pointer";

// ---- imports a filter may use (module "wasmfw") ----------------------------
/// `(kind, key_size, value_size, max_entries, name_ptr, name_len) -> i32` id or error. Init only.
pub const IMPORT_MAP_DECLARE: &str = "map_declare";
/// `(map, key_ptr, value_ptr) -> i32`: 1 found (value copied out), 0 absent, <0 error.
pub const IMPORT_MAP_LOOKUP: &str = "map_lookup";
/// `(map, key_ptr, value_ptr) -> i32`: 0 ok, <0 error.
pub const IMPORT_MAP_UPDATE: &str = "map_update";
/// `(map, key_ptr) -> i32`: 1 deleted, 0 absent, <0 error.
pub const IMPORT_MAP_DELETE: &str = "map_delete";
/// `(name_ptr, name_len) -> i32` id or error. Init only.
pub const IMPORT_COUNTER_DECLARE: &str = "counter_declare";
/// `(counter, delta: i64)`.
pub const IMPORT_COUNTER_ADD: &str = "counter_add";
/// `() -> i64`: monotonic nanoseconds (capture timestamps under replay).
pub const IMPORT_NOW_NS: &str = "now_ns";
/// `(level, ptr, len)`: one log line.
pub const IMPORT_LOG: &str = "log";

// ---- values ---------------------------------------------------------------
/// Verdicts returned by `wasmfw_filter`. Any other value is a fault.
pub const VERDICT_PASS: i32 = 0;
pub const VERDICT_DROP: i32 = 1;

/// Link type of the packet handed to `wasmfw_filter`.
/// Starts with an Ethernet header (XDP, pcap DLT_EN10MB).
pub const LINK_ETHERNET: i32 = 1;
/// Starts with an IPv4 or IPv6 header (netfilter, pcap DLT_RAW).
pub const LINK_RAW_IP: i32 = 2;

/// Map kinds for `map_declare`.
/// Hash map shared by all CPUs (updates are serialised by the host).
pub const MAP_HASH: i32 = 1;
/// Array with one private copy per CPU; keys are little-endian u32 indices.
pub const MAP_PERCPU_ARRAY: i32 = 2;

/// Log levels.
pub const LOG_ERROR: i32 = 0;
pub const LOG_WARN: i32 = 1;
pub const LOG_INFO: i32 = 2;
pub const LOG_DEBUG: i32 = 3;

/// Error codes returned (negated) by host functions and `wasmfw_init`.
pub const E_INVAL: i32 = -1;
pub const E_NOENT: i32 = -2;
pub const E_FULL: i32 = -3;
pub const E_PERM: i32 = -4;
pub const E_EXISTS: i32 = -5;

// ---- limits every host enforces ------------------------------------------
pub const MAX_MAPS: usize = 16;
pub const MAX_COUNTERS: usize = 32;
pub const MAX_NAME_LEN: usize = 32;
pub const MAX_KEY_SIZE: usize = 64;
pub const MAX_VALUE_SIZE: usize = 256;
pub const MAX_HASH_ENTRIES: u32 = 65_536;
pub const MAX_ARRAY_ENTRIES: u32 = 4_096;
pub const MAX_LOG_LEN: usize = 256;
/// Largest configuration blob a host passes to `wasmfw_init`.
pub const MAX_CONFIG_LEN: usize = 8_192;
/// Fuel a host grants `wasmfw_init` (it parses config, not packets).
pub const INIT_FUEL: u64 = 10_000_000;
/// Smallest I/O buffer a filter may export: enough for a full Ethernet frame.
pub const MIN_BUFFER_LEN: u32 = 1_518;

/// The single-line `key=value` encoding of filter parameters: one pair per
/// line, lists joined by this separator.
pub const CONFIG_LIST_SEP: u8 = b',';
