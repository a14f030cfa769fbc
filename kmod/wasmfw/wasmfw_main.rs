// SPDX-License-Identifier: GPL-2.0
//! wasmfw: WebAssembly packet filters in the kernel.
//!
//! This is the control plane: it decodes the ioctls of /dev/wasmfw
//! (`wasmfw_uapi.h`), checks every length, index and id, keeps the table of
//! loaded filters and drives the engine object (`wasmfw_engine.o`, wasmi)
//! and the C glue (`wasmfw_glue.c`: misc device, netfilter hooks, RCU).
//! The glue calls [`wasmfw_rs_ioctl`] with its control mutex held and only
//! after checking CAP_NET_ADMIN.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};
use core::mem::size_of;

use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::UserSlice;

module! {
    type: Wasmfw,
    name: "wasmfw",
    author: "wasmfw",
    description: "WebAssembly packet filters (wasmi) at netfilter and XDP",
    license: "GPL",
}

/// The engine's loaded filter (kmod/engine-ffi); opaque here.
#[repr(C)]
struct WfFilter {
    _p: [u8; 0],
}

/// A netfilter attachment (wasmfw_glue.c); opaque here.
#[repr(C)]
struct WasmfwNf {
    _p: [u8; 0],
}

extern "C" {
    fn wasmfw_glue_init() -> c_int;
    fn wasmfw_glue_exit();
    #[allow(clippy::too_many_arguments)]
    fn wasmfw_glue_load(
        wasm: *const u8,
        wasm_len: usize,
        cfg: *const u8,
        cfg_len: usize,
        fuel: u64,
        memory_limit: u64,
        on_fault: u32,
        audit: u32,
        cookie: u64,
        err: *mut c_char,
        err_cap: usize,
        stack_used: *mut u32,
        errno: *mut c_int,
    ) -> *mut WfFilter;
    fn wasmfw_glue_test_run(f: *mut WfFilter, pkt: *const u8, len: u32, link: c_int, repeat: u32, ns: *mut u64, ran: *mut u32) -> c_int;
    fn wasmfw_ctl_lock() -> c_int;
    fn wasmfw_ctl_unlock();
    fn wasmfw_signal_pending() -> bool;
    fn wasmfw_cond_resched();
    fn wasmfw_current_net() -> *mut c_void;
    fn wasmfw_log_refused(msg: *const u8, len: usize);
    fn wasmfw_nf_attach(ifname: *const c_char, f: *mut WfFilter, err: *mut c_int) -> *mut WasmfwNf;
    fn wasmfw_nf_swap(att: *mut WasmfwNf, f: *mut WfFilter) -> *mut WfFilter;
    fn wasmfw_nf_detach(att: *mut WasmfwNf) -> *mut WfFilter;
    fn wasmfw_nf_matches(att: *const WasmfwNf, ifname: *const c_char) -> bool;
    fn wasmfw_nf_ifindex(att: *const WasmfwNf) -> c_int;
    fn wasmfw_nf_netns_ino(att: *const WasmfwNf) -> u64;
    fn wasmfw_current_netns_ino() -> u64;
    fn wasmfw_xdp_attach(ifname: *const c_char, f: *mut WfFilter, old: *mut *mut WfFilter, ifindex: *mut c_int) -> c_int;
    fn wasmfw_xdp_detach(ifname: *const c_char) -> *mut WfFilter;
    fn wasmfw_xdp_detach_at(net: *mut c_void, ifindex: c_int) -> *mut WfFilter;
    fn wasmfw_xdp_take_any() -> *mut WfFilter;
    fn wf_free(f: *mut WfFilter);
    fn wf_counters(f: *const WfFilter, out: *mut Counter, cap: usize) -> usize;
    fn wf_maps(f: *const WfFilter, out: *mut MapInfo, cap: usize) -> usize;
    fn wf_map_update(f: *const WfFilter, name: *const c_char, k: *const u8, kl: usize, v: *const u8, vl: usize) -> c_int;
    fn wf_map_delete(f: *const WfFilter, name: *const c_char, k: *const u8, kl: usize) -> c_int;
    fn wf_map_dump(f: *const WfFilter, name: *const c_char, out: *mut u8, cap: usize, cursor: *mut u64) -> i64;
    fn wasmfw_capture_start(net: *mut c_void, ifindex: c_int, hook: u32, id: u32, verdicts: u32, snaplen: u32) -> c_int;
    fn wasmfw_capture_stop(id: u32, any_owner: bool) -> c_int;
    fn wasmfw_capture_take(id: u32, out: *mut u8, cap: usize, count: *mut u32, lost: *mut u64) -> c_long;
    fn wf_log_ring(f: *const WfFilter) -> *mut c_void;
    fn wasmfw_logring_read(ring: *mut c_void, cursor: *mut u64, out: *mut LogRecord, cap: u32, lost: *mut u64, dropped: *mut u64) -> u32;
}

