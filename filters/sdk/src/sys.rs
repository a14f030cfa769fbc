//! The host imports (module `"wasmfw"`), as functions over slices.
//!
//! On wasm32 they call the host. Elsewhere an in-process mock stands in
//! ([`testing`]), so filters and the SDK can be unit-tested natively.
//! Callers (the typed wrappers in `maps`) pass slices of exactly the sizes
//! the map was declared with.

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "wasmfw")]
    extern "C" {
        fn map_declare(
            kind: i32,
            key_size: i32,
            value_size: i32,
            max_entries: i32,
            name_ptr: i32,
            name_len: i32,
        ) -> i32;
        fn map_lookup(map: i32, key_ptr: i32, value_ptr: i32) -> i32;
        fn map_update(map: i32, key_ptr: i32, value_ptr: i32) -> i32;
        fn map_delete(map: i32, key_ptr: i32) -> i32;
        fn counter_declare(name_ptr: i32, name_len: i32) -> i32;
        fn counter_add(counter: i32, delta: i64);
        fn now_ns() -> i64;
        fn log(level: i32, ptr: i32, len: i32);
    }

    // Pointers and lengths fit in i32: wasm32 addresses are 32-bit.
    fn p(ptr: *const u8) -> i32 {
        ptr as usize as i32
    }

    pub fn map_declare_(kind: i32, key_size: u32, value_size: u32, max_entries: u32, name: &str) -> i32 {
        // SAFETY: the host only reads `name.len()` bytes at `name`, which
        // are valid; the other arguments are plain integers.
        unsafe {
            map_declare(
                kind,
                key_size as i32,
                value_size as i32,
                max_entries as i32,
                p(name.as_ptr()),
                name.len() as i32,
            )
        }
    }

    pub fn map_lookup_(map: i32, key: &[u8], value: &mut [u8]) -> i32 {
        // SAFETY: the host reads the map's key size from `key` and writes
        // its value size to `value`; the callers pass slices of exactly those
        // sizes, and `value` is exclusively borrowed.
        unsafe { map_lookup(map, p(key.as_ptr()), p(value.as_mut_ptr())) }
    }

    pub fn map_update_(map: i32, key: &[u8], value: &[u8]) -> i32 {
        // SAFETY: the host only reads key-size and value-size bytes, the
        // sizes of the slices the callers pass.
        unsafe { map_update(map, p(key.as_ptr()), p(value.as_ptr())) }
    }

    pub fn map_delete_(map: i32, key: &[u8]) -> i32 {
        // SAFETY: the host only reads key-size bytes at `key`.
        unsafe { map_delete(map, p(key.as_ptr())) }
    }

    pub fn counter_declare_(name: &str) -> i32 {
        // SAFETY: the host only reads `name.len()` bytes at `name`.
        unsafe { counter_declare(p(name.as_ptr()), name.len() as i32) }
    }

    pub fn counter_add_(counter: i32, delta: i64) {
        // SAFETY: integers only; a bad id is the host's to reject.
        unsafe { counter_add(counter, delta) }
    }

    pub fn now_ns_() -> i64 {
        // SAFETY: no arguments, no memory access.
        unsafe { now_ns() }
    }

    pub fn log_(level: i32, msg: &[u8]) {
        // SAFETY: the host only reads `msg.len()` bytes at `msg`.
        unsafe { log(level, p(msg.as_ptr()), msg.len() as i32) }
    }
}

#[cfg(target_arch = "wasm32")]
pub use imp::{
    counter_add_ as counter_add, counter_declare_ as counter_declare, log_ as log, map_declare_ as map_declare,
    map_delete_ as map_delete, map_lookup_ as map_lookup, map_update_ as map_update, now_ns_ as now_ns,
};

#[cfg(not(target_arch = "wasm32"))]
pub use testing::{counter_add, counter_declare, log, map_declare, map_delete, map_lookup, map_update, now_ns};

