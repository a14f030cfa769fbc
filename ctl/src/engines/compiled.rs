//! The compiled engine (`--engine compiled`): the filter's `.wasm`
//! translated to one eBPF XDP program by `wasm2ebpf` (docs/compiled.md),
//! verified and JIT-compiled by the kernel, attached through netlink. What
//! is attached is noted in a record (`records.rs`), as the eBPF twins'
//! are, and checked against the interface's XDP program before it is
//! believed; the program holds its maps, so nothing is pinned.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasm2ebpf::Compiled;
use wasmfw_ebpf::rawmap::maps_of_prog;
use wasmfw_policy::{Hook, Mode, Policy};

use super::ebpf::TwinMaps;
use super::recorded;
use super::xdp::mode_name;
use crate::access::{check_iface, check_privileges};
use crate::backend::{
    Attachment, Backend, CaptureSource, Detached, Each, LoadRequest, LogSink, Maps, Prepared, Report,
};
use crate::netns;
use crate::records::{self, now, Entry};
use crate::replay::Packet;

/// The compiled engine.
pub struct CompiledEngine;

/// `--engine`'s value, and `engine` in its records.
pub const NAME: &str = "compiled";

/// The name of the counters map `wasm2ebpf` creates (one per-CPU entry).
const COUNTERS_MAP: &str = "wf_counters";

/// The name of the linear-memory map `wasm2ebpf` creates (not the filter's).
const MEMORY_MAP: &str = "wf_memory";

/// Prefix of the program's kernel name (`bpftool prog` shows it).
const PROG_PREFIX: &str = "wfc_";

/// The error of a verb this engine does not do yet.
fn not_yet(verb: &str) -> anyhow::Error {
    anyhow!("{verb} is not supported by the compiled engine yet (use --engine wasm or ebpf)")
}

impl Backend for CompiledEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "The filter's .wasm translated to eBPF (wasm2ebpf), verified and JIT-compiled by the kernel; XDP only"
    }

    fn prepare(&self, target: &Path) -> Result<Box<dyn Prepared>> {
        Ok(Box::new(Target::read(target)?))
    }

    fn make_room(&self, ns: u64, iface: &str) -> Result<()> {
        recorded::make_room(NAME, "a compiled filter", ns, iface)
    }

    fn detach(&self, ns: u64, iface: &str) -> Result<Option<Detached>> {
        recorded::detach(NAME, "unloading a compiled filter", ns, iface)
    }

    fn list(&self, only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
        recorded::list(NAME, only, |e, id| {
            e.counters = counters_of_prog(id, &e.counter_names)
                .with_context(|| format!("reading counters of {} on {} (needs root)", e.filter, e.iface))?;
            Ok(())
        })
    }

    /// Not yet: `apply`'s "unchanged" test compares engines by name.
    fn applies(&self) -> bool {
        false
    }

    fn find(&self, ns: u64, iface: &str) -> Result<Option<Box<dyn Attachment>>> {
        Ok(recorded::attached_prog(NAME, ns, iface)
            .map(|(prog_id, filter)| Box::new(Attached { prog_id, filter }) as Box<dyn Attachment>))
    }

    fn test_run(&self, _policy: &Policy, _packets: &[Packet], _repeat: u32, _via_xdp: bool, _each: Each) -> Result<()> {
        Err(not_yet("test-run"))
    }
}

/// The counters of compiled program `prog_id`, summed over CPUs, named by
/// `names` (the record's: the map holds 8 bytes per counter, in that order).
fn counters_of_prog(prog_id: u32, names: &[String]) -> Result<BTreeMap<String, u64>> {
    let maps = maps_of_prog(prog_id)?;
    let m = maps
        .iter()
        .find(|m| m.name == COUNTERS_MAP)
        .ok_or_else(|| anyhow!("program {prog_id} has no {COUNTERS_MAP} map"))?;
    let per_cpu = m.lookup(&0u32.to_le_bytes())?.ok_or_else(|| anyhow!("{COUNTERS_MAP}: entry 0 missing"))?;
    let mut out: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 0)).collect();
    for values in &per_cpu {
        for (i, name) in names.iter().enumerate() {
            let Some(b) = values.get(8 * i..8 * i + 8) else { continue };
            let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            if let Some(c) = out.get_mut(name) {
                *c = c.wrapping_add(v);
            }
        }
    }
    Ok(out)
}

/// A load target for the compiled engine: the policy (its `.wasm` is
/// needed) and the policy file's absolute path.
pub struct Target {
    policy: Policy,
    path: Option<String>,
}

/// A translation the verifier accepted, not yet attached.
pub struct Loaded {
    compiled: Compiled,
    audit: bool,
}