#[path = "wasmfw_uapi.rs"]
mod uapi;
use uapi::*;

// SAFETY: the uapi structs are `repr(C)` integers and byte arrays laid out
// without padding (ctl/tests/uapi_layout.rs checks them against the C
// header), so every bit pattern is valid and every byte is initialised.
unsafe impl FromBytes for Load {}
unsafe impl AsBytes for Load {}
unsafe impl FromBytes for Attach {}
unsafe impl FromBytes for Detach {}
unsafe impl FromBytes for Unload {}
unsafe impl AsBytes for Info {}
unsafe impl FromBytes for List {}
unsafe impl AsBytes for List {}
unsafe impl FromBytes for IdList {}
unsafe impl AsBytes for IdList {}
unsafe impl AsBytes for Counter {}
unsafe impl AsBytes for MapInfo {}
unsafe impl FromBytes for MapOp {}
unsafe impl AsBytes for MapOp {}
unsafe impl FromBytes for MapDump {}
unsafe impl AsBytes for MapDump {}
unsafe impl FromBytes for TestRun {}
unsafe impl FromBytes for CaptureCtl {}
unsafe impl FromBytes for CaptureRead {}
unsafe impl AsBytes for CaptureRead {}
unsafe impl AsBytes for TestRun {}
unsafe impl AsBytes for LogRecord {}
unsafe impl FromBytes for LogRead {}
unsafe impl AsBytes for LogRead {}

// ---- the registry of loaded filters ------------------------------------------

struct Entry {
    id: u32,
    filter: *mut WfFilter,
    /// The attachment's `struct net *`, as a key only (never dereferenced
    /// here); null while not attached.
    net: *mut c_void,
    /// The netfilter attachment; null unless `hook` is HOOK_NETFILTER.
    att: *mut WasmfwNf,
    /// 0 while loaded but not attached.
    hook: u32,
    ifindex: u32,
    /// The attachment's network namespace inode; 0 while not attached.
    netns_ino: u64,
    ifname: [u8; 16],
    name: [u8; 32],
    policy: [u8; 128],
    fuel: u64,
    memory_limit: u64,
    on_fault: u32,
    /// As loaded ([`LOAD_AUDIT`]).
    flags: u32,
}

struct Registry {
    slots: [Option<Entry>; MAX_FILTERS as usize],
    next_id: u32,
}

struct Global(UnsafeCell<Registry>);

// SAFETY: the registry is only touched by wasmfw_rs_ioctl and
// wasmfw_rs_teardown, which the C glue calls with wasmfw_ctl_lock held.
unsafe impl Sync for Global {}

static REGISTRY: Global = Global(UnsafeCell::new(Registry { slots: [const { None }; MAX_FILTERS as usize], next_id: 1 }));

impl Registry {
    fn get(&mut self, id: u32) -> Result<&mut Entry> {
        self.slots.iter_mut().flatten().find(|e| e.id == id).ok_or(ENOENT)
    }

    fn index_of(&self, id: u32) -> Option<usize> {
        self.slots.iter().position(|e| e.as_ref().is_some_and(|e| e.id == id))
    }

    /// The attached entry on `ifname` in the caller's namespace.
    fn attached_on(&self, ifname: &[u8; 16]) -> Option<usize> {
        self.slots.iter().position(|e| {
            // SAFETY: `att` is a live attachment and ifname is NUL-terminated.
            e.as_ref().is_some_and(|e| !e.att.is_null() && unsafe { wasmfw_nf_matches(e.att, ifname.as_ptr().cast()) })
        })
    }

    fn index_of_filter(&self, f: *mut WfFilter) -> Option<usize> {
        self.slots.iter().position(|e| e.as_ref().is_some_and(|e| e.filter == f))
    }