/// A mock host for native unit tests: maps, counters, a settable clock and
/// the log, all per thread (each `#[test]` runs on its own thread).
/// Call [`testing::reset`] at the start of a test that declares anything.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use crate::abi;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::string::{String, ToString};
    use std::vec::Vec;

    struct Map {
        name: String,
        kind: i32,
        key_size: usize,
        value_size: usize,
        max_entries: usize,
        entries: HashMap<Vec<u8>, Vec<u8>>,
    }

    #[derive(Default)]
    struct Host {
        maps: Vec<Map>,
        counters: Vec<(String, i64)>,
        now: i64,
        logs: Vec<String>,
    }

    std::thread_local! {
        static HOST: RefCell<Host> = RefCell::new(Host::default());
    }

    fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
        HOST.with(|h| f(&mut h.borrow_mut()))
    }

    /// Forgets every map, counter and log line of this thread; clock at 0.
    pub fn reset() {
        with(|h| *h = Host::default());
    }

    /// Sets what `now_ns()` returns.
    pub fn set_now(ns: u64) {
        with(|h| h.now = ns as i64);
    }

    /// The value of a counter, 0 if undeclared.
    pub fn counter(name: &str) -> i64 {
        with(|h| h.counters.iter().find(|(n, _)| n == name).map_or(0, |c| c.1))
    }

    /// Every line logged so far.
    pub fn logs() -> Vec<String> {
        with(|h| h.logs.clone())
    }

    /// Number of entries in a hash map, `None` if undeclared.
    pub fn map_len(name: &str) -> Option<usize> {
        with(|h| h.maps.iter().find(|m| m.name == name).map(|m| m.entries.len()))
    }

    /// Sets a hash map entry as userspace does (`wasmfw map set`).
    pub fn map_set(name: &str, key: &[u8], value: &[u8]) {
        with(|h| {
            let m = h.maps.iter_mut().find(|m| m.name == name).expect("map declared");
            assert!(key.len() == m.key_size && value.len() == m.value_size, "key/value size");
            m.entries.insert(key.to_vec(), value.to_vec());
        })
    }

    /// Deletes a hash map entry as userspace does (`wasmfw map del`).
    pub fn map_del(name: &str, key: &[u8]) -> bool {
        with(|h| h.maps.iter_mut().find(|m| m.name == name).expect("map declared").entries.remove(key).is_some())
    }

    fn valid_name(name: &str) -> bool {
        !name.is_empty() && name.len() <= abi::MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_graphic())
    }

    pub fn map_declare(kind: i32, key_size: u32, value_size: u32, max_entries: u32, name: &str) -> i32 {
        let (k, v, n) = (key_size as usize, value_size as usize, max_entries as usize);
        let ok = valid_name(name)
            && (1..=abi::MAX_KEY_SIZE).contains(&k)
            && (1..=abi::MAX_VALUE_SIZE).contains(&v)
            && match kind {
                abi::MAP_HASH => (1..=abi::MAX_HASH_ENTRIES).contains(&max_entries),
                abi::MAP_PERCPU_ARRAY => k == 4 && (1..=abi::MAX_ARRAY_ENTRIES).contains(&max_entries),
                _ => false,
            };
        if !ok {
            return abi::E_INVAL;
        }
        with(|h| {
            if h.maps.iter().any(|m| m.name == name) {
                return abi::E_EXISTS;
            }
            if h.maps.len() >= abi::MAX_MAPS {
                return abi::E_FULL;
            }
            let mut entries = HashMap::new();
            if kind == abi::MAP_PERCPU_ARRAY {
                entries = (0..max_entries).map(|i| (i.to_le_bytes().to_vec(), std::vec![0; v])).collect();
            }
            h.maps.push(Map { name: name.to_string(), kind, key_size: k, value_size: v, max_entries: n, entries });
            h.maps.len() as i32 - 1
        })
    }

    fn map_op<R>(map: i32, key: &[u8], err: R, f: impl FnOnce(&mut Map) -> R) -> R {
        with(|h| match usize::try_from(map).ok().and_then(|i| h.maps.get_mut(i)) {
            Some(m) => {
                assert_eq!(key.len(), m.key_size, "key size");
                f(m)
            }
            None => err,
        })
    }

    pub fn map_lookup(map: i32, key: &[u8], value: &mut [u8]) -> i32 {
        map_op(map, key, abi::E_INVAL, |m| {
            assert_eq!(value.len(), m.value_size, "value size");
            match m.entries.get(key) {
                Some(v) => {
                    value.copy_from_slice(v);
                    1
                }
                None => 0,
            }
        })
    }

    pub fn map_update(map: i32, key: &[u8], value: &[u8]) -> i32 {
        map_op(map, key, abi::E_INVAL, |m| {
            assert_eq!(value.len(), m.value_size, "value size");
            if let Some(v) = m.entries.get_mut(key) {
                v.copy_from_slice(value);
                0
            } else if m.kind == abi::MAP_PERCPU_ARRAY {
                abi::E_INVAL
            } else if m.entries.len() >= m.max_entries {
                abi::E_FULL
            } else {
                m.entries.insert(key.to_vec(), value.to_vec());
                0
            }
        })
    }

    pub fn map_delete(map: i32, key: &[u8]) -> i32 {
        map_op(map, key, abi::E_INVAL, |m| {
            if m.kind == abi::MAP_PERCPU_ARRAY {
                return abi::E_INVAL;
            }
            m.entries.remove(key).is_some() as i32
        })
    }

    pub fn counter_declare(name: &str) -> i32 {
        if !valid_name(name) {
            return abi::E_INVAL;
        }
        with(|h| {
            if h.counters.iter().any(|(n, _)| n == name) {
                return abi::E_EXISTS;
            }
            if h.counters.len() >= abi::MAX_COUNTERS {
                return abi::E_FULL;
            }
            h.counters.push((name.to_string(), 0));
            h.counters.len() as i32 - 1
        })
    }

    pub fn counter_add(counter: i32, delta: i64) {
        with(|h| {
            if let Some(c) = usize::try_from(counter).ok().and_then(|i| h.counters.get_mut(i)) {
                c.1 = c.1.wrapping_add(delta);
            }
        })
    }

    pub fn now_ns() -> i64 {
        with(|h| h.now)
    }

    pub fn log(level: i32, msg: &[u8]) {
        assert!(msg.len() <= abi::MAX_LOG_LEN, "log line longer than {} bytes", abi::MAX_LOG_LEN);
        let line = std::str::from_utf8(msg).expect("log line is UTF-8");
        with(|h| h.logs.push(std::format!("{level} {line}")));
    }
}
