//! The host functions of ABI v1 (`docs/filter-abi.md`, "Imports").
//!
//! Every pointer from the filter is bounds-checked against its memory; a
//! bad one is a trap, i.e. a fault with the policy's verdict, never an
//! access outside the instance. Every call first charges the fuel its work
//! costs ([`crate::fuel`]); a budget that cannot pay is a fuel fault, as if
//! the filter's own instructions had used it up.

use alloc::sync::Arc;
use alloc::vec::Vec;

use wasmi::{Caller, Error, Linker, Memory, StoreLimits, TrapCode};

use crate::fuel;
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
    /// Log records written in this run ([`fuel::MAX_LOG_RECORDS_PER_PACKET`]).
    pub logs_this_run: u32,
    /// `log` calls past that cap in this run, written nowhere.
    pub logs_capped: u32,
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

/// Takes `cost` fuel units for the host call about to run, before it does
/// anything; if the budget is short, empties it and traps with OutOfFuel
/// (counted as `fault_fuel`, like wasmi's own exhaustion).
fn charge(caller: &mut C<'_>, cost: u64) -> Result<(), Error> {
    // Fuel metering is always on (load.rs: `consume_fuel(true)`).
    let left = caller.get_fuel().unwrap_or(0);
    let (rest, result) = match left.checked_sub(cost) {
        Some(rest) => (rest, Ok(())),
        None => (0, Err(Error::from(TrapCode::OutOfFuel))),
    };
    let _ = caller.set_fuel(rest);
    result
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
    charge(&mut caller, fuel::declare_cost(name_len as u32 as usize))?;
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

/// The map `id` of the calling instance, after charging `cost(its key
/// size, its value size)`; for an unknown id only the call's fixed cost.
fn charged_map(caller: &mut C<'_>, id: i32, cost: impl FnOnce(usize, usize) -> u64) -> Result<Option<Arc<Map>>, Error> {
    let map = map_of(caller.data(), id);
    let fuel = map.as_ref().map_or(fuel::FUEL_HOST_CALL, |m| cost(m.info.key_size, m.info.value_size));
    charge(caller, fuel)?;
    Ok(map)
}

fn map_lookup(mut caller: C<'_>, id: i32, key_ptr: i32, value_ptr: i32) -> Result<i32, Error> {
    let Some(map) = charged_map(&mut caller, id, fuel::map_lookup_cost)? else { return Ok(abi::E_INVAL) };
    let (mem, state) = split(&mut caller)?;
    let (ks, vs) = (map.info.key_size, map.info.value_size);
    let mut key = [0u8; abi::MAX_KEY_SIZE];
    key[..ks].copy_from_slice(&mem[range(mem.len(), key_ptr, ks)?]);
    let out = range(mem.len(), value_ptr, vs)?;
    Ok(map.lookup(state.ctx(), state.slot, &key[..ks], &mut mem[out]) as i32)
}

fn map_update(mut caller: C<'_>, id: i32, key_ptr: i32, value_ptr: i32) -> Result<i32, Error> {
    let Some(map) = charged_map(&mut caller, id, fuel::map_update_cost)? else { return Ok(abi::E_INVAL) };
    let (mem, state) = split(&mut caller)?;
    let key = &mem[range(mem.len(), key_ptr, map.info.key_size)?];
    let value = &mem[range(mem.len(), value_ptr, map.info.value_size)?];
    Ok(map.update(state.ctx(), state.slot, key, value))
}

fn map_delete(mut caller: C<'_>, id: i32, key_ptr: i32) -> Result<i32, Error> {
    let Some(map) = charged_map(&mut caller, id, |k, _| fuel::map_delete_cost(k))? else { return Ok(abi::E_INVAL) };
    let (mem, state) = split(&mut caller)?;
    Ok(map.delete(state.ctx(), &mem[range(mem.len(), key_ptr, map.info.key_size)?]))
}

fn counter_declare(mut caller: C<'_>, name_ptr: i32, name_len: i32) -> Result<i32, Error> {
    charge(&mut caller, fuel::declare_cost(name_len as u32 as usize))?;
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

fn counter_add(mut caller: C<'_>, id: i32, delta: i64) -> Result<(), Error> {
    charge(&mut caller, fuel::COUNTER_ADD_COST)?;
    let state = caller.data();
    if let Ok(i) = usize::try_from(id) {
        if i < state.counters {
            bump(&state.shared.counters[state.slot][BUILTIN_COUNTERS.len() + i], delta as u64);
        }
    }
    Ok(())
}

fn now_ns(mut caller: C<'_>) -> Result<i64, Error> {
    charge(&mut caller, fuel::NOW_NS_COST)?;
    Ok(caller.data().shared.env.now_ns() as i64)
}

fn log(mut caller: C<'_>, level: i32, ptr: i32, len: i32) -> Result<(), Error> {
    let len = (len as u32 as usize).min(abi::MAX_LOG_LEN);
    charge(&mut caller, fuel::log_cost(len))?;
    let (mem, state) = split(&mut caller)?;
    let msg = &mem[range(mem.len(), ptr, len)?];
    if state.in_init && level == abi::LOG_ERROR {
        state.init_error.clear();
        if state.init_error.try_reserve(msg.len()).is_ok() {
            state.init_error.extend_from_slice(msg);
        }
    }
    if !state.in_init {
        if state.logs_this_run >= fuel::MAX_LOG_RECORDS_PER_PACKET {
            state.logs_capped += 1;
            return Ok(());
        }
        state.logs_this_run += 1;
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
