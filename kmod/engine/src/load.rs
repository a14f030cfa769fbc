//! Loading: validate the module against ABI v1, compile it eagerly (so no
//! translation happens on the packet path), instantiate one instance per
//! slot and run each one's `wasmfw_init`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use wasmi::{
    CompilationMode, Config, CustomFuelCosts, EnforcedLimits, Engine, Extern, ExternType, Module, Mutability, Store,
    StoreLimitsBuilder, ValType,
};

use crate::fuel::BULK_BYTES_PER_FUEL;
use crate::host::{self, HostState};
use crate::{abi, Env, Filter, Instance, Limits, LoadError, Shared, NCOUNTERS};

/// Deepest Wasm call chain a filter may use; deeper is a trap.
const MAX_RECURSION: usize = 256;
/// wasmi value stack per instance, in bytes (heap, not kernel stack). Min =
/// max so the whole stack is allocated by the first call, at load time: the
/// packet path then never allocates.
const STACK_BYTES: usize = 128 * 1024;

use ValType::{I32, I64};

/// Every import a filter may use, with its signature.
const IMPORTS: &[(&str, &[ValType], &[ValType])] = &[
    (abi::IMPORT_MAP_DECLARE, &[I32, I32, I32, I32, I32, I32], &[I32]),
    (abi::IMPORT_MAP_LOOKUP, &[I32, I32, I32], &[I32]),
    (abi::IMPORT_MAP_UPDATE, &[I32, I32, I32], &[I32]),
    (abi::IMPORT_MAP_DELETE, &[I32, I32], &[I32]),
    (abi::IMPORT_COUNTER_DECLARE, &[I32, I32], &[I32]),
    (abi::IMPORT_COUNTER_ADD, &[I32, I64], &[]),
    (abi::IMPORT_NOW_NS, &[], &[I64]),
    (abi::IMPORT_LOG, &[I32, I32, I32], &[]),
];

/// Every function a filter must export, with its signature.
const EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    (abi::EXPORT_ABI_VERSION, &[], &[I32]),
    (abi::EXPORT_BUFFER, &[], &[I32]),
    (abi::EXPORT_BUFFER_LEN, &[], &[I32]),
    (abi::EXPORT_INIT, &[I32], &[I32]),
    (abi::EXPORT_FILTER, &[I32, I32], &[I32]),
];

fn sig(params: &[ValType], results: &[ValType]) -> String {
    format!("{params:?} -> {results:?}").to_lowercase()
}

