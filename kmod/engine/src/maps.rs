//! Maps shared between a filter's instances and userspace.
//!
//! The packet path and the control path (ioctls) both reach a map; each map
//! (and each CPU's copy of a per-CPU array) sits behind a host lock
//! ([`crate::lock`]), held only for one short, allocation-free operation.
//! Dumps copy in chunks of at most [`DUMP_CHUNK`] entries per lock hold, so
//! a 65,536-entry map never keeps a CPU's softirqs waiting for long.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::hashmap::ByteHashMap;
use crate::lock::{Ctx, Locked};
use crate::{abi, Env, Filter, Name};

/// Entries (hash slots, or array indices) looked at per lock hold by a dump.
pub const DUMP_CHUNK: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Hash,
    PerCpuArray,
}

impl MapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MapKind::Hash => "hash",
            MapKind::PerCpuArray => "percpu_array",
        }
    }
}

/// What a map is, as declared by the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub name: Name,
    pub kind: MapKind,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
}

pub(crate) enum Store {
    /// One table for all CPUs; the lock serialises CPUs and userspace.
    Hash(Locked<ByteHashMap>),
    /// One array per slot, `max_entries * value_size` bytes; a slot's lock
    /// is only contended by userspace.
    PerCpu(Box<[Locked<Box<[u8]>>]>),
}

pub(crate) struct Map {
    pub info: MapInfo,
    pub store: Store,
}

impl MapInfo {
    /// Checks a declaration from a filter against the ABI limits.
    pub(crate) fn from_decl(kind: i32, key: i32, value: i32, max: i32, name: &[u8]) -> Option<MapInfo> {
        let name = Name::new(name)?;
        let (value_size, max_entries) = (usize::try_from(value).ok()?, u32::try_from(max).ok()?);
        if value_size == 0 || value_size > abi::MAX_VALUE_SIZE || max_entries == 0 {
            return None;
        }
        let (kind, key_size) = match kind {
            abi::MAP_HASH => {
                let key_size = usize::try_from(key).ok()?;
                if key_size == 0 || key_size > abi::MAX_KEY_SIZE || max_entries > abi::MAX_HASH_ENTRIES {
                    return None;
                }
                (MapKind::Hash, key_size)
            }
            abi::MAP_PERCPU_ARRAY if key == 4 && max_entries <= abi::MAX_ARRAY_ENTRIES => (MapKind::PerCpuArray, 4),
            _ => return None,
        };
        Some(MapInfo { name, kind, key_size, value_size, max_entries })
    }
}

impl Map {
    /// Allocates the map's storage and locks (process context). `None` if
    /// memory is short.
    pub(crate) fn new(info: MapInfo, slots: usize, seed: u64, env: &dyn Env) -> Option<Map> {
        let store = match info.kind {
            MapKind::Hash => {
                let table = ByteHashMap::try_new(info.key_size, info.value_size, info.max_entries, seed)?;
                Store::Hash(Locked::new(env.new_lock()?, table))
            }
            MapKind::PerCpuArray => {
                let len = info.value_size * info.max_entries as usize;
                let mut arrays = Vec::new();
                arrays.try_reserve_exact(slots).ok()?;
                for _ in 0..slots {
                    let mut a = Vec::new();
                    a.try_reserve_exact(len).ok()?;
                    a.resize(len, 0u8);
                    arrays.push(Locked::new(env.new_lock()?, a.into_boxed_slice()));
                }
                Store::PerCpu(arrays.into_boxed_slice())
            }
        };
        Some(Map { info, store })
    }

    /// Copies the value for `key` (as seen by `slot`) into `out`.
    pub(crate) fn lookup(&self, ctx: Ctx, slot: usize, key: &[u8], out: &mut [u8]) -> bool {
        match &self.store {
            Store::Hash(m) => m.with(ctx, |m| match m.get(key) {
                Some(v) => {
                    out.copy_from_slice(v);
                    true
                }
                None => false,
            }),
            Store::PerCpu(arrays) => match (self.index(key), arrays.get(slot)) {
                (Some(off), Some(a)) => {
                    a.with(ctx, |a| out.copy_from_slice(&a[off..off + self.info.value_size]));
                    true
                }
                _ => false,
            },
        }
    }

    /// Stores `value` under `key` (for `slot`'s copy of a per-CPU array).
    pub(crate) fn update(&self, ctx: Ctx, slot: usize, key: &[u8], value: &[u8]) -> i32 {
        match &self.store {
            Store::Hash(m) => match m.with(ctx, |m| m.insert(key, value)) {
                Ok(()) => 0,
                Err(_) => abi::E_FULL,
            },
            Store::PerCpu(arrays) => match (self.index(key), arrays.get(slot)) {
                (Some(off), Some(a)) => {
                    a.with(ctx, |a| a[off..off + self.info.value_size].copy_from_slice(value));
                    0
                }
                _ => abi::E_NOENT,
            },
        }
    }

