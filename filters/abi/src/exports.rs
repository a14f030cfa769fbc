//! Exports a filter must provide.

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