    /// Removes an entry, detaching it from netfilter first, and frees its
    /// filter. XDP entries must already be unpublished (xdp_detach).
    fn release(&mut self, index: usize) {
        if let Some(e) = self.slots[index].take() {
            // SAFETY: plain C call under the control mutex; waits for hooks
            // still writing to the filter's capture ring before freeing it.
            unsafe { wasmfw_capture_stop(e.id, true) };
            let f = if e.att.is_null() {
                e.filter
            } else {
                // SAFETY: a live attachment; detaching waits for running hooks.
                unsafe { wasmfw_nf_detach(e.att) }
            };
            // SAFETY: no hook can run the filter any more.
            unsafe { wf_free(f) };
        }
    }
}

fn read<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(arg, size_of::<T>()).reader().read()
}

fn write<T: AsBytes>(arg: usize, v: &T) -> Result {
    UserSlice::new(arg, size_of::<T>()).writer().write(v)
}

/// Bytes from userspace, at most `max`.
fn read_bytes(ptr: u64, len: u32, max: u32) -> Result<KVec<u8>> {
    if len > max {
        return Err(E2BIG);
    }
    let mut v = KVec::new();
    if len > 0 {
        UserSlice::new(ptr as usize, len as usize).read_all(&mut v, GFP_KERNEL)?;
    }
    Ok(v)
}

/// A fixed-size name from userspace must be NUL-terminated and non-empty.
fn checked_name<const N: usize>(n: &[u8; N]) -> Result {
    match n.iter().position(|&b| b == 0) {
        Some(0) | None => Err(EINVAL),
        Some(_) => Ok(()),
    }
}

/// A short message formatted on the stack (truncated at 127 bytes, the
/// last byte stays NUL).
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn load(reg: &mut Registry, arg: usize) -> Result {
    let mut req: Load = read(arg)?;
    if req.wasm_len == 0 || req.err_len > MAX_ERR || req.fuel == 0 {
        return Err(EINVAL);
    }
    if req.fuel > MAX_FUEL {
        // Said in words: the policy checker in userspace allows more.
        let mut w = Line { buf: [0; 128], len: 0 };
        let _ = core::fmt::write(
            &mut w,
            format_args!("fuel {} exceeds the kernel's ceiling of {} per packet (WASMFW_MAX_FUEL)\0", req.fuel, MAX_FUEL),
        );
        let (msg, n) = (w.buf, w.len);
        if req.err_len > 0 {
            let n = n.min(req.err_len as usize);
            UserSlice::new(req.err as usize, n).writer().write_slice(&msg[..n])?;
        }
        return Err(EINVAL);
    }
    if req.memory_limit < MIN_MEMORY_LIMIT || req.memory_limit > MAX_MEMORY_LIMIT || req.on_fault > 1 || req.flags & !LOAD_AUDIT != 0 {
        return Err(EINVAL);
    }
    // Names are for display; force termination rather than trust it.
    req.name[31] = 0;
    req.policy[127] = 0;
    let slot = reg.slots.iter().position(|e| e.is_none()).ok_or(ENOSPC)?;
    let wasm = read_bytes(req.wasm, req.wasm_len, MAX_WASM)?;
    let cfg = read_bytes(req.config, req.config_len, MAX_CONFIG)?;
    let mut err = [0u8; 256];
    let mut stack_used = 0u32;
    let mut errno: c_int = EINVAL.to_errno();
    let id = reg.next_id;
    // SAFETY: the buffers are live for the call; wasmfw_glue_load copies
    // what it keeps.
    let filter = unsafe {
        wasmfw_glue_load(
            wasm.as_ptr(),
            wasm.len(),
            cfg.as_ptr(),
            cfg.len(),
            req.fuel,
            req.memory_limit,
            req.on_fault,
            req.flags & LOAD_AUDIT,
            id as u64,
            err.as_mut_ptr().cast(),
            err.len(),
            &mut stack_used,
            &mut errno,
        )
    };
    if filter.is_null() {
        let n = err.iter().position(|&b| b == 0).unwrap_or(err.len() - 1);
        // SAFETY: `err` has n readable bytes.
        unsafe { wasmfw_log_refused(err.as_ptr(), n) };
        if req.err_len > 0 {
            let n = (n + 1).min(req.err_len as usize);
            UserSlice::new(req.err as usize, n).writer().write_slice(&err[..n])?;
        }
        return Err(Error::from_errno(errno));
    }
    reg.next_id = reg.next_id.wrapping_add(1).max(1);
    reg.slots[slot] = Some(Entry {
        id,
        filter,
        net: core::ptr::null_mut(),
        att: core::ptr::null_mut(),
        hook: 0,
        ifindex: 0,
        netns_ino: 0,
        ifname: [0; 16],
        name: req.name,
        policy: req.policy,
        fuel: req.fuel,
        memory_limit: req.memory_limit,
        on_fault: req.on_fault,
        flags: req.flags,
    });
    req.id = id;
    req.stack_used = stack_used;
    pr_info!("filter {} loaded (kernel stack used by the load: {} bytes)\n", id, stack_used);
    if let Err(e) = write(arg, &req) {
        reg.release(slot);
        return Err(e);
    }
    Ok(())
}

