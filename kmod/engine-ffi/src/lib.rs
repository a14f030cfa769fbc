//! The engine behind a C ABI, for the kernel module (`kmod/wasmfw`).
//!
//! Built as a staticlib for a kernel target (soft-float, no red zone,
//! kernel or large code model), then reduced to one relocatable object that
//! exports only the `wf_*` symbols, so its own copy of `core`/`alloc` never
//! clashes with the kernel's. Memory comes from the kernel through
//! `wasmfw_host_alloc`; the clock, logs and panics go through the other
//! `wasmfw_host_*` functions (kmod/wasmfw/wasmfw_{alloc,log,load}.c). The C
//! view of this ABI is `include/wasmfw_engine.h`; its records and numbers
//! are defined once, in `abi.rs`.
#![no_std]

extern crate alloc;

mod abi;
pub use abi::*;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void};
use core::mem::{offset_of, size_of};

use wasmfw_engine::abi::RunResult;
use wasmfw_engine::lock::{Ctx, HostLock};
use wasmfw_engine::reentry::{refused_result, Reentry};
use wasmfw_engine::{Env, Filter, Instance, Limits, Verdict};
use wasmfw_uapi as uapi;

extern "C" {
    fn wasmfw_host_alloc(size: usize, align: usize) -> *mut u8;
    fn wasmfw_host_free(ptr: *mut u8);
    fn wasmfw_host_now_ns() -> u64;
    fn wasmfw_host_logring_new(id: u64) -> *mut c_void;
    fn wasmfw_host_logring_free(ring: *mut c_void);
    fn wasmfw_host_logring_dropped(ring: *mut c_void) -> u64;
    fn wasmfw_host_logring_add_dropped(ring: *mut c_void, records: u64);
    fn wasmfw_host_log(ring: *mut c_void, level: c_int, msg: *const u8, len: usize);
    fn wasmfw_host_panic(msg: *const u8, len: usize) -> !;
    fn wasmfw_host_lock_new() -> *mut c_void;
    fn wasmfw_host_lock_free(lock: *mut c_void);
    fn wasmfw_host_lock(lock: *mut c_void, packet: bool);
    fn wasmfw_host_unlock(lock: *mut c_void, packet: bool);
}

/// A kernel `spinlock_t` (wasmfw_alloc.c): visible to lockdep, taken with
/// `spin_lock_bh` from process context and `spin_lock` on the packet path
/// (bottom halves already off there).
struct KernelLock(*mut c_void);

// SAFETY: a spinlock_t is meant to be shared between CPUs; the pointer is
// owned by this value and freed once, in drop.
unsafe impl Send for KernelLock {}
// SAFETY: as above.
unsafe impl Sync for KernelLock {}

impl HostLock for KernelLock {
    fn lock(&self, ctx: Ctx) {
        // SAFETY: a live lock from wasmfw_host_lock_new.
        unsafe { wasmfw_host_lock(self.0, ctx == Ctx::Packet) }
    }
    fn unlock(&self, ctx: Ctx) {
        // SAFETY: as above, locked by `lock` with the same ctx.
        unsafe { wasmfw_host_unlock(self.0, ctx == Ctx::Packet) }
    }
}

impl Drop for KernelLock {
    fn drop(&mut self) {
        // SAFETY: allocated by wasmfw_host_lock_new, freed once, unlocked
        // (the filter is being freed, past a grace period).
        unsafe { wasmfw_host_lock_free(self.0) }
    }
}

struct KernelAlloc;

// SAFETY: wasmfw_host_alloc returns memory aligned to `align` or null, and
// wasmfw_host_free accepts exactly what it returned.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C call; null on failure is what GlobalAlloc expects.
        unsafe { wasmfw_host_alloc(layout.size(), layout.align()) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { wasmfw_host_free(ptr) }
    }
}

#[global_allocator]
static ALLOC: KernelAlloc = KernelAlloc;

/// Reaching this is a bug: the engine checks what it allocates with
/// `try_reserve`, and nothing on the packet path can panic by design.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut buf = FixedBuf { data: [0; 160], len: 0 };
    let _ = core::fmt::write(&mut buf, format_args!("{}", info.message()));
    // SAFETY: buf holds `len` initialised bytes.
    unsafe { wasmfw_host_panic(buf.data.as_ptr(), buf.len) }
}

