//! Test-only executor of WebAssembly spec-suite commands (issue 12).
//!
//! A [`Session`] is one wasmi store with the `spectest` imports and the
//! modules a `.wast` file instantiates; [`Session::exec`] runs one encoded
//! request ([`wire`]) and writes one encoded response. The engine is
//! configured exactly as filters are (`wasmfw_engine::filter_engine_config`:
//! fuel, enforced limits, recursion depth, value stack, eager compilation,
//! validate-then-compile) except that floats are on. `no_std` + `alloc`:
//! `cargo xtask spec` links it in userspace, `wasmfw_spectest.ko` runs the
//! very same code built for the kernel target (kmod/spectest/ffi).
#![no_std]

extern crate alloc;

pub mod wire;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use wasmi::{
    Engine, Error, Extern, Func, Global, Instance, Linker, Memory, MemoryType, Module, Mutability, Nullable, Ref,
    RefType, Store, StoreLimits, StoreLimitsBuilder, Table, TableType, TrapCode, Val, F32, F64,
};

use wire::{Req, Status, Value};

/// Fuel given to every invocation and to every instantiation (start
/// function): far above what any command of the 1.0 suite needs, so running
/// out means a runaway loop, reported as [`Status::OutOfFuel`].
pub const SPEC_FUEL: u64 = 1_000_000_000;
/// Bytes of linear memory one store may hold in all (the `memory_grow`
/// tests grow to a few MiB; the kernel allocates it with kvmalloc).
pub const SPEC_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// Instances one session may hold (one `.wast` file makes at most ~200).
pub const SPEC_MAX_INSTANCES: usize = 4096;

/// One `.wast` file's store, linker and instances.
pub struct Session {
    engine: Engine,
    store: Store<StoreLimits>,
    linker: Linker<StoreLimits>,
    /// One slot per module request, in order (None: it failed), so the
    /// host knows every module's index before it sees any result.
    instances: Vec<Option<Instance>>,
}