/// The engine configuration every host uses, so `wasmfw check` accepts
/// exactly what the kernel accepts. Each instance gets its own engine: its
/// cached value stack is then reused call after call without a lock shared
/// between CPUs.
pub(crate) fn engine() -> Engine {
    let mut c = Config::default();
    c.consume_fuel(true)
        // Bulk memory and table operations pay per byte moved (fuel.rs);
        // translation and validation costs are wasmi's defaults (they only
        // apply to lazy compilation, never used here).
        .fuel_cost(CustomFuelCosts {
            bytes_copied_per_fuel: BULK_BYTES_PER_FUEL,
            fuel_per_bytes_translated: 7,
            fuel_per_bytes_validated: 2,
        })
        // Filters are integer code; the kernel cannot use the FPU in softirq.
        .floats(false)
        .compilation_mode(CompilationMode::Eager)
        .allow_start_fn(false)
        .wasm_multi_memory(false)
        .wasm_reference_types(false)
        .wasm_tail_call(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .set_max_recursion_depth(MAX_RECURSION)
        .set_max_stack_height(STACK_BYTES)
        .set_min_stack_height(STACK_BYTES)
        .set_max_cached_stacks(1)
        .enforced_limits(EnforcedLimits::strict());
    Engine::new(&c)
}

/// Validates, then compiles. Two separate calls, each kept out of line,
/// because wasmi's checked parse keeps the validator and the translator on
/// the stack at once (a 7.4 KiB frame under a 3.7 KiB one): too deep for a
/// 16 KiB kernel stack. Validated first, the unchecked parse is shallow.
#[inline(never)]
fn compile(wasm: &[u8]) -> Result<(Engine, Module), LoadError> {
    let engine = engine();
    validate(&engine, wasm)?;
    // SAFETY: `wasm` was validated just above by an engine with the same
    // configuration (features, limits), which is all new_unchecked assumes.
    let module = unsafe { Module::new_unchecked(&engine, wasm) }.map_err(|e| LoadError::Invalid(e.to_string()))?;
    Ok((engine, module))
}

#[inline(never)]
fn validate(engine: &Engine, wasm: &[u8]) -> Result<(), LoadError> {
    Module::validate(engine, wasm).map_err(|e| LoadError::Invalid(e.to_string()))
}

/// Checks imports and exports against ABI v1 before anything runs.
#[inline(never)]
fn check_abi(module: &Module, limits: &Limits) -> Result<(), LoadError> {
    for imp in module.imports() {
        let what = format!("{}.{}", imp.module(), imp.name());
        let ExternType::Func(ft) = imp.ty() else {
            return Err(LoadError::Abi(format!(
                "imports {what}, which is not a function (filters import only functions)"
            )));
        };
        let known = IMPORTS.iter().find(|(n, _, _)| imp.module() == abi::IMPORT_MODULE && *n == imp.name());
        match known {
            None => return Err(LoadError::Abi(format!("imports unknown function {what}"))),
            Some((_, p, r)) if ft.params() != *p || ft.results() != *r => {
                return Err(LoadError::Abi(format!(
                    "import {what} has type {}, expected {}",
                    sig(ft.params(), ft.results()),
                    sig(p, r)
                )))
            }
            Some(_) => {}
        }
    }
    for (name, p, r) in EXPORTS {
        match module.get_export(name) {
            Some(ExternType::Func(ft)) if ft.params() == *p && ft.results() == *r => {}
            Some(ExternType::Func(ft)) => {
                return Err(LoadError::Abi(format!(
                    "export {name} has type {}, expected {}",
                    sig(ft.params(), ft.results()),
                    sig(p, r)
                )))
            }
            _ => return Err(LoadError::Abi(format!("missing export {name}"))),
        }
    }
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(mt)) => {
            let initial = mt.minimum().saturating_mul(65_536);
            if initial > limits.memory_limit {
                return Err(LoadError::Abi(format!(
                    "initial memory of {initial} bytes exceeds the memory limit of {} bytes",
                    limits.memory_limit
                )));
            }
        }
        _ => return Err(LoadError::Abi("missing export memory".into())),
    }
    Ok(())
}

/// Loads a filter: validates `wasm`, then creates `slots` instances, each
/// initialised with `config` (the `key=value` parameter text).
pub fn load(
    wasm: &[u8],
    limits: Limits,
    config: &[u8],
    slots: usize,
    env: Arc<dyn Env>,
    seed: u64,
) -> Result<(Filter, Vec<Instance>), LoadError> {
    if slots == 0 {
        return Err(LoadError::Abi("no instances requested".into()));
    }
    if config.len() > abi::MAX_CONFIG_LEN {
        return Err(LoadError::Init {
            code: abi::E_INVAL,
            message: format!("configuration longer than {} bytes", abi::MAX_CONFIG_LEN),
        });
    }
    let compile = || compile(wasm);
    let first = compile()?;
    check_abi(&first.1, &limits)?;

    let mut counters = Vec::new();
    counters.try_reserve_exact(slots).map_err(|_| LoadError::NoMemory)?;
    counters.extend((0..slots).map(|_| core::array::from_fn::<_, NCOUNTERS, _>(|_| AtomicU64::new(0))));
    let shared = Arc::new(Shared {
        limits,
        slots,
        env,
        seed,
        maps: spin::Mutex::new(Vec::new()),
        counter_names: spin::Mutex::new(Vec::new()),
        counters: counters.into_boxed_slice(),
    });
    let mut instances = Vec::new();
    instances.try_reserve_exact(slots).map_err(|_| LoadError::NoMemory)?;
    let mut first = Some(first);
    for slot in 0..slots {
        let (engine, module) = match first.take() {
            Some(em) => em,
            None => compile()?,
        };
        grow_call_stack(&engine)?;
        instances.push(instantiate(&engine, &module, &shared, slot, config)?);
    }
    Ok((Filter { shared }, instances))
}