fn attach(reg: &mut Registry, arg: usize) -> Result {
    let req: Attach = read(arg)?;
    checked_name(&req.ifname)?;
    let index = reg.index_of(req.id).ok_or(ENOENT)?;
    if reg.get(req.id)?.hook != 0 {
        return Err(EBUSY);
    }
    let filter = reg.get(req.id)?.filter;
    match req.hook {
        HOOK_NETFILTER => {}
        HOOK_XDP => return attach_xdp(reg, index, filter, &req.ifname),
        _ => return Err(EINVAL),
    }
    let att = match reg.attached_on(&req.ifname) {
        Some(old) => {
            // Atomic replacement: the hook stays registered and switches
            // from the old filter to the new one under RCU.
            let att = reg.slots[old].as_mut().map(|e| e.att).ok_or(ENOENT)?;
            // SAFETY: live attachment; swap waits for a grace period.
            let old_filter = unsafe { wasmfw_nf_swap(att, filter) };
            if let Some(e) = reg.slots[old].as_mut() {
                e.att = core::ptr::null_mut();
                e.filter = old_filter;
            }
            reg.release(old);
            att
        }
        None => {
            let mut err: c_int = 0;
            // SAFETY: ifname is NUL-terminated (checked); filter is live.
            let att = unsafe { wasmfw_nf_attach(req.ifname.as_ptr().cast(), filter, &mut err) };
            if att.is_null() {
                return Err(Error::from_errno(err));
            }
            att
        }
    };
    let e = reg.slots[index].as_mut().ok_or(ENOENT)?;
    e.att = att;
    e.hook = req.hook;
    // SAFETY: plain C call; the attachment is in the caller's namespace.
    e.net = unsafe { wasmfw_current_net() };
    // SAFETY: a live attachment.
    e.ifindex = unsafe { wasmfw_nf_ifindex(att) } as u32;
    // SAFETY: a live attachment.
    e.netns_ino = unsafe { wasmfw_nf_netns_ino(att) };
    e.ifname = req.ifname;
    Ok(())
}

/// Publishes the filter for the kfunc that xdp-bridge calls; a filter
/// already there is replaced atomically and freed.
fn attach_xdp(reg: &mut Registry, index: usize, filter: *mut WfFilter, ifname: &[u8; 16]) -> Result {
    let mut old = core::ptr::null_mut();
    let mut ifindex: c_int = 0;
    // SAFETY: ifname is NUL-terminated (checked); filter is live.
    let rc = unsafe { wasmfw_xdp_attach(ifname.as_ptr().cast(), filter, &mut old, &mut ifindex) };
    if rc != 0 {
        return Err(Error::from_errno(rc));
    }
    if !old.is_null() {
        match reg.index_of_filter(old) {
            // Unpublished already: release just frees it.
            Some(i) => reg.release(i),
            // SAFETY: unpublished and past a grace period.
            None => unsafe { wf_free(old) },
        }
    }
    let e = reg.slots[index].as_mut().ok_or(ENOENT)?;
    e.hook = HOOK_XDP;
    // SAFETY: plain C call; wasmfw_xdp_attach used the caller's namespace.
    e.net = unsafe { wasmfw_current_net() };
    e.ifindex = ifindex as u32;
    // SAFETY: plain C call; attach_xdp published the filter in the caller's namespace.
    e.netns_ino = unsafe { wasmfw_current_netns_ino() };
    e.ifname = *ifname;
    Ok(())
}

fn detach(reg: &mut Registry, arg: usize) -> Result {
    let req: Detach = read(arg)?;
    checked_name(&req.ifname)?;
    if let Some(index) = reg.attached_on(&req.ifname) {
        reg.release(index);
        return Ok(());
    }
    // SAFETY: ifname is NUL-terminated (checked).
    let f = unsafe { wasmfw_xdp_detach(req.ifname.as_ptr().cast()) };
    if f.is_null() {
        return Err(ENOENT);
    }
    match reg.index_of_filter(f) {
        Some(i) => reg.release(i),
        // SAFETY: unpublished and past a grace period.
        None => unsafe { wf_free(f) },
    }
    Ok(())
}