/// The filter engine's configuration (fuel, recursion depth, value stack,
/// eager compilation, the same proposals off) with three differences, each
/// a filter-ABI rule rather than a semantic one:
/// - floats on (filters are integer-only; the kernel's soft-float code is
///   what this suite exercises);
/// - start functions allowed (the ABI starts filters through
///   `wasmfw_init`; start.wast and linking.wast need them);
/// - no enforced module limits (filters get wasmi's strict limits, whose
///   40-bytes-per-function average refuses six of the suite's modules made
///   of tiny test functions; the production acceptance count of
///   `cargo xtask spec` shows those refusals).
pub fn spec_config() -> wasmi::Config {
    let mut c = wasmfw_engine::filter_engine_config();
    c.floats(true).allow_start_fn(true).enforced_limits(wasmi::EnforcedLimits::default());
    c
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Session {
        let engine = Engine::new(&spec_config());
        let limits = StoreLimitsBuilder::new()
            .memory_size(SPEC_MEMORY_BYTES)
            .instances(SPEC_MAX_INSTANCES)
            .memories(SPEC_MAX_INSTANCES)
            .tables(SPEC_MAX_INSTANCES)
            .build();
        let mut store = Store::new(&engine, limits);
        store.limiter(|l| l);
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        let mut s = Session { engine, store, linker, instances: Vec::new() };
        s.define_spectest();
        s
    }

    /// The `spectest` module every suite file may import (the spec
    /// interpreter's `spectest.ml`).
    fn define_spectest(&mut self) {
        let st = &mut self.store;
        let funcs: [(&str, Func); 7] = [
            ("print", Func::wrap(&mut *st, || {})),
            ("print_i32", Func::wrap(&mut *st, |_: i32| {})),
            ("print_i64", Func::wrap(&mut *st, |_: i64| {})),
            ("print_f32", Func::wrap(&mut *st, |_: F32| {})),
            ("print_f64", Func::wrap(&mut *st, |_: F64| {})),
            ("print_i32_f32", Func::wrap(&mut *st, |_: i32, _: F32| {})),
            ("print_f64_f64", Func::wrap(&mut *st, |_: F64, _: F64| {})),
        ];
        for (name, f) in funcs {
            let _ = self.linker.define("spectest", name, f);
        }
        let globals = [
            ("global_i32", Val::I32(666)),
            ("global_i64", Val::I64(666)),
            ("global_f32", Val::F32(F32::from_bits(0x4426_a666))), // 666.6
            ("global_f64", Val::F64(F64::from_bits(0x4084_d4cc_cccc_cccd))), // 666.6
        ];
        for (name, v) in globals {
            let g = Global::new(&mut *st, v, Mutability::Const);
            let _ = self.linker.define("spectest", name, g);
        }
        if let Ok(t) = Table::new(&mut *st, TableType::new(RefType::Func, 10, Some(20)), Ref::Func(Nullable::Null)) {
            let _ = self.linker.define("spectest", "table", t);
        }
        if let Ok(m) = Memory::new(&mut *st, MemoryType::new(1, Some(2))) {
            let _ = self.linker.define("spectest", "memory", m);
        }
    }

    /// Runs one encoded request and appends the encoded response to `out`.
    pub fn exec(&mut self, req: &[u8], out: &mut Vec<u8>) {
        let resp = match wire::decode_req(req) {
            Some(r) => self.run(r),
            None => Err((Status::Other, "malformed request".to_string())),
        };
        match resp {
            Ok(r) => wire::encode_resp(out, Status::Ok, "", &r),
            Err((st, msg)) => wire::encode_resp(out, st, &msg, &Resp::None),
        }
    }

    fn run(&mut self, req: Req<'_>) -> Result<Resp, (Status, String)> {
        match req {
            Req::Module(bytes) => self.module(bytes),
            Req::Register { inst, name } => {
                let i = self.instance(inst)?;
                self.linker.instance(&mut self.store, name, i).map_err(|e| (Status::Unlinkable, e.to_string()))?;
                Ok(Resp::None)
            }
            Req::Invoke { inst, field, args } => self.invoke(inst, field, &args),
            Req::Get { inst, field } => {
                let i = self.instance(inst)?;
                let g = i
                    .get_global(&self.store, field)
                    .ok_or_else(|| (Status::Other, format!("no global export {field:?}")))?;
                let v = g.get(&self.store);
                Ok(Resp::Values(alloc::vec![to_wire(&v)]))
            }
        }
    }

    fn instance(&self, idx: u32) -> Result<Instance, (Status, String)> {
        match self.instances.get(idx as usize) {
            Some(Some(i)) => Ok(*i),
            Some(None) => Err((Status::Other, format!("module {idx} failed to instantiate"))),
            None => Err((Status::Other, format!("no module {idx}"))),
        }
    }

    fn module(&mut self, bytes: &[u8]) -> Result<Resp, (Status, String)> {
        if self.instances.len() >= SPEC_MAX_INSTANCES {
            return Err((Status::Other, "too many instances".to_string()));
        }
        self.instances.push(None);
        let slot = self.instances.len() - 1;
        let module = compile(&self.engine, bytes).map_err(|e| (Status::Invalid, e.to_string()))?;
        let _ = self.store.set_fuel(SPEC_FUEL);
        let inst = self.linker.instantiate_and_start(&mut self.store, &module).map_err(|e| match e.as_trap_code() {
            Some(_) => classify(&e),
            // wasmi reports an element segment that does not fit its table
            // as an instantiation error; the spec (since bulk memory, and
            // the ported 1.0 suite) calls it a trap at instantiation.
            None if e.to_string().starts_with("out of bounds table access") => (Status::Trap, e.to_string()),
            None => (Status::Unlinkable, e.to_string()),
        })?;
        self.instances[slot] = Some(inst);
        Ok(Resp::Instance(slot as u32))
    }

    fn invoke(&mut self, inst: u32, field: &str, args: &[Value]) -> Result<Resp, (Status, String)> {
        let i = self.instance(inst)?;
        let f = match i.get_export(&self.store, field) {
            Some(Extern::Func(f)) => f,
            _ => return Err((Status::Other, format!("no function export {field:?}"))),
        };
        let ty = f.ty(&self.store);
        let args: Vec<Val> = args.iter().map(from_wire).collect();
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for_ty(*t)).collect();
        let _ = self.store.set_fuel(SPEC_FUEL);
        f.call(&mut self.store, &args, &mut results).map_err(|e| classify(&e))?;
        Ok(Resp::Values(results.iter().map(to_wire).collect()))
    }
}

