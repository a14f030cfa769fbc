//! The host functions of ABI v1 (`docs/filter-abi.md`, "Imports").
//!
//! Every pointer from the filter is bounds-checked against its memory; a
//! bad one is a trap, i.e. a fault with the policy's verdict, never an
//! access outside the instance.

use alloc::sync::Arc;
use alloc::vec::Vec;

use wasmi::{Caller, Error, Linker, Memory, StoreLimits, TrapCode};

use crate::lock::Ctx;
use crate::maps::{Map, MapInfo};
use crate::{abi, bump, Name, Shared, BUILTIN_COUNTERS, HOST_COUNTERS};

pub(crate) struct HostState {
    pub shared: Arc<Shared>,
    pub slot: usize,
    pub memory: Option<Memory>,
    pub limits: StoreLimits,
    /// Maps this instance declared, by id.
    pub maps: Vec<Arc<Map>>,
    pub counters: usize,
    /// Declarations are only allowed inside `wasmfw_init`.
    pub in_init: bool,
    /// The first instance creates maps and counters; the others must
    /// declare the same ones in the same order.
    pub creating: bool,
    /// The last error line logged during init, shown if init fails.
    pub init_error: Vec<u8>,
}

impl HostState {
    /// Host calls during `wasmfw_init` run at load (process context);
    /// every other call is on the packet path.
    fn ctx(&self) -> Ctx {
        if self.in_init {
            Ctx::Control
        } else {
            Ctx::Packet
        }
    }
}

type C<'a> = Caller<'a, HostState>;

/// A bad host call is a trap. A trap code, not `Error::new(text)`: wasmi
/// boxes every error, and a message would add a `String` allocation on
/// the packet path for each bad call.
fn trap() -> Error {
    Error::from(TrapCode::MemoryOutOfBounds)
}

/// The filter's memory and the host state, borrowed together.
fn split<'a>(caller: &'a mut C<'_>) -> Result<(&'a mut [u8], &'a mut HostState), Error> {
    let mem = caller.data().memory.ok_or_else(trap)?;
    Ok(mem.data_and_store_mut(caller))
}

/// A `len`-byte range of filter memory at `ptr`, or a trap.
fn range(mem_len: usize, ptr: i32, len: usize) -> Result<core::ops::Range<usize>, Error> {
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(trap()),
    }
}

fn map_of(state: &HostState, id: i32) -> Option<Arc<Map>> {
    state.maps.get(usize::try_from(id).ok()?).cloned()
}

fn map_declare(
    mut caller: C<'_>,
    kind: i32,
    key: i32,
    value: i32,
    max: i32,
    name_ptr: i32,
    name_len: i32,
) -> Result<i32, Error> {
    let (mem, state) = split(&mut caller)?;
    if !state.in_init {
        return Ok(abi::E_PERM);
    }
    let name = &mem[range(mem.len(), name_ptr, name_len as u32 as usize)?];
    let Some(info) = MapInfo::from_decl(kind, key, value, max, name) else { return Ok(abi::E_INVAL) };
    let id = state.maps.len();
    let shared = state.shared.clone();
    let mut all = shared.maps.lock();
    let map = if state.creating {
        if all.len() >= abi::MAX_MAPS || all.iter().any(|m| m.info.name == info.name) {
            return Ok(if all.len() >= abi::MAX_MAPS { abi::E_FULL } else { abi::E_EXISTS });
        }
        let Some(map) = Map::new(info, shared.slots, shared.seed ^ id as u64, &*shared.env) else {
            return Ok(abi::E_FULL);
        };
        let map = Arc::new(map);
        if all.try_reserve(1).is_err() || state.maps.try_reserve(1).is_err() {
            return Ok(abi::E_FULL);
        }
        all.push(map.clone());
        map
    } else {
        match all.get(id) {
            Some(m) if m.info == info => m.clone(),
            _ => return Ok(abi::E_EXISTS),
        }
    };
    if state.maps.try_reserve(1).is_err() {
        return Ok(abi::E_FULL);
    }
    state.maps.push(map);
    Ok(id as i32)
}

