//! Test-only: the spec-suite executor (`kmod/spectest/exec`) behind a C ABI
//! for `wasmfw_spectest.ko` (issue 12).
//!
//! Built for the kernel target exactly like the product's engine object
//! (`kmod/build-engine.sh`: soft-float, no red zone, same wasmi features),
//! then reduced to one object exporting only `wfs_*`. Memory comes from
//! the kernel (`wfs_host_alloc`, kvmalloc); a panic goes to
//! `wfs_host_panic`, which abandons the command's kthread instead of the
//! kernel. Every call runs on that kthread (kmod/spectest/module).
#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};

use wasmfw_spectest_exec::Session;

extern "C" {
    fn wfs_host_alloc(size: usize, align: usize) -> *mut u8;
    fn wfs_host_free(ptr: *mut u8);
    fn wfs_host_panic(msg: *const u8, len: usize) -> !;
}

struct KernelAlloc;

// SAFETY: wfs_host_alloc returns memory aligned to `align` or null, and
// wfs_host_free accepts exactly what it returned.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C call; null on failure is what GlobalAlloc expects.
        unsafe { wfs_host_alloc(layout.size(), layout.align()) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { wfs_host_free(ptr) }
    }
}

#[global_allocator]
static ALLOC: KernelAlloc = KernelAlloc;

/// Bytes of a panic message passed to the kernel.
const PANIC_MSG_LEN: usize = 160;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut buf = FixedBuf { data: [0; PANIC_MSG_LEN], len: 0 };
    let _ = core::fmt::write(&mut buf, format_args!("{}", info.message()));
    // SAFETY: buf holds `len` initialised bytes.
    unsafe { wfs_host_panic(buf.data.as_ptr(), buf.len) }
}

struct FixedBuf {
    data: [u8; PANIC_MSG_LEN],
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

/// A new session: one store with the `spectest` imports.
#[no_mangle]
pub extern "C" fn wfs_session_new() -> *mut Session {
    Box::into_raw(Box::new(Session::new()))
}

/// Frees a session.
///
/// # Safety
/// `s` comes from wfs_session_new and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn wfs_session_free(s: *mut Session) {
    if !s.is_null() {
        // SAFETY: see above.
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Runs one request; writes the response (at most `cap` bytes) to `resp`
/// and returns its full length (more than `cap`: it was cut).
///
/// # Safety
/// `s` is a live session used by nobody else during the call; `req` has
/// `req_len` readable bytes, `resp` `cap` writable ones.
#[no_mangle]
pub unsafe extern "C" fn wfs_exec(s: *mut Session, req: *const u8, req_len: usize, resp: *mut u8, cap: usize) -> usize {
    // SAFETY: see above.
    let (s, req) = unsafe { (&mut *s, core::slice::from_raw_parts(req, req_len)) };
    let mut out = Vec::new();
    s.exec(req, &mut out);
    let n = out.len().min(cap);
    // SAFETY: `resp` has `cap` >= n writable bytes that do not overlap `out`.
    unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), resp, n) };
    out.len()
}

/// Replaces compiler_builtins' weak `__extendsfdf2` (soft-float
/// `f32 as f64`), which keeps signaling NaNs signaling; Wasm's
/// `f64.promote_f32` must return a quiet (arithmetic) NaN. See
/// `wasmfw_spectest_exec::promote_f32_bits`.
#[no_mangle]
pub extern "C" fn __extendsfdf2(a: f32) -> f64 {
    f64::from_bits(wasmfw_spectest_exec::promote_f32_bits(a.to_bits()))
}