/// Validates, then compiles, as the filter engine does (two shallow steps
/// instead of one deep one: the kernel stack).
#[inline(never)]
fn compile(engine: &Engine, wasm: &[u8]) -> Result<Module, Error> {
    Module::validate(engine, wasm)?;
    // SAFETY: validated just above by an engine with the same configuration.
    unsafe { Module::new_unchecked(engine, wasm) }
}

fn classify(e: &Error) -> (Status, String) {
    match e.as_trap_code() {
        Some(TrapCode::StackOverflow) => (Status::Exhaustion, e.to_string()),
        Some(TrapCode::OutOfFuel) => (Status::OutOfFuel, e.to_string()),
        Some(_) => (Status::Trap, e.to_string()),
        None => (Status::Other, e.to_string()),
    }
}

/// What a successful request returns.
pub enum Resp {
    None,
    Instance(u32),
    Values(Vec<Value>),
}

fn to_wire(v: &Val) -> Value {
    match v {
        Val::I32(x) => Value::I32(*x as u32),
        Val::I64(x) => Value::I64(*x as u64),
        Val::F32(x) => Value::F32(x.to_bits()),
        Val::F64(x) => Value::F64(x.to_bits()),
        Val::FuncRef(r) => Value::FuncRef(!r.is_null()),
        Val::ExternRef(r) => Value::ExternRef(!r.is_null()),
        _ => Value::Unsupported,
    }
}

fn from_wire(v: &Value) -> Val {
    match *v {
        Value::I32(x) => Val::I32(x as i32),
        Value::I64(x) => Val::I64(x as i64),
        Value::F32(x) => Val::F32(F32::from_bits(x)),
        Value::F64(x) => Val::F64(F64::from_bits(x)),
        Value::FuncRef(_) => Val::FuncRef(Nullable::Null),
        Value::ExternRef(_) | Value::Unsupported => Val::ExternRef(Nullable::Null),
    }
}

/// `f32` -> `f64` (`f64.promote_f32`) on bits, quieting a signaling NaN as
/// IEEE 754 and the Wasm spec require (the result is an arithmetic NaN).
/// The kernel target is soft-float: there `x as f64` is compiler_builtins'
/// `__extendsfdf2`, which keeps a signaling NaN signaling (found by this
/// suite, conversions.wast:358/360). kmod/spectest/ffi replaces that
/// symbol with this function. Integer-only: it must not call itself.
pub fn promote_f32_bits(x: u32) -> u64 {
    let sign = u64::from(x >> 31) << 63;
    let exp = (x >> 23) & 0xff;
    let mant = u64::from(x & 0x7f_ffff);
    let rest = if exp == 0xff {
        if mant == 0 {
            0x7ff0_0000_0000_0000
        } else {
            0x7ff8_0000_0000_0000 | (mant << 29)
        }
    } else if exp == 0 {
        if mant == 0 {
            0
        } else {
            // Subnormal: mant x 2^-149 with its top bit at position p.
            let p = 63 - u64::from(mant.leading_zeros());
            let e = p + 1023 - 149;
            (e << 52) | ((mant << (52 - p)) & 0x000f_ffff_ffff_ffff)
        }
    } else {
        (u64::from(exp) + 1023 - 127) << 52 | (mant << 29)
    };
    sign | rest
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::promote_f32_bits;

    #[test]
    fn promote_matches_hardware_and_quiets_snan() {
        // The host's SSE conversion is the reference (it quiets sNaNs too).
        let mut x: u32 = 0;
        loop {
            let want = (f32::from_bits(x) as f64).to_bits();
            assert_eq!(promote_f32_bits(x), want, "{x:#010x}");
            match x.checked_add(65_521) {
                Some(n) => x = n,
                None => break,
            }
        }
        for x in [
            0u32,
            0x8000_0000,
            1,
            0x8000_0001,
            0x007f_ffff,
            0x0080_0000,
            0x7f7f_ffff,
            0x7f80_0000,
            0xff80_0000,
            0x7fa0_0000,
            0xffa0_0000,
            0x7fc0_0000,
            0x7f80_0001,
        ] {
            assert_eq!(promote_f32_bits(x), (f32::from_bits(x) as f64).to_bits(), "{x:#010x}");
        }
        assert_eq!(promote_f32_bits(0x7fa0_0000), 0x7ffc_0000_0000_0000);
    }
}
