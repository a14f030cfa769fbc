//! The kernel-module engine (`--engine wasm`): the Wasm filter inside the
//! wasmfw module, through /dev/wasmfw (`crate::kmod`), at netfilter or at
//! XDP through xdp-bridge. The module's own list is the truth about what
//! is attached; no record is kept.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_policy::{Hook, Mode, Policy, Verdict};

use super::xdp::{mode_name, xdp_slot_free};
use crate::access::{check_iface, ifindex_of};
use crate::backend::{
    carried_json, carried_text, hex, Attachment, Backend, CaptureSource, Captured, Carried, Detached, Each,
    LoadRequest, LogLine, LogSink, MapDesc, MapEntry, Maps, Prepared, Report, CAPTURE_POLL_INTERVAL,
    LOG_FOLLOW_INTERVAL,
};
use crate::kmod::{self, Device, Info, InfoText as _, MapInfo, MapInfoText as _};
use crate::netns;
use crate::records::Entry;
use crate::replay::Packet;

/// The kernel-module engine.
pub struct Kmod;

/// `--engine`'s value, and `engine` in `status`.
const NAME: &str = "wasm";

impl Backend for Kmod {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "The Wasm filter inside the wasmfw kernel module"
    }

    /// The Wasm engine needs the .wasm.
    fn prepare(&self, target: &Path) -> Result<Box<dyn Prepared>> {
        Ok(Box::new(Target(wasm_policy(target)?)))
    }

    fn make_room(&self, ns: u64, iface: &str) -> Result<()> {
        if kmod_attached(ns, iface)?.is_some() {
            bail!("a wasm filter is attached on {iface}; run `wasmfw unload --iface {iface}` first");
        }
        Ok(())
    }

    fn detach(&self, ns: u64, iface: &str) -> Result<Option<Detached>> {
        let done = |filter: String, was_attached: bool, text: String| {
            Ok(Some(Detached { filter, engine: NAME.into(), was_attached, text }))
        };
        if let Some(info) = kmod_attached(ns, iface)? {
            // XDP: drop the bridge program first, so no packet reaches the
            // kfunc after the filter is gone (it would pass anyway).
            if info.hook == kmod::HOOK_XDP {
                detach_bridge(iface)?;
            }
            Device::open()?.detach(iface)?;
            let hook = if info.hook == kmod::HOOK_XDP { "xdp" } else { "netfilter" };
            return done(info.name(), true, format!("{} detached from {iface} (wasm, {hook})", info.name()));
        }
        // A bridge left without its filter (the module was reloaded).
        if detach_bridge(iface)? {
            return done(
                String::new(),
                false,
                format!("xdp-bridge detached from {iface} (no wasm filter was attached)"),
            );
        }
        Ok(None)
    }

    fn list(&self, only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if !Path::new(kmod::DEVICE).exists() {
            return Ok(out);
        }
        let dev = Device::open()?;
        for info in dev.list()? {
            let ns = info.netns_ino().unwrap_or(0);
            if info.hook == 0 || only.is_some_and(|(n, i)| n != ns || i != info.ifname()) {
                continue;
            }
            let policy = info.policy();
            let xdp = info.hook == kmod::HOOK_XDP;
            let mut e = Entry {
                netns: netns::display(ns),
                netns_ino: ns,
                iface: info.ifname(),
                engine: NAME.into(),
                hook: if xdp { "xdp" } else { "netfilter" }.into(),
                mode: String::new(),
                filter: info.name(),
                filter_mode: if info.flags & kmod::LOAD_AUDIT != 0 { "audit" } else { "enforce" }.into(),
                policy: (!policy.is_empty()).then_some(policy),
                loaded_at: 0,
                prog_id: None,
                filter_id: Some(info.id),
                attached: true,
                gone: None,
                counters: dev.counters(info.id)?.into_iter().collect(),
                counter_names: Vec::new(),
            };
            if xdp {
                check_bridge(&mut e);
            }
            out.push(e);
        }
        Ok(out)
    }

    fn find(&self, ns: u64, iface: &str) -> Result<Option<Box<dyn Attachment>>> {
        Ok(kmod_attached(ns, iface)?.map(|info| {
            Box::new(Attached { ns, iface: iface.into(), id: info.id, filter: info.name() }) as Box<dyn Attachment>
        }))
    }

    /// `via_xdp`: the filter is attached at XDP on `lo` and the packets go
    /// through xdp-bridge with BPF_PROG_TEST_RUN, whose device is this
    /// namespace's `lo`.
    fn test_run(&self, policy: &Policy, packets: &[Packet], repeat: u32, via_xdp: bool, each: Each) -> Result<()> {
        let dev = Device::open()?;
        let (id, _) = dev.load(policy, policy.mode == Mode::Audit)?;
        if via_xdp {
            if let Err(e) = dev.attach(id, kmod::HOOK_XDP, "lo") {
                let _ = dev.unload(id);
                return Err(e);
            }
        }
        let result = (|| -> Result<()> {
            let bridge = if via_xdp { Some(wasmfw_xdp_bridge::Bridge::load()?) } else { None };
            for (index, p) in packets.iter().enumerate() {
                let (verdict, per) = match &bridge {
                    Some(b) => {
                        if p.link != wasmfw_engine::abi::LINK_ETHERNET {
                            bail!("packet {index}: XDP test runs need Ethernet frames");
                        }
                        let (ret, ns) = b.test_run(&p.data, repeat)?;
                        (wasmfw_ebpf::xdp_verdict(ret).unwrap_or(Verdict::Pass).as_str(), ns as f64)
                    }
                    None => {
                        let (v, ns) = dev.test_run(id, &p.data, p.link, repeat)?;
                        {
                            let v = i32::try_from(v).ok().and_then(Verdict::from_abi).unwrap_or(Verdict::Pass);
                            (v.as_str(), ns as f64 / repeat as f64)
                        }
                    }
                };
                each(index, verdict, per)?;
            }
            Ok(())
        })();
        // Detaching frees the filter; an unattached one is unloaded.
        let unloaded = if via_xdp { dev.detach("lo") } else { dev.unload(id) };
        result.and(unloaded)
    }
}

