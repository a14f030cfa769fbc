//! The eBPF-twin engine (`--engine ebpf`): the filter's twin from
//! compare-ebpf/ (`wasmfw_ebpf`), attached at XDP through netlink. What is
//! attached is noted in a record (`records.rs`), each checked against the
//! interface's XDP program before it is believed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_ebpf::rawmap::RawMap;
use wasmfw_ebpf::Twin;
use wasmfw_policy::{Hook, Mode, Param, Policy};

use super::recorded;
use super::xdp::mode_name;
use crate::access::{check_iface, check_privileges};
use crate::backend::{
    carried_json, carried_text, Attachment, Backend, CaptureSource, Captured, Detached, LoadRequest, LogLine, LogSink,
    MapDesc, MapEntry, Maps, Prepared, Report, CAPTURE_POLL_INTERVAL, LOG_FOLLOW_INTERVAL,
};
use crate::netns;
use crate::records::{self, now, Entry};

/// The eBPF-twin engine.
pub struct Ebpf;

/// `--engine`'s value, and `engine` in its records.
const NAME: &str = "ebpf";

impl Backend for Ebpf {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "The filter's eBPF twin from compare-ebpf/ (any modern kernel)"
    }

    fn prepare(&self, target: &Path) -> Result<Box<dyn Prepared>> {
        Ok(Box::new(read_target(target)?))
    }

    fn make_room(&self, ns: u64, iface: &str) -> Result<()> {
        recorded::make_room(NAME, "an eBPF filter", ns, iface)
    }

    fn detach(&self, ns: u64, iface: &str) -> Result<Option<Detached>> {
        recorded::detach(NAME, "unloading an eBPF program", ns, iface)
    }

    fn list(&self, only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
        recorded::list(NAME, only, |e, id| {
            let Ok(t) = Twin::for_filter(&e.filter) else { return Ok(()) };
            let counters = wasmfw_ebpf::counters_of_prog(t, id)
                .with_context(|| format!("reading counters of {} on {} (needs root)", e.filter, e.iface))?;
            e.counters = counters.into_iter().collect();
            let audit = wasmfw_ebpf::rawmap::audit_of_prog(id)
                .with_context(|| format!("reading the mode of {} on {} (needs root)", e.filter, e.iface))?;
            e.filter_mode = if audit { "audit" } else { "enforce" }.into();
            Ok(())
        })
    }

    fn find(&self, ns: u64, iface: &str) -> Result<Option<Box<dyn Attachment>>> {
        Ok(recorded::attached_prog(NAME, ns, iface)
            .map(|(prog_id, filter)| Box::new(Attached { prog_id, filter }) as Box<dyn Attachment>))
    }

    fn log_flusher(&self, e: &Entry) -> Option<Box<dyn FnMut()>> {
        // The program's aya-log records (if loaded with WASMFW_EBPF_LOG=...).
        let mut logger = wasmfw_ebpf::program_logger(e.prog_id?).ok()?;
        Some(Box::new(move || logger.flush()))
    }
}

/// Filter name, parameters, policy path and policy hook/iface of a load
/// target: the twin needs the filter's name and parameters, not its .wasm.
struct Target {
    filter: String,
    params: Vec<(String, Param, usize)>,
    policy: Option<String>,
    hook: Hook,
    ifaces: Vec<String>,
    mode: Mode,
}

fn read_target(path: &Path) -> Result<Target> {
    if path.extension().is_some_and(|e| e == "wasm") {
        // A bare filter: its twin, default parameters, if it is the stock one.
        let filter = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Twin::for_filter(&filter)?;
        check_stock(path, &filter)?;
        return Ok(Target {
            filter,
            params: Vec::new(),
            policy: None,
            hook: Hook::Xdp,
            ifaces: Vec::new(),
            mode: Mode::Enforce,
        });
    }
    // The ebpf engine runs the filter's twin: its .wasm need not exist.
    let policy = Policy::load_without_wasm(path).map_err(|e| anyhow!("{e}"))?;
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(Target {
        filter: policy.filter.clone(),
        params: policy.params.clone(),
        policy: Some(abs.display().to_string()),
        hook: policy.hook,
        ifaces: policy.ifaces.clone(),
        mode: policy.mode,
    })
}