struct FixedBuf {
    data: [u8; 160],
    len: usize,
}

impl core::fmt::Write for FixedBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.data.len() - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The filter's log ring (wasmfw_log.c, `wasmfw log`), owned: freed
/// when the filter's environment is dropped, i.e. with the filter.
struct LogRing(*mut c_void);

// SAFETY: the ring is written under its own kernel spinlock from any CPU;
// the pointer is owned by this value and freed once, in drop.
unsafe impl Send for LogRing {}
// SAFETY: as above.
unsafe impl Sync for LogRing {}

impl Drop for LogRing {
    fn drop(&mut self) {
        // SAFETY: allocated by wasmfw_host_logring_new, freed once, when
        // the filter is freed (past a grace period: no packet logs to it).
        unsafe { wasmfw_host_logring_free(self.0) }
    }
}

struct KernelEnv {
    log: LogRing,
}

impl Env for KernelEnv {
    fn now_ns(&self) -> u64 {
        // SAFETY: ktime_get_ns wrapper, callable from any context.
        unsafe { wasmfw_host_now_ns() }
    }
    fn log(&self, level: i32, msg: &[u8]) {
        // SAFETY: a live ring; msg is a valid slice for the duration of the call.
        unsafe { wasmfw_host_log(self.log.0, level, msg.as_ptr(), msg.len()) }
    }
    fn log_capped(&self, records: u64) {
        // SAFETY: a live ring; plain C call, any context.
        unsafe { wasmfw_host_logring_add_dropped(self.log.0, records) }
    }
    fn new_lock(&self) -> Option<Box<dyn HostLock>> {
        // SAFETY: plain C call (process context, at load).
        let l = unsafe { wasmfw_host_lock_new() };
        if l.is_null() {
            return None;
        }
        let b: Box<dyn HostLock> = Box::new(KernelLock(l));
        Some(b)
    }
}

/// A loaded filter: the shared part and one instance per CPU. CPUs share
/// the `WfFilter` (only `&` to it ever exists once loaded); each one
/// mutates only its own instance, through the `UnsafeCell`, and only
/// while its slot's nesting guard is claimed.
pub struct WfFilter {
    filter: Filter,
    slots: Box<[Slot]>,
    /// The log ring, owned by the filter's environment (same lifetime).
    log: *mut c_void,
}

/// One CPU's instance and its nesting guard. A cache line of its own:
/// each CPU writes its guard on every packet.
#[repr(align(64))]
struct Slot {
    instance: UnsafeCell<Instance>,
    guard: Reentry,
}

/// Copies `msg` into the caller's buffer, NUL-terminated, truncated.
fn write_err(buf: *mut c_char, cap: usize, msg: &dyn core::fmt::Display) {
    if buf.is_null() || cap == 0 {
        return;
    }
    struct Out {
        ptr: *mut u8,
        cap: usize,
        len: usize,
    }
    impl core::fmt::Write for Out {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.len + 1 >= self.cap {
                    break;
                }
                // SAFETY: len + 1 < cap, inside the caller's buffer.
                unsafe { *self.ptr.add(self.len) = if b == b'\n' { b' ' } else { b } };
                self.len += 1;
            }
            Ok(())
        }
    }
    let mut out = Out { ptr: buf.cast(), cap, len: 0 };
    let _ = core::fmt::write(&mut out, format_args!("{msg}"));
    // SAFETY: len < cap.
    unsafe { *out.ptr.add(out.len) = 0 };
}

/// The error code of a load failure (`WF_LOAD_*`, wf_load's `*error`).
fn load_error_code(e: &wasmfw_engine::LoadError) -> c_int {
    use wasmfw_engine::LoadError;
    match e {
        LoadError::Invalid(_) => WF_LOAD_INVALID,
        LoadError::Abi(_) => WF_LOAD_ABI,
        LoadError::Init { .. } => WF_LOAD_INIT,
        LoadError::NoMemory => WF_LOAD_NO_MEMORY,
    }
}