fn unload(reg: &mut Registry, arg: usize) -> Result {
    let req: Unload = read(arg)?;
    let index = reg.index_of(req.id).ok_or(ENOENT)?;
    if reg.get(req.id)?.hook != 0 {
        return Err(EBUSY);
    }
    reg.release(index);
    Ok(())
}

fn list(reg: &mut Registry, arg: usize) -> Result {
    let mut req: List = read(arg)?;
    let mut out = UserSlice::new(req.buf as usize, req.cap as usize * size_of::<Info>()).writer();
    let mut count = 0u32;
    for e in reg.slots.iter().flatten() {
        if count < req.cap {
            let info = Info {
                id: e.id,
                hook: e.hook,
                ifindex: e.ifindex,
                on_fault: e.on_fault,
                ifname: e.ifname,
                name: e.name,
                policy: e.policy,
                fuel: e.fuel,
                memory_limit: e.memory_limit,
                netns_ino: e.netns_ino,
                flags: e.flags,
                pad: 0,
            };
            out.write(&info)?;
        }
        count += 1;
    }
    req.count = count;
    write(arg, &req)
}

/// Most counters a filter has: the builtin ones (engine's
/// BUILTIN_COUNTERS), `log_dropped` (HOST_COUNTERS) and ABI v1's 32.
const MAX_COUNTERS: usize = 6 + 1 + 32;
/// Most maps a filter has (ABI v1).
const MAX_MAPS: usize = 16;

/// A zeroed heap buffer of `n` items (these arrays are too big for the
/// kernel stack).
fn zeroed<T: Copy>(n: usize, zero: T) -> Result<KVec<T>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(zero, GFP_KERNEL)?;
    }
    Ok(v)
}

/// Answers a COUNTERS/MAPS request: the first `cap` of `items`, and how
/// many there are in all (`total`, which may exceed what fit).
fn reply_list<T: AsBytes>(arg: usize, mut req: IdList, items: &[T], total: usize) -> Result {
    let mut out = UserSlice::new(req.buf as usize, req.cap as usize * size_of::<T>()).writer();
    for it in items.iter().take(total.min(req.cap as usize)) {
        out.write(it)?;
    }
    req.count = total as u32;
    write(arg, &req)
}

fn counters(reg: &mut Registry, arg: usize) -> Result {
    let req: IdList = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let mut buf = zeroed(MAX_COUNTERS, Counter { name: [0; 32], value: 0 })?;
    // SAFETY: f is live; buf has MAX_COUNTERS entries.
    let n = unsafe { wf_counters(f, buf.as_mut_ptr(), MAX_COUNTERS) };
    reply_list(arg, req, &buf[..n.min(MAX_COUNTERS)], n)
}

fn maps(reg: &mut Registry, arg: usize) -> Result {
    let req: IdList = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let mut buf = zeroed(MAX_MAPS, MapInfo { name: [0; 32], kind: 0, key_size: 0, value_size: 0, max_entries: 0 })?;
    // SAFETY: f is live; buf has MAX_MAPS entries.
    let n = unsafe { wf_maps(f, buf.as_mut_ptr(), MAX_MAPS) };
    reply_list(arg, req, &buf[..n.min(MAX_MAPS)], n)
}

fn map_op(reg: &mut Registry, arg: usize) -> Result {
    let mut req: MapOp = read(arg)?;
    checked_name(&req.map)?;
    let f = reg.get(req.id)?.filter;
    let key = read_bytes(req.key, req.key_len, 64)?;
    let name = req.map.as_ptr().cast();
    req.result = match req.op {
        1 => {
            let value = read_bytes(req.value, req.value_len, 256)?;
            // SAFETY: live filter, NUL-terminated name, buffers of the given sizes.
            unsafe { wf_map_update(f, name, key.as_ptr(), key.len(), value.as_ptr(), value.len()) }
        }
        // SAFETY: as above.
        2 => unsafe { wf_map_delete(f, name, key.as_ptr(), key.len()) },
        _ => return Err(EINVAL),
    };
    write(arg, &req)
}

