//! A fixed-capacity hash map of fixed-size byte keys and values.
//!
//! All memory is reserved when the map is declared (process context), so a
//! lookup or update on the packet path never allocates: like
//! `BPF_MAP_TYPE_HASH` with preallocation. Keys are attacker-controlled
//! (source addresses), so the hasher is seeded per map.

use alloc::vec::Vec;
use core::hash::BuildHasher;
use hashbrown::HashTable;

pub struct ByteHashMap {
    key_size: usize,
    value_size: usize,
    /// Slot indices into `slab`.
    table: HashTable<u32>,
    /// `capacity` slots of `key_size + value_size` bytes.
    slab: Vec<u8>,
    free: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// Errors of [`ByteHashMap::insert`].
#[derive(Debug, PartialEq, Eq)]
pub enum MapFull {
    Full,
}

impl ByteHashMap {
    /// Reserves everything up front; fails (instead of aborting) if memory is short.
    pub fn try_new(key_size: usize, value_size: usize, capacity: u32, seed: u64) -> Option<Self> {
        let slot = key_size + value_size;
        let mut slab = Vec::new();
        slab.try_reserve_exact(slot.checked_mul(capacity as usize)?).ok()?;
        slab.resize(slot * capacity as usize, 0);
        let mut free = Vec::new();
        free.try_reserve_exact(capacity as usize).ok()?;
        free.extend((0..capacity).rev());
        let mut table = HashTable::new();
        table.try_reserve(capacity as usize, |_| 0).ok()?;
        Some(ByteHashMap { key_size, value_size, table, slab, free, hasher: foldhash::fast::FixedState::with_seed(seed) })
    }

    fn slot(&self, i: u32) -> &[u8] {
        let n = self.key_size + self.value_size;
        &self.slab[i as usize * n..(i as usize + 1) * n]
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let h = self.hash(key);
        self.table.find(h, |&i| &self.slot(i)[..self.key_size] == key).copied()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.find(key).map(|i| &self.slot(i)[self.key_size..])
    }

    /// Inserts or replaces. Full maps refuse new keys, never evict.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), MapFull> {
        let n = self.key_size + self.value_size;
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                let i = self.free.pop().ok_or(MapFull::Full)?;
                let h = self.hash(key);
                self.slab[i as usize * n..][..self.key_size].copy_from_slice(key);
                // Capacity was reserved for every slot, so this never reallocates.
                let (slab, hasher, ks) = (&self.slab, &self.hasher, self.key_size);
                self.table.insert_unique(h, i, |&j| hasher.hash_one(&slab[j as usize * n..][..ks]));
                i
            }
        };
        self.slab[i as usize * n + self.key_size..][..self.value_size].copy_from_slice(value);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let h = self.hash(key);
        let n = self.key_size + self.value_size;
        let (slab, ks) = (&self.slab, self.key_size);
        match self.table.find_entry(h, |&i| &slab[i as usize * n..][..ks] == key) {
            Ok(entry) => {
                let (i, _) = entry.remove();
                self.free.push(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Every (key, value), in no particular order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for &i in self.table.iter() {
            let s = self.slot(i);
            f(&s[..self.key_size], &s[self.key_size..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_and_full() {
        let mut m = ByteHashMap::try_new(4, 8, 3, 7).unwrap();
        assert_eq!(m.get(b"aaaa"), None);
        m.insert(b"aaaa", &1u64.to_le_bytes()).unwrap();
        m.insert(b"bbbb", &2u64.to_le_bytes()).unwrap();
        m.insert(b"cccc", &3u64.to_le_bytes()).unwrap();
        assert_eq!(m.insert(b"dddd", &4u64.to_le_bytes()), Err(MapFull::Full));
        // Replacing an existing key works when full.
        m.insert(b"aaaa", &9u64.to_le_bytes()).unwrap();
        assert_eq!(m.get(b"aaaa"), Some(&9u64.to_le_bytes()[..]));
        assert!(m.remove(b"bbbb"));
        assert!(!m.remove(b"bbbb"));
        m.insert(b"dddd", &4u64.to_le_bytes()).unwrap();
        assert_eq!(m.get(b"dddd"), Some(&4u64.to_le_bytes()[..]));
        assert_eq!(m.get(b"bbbb"), None);
        let mut n = 0;
        m.for_each(|_, _| n += 1);
        assert_eq!(n, 3);
    }
}