/// Loads a filter. Returns null, a message in `err` and a `WF_LOAD_*` code
/// in `*error` on failure (`*error` is WF_LOAD_OK on success).
/// Process context only (allocates, compiles).
///
/// # Safety
/// `wasm`/`cfg` point to `wasm_len`/`cfg_len` readable bytes; `args` is
/// valid; `err` has `err_cap` writable bytes (or is null); `error` is
/// valid (or null).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn wf_load(
    wasm: *const u8,
    wasm_len: usize,
    cfg: *const u8,
    cfg_len: usize,
    args: *const WfLoadArgs,
    err: *mut c_char,
    err_cap: usize,
    error: *mut c_int,
) -> *mut WfFilter {
    let set_error = |code: c_int| {
        if !error.is_null() {
            // SAFETY: the caller guarantees `error` is valid when not null.
            unsafe { *error = code };
        }
    };
    // SAFETY: the caller guarantees the pointers (see above).
    let (wasm, cfg, args) = unsafe {
        (
            core::slice::from_raw_parts(wasm, wasm_len),
            if cfg_len == 0 { &[][..] } else { core::slice::from_raw_parts(cfg, cfg_len) },
            &*args,
        )
    };
    let limits = Limits {
        fuel: args.fuel,
        memory_limit: args.memory_limit,
        on_fault: Verdict::from_abi(args.on_fault as i32).unwrap_or(Verdict::Pass),
        audit: args.audit != 0,
    };
    // SAFETY: plain C call (process context, at load).
    let ring = unsafe { wasmfw_host_logring_new(args.cookie) };
    if ring.is_null() {
        write_err(err, err_cap, &"out of memory for the log ring");
        set_error(WF_LOAD_NO_MEMORY);
        return core::ptr::null_mut();
    }
    // Small allocations made once per load, in process context.
    let env: Arc<dyn Env> = Arc::new(KernelEnv { log: LogRing(ring) });
    match wasmfw_engine::load(wasm, limits, cfg, args.slots as usize, env, args.seed) {
        Ok((filter, instances)) => {
            let slots: Box<[Slot]> =
                instances.into_iter().map(|i| Slot { instance: UnsafeCell::new(i), guard: Reentry::new() }).collect();
            set_error(WF_LOAD_OK);
            Box::into_raw(Box::new(WfFilter { filter, slots, log: ring }))
        }
        Err(e) => {
            write_err(err, err_cap, &e);
            set_error(load_error_code(&e));
            core::ptr::null_mut()
        }
    }
}

/// Runs the filter's instance `slot` on a packet: returns a [`RunResult`]
/// (the verdict applied, whether the filter trapped or ran out of fuel and
/// whether audit mode passed a drop: `wasmfw capture` records both; the C
/// side decodes it with `wasmfw_verdict.h`). Never allocates. The caller
/// guarantees no other CPU uses `slot` at the same time (slot = the
/// current CPU, with bottom halves disabled). A run that starts on that
/// CPU while one of the same instance is in progress (it interrupted it:
/// netpoll, a nested softirq, XDP with interrupts off) does not touch the
/// instance: it returns `on_fault`, marked as a fault, and is counted in
/// `nested_runs`.
///
/// # Safety
/// `f` comes from wf_load and is not freed; `pkt` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wf_run(f: *const WfFilter, slot: u32, pkt: *const u8, len: usize, link: c_int) -> c_int {
    // SAFETY: see above. Only a shared reference: other CPUs run their own
    // slots of the same filter at the same time.
    let f = unsafe { &*f };
    // SAFETY: the caller guarantees `len` readable bytes at `pkt`.
    let pkt = if len == 0 { &[][..] } else { unsafe { core::slice::from_raw_parts(pkt, len) } };
    let Some(slot) = f.slots.get(slot as usize) else {
        return RunResult::new(f.filter.limits().on_fault, true, false).0;
    };
    let Some(_running) = slot.guard.enter() else {
        return refused_result(f.filter.limits()).0;
    };
    // SAFETY: slot = this CPU with bottom halves off (the caller's
    // contract), so no other CPU uses this instance, and the guard just
    // claimed makes this the only run of it on this CPU: the one reference.
    let inst = unsafe { &mut *slot.instance.get() };
    inst.run(pkt, link).run_result().0
}

