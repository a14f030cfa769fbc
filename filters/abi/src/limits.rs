//! Limits every host enforces.

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
