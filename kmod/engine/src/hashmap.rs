//! A fixed-capacity hash map of fixed-size byte keys and values.
//!
//! All memory is reserved when the map is declared (process context), and
//! nothing is ever reallocated afterwards: lookups, inserts and deletes on
//! the packet path never allocate, however keys churn. (A general-purpose
//! table such as hashbrown's can rehash into a new allocation on insert
//! once deletes have left tombstones; this one uses linear probing with
//! backward-shift deletion, so it has no tombstones.) Like
//! `BPF_MAP_TYPE_HASH` with preallocation. Keys are attacker-controlled
//! (source addresses), so the hasher is seeded per map, and the index is
//! kept at most half full.

use alloc::vec::Vec;
use core::hash::BuildHasher;

const EMPTY: u32 = u32::MAX;

pub struct ByteHashMap {
    key_size: usize,
    value_size: usize,
    /// Open-addressing index: slot numbers into `slab`, or EMPTY. Its size
    /// is a power of two >= 2 x capacity, so a probe always ends.
    index: Vec<u32>,
    /// `capacity` slots of `key_size + value_size` bytes.
    slab: Vec<u8>,
    /// Which slots hold an entry (dumps walk slots in order, so a cursor is
    /// a slot number).
    used: Vec<bool>,
    free: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// Errors of [`ByteHashMap::insert`].
#[derive(Debug, PartialEq, Eq)]
pub enum MapFull {
    Full,
}

/// `Vec` of `n` copies of `v`, or None if memory is short.
fn filled<T: Clone>(n: usize, v: T) -> Option<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).ok()?;
    out.resize(n, v);
    Some(out)
}

impl ByteHashMap {
    /// Reserves everything up front; fails (instead of aborting) if memory is short.
    pub fn try_new(key_size: usize, value_size: usize, capacity: u32, seed: u64) -> Option<Self> {
        let slot = key_size.checked_add(value_size)?;
        let slab = filled(slot.checked_mul(capacity as usize)?, 0u8)?;
        let index = filled((capacity as usize).checked_mul(2)?.max(2).checked_next_power_of_two()?, EMPTY)?;
        let used = filled(capacity as usize, false)?;
        let mut free = Vec::new();
        free.try_reserve_exact(capacity as usize).ok()?;
        free.extend((0..capacity).rev());
        Some(ByteHashMap {
            key_size,
            value_size,
            index,
            slab,
            used,
            free,
            hasher: foldhash::fast::FixedState::with_seed(seed),
        })
    }

    /// Slots (entries) the map can hold.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    fn slot(&self, i: u32) -> &[u8] {
        let n = self.key_size + self.value_size;
        &self.slab[i as usize * n..(i as usize + 1) * n]
    }

    fn home(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.index.len() - 1)
    }

    /// (position in the index, slot) of `key`, or the first empty position.
    fn probe(&self, key: &[u8]) -> Result<(usize, u32), usize> {
        let mask = self.index.len() - 1;
        let mut pos = self.home(key);
        loop {
            match self.index[pos] {
                EMPTY => return Err(pos),
                s if &self.slot(s)[..self.key_size] == key => return Ok((pos, s)),
                _ => pos = (pos + 1) & mask,
            }
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.probe(key).ok().map(|(_, i)| &self.slot(i)[self.key_size..])
    }

    /// Inserts or replaces. Full maps refuse new keys, never evict.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), MapFull> {
        let n = self.key_size + self.value_size;
        let i = match self.probe(key) {
            Ok((_, i)) => i,
            Err(pos) => {
                let i = self.free.pop().ok_or(MapFull::Full)?;
                self.slab[i as usize * n..][..self.key_size].copy_from_slice(key);
                self.index[pos] = i;
                self.used[i as usize] = true;
                i
            }
        };
        self.slab[i as usize * n + self.key_size..][..self.value_size].copy_from_slice(value);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Ok((mut hole, i)) = self.probe(key) else { return false };
        self.used[i as usize] = false;
        // `free` has room for every slot (reserved at creation): no realloc.
        self.free.push(i);
        // Backward shift: move later entries of the run into the hole when
        // their home position allows it, so no probe ever stops early.
        let mask = self.index.len() - 1;
        let mut pos = hole;
        loop {
            pos = (pos + 1) & mask;
            let s = self.index[pos];
            if s == EMPTY {
                break;
            }
            let home = self.home(&self.slot(s)[..self.key_size]);
            // Distance from home, cyclically: may the entry move back to `hole`?
            if (pos.wrapping_sub(home) & mask) >= (pos.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                hole = pos;
            }
        }
        self.index[hole] = EMPTY;
        true
    }

    /// Every (key, value), in slot order.
    #[cfg(test)]
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        self.for_each_from(0, usize::MAX, |k, v| {
            f(k, v);
            true
        });
    }

    /// Entries from slot `cursor` on, at most `max_slots` slots looked at;
    /// `f` returns false to stop early (before consuming that entry).
    /// Returns the slot to continue from (>= capacity when done).
    pub fn for_each_from(&self, cursor: usize, max_slots: usize, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> usize {
        let end = cursor.saturating_add(max_slots).min(self.capacity());
        let mut i = cursor;
        while i < end {
            if self.used[i] {
                let s = self.slot(i as u32);
                if !f(&s[..self.key_size], &s[self.key_size..]) {
                    return i;
                }
            }
            i += 1;
        }
        i
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

    /// Random insert/remove churn against a reference map: every key stays
    /// findable after backward-shift deletes, and capacity never changes.
    #[test]
    fn churn_matches_a_reference_map() {
        let mut m = ByteHashMap::try_new(2, 4, 64, 99).unwrap();
        let mut r = std::collections::BTreeMap::new();
        let (index_len, slab_cap) = (m.index.len(), m.slab.capacity());
        let mut x = 12345u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = ((x % 97) as u16).to_le_bytes();
            if x & 0x100 == 0 {
                let ok = m.insert(&k, &x.to_le_bytes()).is_ok();
                if r.len() < 64 || r.contains_key(&k) {
                    assert!(ok);
                    r.insert(k, x);
                } else {
                    assert!(!ok);
                }
            } else {
                assert_eq!(m.remove(&k), r.remove(&k).is_some());
            }
        }
        for k in 0..97u16 {
            let k = k.to_le_bytes();
            assert_eq!(m.get(&k).map(|v| u32::from_le_bytes(v.try_into().unwrap())), r.get(&k).copied());
        }
        assert_eq!((m.index.len(), m.slab.capacity()), (index_len, slab_cap));
    }

    #[test]
    fn cursor_walks_every_entry_once() {
        let mut m = ByteHashMap::try_new(4, 4, 100, 1).unwrap();
        for k in 0..60u32 {
            m.insert(&k.to_le_bytes(), &k.to_le_bytes()).unwrap();
        }
        let (mut seen, mut cur) = (Vec::new(), 0);
        while cur < m.capacity() {
            cur = m.for_each_from(cur, 7, |k, _| {
                seen.push(u32::from_le_bytes(k.try_into().unwrap()));
                true
            });
        }
        seen.sort();
        assert_eq!(seen, (0..60).collect::<Vec<_>>());
    }
}
