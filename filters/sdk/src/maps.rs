//! Typed maps and counters over the host imports. Declare them in
//! [`Filter::init`](crate::Filter::init) (the host refuses later
//! declarations) and keep the handles in the filter's state.

use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};

use crate::config::Error;
use crate::{abi, sys};

/// Plain old data: a fixed-size value that maps store as its bytes.
///
/// # Safety
/// Implementors must have no padding bytes, no pointers or references, and
/// accept every bit pattern (integers, arrays of them, `#[repr(C)]` structs
/// of them laid out without padding).
pub unsafe trait Pod: Copy + 'static {
    /// The value as bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self` has no padding (trait contract), so all its
        // `size_of` bytes are initialised; the slice borrows `self`.
        unsafe { core::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }

    /// Fills a value from the host: `fill` writes exactly `size_of::<Self>()` bytes.
    #[doc(hidden)]
    fn read_from(fill: impl FnOnce(&mut [u8]) -> bool) -> Option<Self> {
        let mut v = MaybeUninit::<Self>::zeroed();
        // SAFETY: the zeroed bytes are initialised u8s, and any bytes the
        // host writes are too; the slice covers exactly the value.
        let bytes = unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, size_of::<Self>()) };
        if fill(bytes) {
            // SAFETY: every bit pattern is a valid `Self` (trait contract).
            Some(unsafe { v.assume_init() })
        } else {
            None
        }
    }
}

// SAFETY: integers have no padding and accept every bit pattern.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i8 {}
// SAFETY: as above.
unsafe impl Pod for i16 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: arrays of Pod have no padding between elements.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
// SAFETY: `Addr` is a `#[repr(transparent)]` `[u8; 16]`.
unsafe impl Pod for crate::net::Addr {}

/// A map operation the host refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The map is full (new keys only).
    Full,
    /// Any other error code from the host.
    Host(i32),
}

fn declare(kind: i32, key_size: usize, value_size: usize, max_entries: u32, name: &'static str) -> Result<i32, Error> {
    if key_size > abi::MAX_KEY_SIZE || value_size > abi::MAX_VALUE_SIZE {
        return Err(Error::Host { what: "map", name, code: abi::E_INVAL });
    }
    match sys::map_declare(kind, key_size as u32, value_size as u32, max_entries, name) {
        id if id >= 0 => Ok(id),
        code => Err(Error::Host { what: "map", name, code }),
    }
}

/// A hash map shared by all CPUs (`BPF_MAP_TYPE_HASH`), keyed by `K`.
pub struct HashMap<K: Pod, V: Pod> {
    id: i32,
    _types: PhantomData<(K, V)>,
}

impl<K: Pod, V: Pod> HashMap<K, V> {
    /// Declares the map (init only). Userspace finds it by `name`.
    pub fn declare(name: &'static str, max_entries: u32) -> Result<Self, Error> {
        let id = declare(abi::MAP_HASH, size_of::<K>(), size_of::<V>(), max_entries, name)?;
        Ok(HashMap { id, _types: PhantomData })
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &K) -> Option<V> {
        V::read_from(|v| sys::map_lookup(self.id, key.as_bytes(), v) == 1)
    }

    /// Inserts or replaces the value for `key`.
    pub fn insert(&self, key: &K, value: &V) -> Result<(), MapError> {
        match sys::map_update(self.id, key.as_bytes(), value.as_bytes()) {
            0 => Ok(()),
            abi::E_FULL => Err(MapError::Full),
            code => Err(MapError::Host(code)),
        }
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &K) -> bool {
        sys::map_delete(self.id, key.as_bytes()) == 1
    }
}

/// An array with one private copy per CPU (`BPF_MAP_TYPE_PERCPU_ARRAY`):
/// every index below its length exists and starts zeroed.
pub struct PerCpuArray<V: Pod> {
    id: i32,
    len: u32,
    _types: PhantomData<V>,
}

impl<V: Pod> PerCpuArray<V> {
    /// Declares the array (init only). Userspace finds it by `name`.
    pub fn declare(name: &'static str, len: u32) -> Result<Self, Error> {
        let id = declare(abi::MAP_PERCPU_ARRAY, 4, size_of::<V>(), len, name)?;
        Ok(PerCpuArray { id, len, _types: PhantomData })
    }

    /// This CPU's value at `index`; `None` if out of range.
    pub fn get(&self, index: u32) -> Option<V> {
        if index >= self.len {
            return None;
        }
        V::read_from(|v| sys::map_lookup(self.id, &index.to_le_bytes(), v) == 1)
    }

    /// Sets this CPU's value at `index`.
    pub fn set(&self, index: u32, value: &V) -> Result<(), MapError> {
        if index >= self.len {
            return Err(MapError::Host(abi::E_INVAL));
        }
        match sys::map_update(self.id, &index.to_le_bytes(), value.as_bytes()) {
            0 => Ok(()),
            code => Err(MapError::Host(code)),
        }
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A named counter (summed over CPUs when userspace reads it).
#[derive(Clone, Copy)]
pub struct Counter {
    id: i32,
}

impl Counter {
    /// Declares the counter (init only).
    pub fn declare(name: &'static str) -> Result<Self, Error> {
        match sys::counter_declare(name) {
            id if id >= 0 => Ok(Counter { id }),
            code => Err(Error::Host { what: "counter", name, code }),
        }
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        sys::counter_add(self.id, n as i64)
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair {
        a: u64,
        b: u64,
    }
    // SAFETY: two u64, no padding.
    unsafe impl Pod for Pair {}

    #[test]
    fn hash_map_roundtrip_and_full() {
        testing::reset();
        let m = HashMap::<[u8; 16], Pair>::declare("m", 2).unwrap();
        assert_eq!(m.get(&[1; 16]), None);
        m.insert(&[1; 16], &Pair { a: 1, b: 2 }).unwrap();
        m.insert(&[2; 16], &Pair { a: 3, b: 4 }).unwrap();
        assert_eq!(m.insert(&[3; 16], &Pair { a: 0, b: 0 }), Err(MapError::Full));
        m.insert(&[1; 16], &Pair { a: 5, b: 6 }).unwrap();
        assert_eq!(m.get(&[1; 16]), Some(Pair { a: 5, b: 6 }));
        assert!(m.remove(&[2; 16]));
        assert!(!m.remove(&[2; 16]));
        assert!(HashMap::<u32, u32>::declare("m", 2).is_err());
    }

    #[test]
    fn per_cpu_array() {
        testing::reset();
        let a = PerCpuArray::<u64>::declare("a", 4).unwrap();
        assert_eq!(a.get(3), Some(0));
        assert_eq!(a.get(4), None);
        a.set(2, &7).unwrap();
        assert_eq!(a.get(2), Some(7));
        assert!(a.set(4, &1).is_err());
    }

    #[test]
    fn counters() {
        testing::reset();
        let c = Counter::declare("hits").unwrap();
        c.inc();
        c.add(2);
        assert_eq!(testing::counter("hits"), 3);
        assert!(Counter::declare("hits").is_err());
    }
}
