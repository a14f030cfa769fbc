//! The wasmfw engine: loads a filter module (ABI v1, `docs/filter-abi.md`),
//! checks it, and runs it on packets under wasmi with fuel and memory
//! limits. `#![no_std]` + `alloc` so the kernel module links the very code
//! `wasmfw replay` runs in userspace.
//!
//! A [`Filter`] is the shared part of a loaded filter: maps, counters,
//! limits. It has one [`Instance`] per slot (per CPU in the kernel; one in
//! userspace); an instance is used by one CPU at a time and never allocates
//! on the packet path.
#![no_std]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod fuel;
pub mod fuel_filters;
mod hashmap;
mod host;
mod load;
pub mod lock;
mod maps;
pub mod reentry;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use wasmfw_abi as abi;
pub use wasmfw_abi::Verdict;
use wasmi::{Global, Memory, Store, TypedFunc, Val};

pub use load::load;
pub use maps::{MapInfo, MapKind, DUMP_CHUNK};

/// Test-only (feature `spectest`, never enabled by the product builds): the
/// exact wasmi configuration filters are compiled with (fuel, limits, stack
/// sizes, features, floats off), for the spec-suite runner (kmod/spectest),
/// which turns floats on and keeps everything else.
#[cfg(feature = "spectest")]
pub fn filter_engine_config() -> wasmi::Config {
    load::engine().config().clone()
}

/// What the host provides to filters besides maps and counters.
pub trait Env: Send + Sync {
    /// Monotonic nanoseconds (`ktime_get_ns`; capture time under replay).
    fn now_ns(&self) -> u64;
    /// One line a filter logged (at most [`abi::MAX_LOG_LEN`] bytes; the
    /// bytes are the filter's, unfiltered: a host that writes them to a
    /// shared log must neutralise control characters).
    fn log(&self, level: i32, msg: &[u8]);
    /// `records` lines one packet logged past
    /// [`fuel::MAX_LOG_RECORDS_PER_PACKET`], written nowhere: a host with a
    /// `log_dropped` counter counts them there. Called once per such packet,
    /// after its run.
    fn log_capped(&self, records: u64) {
        let _ = records;
    }
    /// A lock for a map shared by the packet path and the control path
    /// (called at load, in process context); None if memory is short. The
    /// kernel provides a `spinlock_t` ([`lock`]).
    fn new_lock(&self) -> Option<Box<dyn lock::HostLock>> {
        Some(Box::new(lock::SpinLock::default()))
    }
}

/// Limits a host applies to a filter (from the policy).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Fuel per packet.
    pub fuel: u64,
    /// Bytes of linear memory the filter may have.
    pub memory_limit: u64,
    /// Verdict for a packet whose run faulted.
    pub on_fault: Verdict,
    /// Audit mode: every packet passes; drop verdicts are counted
    /// (`drop`, `audit_would_drop`) and not applied.
    pub audit: bool,
}

/// Why a run did not produce the filter's own verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A trap: out-of-bounds access, unreachable, stack overflow, a bad host
    /// call, or a return value that is not a verdict.
    Trap,
    /// The fuel budget ran out.
    Fuel,
}

/// The result of running the filter on one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub fault: Option<Fault>,
    pub fuel_used: u64,
    /// Audit mode passed what was a drop verdict (`verdict` is then Pass).
    pub audited: bool,
}

impl Outcome {
    /// Packed for the kernel module's C (engine-ffi `wf_run`).
    pub const fn run_result(&self) -> abi::RunResult {
        abi::RunResult::new(self.verdict, self.fault.is_some(), self.audited)
    }
}

/// A load failure, with its cause, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not a valid Wasm module for this engine (bytes, floats, limits).
    Invalid(String),
    /// A valid module that does not follow the filter ABI.
    Abi(String),
    /// The filter's `wasmfw_init` rejected its configuration.
    Init { code: i32, message: String },
    /// Allocating the filter's state failed.
    NoMemory,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Invalid(m) => write!(f, "invalid module: {m}"),
            LoadError::Abi(m) => write!(f, "not a wasmfw filter: {m}"),
            LoadError::Init { code, message } if message.is_empty() => {
                write!(f, "filter rejected its configuration (code {code})")
            }
            LoadError::Init { code, message } => {
                write!(f, "filter rejected its configuration (code {code}): {message}")
            }
            LoadError::NoMemory => write!(f, "out of memory"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LoadError {}

/// Counters every host keeps per filter, before the filter's own.
/// `drop` counts drop verdicts, also those audit mode passed
/// (`audit_would_drop`).
pub const BUILTIN_COUNTERS: [&str; 6] = ["packets", "pass", "drop", "fault_trap", "fault_fuel", "audit_would_drop"];
/// Counters a host may report after the filter's own (the kernel module:
/// log records overwritten unread or past the per-packet cap, docs/logs.md;
/// runs refused by the nesting guard, [`reentry`]): reserved names too.
pub const HOST_COUNTERS: [&str; 2] = ["log_dropped", "nested_runs"];
const C_PACKETS: usize = 0;
const C_PASS: usize = 1;
const C_DROP: usize = 2;
const C_TRAP: usize = 3;
const C_FUEL: usize = 4;
const C_AUDIT: usize = 5;
const NCOUNTERS: usize = BUILTIN_COUNTERS.len() + abi::MAX_COUNTERS;

/// A short name (map or counter), stored inline so no allocation is needed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    len: u8,
    bytes: [u8; abi::MAX_NAME_LEN],
}