fn map_lookup(mut caller: C<'_>, id: i32, key_ptr: i32, value_ptr: i32) -> Result<i32, Error> {
    let (mem, state) = split(&mut caller)?;
    let Some(map) = map_of(state, id) else { return Ok(abi::E_INVAL) };
    let (ks, vs) = (map.info.key_size, map.info.value_size);
    let mut key = [0u8; abi::MAX_KEY_SIZE];
    key[..ks].copy_from_slice(&mem[range(mem.len(), key_ptr, ks)?]);
    let out = range(mem.len(), value_ptr, vs)?;
    Ok(map.lookup(state.ctx(), state.slot, &key[..ks], &mut mem[out]) as i32)
}

fn map_update(mut caller: C<'_>, id: i32, key_ptr: i32, value_ptr: i32) -> Result<i32, Error> {
    let (mem, state) = split(&mut caller)?;
    let Some(map) = map_of(state, id) else { return Ok(abi::E_INVAL) };
    let key = &mem[range(mem.len(), key_ptr, map.info.key_size)?];
    let value = &mem[range(mem.len(), value_ptr, map.info.value_size)?];
    Ok(map.update(state.ctx(), state.slot, key, value))
}

fn map_delete(mut caller: C<'_>, id: i32, key_ptr: i32) -> Result<i32, Error> {
    let (mem, state) = split(&mut caller)?;
    let Some(map) = map_of(state, id) else { return Ok(abi::E_INVAL) };
    Ok(map.delete(state.ctx(), &mem[range(mem.len(), key_ptr, map.info.key_size)?]))
}

fn counter_declare(mut caller: C<'_>, name_ptr: i32, name_len: i32) -> Result<i32, Error> {
    let (mem, state) = split(&mut caller)?;
    if !state.in_init {
        return Ok(abi::E_PERM);
    }
    let Some(name) = Name::new(&mem[range(mem.len(), name_ptr, name_len as u32 as usize)?]) else {
        return Ok(abi::E_INVAL);
    };
    let id = state.counters;
    let mut names = state.shared.counter_names.lock();
    if state.creating {
        if id >= abi::MAX_COUNTERS || names.try_reserve(1).is_err() {
            return Ok(abi::E_FULL);
        }
        if names.contains(&name) || BUILTIN_COUNTERS.contains(&name.as_str()) || HOST_COUNTERS.contains(&name.as_str())
        {
            return Ok(abi::E_EXISTS);
        }
        names.push(name);
    } else if names.get(id) != Some(&name) {
        return Ok(abi::E_EXISTS);
    }
    drop(names);
    state.counters += 1;
    Ok(id as i32)
}

fn counter_add(caller: C<'_>, id: i32, delta: i64) -> Result<(), Error> {
    let state = caller.data();
    if let Ok(i) = usize::try_from(id) {
        if i < state.counters {
            bump(&state.shared.counters[state.slot][BUILTIN_COUNTERS.len() + i], delta as u64);
        }
    }
    Ok(())
}

fn now_ns(caller: C<'_>) -> i64 {
    caller.data().shared.env.now_ns() as i64
}

fn log(mut caller: C<'_>, level: i32, ptr: i32, len: i32) -> Result<(), Error> {
    let (mem, state) = split(&mut caller)?;
    let len = (len as u32 as usize).min(abi::MAX_LOG_LEN);
    let msg = &mem[range(mem.len(), ptr, len)?];
    if state.in_init && level == abi::LOG_ERROR {
        state.init_error.clear();
        if state.init_error.try_reserve(msg.len()).is_ok() {
            state.init_error.extend_from_slice(msg);
        }
    }
    state.shared.env.log(level, msg);
    Ok(())
}

/// A linker with every ABI v1 import.
pub(crate) fn linker(engine: &wasmi::Engine) -> Result<Linker<HostState>, Error> {
    let mut l = Linker::new(engine);
    let m = abi::IMPORT_MODULE;
    l.func_wrap(m, abi::IMPORT_MAP_DECLARE, map_declare)?;
    l.func_wrap(m, abi::IMPORT_MAP_LOOKUP, map_lookup)?;
    l.func_wrap(m, abi::IMPORT_MAP_UPDATE, map_update)?;
    l.func_wrap(m, abi::IMPORT_MAP_DELETE, map_delete)?;
    l.func_wrap(m, abi::IMPORT_COUNTER_DECLARE, counter_declare)?;
    l.func_wrap(m, abi::IMPORT_COUNTER_ADD, counter_add)?;
    l.func_wrap(m, abi::IMPORT_NOW_NS, now_ns)?;
    l.func_wrap(m, abi::IMPORT_LOG, log)?;
    Ok(l)
}
