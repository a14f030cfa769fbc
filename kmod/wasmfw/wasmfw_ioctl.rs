//! The ioctls that change what is loaded and attached (LOAD, ATTACH,
//! DETACH, UNLOAD, LIST), the userspace copy helpers every handler uses,
//! and the dispatch of every ioctl number to its handler.

use core::ffi::c_int;
use core::mem::size_of;

use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::UserSlice;

use crate::ffi::*;
use crate::filter_ioctl::{capture_ctl, capture_read, counters, log_read, map_dump, map_op, maps};
use crate::ids;
use crate::registry::{Entry, Registry, REGISTRY};
use crate::uapi::verdict::Verdict;
use crate::uapi::*;

pub(crate) fn read<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(arg, size_of::<T>()).reader().read()
}

pub(crate) fn write<T: AsBytes>(arg: usize, v: &T) -> Result {
    UserSlice::new(arg, size_of::<T>()).writer().write(v)
}

/// Bytes from userspace, at most `max`.
pub(crate) fn read_bytes(ptr: u64, len: u32, max: u32) -> Result<KVec<u8>> {
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
pub(crate) fn checked_name<const N: usize>(n: &[u8; N]) -> Result {
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

/// The engine's load arguments, straight from the request; every limit is
/// checked here, once (the engine takes them as they are).
fn load_args(req: &Load, cookie: u64) -> Result<WfLoadArgs> {
    if req.wasm_len == 0 || req.err_len > MAX_ERR || req.fuel == 0 {
        return Err(EINVAL);
    }
    if req.fuel > MAX_FUEL {
        // Said in words: the policy checker in userspace allows more.
        let mut w = Line { buf: [0; 128], len: 0 };
        let _ = core::fmt::write(
            &mut w,
            format_args!(
                "fuel {} exceeds the kernel's ceiling of {} per packet (WASMFW_MAX_FUEL)\0",
                req.fuel, MAX_FUEL
            ),
        );
        let (msg, n) = (w.buf, w.len);
        if req.err_len > 0 {
            let n = n.min(req.err_len as usize);
            UserSlice::new(req.err as usize, n).writer().write_slice(&msg[..n])?;
        }
        return Err(EINVAL);
    }
    if req.memory_limit < MIN_MEMORY_LIMIT
        || req.memory_limit > MAX_MEMORY_LIMIT
        || i32::try_from(req.on_fault).ok().and_then(Verdict::from_abi).is_none()
        || req.flags & !LOAD_AUDIT != 0
    {
        return Err(EINVAL);
    }
    Ok(WfLoadArgs {
        fuel: req.fuel,
        memory_limit: req.memory_limit,
        on_fault: req.on_fault,
        // SAFETY: plain C reads of kernel facts (wasmfw_dev.c).
        slots: unsafe { wasmfw_nr_cpu_ids() },
        // SAFETY: as above.
        seed: unsafe { wasmfw_random_u64() },
        cookie,
        audit: req.flags & LOAD_AUDIT,
        pad: 0,
    })
}

/// Runs `f` on the registry under the control mutex; EINTR if a signal
/// came while waiting for it.
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> Result<R> {
    // SAFETY: plain C call; nonzero on a signal.
    if unsafe { wasmfw_ctl_lock() } != 0 {
        return Err(EINTR);
    }
    // SAFETY: the control mutex is held: this is the only reference.
    let r = f(unsafe { &mut *REGISTRY.0.get() });
    // SAFETY: locked above.
    unsafe { wasmfw_ctl_unlock() };
    Ok(r)
}

/// As [`with_registry`], waiting whatever comes: for giving back what a
/// load reserved, which must not be skipped.
fn with_registry_always(f: impl FnOnce(&mut Registry)) {
    // SAFETY: plain C call (mutex_lock).
    unsafe { wasmfw_ctl_lock_uninterruptible() };
    // SAFETY: the control mutex is held: this is the only reference.
    f(unsafe { &mut *REGISTRY.0.get() });
    // SAFETY: locked above.
    unsafe { wasmfw_ctl_unlock() };
}

/// LOAD, called by the glue without the control mutex (issue 16). The user
/// copies, the compile for every possible CPU and each instance's
/// `wasmfw_init` (up to seconds for a large module on a large machine) run
/// outside it, one load at a time under the load mutex (wasmfw_load.c);
/// the control mutex is held only to reserve a slot and an id, and to
/// publish. So the netdevice notifier and the pernet exit, which take the
/// control mutex under rtnl, never wait behind a compile or a user copy.
pub(crate) fn load(arg: usize) -> Result {
    let mut req: Load = read(arg)?;
    let mut args = load_args(&req, 0)?;
    // Names are for display; force termination rather than trust it.
    req.name[31] = 0;
    req.policy[127] = 0;
    let wasm = read_bytes(req.wasm, req.wasm_len, MAX_WASM)?;
    let cfg = read_bytes(req.config, req.config_len, MAX_CONFIG)?;
    let (slot, id) = with_registry(|reg| reg.reserve())??;
    args.cookie = id as u64;
    // SAFETY: plain C call; nonzero on a signal.
    if unsafe { wasmfw_load_lock() } != 0 {
        with_registry_always(|reg| reg.loading[slot] = 0);
        return Err(EINTR);
    }
    let mut err = [0u8; 256];
    let mut stack_used = 0u32;
    let mut error: c_int = 0;
    // SAFETY: the buffers and `args` are live for the call; the engine
    // copies what it keeps; the load mutex is held.
    let filter = unsafe {
        wasmfw_load_on_stack(
            wasm.as_ptr(),
            wasm.len(),
            cfg.as_ptr(),
            cfg.len(),
            &args,
            err.as_mut_ptr().cast(),
            err.len(),
            &mut error,
            &mut stack_used,
        )
    };
    // SAFETY: locked above.
    unsafe { wasmfw_load_unlock() };
    with_registry_always(|reg| {
        reg.loading[slot] = 0;
        if !filter.is_null() {
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
        }
    });
    if filter.is_null() {
        let n = err.iter().position(|&b| b == 0).unwrap_or(err.len() - 1);
        // SAFETY: `err` has n readable bytes.
        unsafe { wasmfw_log_refused(err.as_ptr(), n) };
        if req.err_len > 0 {
            let n = (n + 1).min(req.err_len as usize);
            UserSlice::new(req.err as usize, n).writer().write_slice(&err[..n])?;
        }
        return Err(if error == WF_LOAD_NO_MEMORY { ENOMEM } else { EINVAL });
    }
    req.id = id;
    req.stack_used = stack_used;
    pr_info!("filter {} loaded (kernel stack used by the load: {} bytes)\n", id, stack_used);
    if let Err(e) = write(arg, &req) {
        // The caller never learns the id: free the filter, unless another
        // process attached it meanwhile (ids are guessable; it is theirs then).
        with_registry_always(|reg| {
            if let Some(i) = reg.index_of(id).filter(|&i| reg.slots[i].as_ref().is_some_and(|e| e.hook == 0)) {
                reg.release(i);
            }
        });
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

pub(crate) fn dispatch(reg: &mut Registry, cmd: u32, arg: usize) -> Result {
    match cmd {
        IOC_VERSION => UserSlice::new(arg, 4).writer().write_slice(&UAPI_VERSION.to_ne_bytes()),
        // The glue sends LOAD to wasmfw_rs_load, without the mutex.
        IOC_LOAD => Err(EINVAL),
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