/// The policy of a load target for the Wasm engine (which needs the .wasm).
fn wasm_policy(target: &Path) -> Result<Policy> {
    Policy::load(target).map_err(|e| anyhow!("{e}"))
}

/// The module's attachment on (`ns`, `iface`), if the module is loaded.
fn kmod_attached(ns: u64, iface: &str) -> Result<Option<Info>> {
    if !Path::new(kmod::DEVICE).exists() {
        return Ok(None);
    }
    Ok(Device::open()?
        .list()?
        .into_iter()
        .find(|i| i.hook != 0 && i.ifname() == iface && i.netns_ino().is_none_or(|n| n == ns)))
}

/// For a wasm filter at XDP: is xdp-bridge attached on its interface (else
/// no packet reaches the filter)? Sets `attached`/`gone`, `mode`, `prog_id`.
fn check_bridge(e: &mut Entry) {
    let iface = e.iface.clone();
    let found = netns::run_in(e.netns_ino, move || {
        let Some(idx) = ifindex_of(&iface) else { return Ok(None) };
        Ok(wasmfw_xdp_bridge::attached(idx)?.filter(|(_, name)| name == wasmfw_xdp_bridge::PROG_NAME))
    });
    match found {
        Ok(Some(Some((a, _)))) => {
            e.mode = mode_name(a.mode).into();
            e.prog_id = Some(a.prog_id);
        }
        Ok(Some(None)) => {
            e.attached = false;
            e.gone = Some("xdp-bridge is not attached on the interface: no packet reaches the filter".into());
        }
        Ok(None) => {
            e.attached = false;
            e.gone = Some(netns::DELETED.into());
        }
        Err(err) => {
            e.attached = false;
            e.gone = Some(format!("cannot check: {err:#}"));
        }
    }
}

