//! Locks for state shared between the packet path and the control path
//! (hash maps, per-CPU arrays), provided by the host.
//!
//! In the kernel a filter's maps are touched by softirq (the packet path)
//! and by ioctls in process context, so the lock must be a kernel
//! `spinlock_t` that lockdep can see, taken with `spin_lock_bh` in process
//! context and plain `spin_lock` on the packet path, where bottom halves
//! are already off (kmod/engine-ffi provides it through [`Env::new_lock`]).
//! A `spin` lock there would deadlock silently when a softirq interrupts an
//! ioctl holding it on the same CPU. Userspace (`wasmfw replay`, tests)
//! uses [`SpinLock`].

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Who takes a lock: decides how the host must take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// The packet path (a filter running on a packet). In the kernel,
    /// bottom halves are already disabled there.
    Packet,
    /// Process context: load (`wasmfw_init`), map ioctls. In the kernel the
    /// lock is taken with bottom halves disabled.
    Control,
}

/// A mutual-exclusion lock provided by the host. `lock` and `unlock` are
/// called in pairs, with the same `ctx`, on the same CPU.
pub trait HostLock: Send + Sync {
    fn lock(&self, ctx: Ctx);
    fn unlock(&self, ctx: Ctx);
}

/// A test-and-set spin lock for userspace hosts.
#[derive(Default)]
pub struct SpinLock(AtomicBool);

impl HostLock for SpinLock {
    fn lock(&self, _ctx: Ctx) {
        while self.0.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
    }
    fn unlock(&self, _ctx: Ctx) {
        self.0.store(false, Ordering::Release);
    }
}

/// `T` behind a host lock.
pub(crate) struct Locked<T> {
    lock: Box<dyn HostLock>,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached through `with`, which holds the lock.
unsafe impl<T: Send> Sync for Locked<T> {}
// SAFETY: as above; the lock itself is Send.
unsafe impl<T: Send> Send for Locked<T> {}

impl<T> Locked<T> {
    pub(crate) fn new(lock: Box<dyn HostLock>, data: T) -> Self {
        Locked { lock, data: UnsafeCell::new(data) }
    }

    /// Runs `f` with the lock held. Keep `f` short and allocation-free: in
    /// the kernel it runs with bottom halves off.
    pub(crate) fn with<R>(&self, ctx: Ctx, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.lock(ctx);
        // SAFETY: the lock is held, so this is the only reference.
        let r = f(unsafe { &mut *self.data.get() });
        self.lock.unlock(ctx);
        r
    }
}