impl Target {
    pub fn read(target: &Path) -> Result<Target> {
        let policy = Policy::load(target).map_err(|e| anyhow!("{e}"))?;
        let path = policy
            .source
            .as_ref()
            .map(|s| std::fs::canonicalize(s).unwrap_or_else(|_| s.clone()).display().to_string());
        Ok(Target { policy, path })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `wasmfw_init` in userspace with the policy's configuration,
    /// translates, loads: the translator's or the verifier's refusal, named.
    pub fn load(&self, audit: bool) -> Result<Loaded> {
        check_privileges("loading a compiled filter")?;
        let p = &self.policy;
        let wasm = std::fs::read(&p.wasm).with_context(|| p.wasm.display().to_string())?;
        let audit = audit || p.mode == Mode::Audit;
        let limits = wasmfw_engine::Limits { audit, ..p.limits() };
        let name: String = format!("{PROG_PREFIX}{}", p.filter)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(15)
            .collect();
        let compiled = Compiled::load(&wasm, limits, &p.config_bytes(), &name)
            .map_err(|e| anyhow!("the compiled engine cannot run {}: {e:#}", p.filter))?;
        Ok(Loaded { compiled, audit })
    }

    /// Attaches a loaded translation on `iface` (this thread's namespace).
    pub fn attach_loaded(&self, loaded: Loaded, req: &LoadRequest, iface: &str) -> Result<Report> {
        let ifindex = check_iface(iface)?;
        let ns = netns::current()?;
        let mode = req.mode;
        let old = recorded::replaced_prog(NAME, req, ns, ifindex, iface)?;
        if req.keep_maps {
            return Err(not_yet("--keep-maps"));
        }
        let c = &loaded.compiled;
        let fd = c.prog.as_raw_fd();
        let (prog_id, _) = wasmfw_xdp_bridge::sys::prog_id_name(fd)?;
        match old {
            Some(old_id) => wasmfw_xdp_bridge::replace(ifindex, fd, old_id, mode)
                .with_context(|| format!("replacing program {old_id} on {iface}"))?,
            None => wasmfw_xdp_bridge::netlink::attach(ifindex, fd, mode)
                .with_context(|| format!("attaching {} (compiled) to {iface}", self.policy.filter))?,
        }
        let filter_mode = if loaded.audit { Mode::Audit } else { Mode::Enforce };
        let entry = Entry {
            netns: String::new(),
            netns_ino: ns,
            iface: iface.to_string(),
            engine: NAME.into(),
            hook: "xdp".into(),
            mode: mode_name(mode).into(),
            filter: self.policy.filter.clone(),
            filter_mode: filter_mode.as_str().into(),
            policy: self.path.clone(),
            loaded_at: now(),
            prog_id: Some(prog_id),
            filter_id: None,
            attached: true,
            gone: None,
            counters: BTreeMap::new(),
            counter_names: c.counter_names.clone(),
        };
        if let Err(e) = records::write(&entry) {
            if old.is_none() {
                let _ = wasmfw_xdp_bridge::netlink::detach(ifindex, fd, mode);
            }
            return Err(e);
        }
        let mut attached = serde_json::to_value(&entry)?;
        attached["netns"] = netns::display(ns).into();
        attached["insns"] = c.insns.into();
        let verb = if let Some(o) = old { format!("replaced program {o} on") } else { "attached to".into() };
        let text = format!(
            "{} {verb} {iface} in netns {} (engine compiled, xdp {} mode, {}, prog id {prog_id}, {} eBPF instructions)",
            self.policy.filter,
            netns::display(ns),
            mode_name(mode),
            filter_mode.as_str(),
            c.insns
        );
        Ok(Report { text, value: serde_json::json!({ "attached": attached }) })
    }
}

impl Prepared for Target {
    fn ifaces(&self) -> &[String] {
        &self.policy.ifaces
    }

    fn hook(&self) -> Hook {
        self.policy.hook
    }

    fn attach(&self, req: &LoadRequest, iface: &str, hook: Hook) -> Result<Report> {
        if hook != Hook::Xdp {
            bail!("the compiled engine attaches at the xdp hook only (policy or --hook asks for {})", hook.as_str());
        }
        check_iface(iface)?;
        let loaded = self.load(req.audit)?;
        self.attach_loaded(loaded, req, iface)
    }
}

/// A compiled filter attached on an interface: its program and name.
struct Attached {
    prog_id: u32,
    filter: String,
}

impl Attachment for Attached {
    fn filter(&self) -> &str {
        &self.filter
    }

    /// The BPF maps the program uses, which are the filter's maps (a map
    /// the packet path never touches is not kept by the program).
    fn maps(&self) -> Result<Box<dyn Maps>> {
        let mut maps = maps_of_prog(self.prog_id)?;
        maps.retain(|m| m.name != COUNTERS_MAP && m.name != MEMORY_MAP);
        Ok(Box::new(TwinMaps(maps)))
    }

    fn log(&self, _follow: bool, _sink: &mut dyn LogSink) -> Result<()> {
        Err(not_yet("log"))
    }

    fn capture(&self, _verdicts: u32, _snaplen: u32) -> Result<Box<dyn CaptureSource>> {
        Err(not_yet("capture"))
    }
}
