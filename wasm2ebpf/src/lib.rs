//! wasm2ebpf, the compiled tier: translates an ABI-v1 wasmfw filter
//! (`.wasm`) into one eBPF XDP program, which the kernel verifies and
//! JIT-compiles (`docs/compiled.md`).
//!
//! `wasmfw_init` runs in userspace, in the engine (`wasmfw-engine`, the
//! code `wasmfw replay` runs), with the policy's configuration. What it
//! leaves behind becomes BPF state: the memory image is each CPU's initial
//! linear memory (an array map, one entry per CPU), the maps it declared
//! become BPF maps with the entries it wrote, its counters and the
//! built-in ones a per-CPU array. [`Compiled::load`] does all of it;
//! [`translate::translate`] is the translation alone.

mod asm;
mod module;
pub mod translate;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_engine::{Env, Filter, Instance, Limits, MapKind, BUILTIN_COUNTERS as BUILTIN_NAMES};
use wasmfw_xdp_bridge::sys;

pub use module::Module;
pub use translate::{MapRef, Target};

/// Call depth the translation inlines (frame 0 holds the verdict, the
/// filter runs in frame 1).
pub const MAX_FRAMES: usize = 8;
/// Slots (8 bytes each) per frame: locals plus the operand stack.
pub const FRAME_SLOTS: usize = 256;
/// Globals a module may have.
pub const MAX_GLOBALS: usize = 64;
/// eBPF instructions a translation may have: jumps are 16-bit, and a trap
/// anywhere jumps to the one trap handler.
pub const MAX_INSNS: usize = 32_000;
/// Largest linear memory (bytes) the compiled tier takes.
pub const MAX_MEMORY: usize = 16 << 20;
/// Built-in counters, first in the counters array (the engine's order).
pub const BUILTIN_COUNTERS: usize = BUILTIN_NAMES.len();

pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;

/// A filter translated and loaded: the program and its maps.
pub struct Compiled {
    pub prog: OwnedFd,
    /// Linear memory and auxiliary area, one array entry per possible CPU.
    pub memory: OwnedFd,
    /// Counters (built-in, then the filter's): one per-CPU array entry.
    pub counters: OwnedFd,
    pub counter_names: Vec<String>,
    /// The filter's maps, by id: (name, fd).
    pub maps: Vec<(String, OwnedFd)>,
    /// Instructions in the program.
    pub insns: usize,
}

/// The clock for `wasmfw_init` (it only declares and fills maps).
struct InitEnv;

impl Env for InitEnv {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _level: i32, _msg: &[u8]) {}
}

/// Possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-7`): the
/// number of values a per-CPU map holds.
pub fn possible_cpus() -> Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut n = 0;
    for part in text.trim().split(',') {
        let last = part.rsplit('-').next().unwrap_or(part);
        n = n.max(last.parse::<usize>().with_context(|| format!("cpu list {text:?}"))? + 1);
    }
    Ok(n)
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl Compiled {
    /// Runs `wasmfw_init` in the engine, builds the BPF maps and loads the
    /// translation. A refusal says why: the Wasm instruction and its
    /// offset, or the verifier's reason.
    pub fn load(wasm: &[u8], limits: Limits, config: &[u8], name: &str) -> Result<Compiled> {
        let (filter, instances) =
            wasmfw_engine::load(wasm, limits, config, 1, Arc::new(InitEnv), 0).map_err(|e| anyhow!("{e}"))?;
        Compiled::from_engine(wasm, &filter, &instances[0], name)
    }

    /// As [`Compiled::load`], from an engine instance after its init.
    pub fn from_engine(wasm: &[u8], filter: &Filter, inst: &Instance, name: &str) -> Result<Compiled> {
        let module = Module::parse(wasm)?;
        let limits = filter.limits();
        let mem_image = inst.memory();
        let mem_size = mem_image.len();
        let aux = translate::aux_size(module.globals.len());
        let cpus = possible_cpus()?;
        let value_size = mem_size + aux;
        let memory = sys::map_create(sys::BPF_MAP_TYPE_ARRAY, 4, value_size as u32, cpus as u32, "wf_memory")?;
        let mut value = vec![0u8; value_size];
        value[..mem_size].copy_from_slice(mem_image);
        let mut globals = Vec::new();
        inst.init_globals(|n, v| globals.push((n.to_string(), v)));
        for (i, g) in module.globals.iter().enumerate() {
            let v = g.export.as_ref().and_then(|n| globals.iter().find(|e| &e.0 == n)).map_or(g.init, |e| e.1);
            let v = if g.ty == wasmparser::ValType::I32 { u64::from(v as u32) } else { v as u64 };
            value[mem_size + 8 * i..mem_size + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        for cpu in 0..cpus as u32 {
            sys::map_update(memory.as_raw_fd(), &cpu.to_le_bytes(), &value)?;
        }
        let mut counter_names: Vec<String> = Vec::new();
        filter.counters(|n, _| counter_names.push(n.to_string()));
        let counters =
            sys::map_create(sys::BPF_MAP_TYPE_PERCPU_ARRAY, 4, (8 * counter_names.len()) as u32, 1, "wf_counters")?;
        let mut maps = Vec::new();
        let mut refs = Vec::new();
        let mut infos = Vec::new();
        filter.maps(|m| infos.push(*m));
        for info in infos {
            let (ty, max) = match info.kind {
                MapKind::Hash => (sys::BPF_MAP_TYPE_HASH, info.max_entries),
                MapKind::PerCpuArray => (sys::BPF_MAP_TYPE_PERCPU_ARRAY, info.max_entries),
            };
            let name = info.name.as_str().to_string();
            let fd = sys::map_create(ty, info.key_size as u32, info.value_size as u32, max, &name)?;
            let mut err = None;
            let vs = round8(info.value_size);
            let mut percpu = std::collections::BTreeMap::<Vec<u8>, Vec<u8>>::new();
            filter.map_for_each(&name, |slot, k, v| match info.kind {
                MapKind::Hash => {
                    if let Err(e) = sys::map_update(fd.as_raw_fd(), k, v) {
                        err.get_or_insert(e);
                    }
                }
                MapKind::PerCpuArray => {
                    // The engine's one slot's values become every CPU's.
                    let _ = slot;
                    let all = percpu.entry(k.to_vec()).or_insert_with(|| vec![0; vs * cpus]);
                    for cpu in 0..cpus {
                        all[cpu * vs..cpu * vs + v.len()].copy_from_slice(v);
                    }
                }
            });
            for (k, v) in percpu {
                sys::map_update(fd.as_raw_fd(), &k, &v)?;
            }
            if let Some(e) = err {
                return Err(e).context(format!("filling map {name}"));
            }
            refs.push(MapRef {
                kind: info.kind,
                key_size: info.key_size,
                value_size: info.value_size,
                fd: fd.as_raw_fd(),
            });
            maps.push((name, fd));
        }
        let (buffer, buffer_len) = inst.buffer();
        let target = Target {
            mem_size,
            buffer: (buffer, buffer_len),
            globals,
            maps: refs,
            counters: counter_names.len() - BUILTIN_COUNTERS,
            fuel: limits.fuel,
            on_fault: limits.on_fault,
            audit: limits.audit,
            mem_fd: memory.as_raw_fd(),
            counters_fd: counters.as_raw_fd(),
        };
        let insns = translate::translate(&module, &target)?;
        let prog = sys::prog_load_xdp(&insns, &[], name)?;
        Ok(Compiled { prog, memory, counters, counter_names, maps, insns: insns.len() })
    }

    /// BPF_PROG_TEST_RUN on one frame: (XDP action, ns per run).
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<(u32, u32)> {
        sys::prog_test_run(self.prog.as_raw_fd(), frame, repeat)
    }

    /// Every counter, summed over the CPUs, in the engine's order.
    pub fn counters(&self) -> Result<Vec<(String, u64)>> {
        let cpus = possible_cpus()?;
        let n = self.counter_names.len();
        let mut values = vec![0u8; 8 * n * cpus];
        if !sys::map_lookup(self.counters.as_raw_fd(), &0u32.to_le_bytes(), &mut values)? {
            bail!("counters entry missing");
        }
        let mut out: Vec<(String, u64)> = self.counter_names.iter().map(|n| (n.clone(), 0)).collect();
        for cpu in 0..cpus {
            for (i, c) in out.iter_mut().enumerate() {
                let at = 8 * (cpu * n + i);
                c.1 = c.1.wrapping_add(u64::from_le_bytes(values[at..at + 8].try_into().unwrap_or_default()));
            }
        }
        Ok(out)
    }
}