/// One page of a map: whole records from `cursor` on (0 = the start),
/// `len` = bytes written, `cursor` = where the next call continues (0 when
/// the map is done). The engine takes the map's lock per chunk of entries,
/// never across the whole map.
fn map_dump(reg: &mut Registry, arg: usize) -> Result {
    let mut req: MapDump = read(arg)?;
    checked_name(&req.map)?;
    let f = reg.get(req.id)?.filter;
    let cap = req.cap.min(MAX_DUMP) as usize;
    let mut buf = KVVec::with_capacity(cap, GFP_KERNEL)?;
    for _ in 0..cap {
        buf.push(0u8, GFP_KERNEL)?;
    }
    let mut cursor = u64::from(req.cursor);
    // SAFETY: live filter, NUL-terminated name, buf has `cap` bytes.
    let len = unsafe { wf_map_dump(f, req.map.as_ptr().cast(), buf.as_mut_ptr(), cap, &mut cursor) };
    match len {
        -2 => return Err(ENOENT),
        -3 => return Err(ENOSPC),
        l if l < 0 => return Err(EINVAL),
        _ => {}
    }
    let n = (len as usize).min(cap);
    UserSlice::new(req.buf as usize, n).writer().write_slice(&buf[..n])?;
    req.len = n as u64;
    req.cursor = u32::try_from(cursor).map_err(|_| EINVAL)?;
    write(arg, &req)
}

/// The filter's log records from `cursor` on (0: the oldest held), at
/// most `cap` (and at most a ring's worth) per call; `lost` = records from
/// the cursor on that were overwritten before this read.
fn log_read(reg: &mut Registry, arg: usize) -> Result {
    let mut req: LogRead = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let cap = req.cap.min(LOG_RING_RECORDS);
    let mut buf = zeroed(cap as usize, LogRecord { seq: 0, ts_ns: 0, cpu: 0, level: 0, len: 0, pad: 0, msg: [0; LOG_MSG_LEN] })?;
    let (mut cursor, mut lost, mut dropped) = (req.cursor, 0u64, 0u64);
    // SAFETY: f is live (the control mutex is held); buf has `cap` records.
    let n = unsafe { wasmfw_logring_read(wf_log_ring(f), &mut cursor, buf.as_mut_ptr(), cap, &mut lost, &mut dropped) };
    let mut out = UserSlice::new(req.buf as usize, cap as usize * size_of::<LogRecord>()).writer();
    for r in buf.iter().take(n.min(cap) as usize) {
        out.write(r)?;
    }
    req.count = n.min(cap);
    req.cursor = cursor;
    req.lost = lost;
    req.dropped = dropped;
    write(arg, &req)
}

/// TEST_RUN, entered WITHOUT the control mutex (wasmfw_glue.c): it takes
/// the mutex for one time slice of runs at a time, looks the filter up
/// again each time (it may have been unloaded in between: ENOENT), and
/// between slices reschedules and stops with EINTR on a signal. So a
/// 100-million-run request neither blocks other ioctls, the netdevice
/// notifier or rmmod, nor ignores Ctrl-C.
fn test_run(arg: usize) -> Result {
    let mut req: TestRun = read(arg)?;
    if req.repeat == 0 || req.repeat > MAX_TEST_REPEAT || !(1..=2).contains(&req.link) {
        return Err(EINVAL);
    }
    let pkt = read_bytes(req.packet, req.packet_len, MAX_TEST_PACKET)?;
    let (mut done, mut total_ns, mut verdict) = (0u32, 0u64, 0);
    while done < req.repeat {
        // SAFETY: plain C call; returns nonzero (-EINTR) on a signal.
        if unsafe { wasmfw_ctl_lock() } != 0 {
            return Err(EINTR);
        }
        // SAFETY: the control mutex is held: this is the only reference.
        let reg = unsafe { &mut *REGISTRY.0.get() };
        let f = match reg.get(req.id) {
            Ok(e) => e.filter,
            Err(e) => {
                // SAFETY: locked just above.
                unsafe { wasmfw_ctl_unlock() };
                return Err(e);
            }
        };
        let (mut ns, mut ran) = (0u64, 0u32);
        // SAFETY: live filter (the control mutex keeps it from being
        // freed); the packet buffer lives across the call.
        verdict = unsafe {
            wasmfw_glue_test_run(f, pkt.as_ptr(), pkt.len() as u32, req.link as c_int, req.repeat - done, &mut ns, &mut ran)
        };
        // SAFETY: locked above.
        unsafe { wasmfw_ctl_unlock() };
        done += ran.max(1);
        total_ns = total_ns.saturating_add(ns);
        // SAFETY: plain C calls, process context, no lock held.
        if done < req.repeat && unsafe { wasmfw_signal_pending() } {
            return Err(EINTR);
        }
        // SAFETY: as above.
        unsafe { wasmfw_cond_resched() };
    }
    req.verdict = verdict as u32;
    req.total_ns = total_ns;
    write(arg, &req)
}

