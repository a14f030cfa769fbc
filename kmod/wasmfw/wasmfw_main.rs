// SPDX-License-Identifier: GPL-2.0
//! wasmfw: WebAssembly packet filters in the kernel.
//!
//! This is the control plane: it decodes the ioctls of /dev/wasmfw
//! (`wasmfw_uapi.h`), checks every length, index and id, keeps the table of
//! loaded filters and drives the engine object (`wasmfw_engine.o`, wasmi)
//! and the module's C files (`wasmfw_*.c`: misc device, netfilter hooks,
//! XDP kfunc, RCU, the engine's host hooks; kmod/README.md lists them).
//! `wasmfw_dev.c` calls [`wasmfw_rs_ioctl`] with the control mutex held and
//! only after checking CAP_NET_ADMIN.

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};

// The engine FFI's records and numbers (kmod/engine-ffi/src/abi.rs, copied
// here by kmod/build-module.sh); the module uses only some of them.
#[allow(dead_code, unreachable_pub)]
#[path = "wasmfw_engine_abi.rs"]
mod engine_abi;
#[path = "wasmfw_ffi.rs"]
mod ffi;
#[path = "wasmfw_filter_ioctl.rs"]
mod filter_ioctl;
#[path = "wasmfw_ids.rs"]
mod ids;
#[path = "wasmfw_ioctl.rs"]
mod ioctl;
#[path = "wasmfw_native.rs"]
mod native;
#[path = "wasmfw_registry.rs"]
mod registry;

use ffi::{wasmfw_glue_exit, wasmfw_glue_init, wasmfw_xdp_detach_at, wasmfw_xdp_take_any, wf_free};
use registry::REGISTRY;

module! {
    type: Wasmfw,
    name: "wasmfw",
    author: "wasmfw",
    description: "WebAssembly packet filters (wasmi) at netfilter and XDP",
    license: "GPL",
}

// The crate wasmfw-uapi's file (wasmfw_uapi.rs is a symlink to
// kmod/uapi/src/lib.rs): Kbuild has no cargo. Its `#![no_std]` is for the crate.
#[allow(unused_attributes)]
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

/// Entry point of every ioctl.
#[no_mangle]
pub extern "C" fn wasmfw_rs_ioctl(cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the glue holds wasmfw_ctl_lock: this is the only reference.
    let reg = unsafe { &mut *REGISTRY.0.get() };
    match ioctl::dispatch(reg, cmd, arg as usize) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// LOAD (called by the glue without the control mutex: it takes it only to
/// reserve and publish, [`ioctl::load`]).
#[no_mangle]
pub extern "C" fn wasmfw_rs_load(arg: c_ulong) -> c_long {
    match ioctl::load(arg as usize) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// TEST_RUN (called by the glue without the control mutex).
#[no_mangle]
pub extern "C" fn wasmfw_rs_test_run(arg: c_ulong) -> c_long {
    match filter_ioctl::test_run(arg as usize) {
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