/// `(func (export "r") (param i32) (result i32) (if (result i32)
/// (i32.eqz (local.get 0)) (then (i32.const 0)) (else (call 0 (i32.sub
/// (local.get 0) (i32.const 1))))))`: `r(n)` is n + 1 frames deep.
const RECURSE_WASM: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
    0x03, 0x02, 0x01, 0x00, // func 0: type 0
    0x07, 0x05, 0x01, 0x01, b'r', 0x00, 0x00, // export "r" = func 0
    0x0a, 0x14, 0x01, 0x12, 0x00, // code: one body of 18 bytes, no locals
    0x20, 0x00, 0x45, 0x04, 0x7f, 0x41, 0x00, 0x05, // local.get 0, i32.eqz, if i32, i32.const 0, else
    0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x0b, 0x0b, // local.get 0, i32.const 1, i32.sub, call 0, end, end
];

/// wasmi's call stack (one frame record per Wasm call) starts empty and
/// grows by doubling the first time a call goes deeper than ever before:
/// on a packet, that would be a heap allocation in softirq. So every
/// engine makes one call MAX_RECURSION frames deep at load, in process
/// context; the engine caches that stack (`set_max_cached_stacks(1)`) with
/// its capacity, and every later call, packets included, reuses it.
#[inline(never)]
fn grow_call_stack(engine: &Engine) -> Result<(), LoadError> {
    // Validated, then parsed unchecked, like `compile`: shallower on the
    // kernel stack than the checked parse.
    validate(engine, RECURSE_WASM)?;
    // SAFETY: validated just above by this engine.
    let module = unsafe { Module::new_unchecked(engine, RECURSE_WASM) }
        .map_err(|e| LoadError::Invalid(format!("call-stack warm-up: {e}")))?;
    let mut store = Store::new(engine, ());
    let _ = store.set_fuel(abi::INIT_FUEL);
    let inst = wasmi::Linker::<()>::new(engine)
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| LoadError::Invalid(format!("call-stack warm-up: {e}")))?;
    let r = inst
        .get_typed_func::<i32, i32>(&store, "r")
        .map_err(|e| LoadError::Invalid(format!("call-stack warm-up: {e}")))?;
    r.call(&mut store, MAX_RECURSION as i32 - 1).map_err(|e| LoadError::Invalid(format!("call-stack warm-up: {e}")))?;
    Ok(())
}

/// Calls a `() -> i32` ABI export.
fn call0(store: &mut Store<HostState>, inst: &wasmi::Instance, name: &str) -> Result<i32, LoadError> {
    let f = inst.get_typed_func::<(), i32>(&*store, name).map_err(|e| LoadError::Abi(format!("export {name}: {e}")))?;
    f.call(store, ()).map_err(|e| LoadError::Abi(format!("{name} failed: {e}")))
}