/// Frees a filter (process context, after an RCU grace period).
///
/// # Safety
/// `f` comes from wf_load and no CPU can still be running it.
#[no_mangle]
pub unsafe extern "C" fn wf_free(f: *mut WfFilter) {
    if !f.is_null() {
        // SAFETY: see above.
        drop(unsafe { Box::from_raw(f) });
    }
}

/// One counter, as the module reports it to userspace: the interface's own
/// struct (`struct wasmfw_counter`), so the module copies it out as it is.
pub type WfCounter = uapi::Counter;

/// Writes up to `cap` counters (builtin ones first, the host's last:
/// `log_dropped`, `nested_runs`); returns how many exist.
///
/// # Safety
/// `f` is a live filter; `out` has room for `cap` entries.
#[no_mangle]
pub unsafe extern "C" fn wf_counters(f: *const WfFilter, out: *mut WfCounter, cap: usize) -> usize {
    // SAFETY: see above.
    let f = unsafe { &*f };
    let mut n = 0;
    f.filter.counters(|name, value| {
        if n < cap {
            let mut c = WfCounter { name: [0; uapi::NAME_LEN], value };
            let len = name.len().min(uapi::NAME_LEN - 1);
            c.name[..len].copy_from_slice(&name.as_bytes()[..len]);
            // SAFETY: n < cap.
            unsafe { out.add(n).write(c) };
        }
        n += 1;
    });
    // SAFETY: the filter's live ring.
    let dropped = unsafe { wasmfw_host_logring_dropped(f.log) };
    let nested = f.slots.iter().map(|s| s.guard.refused()).fold(0u64, u64::wrapping_add);
    for (name, value) in [(LOG_DROPPED, dropped), (NESTED_RUNS, nested)] {
        if n < cap {
            let mut c = WfCounter { name: [0; uapi::NAME_LEN], value };
            c.name[..name.len()].copy_from_slice(name.as_bytes());
            // SAFETY: n < cap.
            unsafe { out.add(n).write(c) };
        }
        n += 1;
    }
    n
}

/// The counter of log records overwritten before any reader got them.
const LOG_DROPPED: &str = wasmfw_engine::HOST_COUNTERS[0];
/// The counter of runs the nesting guard refused (wf_run).
const NESTED_RUNS: &str = wasmfw_engine::HOST_COUNTERS[1];

/// The filter's log ring, for WASMFW_IOC_LOG_READ (wasmfw_logring_read).
///
/// # Safety
/// `f` is a live filter; the ring lives as long as it.
#[no_mangle]
pub unsafe extern "C" fn wf_log_ring(f: *const WfFilter) -> *mut c_void {
    // SAFETY: see above.
    unsafe { (*f).log }
}

/// One map, as declared by the filter (`struct wasmfw_map_info`).
pub type WfMapInfo = uapi::MapInfo;

// The records the module reads as `struct wasmfw_counter` and `struct
// wasmfw_map_info`: the layout the C header and `wasmfw` have.
const _: () = {
    assert!(size_of::<WfCounter>() == 40 && offset_of!(WfCounter, value) == uapi::NAME_LEN);
    assert!(size_of::<WfMapInfo>() == 48 && offset_of!(WfMapInfo, kind) == uapi::NAME_LEN);
    assert!(offset_of!(WfMapInfo, max_entries) == 44);
};