/// Detaches xdp-bridge from `iface` if it is attached there; true if it was.
fn detach_bridge(iface: &str) -> Result<bool> {
    let Some(idx) = ifindex_of(iface) else { return Ok(false) };
    match wasmfw_xdp_bridge::attached(idx)? {
        Some((a, name)) if name == wasmfw_xdp_bridge::PROG_NAME => {
            wasmfw_xdp_bridge::detach(idx, a.prog_id, a.mode)
                .with_context(|| format!("detaching xdp-bridge from {iface}"))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A policy read for the module.
struct Target(Policy);

impl Prepared for Target {
    fn ifaces(&self) -> &[String] {
        &self.0.ifaces
    }

    fn hook(&self) -> Hook {
        self.0.hook
    }

    /// Loads into the kernel module, then attaches; a failed attach
    /// unloads again, so nothing is left behind.
    fn attach(&self, req: &LoadRequest, iface: &str, hook: Hook) -> Result<Report> {
        let policy = &self.0;
        let dev = Device::open()?;
        let ifindex = check_iface(iface)?;
        let ns = netns::current()?;
        if let Some(old) = kmod_attached(ns, iface)? {
            if !req.replace {
                bail!(
                    "{} is already attached on {iface} (wasm); unload it first or pass --replace to swap atomically",
                    old.name()
                );
            }
        }
        for other in &req.others {
            other.make_room(ns, iface)?;
        }
        let hook_id = match hook {
            Hook::Netfilter => kmod::HOOK_NETFILTER,
            Hook::Xdp => kmod::HOOK_XDP,
        };
        let bridge_there = if hook == Hook::Xdp { xdp_slot_free(ifindex, iface)? } else { false };
        let audit = req.audit || policy.mode == Mode::Audit;
        let old_id = kmod_attached(ns, iface)?.map(|o| o.id);
        if req.keep_maps && old_id.is_none() {
            bail!("--keep-maps: nothing is attached on {iface} to keep maps from");
        }
        let (id, stack) = dev.load(policy, audit)?;
        // Copied before the swap: the old filter may still update an entry
        // after its copy (docs/audit-and-replace.md).
        let carried = match old_id.filter(|_| req.keep_maps) {
            Some(old) => match carry_maps(&dev, old, id) {
                Ok(c) => c,
                Err(e) => {
                    let _ = dev.unload(id);
                    return Err(e.context(format!("carrying the maps of filter {old} over")));
                }
            },
            None => Vec::new(),
        };
        if let Err(e) = dev.attach(id, hook_id, iface) {
            let _ = dev.unload(id);
            return Err(e);
        }
        // XDP: the kfunc now finds the filter; attach the bridge program that
        // calls it (unless it is already there and this is a replacement).
        if hook == Hook::Xdp && !bridge_there {
            if let Err(e) = wasmfw_xdp_bridge::Bridge::load().and_then(|b| b.attach(ifindex, req.mode)) {
                let _ = dev.detach(iface);
                return Err(e);
            }
        }
        let filter_mode = if audit { Mode::Audit } else { Mode::Enforce };
        let mut value = serde_json::json!({"attached": {"netns": netns::display(ns), "netns_ino": ns, "iface": iface, "engine": NAME,
            "hook": hook.as_str(), "filter": policy.filter, "filter_id": id, "fuel": policy.fuel,
            "on_fault": policy.on_fault.as_str(), "filter_mode": filter_mode.as_str(), "load_stack_bytes": stack}});
        if req.keep_maps {
            value["kept_maps"] = carried_json(&carried);
        }
        let text = format!(
            "{} {} {iface} in netns {} (engine wasm, hook {}, {}, filter id {id}, fuel {}, on_fault {}; load used {stack} bytes of kernel stack){}",
            policy.filter,
            if let Some(o) = old_id { format!("replaced filter {o} on") } else { "attached to".into() },
            netns::display(ns),
            hook.as_str(),
            filter_mode.as_str(),
            policy.fuel,
            policy.on_fault.as_str(),
            carried_text(&carried)
        );
        Ok(Report { text, value })
    }
}

/// `--keep-maps`: copies every entry of each hash map of filter `old` into
/// the map of the same name, key and value sizes of filter `new` (loaded,
/// not yet attached) if that one has at least as many max_entries and its
/// init left it empty; a map the new filter filled at init holds its
/// policy's configuration and is left as is, and so is a list map
/// (docs/filter-abi.md, "List maps"), also when the new policy's list is empty.
fn carry_maps(dev: &Device, old: u32, new: u32) -> Result<Vec<Carried>> {
    let new_maps = dev.maps(new)?;
    let mut out = Vec::new();
    for o in dev.maps(old)? {
        let name = o.name();
        let skip = |why: String| Carried { name: name.clone(), entries: 0, skipped: Some(why) };
        let Some(n) = new_maps.iter().find(|n| n.name() == name) else {
            out.push(skip("the new filter has no map of that name".into()));
            continue;
        };
        if o.kind != kmod::MAP_HASH {
            out.push(skip("a per-CPU array: starts as the new filter's init leaves it".into()));
            continue;
        }
        if (n.kind, n.key_size, n.value_size) != (o.kind, o.key_size, o.value_size) {
            out.push(skip(format!(
                "kind or sizes differ (key/value {}/{} -> {}/{})",
                o.key_size, o.value_size, n.key_size, n.value_size
            )));
            continue;
        }
        if o.max_entries > n.max_entries {
            out.push(skip(format!("max_entries shrinks ({} -> {})", o.max_entries, n.max_entries)));
            continue;
        }
        if crate::list_maps::is_list_map(&name, o.key_size as usize) {
            // A list parameter: the new policy's list, even when it is empty.
            out.push(skip("a list parameter: the new policy's list".into()));
            continue;
        }
        if !dev.map_dump(new, n)?.is_empty() {
            out.push(skip("configuration: the new filter filled it at init".into()));
            continue;
        }
        let entries = dev.map_dump(old, &o)?;
        for (_, key, value) in &entries {
            let rc = dev.map_op(new, &name, key, Some(value))?;
            if rc < 0 {
                bail!("map {name}: copying an entry failed (ABI code {rc})");
            }
        }
        out.push(Carried { name: name.clone(), entries: entries.len(), skipped: None });
    }
    Ok(out)
}

/// A filter attached on (`ns`, `iface`): its id in the module.
struct Attached {
    ns: u64,
    iface: String,
    id: u32,
    filter: String,
}

impl Attachment for Attached {
    fn filter(&self) -> &str {
        &self.filter
    }

    fn maps(&self) -> Result<Box<dyn Maps>> {
        let dev = Device::open()?;
        let maps = dev.maps(self.id)?;
        Ok(Box::new(FilterMaps { dev, id: self.id, maps }))
    }

    /// With `follow`, a replacement (`load --replace`: a new filter, a new
    /// ring) is followed from its start.
    fn log(&self, follow: bool, sink: &mut dyn LogSink) -> Result<()> {
        let dev = Device::open()?;
        let (mut id, mut name) = (self.id, self.filter.clone());
        let mut cursor = 0u64;
        loop {
            let page = match dev.log_read(id, cursor) {
                Ok(page) => page,
                Err(e) if follow => match kmod_attached(self.ns, &self.iface)? {
                    Some(info) if info.id != id => {
                        (id, name, cursor) = (info.id, info.name(), 0);
                        continue;
                    }
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            };
            if page.lost > 0 {
                sink.lost(page.lost, page.dropped);
            }
            for r in &page.records {
                let level = level_name(r.level);
                sink.line(&LogLine {
                    ts_ns: r.ts_ns,
                    cpu: Some(r.cpu),
                    level,
                    filter: &name,
                    seq: Some(r.seq),
                    msg: r.msg(),
                });
            }
            cursor = page.next;
            // A full page: more may be waiting right now.
            if page.records.len() as u32 == kmod::LOG_RING_RECORDS {
                continue;
            }
            if !follow {
                return Ok(());
            }
            std::thread::sleep(LOG_FOLLOW_INTERVAL);
        }
    }

    /// Also ends when the device is closed.
    fn capture(&self, verdicts: u32, snaplen: u32) -> Result<Box<dyn CaptureSource>> {
        let dev = Device::open()?;
        dev.capture_start(self.id, verdicts, snaplen)?;
        Ok(Box::new(FilterCapture { dev, id: self.id }))
    }
}

fn level_name(level: u32) -> &'static str {
    match level {
        0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "?",
    }
}

/// The maps of a filter in the module.
struct FilterMaps {
    dev: Device,
    id: u32,
    maps: Vec<MapInfo>,
}

impl FilterMaps {
    fn map(&self, name: &str) -> &MapInfo {
        self.maps.iter().find(|m| m.name() == name).expect("maps.rs checked the name")
    }
}

impl Maps for FilterMaps {
    fn list(&self) -> Vec<MapDesc> {
        self.maps
            .iter()
            .map(|m| MapDesc {
                name: m.name(),
                kind: match m.kind {
                    kmod::MAP_HASH => "hash",
                    kmod::MAP_PERCPU_ARRAY => "percpu_array",
                    _ => "unknown",
                }
                .into(),
                key_size: m.key_size as usize,
                value_size: m.value_size as usize,
                max_entries: m.max_entries,
            })
            .collect()
    }

    fn dump(&self, name: &str) -> Result<Vec<MapEntry>> {
        let m = self.map(name);
        let recs = self.dev.map_dump(self.id, m)?;
        if m.kind == kmod::MAP_PERCPU_ARRAY {
            // Records come per (cpu, index): gather each index's CPUs.
            let mut by_key: BTreeMap<Vec<u8>, Vec<(u32, Vec<u8>)>> = Default::default();
            for (cpu, k, v) in recs {
                by_key.entry(k).or_default().push((cpu, v));
            }
            Ok(by_key
                .into_iter()
                .map(|(k, mut vs)| {
                    vs.sort_by_key(|(c, _)| *c);
                    MapEntry::new(&k, vs.into_iter().map(|(_, v)| v).collect(), true)
                })
                .collect())
        } else {
            Ok(recs.into_iter().map(|(_, k, v)| MapEntry::new(&k, vec![v], false)).collect())
        }
    }

    /// The module has no lookup ioctl: the key is found in a dump.
    fn get(&self, name: &str, key: &[u8]) -> Result<Option<MapEntry>> {
        Ok(self.dump(name)?.into_iter().find(|e| e.key == hex(key)))
    }

    fn set(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        match self.dev.map_op(self.id, name, key, Some(value))? {
            0 => Ok(()),
            r => bail!("map {name}: the module refused the update ({})", abi_error(r)),
        }
    }

    fn del(&self, name: &str, key: &[u8]) -> Result<bool> {
        match self.dev.map_op(self.id, name, key, None)? {
            1 => Ok(true),
            0 => Ok(false),
            r => bail!("map {name}: the module refused the delete ({})", abi_error(r)),
        }
    }
}

/// The filter ABI's map error codes (docs/filter-abi.md).
fn abi_error(code: i32) -> String {
    match code {
        wasmfw_engine::abi::E_FULL => "map full".into(),
        wasmfw_engine::abi::E_NOENT => "no such key or map".into(),
        wasmfw_engine::abi::E_INVAL => "invalid key or value".into(),
        c => format!("ABI error {c}"),
    }
}

/// A capture of a filter in the module: its ring, read through the device.
struct FilterCapture {
    dev: Device,
    id: u32,
}

impl CaptureSource for FilterCapture {
    fn poll(&mut self, out: &mut Vec<Captured>) -> Result<u64> {
        let (recs, lost) = self.dev.capture_read(self.id)?;
        if recs.is_empty() {
            std::thread::sleep(CAPTURE_POLL_INTERVAL);
        }
        out.extend(recs.into_iter().map(|r| Captured {
            ts_mono_ns: r.ts_ns,
            cpu: r.cpu,
            verdict: r.verdict,
            filter: r.id,
            link: r.link,
            audit: r.audit,
            orig_len: r.orig_len,
            data: r.data,
        }));
        Ok(lost)
    }

    fn stop(&mut self) -> Result<()> {
        self.dev.capture_stop(self.id)
    }
}