#[inline(never)]
fn instantiate(
    engine: &Engine,
    module: &Module,
    shared: &Arc<Shared>,
    slot: usize,
    config: &[u8],
) -> Result<Instance, LoadError> {
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(usize::try_from(shared.limits.memory_limit).unwrap_or(usize::MAX))
        .memories(1)
        .tables(1)
        .table_elements(10_000)
        .instances(1)
        .build();
    let state = HostState {
        shared: shared.clone(),
        slot,
        memory: None,
        limits: store_limits,
        maps: Vec::new(),
        counters: 0,
        in_init: false,
        creating: slot == 0,
        init_error: Vec::new(),
        logs_this_run: 0,
        logs_capped: 0,
    };
    let linker = host::linker(engine).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    let _ = store.set_fuel(abi::INIT_FUEL);
    let inst = linker
        .instantiate_and_start(&mut store, module)
        .map_err(|e| LoadError::Invalid(format!("instantiation failed: {e}")))?;
    let memory =
        inst.get_memory(&store, abi::EXPORT_MEMORY).ok_or_else(|| LoadError::Abi("missing export memory".into()))?;
    store.data_mut().memory = Some(memory);

    let version = call0(&mut store, &inst, abi::EXPORT_ABI_VERSION)?;
    if version as u32 != abi::ABI_VERSION {
        return Err(LoadError::Abi(format!(
            "built for ABI version {version}, this host supports {}",
            abi::ABI_VERSION
        )));
    }
    let buf = call0(&mut store, &inst, abi::EXPORT_BUFFER)? as u32 as usize;
    let buf_len = call0(&mut store, &inst, abi::EXPORT_BUFFER_LEN)? as u32 as usize;
    let mem_len = memory.data(&store).len();
    if buf_len < abi::MIN_BUFFER_LEN as usize || buf.checked_add(buf_len).is_none_or(|end| end > mem_len) {
        return Err(LoadError::Abi(format!(
            "buffer at {buf} of {buf_len} bytes must hold at least {} bytes inside the {mem_len}-byte memory",
            abi::MIN_BUFFER_LEN
        )));
    }
    if config.len() > buf_len {
        return Err(LoadError::Init {
            code: abi::E_INVAL,
            message: format!("configuration of {} bytes exceeds the filter's {buf_len}-byte buffer", config.len()),
        });
    }
    memory.data_mut(&mut store)[buf..buf + config.len()].copy_from_slice(config);

    let init = inst
        .get_typed_func::<i32, i32>(&store, abi::EXPORT_INIT)
        .map_err(|e| LoadError::Abi(format!("export {}: {e}", abi::EXPORT_INIT)))?;
    store.data_mut().in_init = true;
    let _ = store.set_fuel(abi::INIT_FUEL);
    let rc = init.call(&mut store, config.len() as i32);
    store.data_mut().in_init = false;
    // From here on the instance runs on packets, and growing memory or a
    // table allocates (up to the memory limit at once): the packet path
    // must never allocate (softirq, GFP_ATOMIC, a flood). So memory and
    // tables are final after init: `memory.grow` returns -1 on a packet.
    let mem_now = memory.data(&store).len();
    store.data_mut().limits =
        StoreLimitsBuilder::new().memory_size(mem_now).table_elements(0).memories(1).tables(1).instances(1).build();
    match rc {
        Ok(0) => {}
        Ok(code) => {
            let message = String::from_utf8_lossy(&store.data().init_error).into_owned();
            return Err(LoadError::Init { code, message });
        }
        Err(e) => return Err(LoadError::Abi(format!("{} failed: {e}", abi::EXPORT_INIT))),
    }
    if slot > 0
        && (store.data().maps.len() != shared.maps.lock().len()
            || store.data().counters != shared.counter_names.lock().len())
    {
        return Err(LoadError::Abi("instances declared different maps or counters".into()));
    }

    let mut globals = Vec::new();
    for export in inst.exports(&store) {
        let name = String::from(export.name());
        if let Extern::Global(g) = export.into_extern() {
            if g.ty(&store).mutability() == Mutability::Var {
                globals.try_reserve(1).map_err(|_| LoadError::NoMemory)?;
                globals.push((name, g, g.get(&store)));
            }
        }
    }
    let filter_fn = inst
        .get_typed_func::<(i32, i32), i32>(&store, abi::EXPORT_FILTER)
        .map_err(|e| LoadError::Abi(format!("export {}: {e}", abi::EXPORT_FILTER)))?;
    Ok(Instance { store, filter_fn, memory, buf, buf_len, slot, globals })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurse_wasm_is_the_documented_module() {
        let text = r#"(module (func (export "r") (param i32) (result i32) (if (result i32)
            (i32.eqz (local.get 0)) (then (i32.const 0)) (else (call 0 (i32.sub (local.get 0) (i32.const 1)))))))"#;
        assert_eq!(wat::parse_str(text).unwrap(), RECURSE_WASM);
    }

    #[test]
    fn call_stack_grown_to_the_recursion_limit_and_no_deeper() {
        let engine = engine();
        grow_call_stack(&engine).unwrap();
        // One frame more than the limit traps: the warm-up call used exactly MAX_RECURSION.
        let module = Module::new(&engine, RECURSE_WASM).unwrap();
        let mut store = Store::new(&engine, ());
        let _ = store.set_fuel(abi::INIT_FUEL);
        let inst = wasmi::Linker::<()>::new(&engine).instantiate_and_start(&mut store, &module).unwrap();
        let r = inst.get_typed_func::<i32, i32>(&store, "r").unwrap();
        assert!(r.call(&mut store, MAX_RECURSION as i32).is_err());
    }
}