/// CAPTURE_CTL: starts a capture of an attached filter (owned by the
/// calling file; wasmfw_capture.c) or stops the caller's.
fn capture_ctl(reg: &mut Registry, arg: usize) -> Result {
    let req: CaptureCtl = read(arg)?;
    let e = reg.get(req.id)?;
    match req.op {
        CAPTURE_START => {
            if e.hook == 0 {
                return Err(ENODEV); // loaded, not attached
            }
            // SAFETY: plain C call under the control mutex; `net` is a key.
            let rc = unsafe { wasmfw_capture_start(e.net, e.ifindex as c_int, e.hook, e.id, req.verdicts, req.snaplen) };
            if rc != 0 {
                return Err(Error::from_errno(rc));
            }
            Ok(())
        }
        // SAFETY: as above.
        CAPTURE_STOP => match unsafe { wasmfw_capture_stop(req.id, false) } {
            0 => Err(ENOENT),
            _ => Ok(()),
        },
        _ => Err(EINVAL),
    }
}

/// CAPTURE_READ: moves the oldest records of the caller's capture to
/// userspace, through a bounce buffer (the ring's lock is never held
/// across a copy to userspace).
fn capture_read(arg: usize) -> Result {
    let mut req: CaptureRead = read(arg)?;
    let cap = req.cap.min(u64::from(CAPTURE_READ_MAX)) as usize;
    let mut buf = KVVec::from_elem(0u8, cap, GFP_KERNEL)?;
    let (mut count, mut lost) = (0u32, 0u64);
    // SAFETY: under the control mutex; buf has `cap` bytes.
    let len = unsafe { wasmfw_capture_take(req.id, buf.as_mut_ptr(), cap, &mut count, &mut lost) };
    if len < 0 {
        return Err(Error::from_errno(len as c_int));
    }
    let n = (len as usize).min(cap);
    UserSlice::new(req.buf as usize, n).writer().write_slice(&buf[..n])?;
    req.len = n as u64;
    req.count = count;
    req.lost = lost;
    write(arg, &req)
}

fn dispatch(reg: &mut Registry, cmd: u32, arg: usize) -> Result {
    match cmd {
        IOC_VERSION => UserSlice::new(arg, 4).writer().write_slice(&UAPI_VERSION.to_ne_bytes()),
        IOC_LOAD => load(reg, arg),
        IOC_ATTACH => attach(reg, arg),
        IOC_DETACH => detach(reg, arg),
        IOC_UNLOAD => unload(reg, arg),
        IOC_LIST => list(reg, arg),
        IOC_COUNTERS => counters(reg, arg),
        IOC_MAPS => maps(reg, arg),
        IOC_MAP_OP => map_op(reg, arg),
        IOC_MAP_DUMP => map_dump(reg, arg),
        IOC_CAPTURE_CTL => capture_ctl(reg, arg),
        IOC_CAPTURE_READ => capture_read(arg),
        IOC_LOG_READ => log_read(reg, arg),
        // The glue sends TEST_RUN to wasmfw_rs_test_run, without the mutex.
        IOC_TEST_RUN => Err(EINVAL),
        _ => Err(ENOTTY),
    }
}

