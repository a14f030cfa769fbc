//! Values: link types, map kinds, log levels and error codes (verdicts:
//! `verdict.rs`).

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
