//! The C side of the module as Rust sees it: the engine object's `wf_*`
//! calls (kmod/engine-ffi, `wasmfw_engine.h`; its records come from
//! `wasmfw_engine_abi.rs`) and the module's C files' (`wasmfw_*.h`), with
//! the opaque types they pass around.

use core::ffi::{c_char, c_int, c_long, c_void};

pub(crate) use crate::engine_abi::{WfLoadArgs, WF_LOAD_NO_MEMORY};
use crate::uapi::{Counter, LogRecord, MapInfo};

/// The engine's loaded filter (kmod/engine-ffi); opaque here.
#[repr(C)]
pub(crate) struct WfFilter {
    _p: [u8; 0],
}

/// A netfilter attachment (wasmfw_nf.c); opaque here.
#[repr(C)]
pub(crate) struct WasmfwNf {
    _p: [u8; 0],
}

/// How a log read moved its ring's read mark (`struct wasmfw_logring_undo`,
/// wasmfw_log.h), so a read whose copy out failed can be taken back.
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)] // the fields are written and read by the C side only
pub(crate) struct LogringUndo {
    prev_read_seq: u64,
    read_seq: u64,
    oldest: u64,
}

extern "C" {
    pub(crate) fn wasmfw_glue_init() -> c_int;
    pub(crate) fn wasmfw_glue_exit();
    /// wf_load on the load stack (wasmfw_load.c); `error` gets a `WF_LOAD_*` code.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn wasmfw_load_on_stack(
        wasm: *const u8,
        wasm_len: usize,
        cfg: *const u8,
        cfg_len: usize,
        args: *const WfLoadArgs,
        err: *mut c_char,
        err_cap: usize,
        error: *mut c_int,
        stack_used: *mut u32,
    ) -> *mut WfFilter;
    pub(crate) fn wasmfw_nr_cpu_ids() -> u32;
    pub(crate) fn wasmfw_random_u64() -> u64;
    pub(crate) fn wasmfw_glue_test_run(
        f: *mut WfFilter,
        pkt: *const u8,
        len: u32,
        link: c_int,
        repeat: u32,
        ns: *mut u64,
        ran: *mut u32,
    ) -> c_int;
    pub(crate) fn wasmfw_ctl_lock() -> c_int;
    pub(crate) fn wasmfw_ctl_unlock();
    pub(crate) fn wasmfw_ctl_lock_uninterruptible();
    pub(crate) fn wasmfw_load_lock() -> c_int;
    pub(crate) fn wasmfw_load_unlock();
    pub(crate) fn wasmfw_signal_pending() -> bool;
    pub(crate) fn wasmfw_cond_resched();
    pub(crate) fn wasmfw_current_net() -> *mut c_void;
    pub(crate) fn wasmfw_log_refused(msg: *const u8, len: usize);
    pub(crate) fn wasmfw_nf_attach(ifname: *const c_char, f: *mut WfFilter, err: *mut c_int) -> *mut WasmfwNf;
    pub(crate) fn wasmfw_nf_swap(att: *mut WasmfwNf, f: *mut WfFilter) -> *mut WfFilter;
    pub(crate) fn wasmfw_nf_detach(att: *mut WasmfwNf) -> *mut WfFilter;
    pub(crate) fn wasmfw_nf_matches(att: *const WasmfwNf, ifname: *const c_char) -> bool;
    pub(crate) fn wasmfw_nf_ifindex(att: *const WasmfwNf) -> c_int;
    pub(crate) fn wasmfw_nf_netns_ino(att: *const WasmfwNf) -> u64;
    pub(crate) fn wasmfw_current_netns_ino() -> u64;
    pub(crate) fn wasmfw_xdp_attach(
        ifname: *const c_char,
        f: *mut WfFilter,
        old: *mut *mut WfFilter,
        ifindex: *mut c_int,
    ) -> c_int;
    pub(crate) fn wasmfw_xdp_detach(ifname: *const c_char) -> *mut WfFilter;
    pub(crate) fn wasmfw_xdp_detach_at(net: *mut c_void, ifindex: c_int) -> *mut WfFilter;
    pub(crate) fn wasmfw_xdp_take_any() -> *mut WfFilter;
    pub(crate) fn wf_free(f: *mut WfFilter);
    pub(crate) fn wf_counters(f: *const WfFilter, out: *mut Counter, cap: usize) -> usize;
    pub(crate) fn wf_maps(f: *const WfFilter, out: *mut MapInfo, cap: usize) -> usize;
    pub(crate) fn wf_map_update(
        f: *const WfFilter,
        name: *const c_char,
        k: *const u8,
        kl: usize,
        v: *const u8,
        vl: usize,
    ) -> c_int;
    pub(crate) fn wf_map_delete(f: *const WfFilter, name: *const c_char, k: *const u8, kl: usize) -> c_int;
    pub(crate) fn wf_map_dump(
        f: *const WfFilter,
        name: *const c_char,
        out: *mut u8,
        cap: usize,
        cursor: *mut u64,
    ) -> i64;
    pub(crate) fn wasmfw_capture_start(
        net: *mut c_void,
        ifindex: c_int,
        hook: u32,
        id: u32,
        verdicts: u32,
        snaplen: u32,
    ) -> c_int;
    pub(crate) fn wasmfw_capture_stop(id: u32, any_owner: bool) -> c_int;
    pub(crate) fn wasmfw_capture_peek(id: u32, out: *mut u8, cap: usize, count: *mut u32, lost: *mut u64) -> c_long;
    pub(crate) fn wasmfw_capture_consume(id: u32, count: u32);
    pub(crate) fn wf_log_ring(f: *const WfFilter) -> *mut c_void;
    pub(crate) fn wasmfw_logring_read(
        ring: *mut c_void,
        cursor: *mut u64,
        out: *mut LogRecord,
        cap: u32,
        lost: *mut u64,
        dropped: *mut u64,
        undo: *mut LogringUndo,
    ) -> c_int;
    pub(crate) fn wasmfw_logring_unread(ring: *mut c_void, undo: *const LogringUndo);
}