/// A bare `.wasm` runs as its twin only if it is the stock filter of that
/// name, byte for byte (the first `<name>.wasm` on the policy search path):
/// an edited or foreign file with a stock name must not silently become the
/// stock twin, which would ignore it.
fn check_stock(path: &Path, filter: &str) -> Result<()> {
    let mine = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dirs = wasmfw_policy::filter_search_path(dir);
    let other_engines = "load it with --engine wasm or --engine compiled";
    match dirs.iter().map(|d| d.join(format!("{filter}.wasm"))).find(|p| p.is_file()) {
        Some(stock) if std::fs::read(&stock).with_context(|| format!("reading {}", stock.display()))? == mine => Ok(()),
        Some(stock) => bail!(
            "{} is not the stock {filter} filter (it differs from {}): the ebpf engine runs the stock filter's \
             hand-written twin, which would ignore this file; {other_engines}",
            path.display(),
            stock.display()
        ),
        None => bail!(
            "{} cannot be checked against the stock {filter} filter (no {filter}.wasm in {}): the ebpf engine runs \
             only the stock filters' twins; {other_engines}",
            path.display(),
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

impl Prepared for Target {
    fn ifaces(&self) -> &[String] {
        &self.ifaces
    }

    fn hook(&self) -> Hook {
        self.hook
    }

    fn attach(&self, req: &LoadRequest, iface: &str, hook: Hook) -> Result<Report> {
        let iface = iface.to_string();
        if hook != Hook::Xdp {
            bail!("the ebpf engine attaches at the xdp hook only (policy or --hook asks for {})", hook.as_str());
        }
        let twin = Twin::for_filter(&self.filter)?;
        check_privileges("loading an eBPF program")?;
        let ifindex = check_iface(&iface)?;
        let ns = netns::current()?;
        let mode = req.mode;
        let old = recorded::replaced_prog(NAME, req, ns, ifindex, &iface)?;
        if req.keep_maps && old.is_none() {
            bail!("--keep-maps: nothing is attached on {iface} to keep maps from");
        }
        let audit = req.audit || self.mode == Mode::Audit;
        let loaded = wasmfw_ebpf::load_in_mode(twin, &self.params, audit)?;
        let (fd, prog_id) = loaded.prog_fd_and_id()?;
        let mut carried = Vec::new();
        match old {
            Some(old_id) => {
                // Copied before the swap: the old program may still update an
                // entry after its copy (docs/audit-and-replace.md).
                if req.keep_maps {
                    carried = wasmfw_ebpf::rawmap::carry_maps(old_id, prog_id, twin.state_maps())
                        .with_context(|| format!("carrying the maps of program {old_id} over"))?;
                }
                wasmfw_xdp_bridge::replace(ifindex, fd, old_id, mode)
                    .with_context(|| format!("replacing program {old_id} on {iface} with {}", twin.name()))?;
            }
            None => wasmfw_xdp_bridge::netlink::attach(ifindex, fd, mode)
                .with_context(|| format!("attaching {} to {iface}", twin.name()))?,
        }
        let filter_mode = if audit { Mode::Audit } else { Mode::Enforce };
        let entry = Entry {
            netns: String::new(),
            netns_ino: ns,
            iface: iface.clone(),
            engine: NAME.into(),
            hook: "xdp".into(),
            mode: mode_name(mode).into(),
            filter: twin.name().into(),
            filter_mode: filter_mode.as_str().into(),
            policy: self.policy.clone(),
            loaded_at: now(),
            prog_id: Some(prog_id),
            filter_id: None,
            attached: true,
            gone: None,
            counters: BTreeMap::new(),
            counter_names: Vec::new(),
        };
        if let Err(e) = records::write(&entry) {
            if old.is_none() {
                let _ = wasmfw_xdp_bridge::netlink::detach(ifindex, fd, mode);
            }
            return Err(e);
        }
        let mut attached = serde_json::to_value(&entry)?;
        attached["netns"] = netns::display(ns).into();
        let verb = if let Some(o) = old { format!("replaced program {o} on") } else { "attached to".into() };
        let mut value = serde_json::json!({ "attached": attached });
        if req.keep_maps {
            value["kept_maps"] = carried_json(&carried);
        }
        let text = format!(
            "{} {verb} {iface} in netns {} (engine ebpf, xdp {} mode, {}, prog id {prog_id}){}",
            twin.name(),
            netns::display(ns),
            mode_name(mode),
            filter_mode.as_str(),
            carried_text(&carried)
        );
        Ok(Report { text, value })
    }
}

/// A twin attached on an interface: its program and filter name.
struct Attached {
    prog_id: u32,
    filter: String,
}

impl Attachment for Attached {
    fn filter(&self) -> &str {
        &self.filter
    }

    fn maps(&self) -> Result<Box<dyn Maps>> {
        Ok(Box::new(TwinMaps(wasmfw_ebpf::rawmap::maps_of_prog(self.prog_id)?)))
    }

    /// aya-log records carry neither time nor CPU: the time is when wasmfw
    /// read them, the CPU unknown; a full ring drops records uncounted.
    fn log(&self, follow: bool, sink: &mut dyn LogSink) -> Result<()> {
        let mut reader = wasmfw_ebpf::LogReader::new(self.prog_id)?;
        loop {
            let now = monotonic_ns();
            for l in reader.read() {
                let line = LogLine {
                    ts_ns: now,
                    cpu: None,
                    level: l.level,
                    filter: &self.filter,
                    seq: None,
                    msg: l.msg.as_bytes(),
                };
                sink.line(&line);
            }
            if !follow {
                return Ok(());
            }
            std::thread::sleep(LOG_FOLLOW_INTERVAL);
        }
    }

    fn capture(&self, verdicts: u32, snaplen: u32) -> Result<Box<dyn CaptureSource>> {
        let cap = wasmfw_ebpf::capture::Capture::start(self.prog_id, verdicts, snaplen)?;
        Ok(Box::new(TwinCapture { cap, prog_id: self.prog_id }))
    }
}

/// CLOCK_MONOTONIC now, ns: the clock of the kernel engine's records.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The maps of a twin's program (and of a compiled filter's, less its
/// memory and counters).
pub(super) struct TwinMaps(pub(super) Vec<RawMap>);

impl TwinMaps {
    fn map(&self, name: &str) -> &RawMap {
        self.0.iter().find(|m| m.name == name).expect("maps.rs checked the name")
    }
}

impl Maps for TwinMaps {
    fn list(&self) -> Vec<MapDesc> {
        self.0
            .iter()
            .map(|m| MapDesc {
                name: m.name.clone(),
                kind: m.kind.clone(),
                key_size: m.key_size,
                value_size: m.value_size,
                max_entries: m.max_entries,
            })
            .collect()
    }

    fn dump(&self, name: &str) -> Result<Vec<MapEntry>> {
        let m = self.map(name);
        let mut out = Vec::new();
        for k in m.keys()? {
            if let Some(v) = m.lookup(&k)? {
                out.push(MapEntry::new(&k, v, m.cpus > 1));
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str, key: &[u8]) -> Result<Option<MapEntry>> {
        let m = self.map(name);
        Ok(m.lookup(key)?.map(|v| MapEntry::new(key, v, m.cpus > 1)))
    }

    fn set(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.map(name).update(key, value)
    }

    fn del(&self, name: &str, key: &[u8]) -> Result<bool> {
        self.map(name).delete(key)
    }
}

/// A twin's capture: its perf buffers.
struct TwinCapture {
    cap: wasmfw_ebpf::capture::Capture,
    prog_id: u32,
}

impl CaptureSource for TwinCapture {
    fn poll(&mut self, out: &mut Vec<Captured>) -> Result<u64> {
        let mut recs = Vec::new();
        self.cap.poll(CAPTURE_POLL_INTERVAL, &mut recs)?;
        out.extend(recs.into_iter().map(|r| Captured {
            ts_mono_ns: r.ts_ns,
            cpu: r.cpu,
            verdict: r.verdict,
            filter: self.prog_id,
            link: 1,
            audit: false,
            orig_len: r.orig_len,
            data: r.data,
        }));
        Ok(self.cap.lost)
    }

    /// Also disarmed when the capture is dropped.
    fn stop(&mut self) -> Result<()> {
        self.cap.stop()
    }
}