    /// Deletes `key` from a hash map; array entries cannot be deleted.
    pub(crate) fn delete(&self, ctx: Ctx, key: &[u8]) -> i32 {
        match &self.store {
            Store::Hash(m) => m.with(ctx, |m| m.remove(key)) as i32,
            Store::PerCpu(_) => abi::E_INVAL,
        }
    }

    fn index(&self, key: &[u8]) -> Option<usize> {
        let i = u32::from_le_bytes(key.try_into().ok()?);
        (i < self.info.max_entries).then_some(i as usize * self.info.value_size)
    }

    /// Positions a dump cursor walks: hash slots, or slot x index.
    fn cursor_end(&self) -> u64 {
        match &self.store {
            Store::Hash(_) => u64::from(self.info.max_entries),
            Store::PerCpu(arrays) => arrays.len() as u64 * u64::from(self.info.max_entries),
        }
    }
}

/// Userspace access to a filter's maps (ioctl in the kernel, tests in
/// userspace), always in process context. Keys and values must have the
/// declared sizes.
impl Filter {
    /// Every declared map.
    pub fn maps(&self, mut f: impl FnMut(&MapInfo)) {
        for m in self.shared.maps.lock().iter() {
            f(&m.info);
        }
    }

    fn map(&self, name: &str) -> Option<alloc::sync::Arc<Map>> {
        self.shared.maps.lock().iter().find(|m| m.info.name.as_str() == name).cloned()
    }

    /// The map's declaration.
    pub fn map_info(&self, name: &str) -> Option<MapInfo> {
        self.map(name).map(|m| m.info)
    }

    /// Calls `f(slot, key, value)` for every entry; per-CPU arrays give one
    /// call per slot and index.
    pub fn map_for_each(&self, name: &str, mut f: impl FnMut(usize, &[u8], &[u8])) -> bool {
        let mut cursor = 0;
        loop {
            match self.map_dump(name, cursor, |slot, k, v| {
                f(slot, k, v);
                true
            }) {
                None => return false,
                Some(0) => return true,
                Some(next) => cursor = next,
            }
        }
    }

    /// Dumps entries from `cursor` (0 = the start) in chunks, taking the
    /// map's lock once per chunk of at most [`DUMP_CHUNK`] entries; calls
    /// `f(slot, key, value)` per entry until it returns false (that entry
    /// is not consumed). Returns the cursor to continue from, 0 when the
    /// whole map was walked, None if there is no such map. Entries changed
    /// between chunks may or may not be seen (like BPF map iteration).
    pub fn map_dump(&self, name: &str, cursor: u64, mut f: impl FnMut(usize, &[u8], &[u8]) -> bool) -> Option<u64> {
        let m = self.map(name)?;
        let end = m.cursor_end();
        let mut cur = cursor;
        while cur < end {
            let mut stopped = false;
            let next = match &m.store {
                Store::Hash(h) => h.with(Ctx::Control, |h| {
                    h.for_each_from(cur as usize, DUMP_CHUNK, |k, v| {
                        stopped = !f(0, k, v);
                        !stopped
                    }) as u64
                }),
                Store::PerCpu(arrays) => {
                    let n = u64::from(m.info.max_entries);
                    let (slot, first) = ((cur / n) as usize, (cur % n) as usize);
                    let last = (first + DUMP_CHUNK).min(n as usize);
                    let vs = m.info.value_size;
                    arrays[slot].with(Ctx::Control, |a| {
                        for i in first..last {
                            if !f(slot, &(i as u32).to_le_bytes(), &a[i * vs..(i + 1) * vs]) {
                                stopped = true;
                                return slot as u64 * n + i as u64;
                            }
                        }
                        slot as u64 * n + last as u64
                    })
                }
            };
            cur = next;
            if stopped {
                return Some(cur);
            }
        }
        Some(0)
    }

    /// Sets `key` to `value`, in every slot for a per-CPU array. Returns an
    /// ABI error code (0 = ok).
    pub fn map_update(&self, name: &str, key: &[u8], value: &[u8]) -> i32 {
        let Some(m) = self.map(name) else { return abi::E_NOENT };
        if key.len() != m.info.key_size || value.len() != m.info.value_size {
            return abi::E_INVAL;
        }
        match &m.store {
            Store::Hash(_) => m.update(Ctx::Control, 0, key, value),
            Store::PerCpu(arrays) => {
                (0..arrays.len()).map(|s| m.update(Ctx::Control, s, key, value)).min().unwrap_or(0)
            }
        }
    }

    /// Deletes `key` from a hash map: 1 deleted, 0 absent, < 0 error.
    pub fn map_delete(&self, name: &str, key: &[u8]) -> i32 {
        match self.map(name) {
            Some(m) if key.len() == m.info.key_size => m.delete(Ctx::Control, key),
            Some(_) => abi::E_INVAL,
            None => abi::E_NOENT,
        }
    }
}