/// Writes up to `cap` map descriptions; returns how many maps exist.
///
/// # Safety
/// `f` is a live filter; `out` has room for `cap` entries.
#[no_mangle]
pub unsafe extern "C" fn wf_maps(f: *const WfFilter, out: *mut WfMapInfo, cap: usize) -> usize {
    // SAFETY: see above.
    let f = unsafe { &*f };
    let mut n = 0;
    f.filter.maps(|m| {
        if n < cap {
            let mut info = WfMapInfo {
                name: [0; uapi::NAME_LEN],
                kind: match m.kind {
                    wasmfw_engine::MapKind::Hash => uapi::MAP_HASH,
                    wasmfw_engine::MapKind::PerCpuArray => uapi::MAP_PERCPU_ARRAY,
                },
                key_size: m.key_size as u32,
                value_size: m.value_size as u32,
                max_entries: m.max_entries,
            };
            let name = m.name.as_str().as_bytes();
            let len = name.len().min(uapi::NAME_LEN - 1);
            info.name[..len].copy_from_slice(&name[..len]);
            // SAFETY: n < cap.
            unsafe { out.add(n).write(info) };
        }
        n += 1;
    });
    n
}

/// # Safety
/// `name` is NUL-terminated.
unsafe fn name_str<'a>(name: *const c_char) -> Option<&'a str> {
    // SAFETY: see above.
    unsafe { core::ffi::CStr::from_ptr(name) }.to_str().ok()
}

/// Sets a map entry (in every CPU's copy of a per-CPU array). ABI error code.
///
/// # Safety
/// `f` is live, `name` NUL-terminated, key/value readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn wf_map_update(
    f: *const WfFilter,
    name: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> c_int {
    // SAFETY: see above.
    let (f, name, key, value) = unsafe {
        (&*f, name_str(name), core::slice::from_raw_parts(key, key_len), core::slice::from_raw_parts(value, value_len))
    };
    match name {
        Some(n) => f.filter.map_update(n, key, value),
        None => wasmfw_engine::abi::E_INVAL,
    }
}

/// Deletes a hash map entry: 1 deleted, 0 absent, < 0 error.
///
/// # Safety
/// As wf_map_update.
#[no_mangle]
pub unsafe extern "C" fn wf_map_delete(
    f: *const WfFilter,
    name: *const c_char,
    key: *const u8,
    key_len: usize,
) -> c_int {
    // SAFETY: see above.
    let (f, name, key) = unsafe { (&*f, name_str(name), core::slice::from_raw_parts(key, key_len)) };
    match name {
        Some(n) => f.filter.map_delete(n, key),
        None => wasmfw_engine::abi::E_INVAL,
    }
}

/// Dumps a map as records `u32 slot, key bytes, value bytes` into `out`,
/// starting at `*cursor` (0 = the start), whole records only; the map's
/// lock is taken per chunk of entries, never across the whole map. Returns
/// the bytes written and sets `*cursor` to where to continue (0 = the map
/// is done), or a negative ABI error: E_NOENT (no such map), E_FULL (not
/// even one record fits in `cap`).
///
/// # Safety
/// `f` is live, `name` NUL-terminated, `out` has `cap` writable bytes,
/// `cursor` is valid.
#[no_mangle]
pub unsafe extern "C" fn wf_map_dump(
    f: *const WfFilter,
    name: *const c_char,
    out: *mut u8,
    cap: usize,
    cursor: *mut u64,
) -> i64 {
    // SAFETY: see above.
    let (f, name, start) = unsafe { (&*f, name_str(name), *cursor) };
    let Some(name) = name else { return wasmfw_engine::abi::E_INVAL as i64 };
    let (mut off, mut refused) = (0usize, false);
    let next = f.filter.map_dump(name, start, |slot, k, v| {
        let rec = 4 + k.len() + v.len();
        if off + rec > cap {
            refused = true;
            return false;
        }
        // SAFETY: off + rec <= cap.
        unsafe {
            core::ptr::copy_nonoverlapping((slot as u32).to_le_bytes().as_ptr(), out.add(off), 4);
            core::ptr::copy_nonoverlapping(k.as_ptr(), out.add(off + 4), k.len());
            core::ptr::copy_nonoverlapping(v.as_ptr(), out.add(off + 4 + k.len()), v.len());
        }
        off += rec;
        true
    });
    match next {
        None => wasmfw_engine::abi::E_NOENT as i64,
        Some(_) if refused && off == 0 => wasmfw_engine::abi::E_FULL as i64,
        Some(next) => {
            // SAFETY: see above.
            unsafe { *cursor = next };
            off as i64
        }
    }
}