impl Name {
    fn new(s: &[u8]) -> Option<Name> {
        if s.is_empty() || s.len() > abi::MAX_NAME_LEN || !s.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0; abi::MAX_NAME_LEN];
        bytes[..s.len()].copy_from_slice(s);
        Some(Name { len: s.len() as u8, bytes })
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII-graphic bytes are ever stored.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State shared by every instance of a filter.
pub(crate) struct Shared {
    limits: Limits,
    slots: usize,
    env: Arc<dyn Env>,
    seed: u64,
    /// Declared during the first instance's init, read-only afterwards.
    /// Never touched on the packet path (instances keep their own list of
    /// map references), only at load and by the control path, which the
    /// kernel serialises with its control mutex: a `spin` lock is enough
    /// here and cannot be interrupted by a softirq wanting it.
    maps: spin::Mutex<Vec<Arc<maps::Map>>>,
    counter_names: spin::Mutex<Vec<Name>>,
    /// Per slot; each slot is written only by the CPU running that slot.
    counters: Box<[[AtomicU64; NCOUNTERS]]>,
}

/// A loaded filter: maps, counters and limits shared by its instances.
#[derive(Clone)]
pub struct Filter {
    shared: Arc<Shared>,
}

impl Filter {
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Every counter, builtin ones first, summed over all slots.
    pub fn counters(&self, mut f: impl FnMut(&str, u64)) {
        let sum = |i: usize| self.shared.counters.iter().map(|c| c[i].load(Relaxed)).fold(0u64, u64::wrapping_add);
        for (i, name) in BUILTIN_COUNTERS.iter().enumerate() {
            f(name, sum(i));
        }
        for (i, name) in self.shared.counter_names.lock().iter().enumerate() {
            f(name.as_str(), sum(BUILTIN_COUNTERS.len() + i));
        }
    }

    /// The value of one counter by name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let mut out = None;
        self.counters(|n, v| {
            if n == name {
                out = Some(v)
            }
        });
        out
    }
}

/// One instance of a filter: a wasmi store with its own linear memory.
pub struct Instance {
    store: Store<host::HostState>,
    filter_fn: TypedFunc<(i32, i32), i32>,
    memory: Memory,
    buf: usize,
    buf_len: usize,
    slot: usize,
    /// Exported mutable globals (the shadow stack pointer) as they were
    /// after init, with their export names: a trap unwinds without
    /// restoring them.
    globals: Vec<(String, Global, Val)>,
}

impl Instance {
    /// Runs the filter on one packet. Never fails: faults give the policy's
    /// `on_fault` verdict and are counted.
    pub fn run(&mut self, packet: &[u8], link: i32) -> Outcome {
        let shared = &self.store.data().shared;
        let limits = shared.limits;
        let counters = &shared.counters[self.slot];
        bump(&counters[C_PACKETS], 1);
        let n = packet.len().min(self.buf_len);
        // The buffer was checked to lie inside memory, which never shrinks.
        if let Some(dst) = self.memory.data_mut(&mut self.store).get_mut(self.buf..self.buf + n) {
            dst.copy_from_slice(&packet[..n]);
        }
        let _ = self.store.set_fuel(limits.fuel);
        let state = self.store.data_mut();
        (state.logs_this_run, state.logs_capped) = (0, 0);
        let result = self.filter_fn.call(&mut self.store, (n as i32, link));
        let state = self.store.data();
        if state.logs_capped > 0 {
            state.shared.env.log_capped(u64::from(state.logs_capped));
        }
        let left = self.store.get_fuel().unwrap_or(0);
        // wasmi charges a block on entry; an exhausted budget was all used.
        let fuel_used = if matches!(&result, Err(e) if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel)) {
            limits.fuel
        } else {
            limits.fuel.saturating_sub(left)
        };
        let (verdict, fault) = match result {
            Ok(value) => match Verdict::from_abi(value) {
                Some(verdict) => (verdict, None),
                None => (limits.on_fault, Some(Fault::Trap)),
            },
            Err(e) if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel) => (limits.on_fault, Some(Fault::Fuel)),
            Err(_) => (limits.on_fault, Some(Fault::Trap)),
        };
        let counters = &self.store.data().shared.counters[self.slot];
        match fault {
            Some(Fault::Trap) => bump(&counters[C_TRAP], 1),
            Some(Fault::Fuel) => bump(&counters[C_FUEL], 1),
            None => {}
        }
        bump(&counters[if verdict == Verdict::Drop { C_DROP } else { C_PASS }], 1);
        let audited = verdict == Verdict::Drop && limits.audit;
        let verdict = if audited {
            bump(&counters[C_AUDIT], 1);
            Verdict::Pass
        } else {
            verdict
        };
        if fault.is_some() {
            for (_, g, v) in &self.globals {
                let _ = g.set(&mut self.store, v.clone());
            }
        }
        Outcome { verdict, fault, fuel_used, audited }
    }
}

/// What an ahead-of-time translation of the filter (the compiled tier,
/// `wasm2ebpf`) starts from: the state `wasmfw_init` left behind.
impl Instance {
    /// The linear memory as it is now (after init: the initial image).
    pub fn memory(&self) -> &[u8] {
        self.memory.data(&self.store)
    }

    /// Address and size of the I/O buffer in [`Instance::memory`].
    pub fn buffer(&self) -> (usize, usize) {
        (self.buf, self.buf_len)
    }

    /// Every exported mutable global's value after init, by export name
    /// (i32 values sign-extended).
    pub fn init_globals(&self, mut f: impl FnMut(&str, i64)) {
        for (name, _, v) in &self.globals {
            match v {
                Val::I32(x) => f(name, i64::from(*x)),
                Val::I64(x) => f(name, *x),
                _ => {}
            }
        }
    }
}

/// Adds to a counter only this slot writes: no atomic read-modify-write needed.
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

#[cfg(test)]
mod fuel_tests;
#[cfg(test)]
mod tests;