/// Entry point of every ioctl.
#[no_mangle]
pub extern "C" fn wasmfw_rs_ioctl(cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the glue holds wasmfw_ctl_lock: this is the only reference.
    let reg = unsafe { &mut *REGISTRY.0.get() };
    match dispatch(reg, cmd, arg as usize) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// TEST_RUN (called by the glue without the control mutex).
#[no_mangle]
pub extern "C" fn wasmfw_rs_test_run(arg: c_ulong) -> c_long {
    match test_run(arg as usize) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// A device was unregistered (deleted, or moved out of `net`), or `net`
/// is being dismantled (`ifindex` 0): detach and free every filter
/// attached there, so nothing runs on a device that is gone, `status`
/// stops listing it and nothing keeps the namespace alive.
#[no_mangle]
pub extern "C" fn wasmfw_rs_forget(net: *mut c_void, ifindex: c_int, why: *const c_char) {
    // SAFETY: the glue holds wasmfw_ctl_lock: this is the only reference.
    let reg = unsafe { &mut *REGISTRY.0.get() };
    // SAFETY: `why` is a C string literal from the glue.
    let why = unsafe { core::ffi::CStr::from_ptr(why) }.to_str().unwrap_or("?");
    for i in 0..MAX_FILTERS as usize {
        let Some(e) = reg.slots[i].as_ref() else { continue };
        if e.hook == 0 || e.net != net || (ifindex != 0 && e.ifindex != ifindex as u32) {
            continue;
        }
        let (id, hook, eifindex) = (e.id, e.hook, e.ifindex);
        if hook == HOOK_XDP {
            // SAFETY: unpublishes the slot, waiting for a grace period.
            let f = unsafe { wasmfw_xdp_detach_at(net, eifindex as c_int) };
            if let Some(e) = reg.slots[i].as_mut() {
                if !f.is_null() && f != e.filter {
                    // SAFETY: unpublished and past a grace period.
                    unsafe { wf_free(f) };
                }
            }
        }
        // Netfilter: release() unregisters and waits for running hooks.
        reg.release(i);
        pr_info!("filter {} detached from ifindex {} and unloaded: {}\n", id, eifindex, why);
    }
}

/// Detaches and frees everything (module exit).
#[no_mangle]
pub extern "C" fn wasmfw_rs_teardown() {
    // SAFETY: called with wasmfw_ctl_lock held after the device is gone.
    let reg = unsafe { &mut *REGISTRY.0.get() };
    loop {
        // SAFETY: unpublishes one XDP filter (waiting a grace period).
        let f = unsafe { wasmfw_xdp_take_any() };
        if f.is_null() {
            break;
        }
        match reg.index_of_filter(f) {
            Some(i) => reg.release(i),
            // SAFETY: unpublished and past a grace period.
            None => unsafe { wf_free(f) },
        }
    }
    for i in 0..MAX_FILTERS as usize {
        reg.release(i);
    }
}

/// The ICMP interceptor written natively in Rust (no policy parameters):
/// the native-module baseline the benchmarks set beside the Wasm filter,
/// behind the same kind of kfunc (`wasmfw_xdp_native_icmp`). 1 = drop.
#[no_mangle]
pub extern "C" fn wasmfw_native_icmp_drop(data: *const u8, len: usize) -> c_int {
    if data.is_null() {
        return 0;
    }
    // SAFETY: the kfunc passes the frame's linear part, `len` bytes.
    let p = unsafe { core::slice::from_raw_parts(data, len) };
    native_icmp_verdict(p) as c_int
}

fn native_icmp_verdict(p: &[u8]) -> bool {
    let be16 = |o: usize| p.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut off = 12;
    let mut ethertype = be16(off);
    // Up to two VLAN tags, like the SDK.
    for _ in 0..2 {
        if matches!(ethertype, Some(0x8100) | Some(0x88a8)) {
            off += 4;
            ethertype = be16(off);
        }
    }
    let l3 = off + 2;
    match ethertype {
        Some(0x0800) => {
            let Some(&vihl) = p.get(l3) else { return false };
            let ihl = usize::from(vihl & 0xf) * 4;
            let frag = be16(l3 + 6).unwrap_or(0) & 0x1fff;
            ihl >= 20 && frag == 0 && p.get(l3 + 9) == Some(&1) && p.get(l3 + ihl) == Some(&8)
        }
        Some(0x86dd) => p.get(l3 + 6) == Some(&58) && p.get(l3 + 40) == Some(&128),
        _ => false,
    }
}

struct Wasmfw;

impl kernel::Module for Wasmfw {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: plain C initialiser, called once.
        let rc = unsafe { wasmfw_glue_init() };
        if rc != 0 {
            return Err(Error::from_errno(rc));
        }
        pr_info!("loaded: /dev/wasmfw, uapi v{}, hooks: netfilter, xdp (kfunc wasmfw_xdp_run)\n", UAPI_VERSION);
        Ok(Wasmfw)
    }
}

impl Drop for Wasmfw {
    fn drop(&mut self) {
        // SAFETY: undoes wasmfw_glue_init; frees every filter.
        unsafe { wasmfw_glue_exit() };
        pr_info!("unloaded\n");
    }
}
