//! The table of loaded filters: one slot per filter id, owned by the
//! control path (every access holds the glue's control mutex).

use core::cell::UnsafeCell;
use core::ffi::c_void;

use kernel::prelude::*;

use crate::ffi::*;
use crate::ids;
use crate::uapi::MAX_FILTERS;

pub(crate) struct Entry {
    pub(crate) id: u32,
    pub(crate) filter: *mut WfFilter,
    /// The attachment's `struct net *`, as a key only (never dereferenced
    /// here); null while not attached.
    pub(crate) net: *mut c_void,
    /// The netfilter attachment; null unless `hook` is HOOK_NETFILTER.
    pub(crate) att: *mut WasmfwNf,
    /// 0 while loaded but not attached.
    pub(crate) hook: u32,
    pub(crate) ifindex: u32,
    /// The attachment's network namespace inode; 0 while not attached.
    pub(crate) netns_ino: u64,
    pub(crate) ifname: [u8; 16],
    pub(crate) name: [u8; 32],
    pub(crate) policy: [u8; 128],
    pub(crate) fuel: u64,
    pub(crate) memory_limit: u64,
    pub(crate) on_fault: u32,
    /// As loaded ([`LOAD_AUDIT`]).
    pub(crate) flags: u32,
}

pub(crate) struct Registry {
    pub(crate) slots: [Option<Entry>; MAX_FILTERS as usize],
    /// The id a load in progress reserved in a free slot (0: none): LOAD
    /// compiles outside the control mutex (wasmfw_ioctl.rs), so its slot
    /// and id are held here until it publishes or gives up.
    pub(crate) loading: [u32; MAX_FILTERS as usize],
    pub(crate) next_id: u32,
}

pub(crate) struct Global(pub(crate) UnsafeCell<Registry>);

// SAFETY: the registry is only touched by wasmfw_rs_ioctl and
// wasmfw_rs_teardown, which the C glue calls with wasmfw_ctl_lock held.
unsafe impl Sync for Global {}

pub(crate) static REGISTRY: Global = Global(UnsafeCell::new(Registry {
    slots: [const { None }; MAX_FILTERS as usize],
    loading: [0; MAX_FILTERS as usize],
    next_id: 1,
}));

impl Registry {
    pub(crate) fn get(&mut self, id: u32) -> Result<&mut Entry> {
        self.slots.iter_mut().flatten().find(|e| e.id == id).ok_or(ENOENT)
    }

    /// Reserves a free slot and an id for a load in progress: an id not
    /// held by a loaded filter or another load (ids wrap after 2^32 loads).
    pub(crate) fn reserve(&mut self) -> Result<(usize, u32)> {
        let slot = (0..self.slots.len()).find(|&i| self.slots[i].is_none() && self.loading[i] == 0).ok_or(ENOSPC)?;
        let id = ids::first_free(self.next_id, |id| self.index_of(id).is_some() || self.loading.contains(&id));
        self.next_id = ids::following(id);
        self.loading[slot] = id;
        Ok((slot, id))
    }

    pub(crate) fn index_of(&self, id: u32) -> Option<usize> {
        self.slots.iter().position(|e| e.as_ref().is_some_and(|e| e.id == id))
    }

    /// The attached entry on `ifname` in the caller's namespace.
    pub(crate) fn attached_on(&self, ifname: &[u8; 16]) -> Option<usize> {
        self.slots.iter().position(|e| {
            // SAFETY: `att` is a live attachment and ifname is NUL-terminated.
            e.as_ref().is_some_and(|e| !e.att.is_null() && unsafe { wasmfw_nf_matches(e.att, ifname.as_ptr().cast()) })
        })
    }

    pub(crate) fn index_of_filter(&self, f: *mut WfFilter) -> Option<usize> {
        self.slots.iter().position(|e| e.as_ref().is_some_and(|e| e.filter == f))
    }

    /// Removes an entry, detaching it from netfilter first, and frees its
    /// filter. XDP entries must already be unpublished (xdp_detach).
    pub(crate) fn release(&mut self, index: usize) {
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
