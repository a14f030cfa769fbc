//! The records and numbers of the engine's C ABI (`include/wasmfw_engine.h`
//! is their C twin; `kmod/engine/tests/ffi_layout.rs` checks the two agree).
//! No dependencies: engine-ffi, the module's Rust (`wasmfw_engine_abi.rs` in
//! its build) and the layout test include this file.

use core::ffi::c_int;

/// Limits and placement of a filter to load (`struct wf_load_args`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WfLoadArgs {
    pub fuel: u64,
    pub memory_limit: u64,
    /// A `Verdict`'s ABI value (`filters/abi`; checked by the module).
    pub on_fault: u32,
    /// Instances to create (nr_cpu_ids).
    pub slots: u32,
    pub seed: u64,
    /// The filter's id, kept in its log ring to name it in the kernel log.
    pub cookie: u64,
    /// Non-zero: audit mode (`Limits::audit`).
    pub audit: u32,
    pub pad: u32,
}

// The counter and map records wf_counters/wf_maps write are the ioctl
// interface's own structs (wasmfw-uapi's `Counter` and `MapInfo`), which
// the module copies out as they are: not redefined here.

/// wf_load's error code (`*error`): loaded.
pub const WF_LOAD_OK: c_int = 0;
/// Not a valid Wasm module for this engine (`LoadError::Invalid`).
pub const WF_LOAD_INVALID: c_int = 1;
/// A valid module that does not follow the filter ABI (`LoadError::Abi`).
pub const WF_LOAD_ABI: c_int = 2;
/// The filter's `wasmfw_init` rejected its configuration (`LoadError::Init`).
pub const WF_LOAD_INIT: c_int = 3;
/// Out of memory (`LoadError::NoMemory`, or the host's own allocations).
pub const WF_LOAD_NO_MEMORY: c_int = 4;
/// The host abandoned the load after an engine panic that was not a failed
/// allocation (an engine bug, caught all the same).
pub const WF_LOAD_ENGINE_BUG: c_int = 5;

/// Every constant above, by its C name, for the layout test.
pub const CONSTANTS: [(&str, i64); 6] = [
    ("WF_LOAD_OK", WF_LOAD_OK as i64),
    ("WF_LOAD_INVALID", WF_LOAD_INVALID as i64),
    ("WF_LOAD_ABI", WF_LOAD_ABI as i64),
    ("WF_LOAD_INIT", WF_LOAD_INIT as i64),
    ("WF_LOAD_NO_MEMORY", WF_LOAD_NO_MEMORY as i64),
    ("WF_LOAD_ENGINE_BUG", WF_LOAD_ENGINE_BUG as i64),
];
