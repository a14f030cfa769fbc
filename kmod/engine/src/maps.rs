//! Maps shared between a filter's instances and userspace.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::hashmap::ByteHashMap;
use crate::{abi, Filter, Name};

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
    /// (The kernel calls in with bottom halves disabled, so softirq and
    /// process context cannot deadlock on it.)
    Hash(spin::Mutex<ByteHashMap>),
    /// One array per slot, `max_entries * value_size` bytes; a slot's lock
    /// is only contended by userspace reads.
    PerCpu(Box<[spin::Mutex<Box<[u8]>>]>),
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
    /// Allocates the map's storage (process context). `None` if memory is short.
    pub(crate) fn new(info: MapInfo, slots: usize, seed: u64) -> Option<Map> {
        let store = match info.kind {
            MapKind::Hash => Store::Hash(spin::Mutex::new(ByteHashMap::try_new(
                info.key_size,
                info.value_size,
                info.max_entries,
                seed,
            )?)),
            MapKind::PerCpuArray => {
                let len = info.value_size * info.max_entries as usize;
                let mut arrays = Vec::new();
                arrays.try_reserve_exact(slots).ok()?;
                for _ in 0..slots {
                    let mut a = Vec::new();
                    a.try_reserve_exact(len).ok()?;
                    a.resize(len, 0u8);
                    arrays.push(spin::Mutex::new(a.into_boxed_slice()));
                }
                Store::PerCpu(arrays.into_boxed_slice())
            }
        };
        Some(Map { info, store })
    }

    /// Copies the value for `key` (as seen by `slot`) into `out`.
    pub(crate) fn lookup(&self, slot: usize, key: &[u8], out: &mut [u8]) -> bool {
        match &self.store {
            Store::Hash(m) => match m.lock().get(key) {
                Some(v) => {
                    out.copy_from_slice(v);
                    true
                }
                None => false,
            },
            Store::PerCpu(arrays) => match (self.index(key), arrays.get(slot)) {
                (Some(off), Some(a)) => {
                    out.copy_from_slice(&a.lock()[off..off + self.info.value_size]);
                    true
                }
                _ => false,
            },
        }
    }

    /// Stores `value` under `key` (for `slot`'s copy of a per-CPU array).
    pub(crate) fn update(&self, slot: usize, key: &[u8], value: &[u8]) -> i32 {
        match &self.store {
            Store::Hash(m) => match m.lock().insert(key, value) {
                Ok(()) => 0,
                Err(_) => abi::E_FULL,
            },
            Store::PerCpu(arrays) => match (self.index(key), arrays.get(slot)) {
                (Some(off), Some(a)) => {
                    a.lock()[off..off + self.info.value_size].copy_from_slice(value);
                    0
                }
                _ => abi::E_NOENT,
            },
        }
    }

    /// Deletes `key` from a hash map; array entries cannot be deleted.
    pub(crate) fn delete(&self, key: &[u8]) -> i32 {
        match &self.store {
            Store::Hash(m) => m.lock().remove(key) as i32,
            Store::PerCpu(_) => abi::E_INVAL,
        }
    }

    fn index(&self, key: &[u8]) -> Option<usize> {
        let i = u32::from_le_bytes(key.try_into().ok()?);
        (i < self.info.max_entries).then_some(i as usize * self.info.value_size)
    }
}

/// Userspace access to a filter's maps (ioctl in the kernel, tests in
/// userspace). Keys and values must have the declared sizes.
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
        let Some(m) = self.map(name) else { return false };
        match &m.store {
            Store::Hash(h) => h.lock().for_each(|k, v| f(0, k, v)),
            Store::PerCpu(arrays) => {
                for (slot, a) in arrays.iter().enumerate() {
                    let a = a.lock();
                    for (i, v) in a.chunks(m.info.value_size).enumerate() {
                        f(slot, &(i as u32).to_le_bytes(), v);
                    }
                }
            }
        }
        true
    }

    /// Sets `key` to `value`, in every slot for a per-CPU array. Returns an
    /// ABI error code (0 = ok).
    pub fn map_update(&self, name: &str, key: &[u8], value: &[u8]) -> i32 {
        let Some(m) = self.map(name) else { return abi::E_NOENT };
        if key.len() != m.info.key_size || value.len() != m.info.value_size {
            return abi::E_INVAL;
        }
        match &m.store {
            Store::Hash(_) => m.update(0, key, value),
            Store::PerCpu(arrays) => (0..arrays.len()).map(|s| m.update(s, key, value)).min().unwrap_or(0),
        }
    }

    /// Deletes `key` from a hash map: 1 deleted, 0 absent, < 0 error.
    pub fn map_delete(&self, name: &str, key: &[u8]) -> i32 {
        match self.map(name) {
            Some(m) if key.len() == m.info.key_size => m.delete(key),
            Some(_) => abi::E_INVAL,
            None => abi::E_NOENT,
        }
    }
}
