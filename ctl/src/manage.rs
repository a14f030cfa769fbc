//! load / unload / test-run: putting filters on interfaces and taking them
//! off (`status.rs` reports, `attachments.rs` tells what is attached).
//!
//! Engines: `wasm` (the Wasm filter in the wasmfw kernel module,
//! /dev/wasmfw; at XDP through xdp-bridge) and `ebpf` (the filter's eBPF
//! twin from compare-ebpf/, attached at XDP).
//!
//! Attachments outlive this process without pins: XDP programs are
//! attached through netlink (`wasmfw_xdp_bridge::netlink`), so they belong
//! to the interface, whatever launched wasmfw (`ip netns exec`, `nsenter`,
//! a unit, a container). Everything is keyed by (network namespace,
//! interface): the namespace is this process's (or `--netns`'s), and
//! `status` lists every namespace, each entry checked against the kernel.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_ebpf::rawmap::Carried;
use wasmfw_ebpf::Twin;
use wasmfw_policy::{Hook, Mode, Param, Policy};

use crate::access::{check_iface, check_privileges, ifindex_of};
use crate::attachments::{check_ebpf, entries_in, kmod_attached, mode_name, mode_of, xdp_mode, xdp_slot_free};
use crate::kmod::{InfoText as _, MapInfoText as _};
use crate::netns;
use crate::records::{self, now, Entry};
use crate::{Engine, HookArg, LoadArgs};

/// Filter name, parameters, policy path and policy hook/iface of a load target.
struct Target {
    filter: String,
    params: Vec<(String, Param, usize)>,
    policy: Option<String>,
    hook: Hook,
    ifaces: Vec<String>,
    mode: Mode,
}

/// A load target for the ebpf engine, which needs the filter's name and
/// parameters but not its .wasm.
fn read_target(path: &Path) -> Result<Target> {
    if path.extension().is_some_and(|e| e == "wasm") {
        // A bare filter: its twin, default parameters.
        let filter = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
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

/// Interfaces and hook of a load: `--iface` (one), else the policy's (one
/// or more); `--hook`, else the policy's.
fn placement(args: &LoadArgs, policy_ifaces: &[String], policy_hook: Hook) -> Result<(Vec<String>, Hook)> {
    let ifaces = match &args.iface {
        Some(i) => vec![i.clone()],
        None if policy_ifaces.is_empty() => bail!("no interface: pass --iface or set `iface` in the policy"),
        None => policy_ifaces.to_vec(),
    };
    let hook = match args.hook {
        Some(HookArg::Xdp) => Hook::Xdp,
        Some(HookArg::Netfilter) => Hook::Netfilter,
        None => policy_hook,
    };
    Ok((ifaces, hook))
}

thread_local! {
    /// Set while `apply` drives load/unload: it reports the changes itself.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub fn set_quiet(q: bool) {
    QUIET.with(|c| c.set(q));
}

/// Prints a command's result: `text`, or `value` with `--json`.
fn report(json: bool, text: String, value: serde_json::Value) {
    if QUIET.with(|c| c.get()) {
        return;
    }
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// `load`: on each interface of the placement in turn; if one fails, the
/// ones this command attached are detached again (all or nothing).
/// The target is read once, then attached on each interface.
pub fn load(args: &LoadArgs, json: bool) -> Result<()> {
    match args.engine {
        Engine::Wasm => {
            let policy = wasm_policy(&args.target)?;
            let (ifaces, hook) = placement(args, &policy.ifaces, policy.hook)?;
            on_each(&ifaces, |iface| load_wasm(args, &policy, iface, hook, json))
        }
        Engine::Ebpf => {
            let target = read_target(&args.target)?;
            let (ifaces, hook) = placement(args, &target.ifaces, target.hook)?;
            on_each(&ifaces, |iface| load_ebpf(args, &target, iface, hook, json))
        }
    }
}

/// Runs `attach` on each interface; if one fails, detaches the ones done.
fn on_each(ifaces: &[String], attach: impl Fn(&str) -> Result<()>) -> Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for iface in ifaces {
        if let Err(e) = attach(iface) {
            for d in done.iter().rev() {
                let _ = detach_one(d);
            }
            let undone =
                if done.is_empty() { String::new() } else { format!(" (detached again from {})", done.join(", ")) };
            return Err(e.context(format!("loading on {iface}{undone}")));
        }
        done.push(iface);
    }
    Ok(())
}

fn load_ebpf(args: &LoadArgs, target: &Target, iface: &str, hook: Hook, json: bool) -> Result<()> {
    let iface = iface.to_string();
    if hook != Hook::Xdp {
        bail!("the ebpf engine attaches at the xdp hook only (policy or --hook asks for {})", hook.as_str());
    }
    let twin = Twin::for_filter(&target.filter)?;
    check_privileges("loading an eBPF program")?;
    let ifindex = check_iface(&iface)?;
    let ns = netns::current()?;
    if kmod_attached(ns, &iface)?.is_some() {
        bail!("a wasm filter is attached on {iface}; run `wasmfw unload --iface {iface}` first");
    }
    let mode = xdp_mode(args.mode);
    // The program this load replaces (--replace), if one is attached.
    let mut old: Option<u32> = None;
    if let Some(mut e) = records::read(ns, &iface) {
        check_ebpf(&mut e);
        if e.attached && !args.replace {
            bail!(
                "wasmfw already has {} attached on {iface} ({}); unload it first or pass --replace to swap atomically",
                e.filter,
                e.engine
            );
        }
        if e.attached {
            if mode_of(&e.mode) != mode {
                bail!(
                    "{} is attached on {iface} in xdp {} mode; --replace keeps the mode (pass --mode {})",
                    e.filter,
                    e.mode,
                    e.mode
                );
            }
            old = e.prog_id;
        } else {
            records::remove(ns, &iface); // stale: its program is gone
        }
    }
    if old.is_none() && xdp_slot_free(ifindex, &iface)? {
        bail!("xdp-bridge is attached on {iface} without a wasm filter; run `wasmfw unload --iface {iface}` first");
    }
    if args.keep_maps && old.is_none() {
        bail!("--keep-maps: nothing is attached on {iface} to keep maps from");
    }
    let audit = args.audit || target.mode == Mode::Audit;
    let loaded = wasmfw_ebpf::load_in_mode(twin, &target.params, audit)?;
    let (fd, prog_id) = loaded.prog_fd_and_id()?;
    let mut carried = Vec::new();
    match old {
        Some(old_id) => {
            // Copied before the swap: the old program may still update an
            // entry after its copy (docs/audit-and-replace.md).
            if args.keep_maps {
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
        engine: "ebpf".into(),
        hook: "xdp".into(),
        mode: mode_name(mode).into(),
        filter: twin.name().into(),
        filter_mode: filter_mode.as_str().into(),
        policy: target.policy.clone(),
        loaded_at: now(),
        prog_id: Some(prog_id),
        filter_id: None,
        attached: true,
        gone: None,
        counters: BTreeMap::new(),
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
    if args.keep_maps {
        value["kept_maps"] = carried_json(&carried);
    }
    report(
        json,
        format!(
            "{} {verb} {iface} in netns {} (engine ebpf, xdp {} mode, {}, prog id {prog_id}){}",
            twin.name(),
            netns::display(ns),
            mode_name(mode),
            filter_mode.as_str(),
            carried_text(&carried)
        ),
        value,
    );
    Ok(())
}

/// `--keep-maps` for the wasm engine: copies every entry of each hash map
/// of filter `old` into the map of the same name, key and value sizes of
/// filter `new` (loaded, not yet attached) if that one has at least as
/// many max_entries and its init left it empty; a map the new filter
/// filled at init holds its policy's configuration and is left as is, and
/// so is a list map (docs/filter-abi.md, "List maps"), also when the new
/// policy's list is empty.
fn carry_kmod_maps(dev: &crate::kmod::Device, old: u32, new: u32) -> Result<Vec<Carried>> {
    let new_maps = dev.maps(new)?;
    let mut out = Vec::new();
    for o in dev.maps(old)? {
        let name = o.name();
        let skip = |why: String| Carried { name: name.clone(), entries: 0, skipped: Some(why) };
        let Some(n) = new_maps.iter().find(|n| n.name() == name) else {
            out.push(skip("the new filter has no map of that name".into()));
            continue;
        };
        if o.kind != crate::kmod::MAP_HASH {
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
        if crate::maps::is_list_map(&name, o.key_size as usize) {
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

/// `--keep-maps`' report: one object per map of the old filter.
fn carried_json(carried: &[Carried]) -> serde_json::Value {
    carried
        .iter()
        .map(|c| serde_json::json!({"map": c.name, "entries": c.entries, "kept": c.skipped.is_none(), "why_not": c.skipped}))
        .collect()
}

/// `--keep-maps`' report for humans: one line per map of the old filter.
fn carried_text(carried: &[Carried]) -> String {
    carried
        .iter()
        .map(|c| match &c.skipped {
            None => format!("\n  map {}: {} entries kept", c.name, c.entries),
            Some(why) => format!("\n  map {}: not kept ({why})", c.name),
        })
        .collect()
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

/// What one detach did: filter, engine, whether it was still attached, a
/// line for humans.
struct Detached {
    filter: String,
    engine: String,
    was_attached: bool,
    text: String,
}

pub fn unload(iface: &str, json: bool) -> Result<()> {
    let d = detach_one(iface)?;
    let v = serde_json::json!({"detached": {"iface": iface, "netns": netns::current().map(netns::display).unwrap_or_default(),
        "filter": d.filter, "engine": d.engine, "was_attached": d.was_attached}});
    report(json, d.text, v);
    Ok(())
}

/// `unload --all`: every attachment of this network namespace.
pub fn unload_all(json: bool) -> Result<()> {
    let ns = netns::current()?;
    let ifaces: Vec<String> = entries_in(ns)?.into_iter().map(|e| e.iface).collect();
    if ifaces.is_empty() && !json {
        println!("nothing attached in network namespace {}", netns::display(ns));
    }
    for iface in ifaces {
        unload(&iface, json)?;
    }
    Ok(())
}

fn detach_one(iface: &str) -> Result<Detached> {
    let done = |filter: &str, engine: &str, was_attached: bool, text: String| {
        Ok(Detached { filter: filter.into(), engine: engine.into(), was_attached, text })
    };
    let ns = netns::current()?;
    if let Some(mut e) = records::read(ns, iface) {
        check_privileges("unloading an eBPF program")?;
        check_ebpf(&mut e);
        if e.attached {
            let idx = check_iface(iface)?;
            let id = e.prog_id.ok_or_else(|| anyhow!("the record of {iface} has no program id"))?;
            wasmfw_xdp_bridge::detach(idx, id, mode_of(&e.mode)).with_context(|| format!("detaching from {iface}"))?;
            records::remove(ns, iface);
            return done(&e.filter, &e.engine, true, format!("{} detached from {iface} ({})", e.filter, e.engine));
        }
        records::remove(ns, iface);
        let why = e.gone.as_deref().unwrap_or("gone");
        return done(
            &e.filter,
            &e.engine,
            false,
            format!("{} was no longer attached on {iface} ({why}); record removed", e.filter),
        );
    }
    if let Some(info) = kmod_attached(ns, iface)? {
        // XDP: drop the bridge program first, so no packet reaches the
        // kfunc after the filter is gone (it would pass anyway).
        if info.hook == crate::kmod::HOOK_XDP {
            detach_bridge(iface)?;
        }
        crate::kmod::Device::open()?.detach(iface)?;
        let hook = if info.hook == crate::kmod::HOOK_XDP { "xdp" } else { "netfilter" };
        return done(&info.name(), "wasm", true, format!("{} detached from {iface} (wasm, {hook})", info.name()));
    }
    // A bridge left without its filter (the module was reloaded).
    if detach_bridge(iface)? {
        return done("", "wasm", false, format!("xdp-bridge detached from {iface} (no wasm filter was attached)"));
    }
    bail!("nothing attached on {iface} by wasmfw (network namespace {})", netns::display(ns))
}

/// The policy of a load target for the Wasm engine (which needs the .wasm).
fn wasm_policy(target: &Path) -> Result<Policy> {
    Policy::load(target).map_err(|e| anyhow!("{e}"))
}

/// `load --engine wasm`: load into the kernel module, then attach; a
/// failed attach unloads again, so nothing is left behind.
fn load_wasm(args: &LoadArgs, policy: &Policy, iface: &str, hook: Hook, json: bool) -> Result<()> {
    let dev = crate::kmod::Device::open()?;
    let ifindex = check_iface(iface)?;
    let ns = netns::current()?;
    if let Some(old) = kmod_attached(ns, iface)? {
        if !args.replace {
            bail!(
                "{} is already attached on {iface} (wasm); unload it first or pass --replace to swap atomically",
                old.name()
            );
        }
    }
    if let Some(mut e) = records::read(ns, iface) {
        check_ebpf(&mut e);
        if e.attached {
            bail!("an eBPF filter is attached on {iface}; run `wasmfw unload --iface {iface}` first");
        }
        records::remove(ns, iface);
    }
    let hook_id = match hook {
        Hook::Netfilter => crate::kmod::HOOK_NETFILTER,
        Hook::Xdp => crate::kmod::HOOK_XDP,
    };
    let bridge_there = if hook == Hook::Xdp { xdp_slot_free(ifindex, iface)? } else { false };
    let audit = args.audit || policy.mode == Mode::Audit;
    let old_id = kmod_attached(ns, iface)?.map(|o| o.id);
    if args.keep_maps && old_id.is_none() {
        bail!("--keep-maps: nothing is attached on {iface} to keep maps from");
    }
    let (id, stack) = dev.load(policy, audit)?;
    // Copied before the swap: the old filter may still update an entry
    // after its copy (docs/audit-and-replace.md).
    let carried = match old_id.filter(|_| args.keep_maps) {
        Some(old) => match carry_kmod_maps(&dev, old, id) {
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
        if let Err(e) = wasmfw_xdp_bridge::Bridge::load().and_then(|b| b.attach(ifindex, xdp_mode(args.mode))) {
            let _ = dev.detach(iface);
            return Err(e);
        }
    }
    let filter_mode = if audit { Mode::Audit } else { Mode::Enforce };
    let mut value = serde_json::json!({"attached": {"netns": netns::display(ns), "netns_ino": ns, "iface": iface, "engine": "wasm",
        "hook": hook.as_str(), "filter": policy.filter, "filter_id": id, "fuel": policy.fuel,
        "on_fault": policy.on_fault.as_str(), "filter_mode": filter_mode.as_str(), "load_stack_bytes": stack}});
    if args.keep_maps {
        value["kept_maps"] = carried_json(&carried);
    }
    report(
        json,
        format!(
            "{} {} {iface} in netns {} (engine wasm, hook {}, {}, filter id {id}, fuel {}, on_fault {}; load used {stack} bytes of kernel stack){}",
            policy.filter,
            if let Some(o) = old_id { format!("replaced filter {o} on") } else { "attached to".into() },
            netns::display(ns),
            hook.as_str(),
            filter_mode.as_str(),
            policy.fuel,
            policy.on_fault.as_str(),
            carried_text(&carried)
        ),
        value,
    );
    Ok(())
}

/// `test-run`: loads the filter, runs every packet of the capture
/// `repeat` times in the kernel, unloads. `via_bridge`: the filter is
/// attached at XDP on `lo` and the packets go through xdp-bridge with
/// BPF_PROG_TEST_RUN, whose device is this namespace's `lo`.
pub fn test_run(target: &Path, pcap: &Path, repeat: u32, via_bridge: bool, json: bool) -> Result<()> {
    let policy = wasm_policy(target)?;
    let packets = crate::replay::read_capture(pcap)?;
    let dev = crate::kmod::Device::open()?;
    let (id, _) = dev.load(&policy, policy.mode == Mode::Audit)?;
    let repeat = repeat.max(1);
    if via_bridge {
        if let Err(e) = dev.attach(id, crate::kmod::HOOK_XDP, "lo") {
            let _ = dev.unload(id);
            return Err(e);
        }
    }
    let result = (|| -> Result<()> {
        let bridge = if via_bridge { Some(wasmfw_xdp_bridge::Bridge::load()?) } else { None };
        for (index, p) in packets.iter().enumerate() {
            let (verdict, per) = match &bridge {
                Some(b) => {
                    if p.link != wasmfw_engine::abi::LINK_ETHERNET {
                        bail!("packet {index}: XDP test runs need Ethernet frames");
                    }
                    let (ret, ns) = b.test_run(&p.data, repeat)?;
                    (if ret == 1 { "drop" } else { "pass" }, ns as f64)
                }
                None => {
                    let (v, ns) = dev.test_run(id, &p.data, p.link, repeat)?;
                    (if v == 1 { "drop" } else { "pass" }, ns as f64 / repeat as f64)
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"index": index, "verdict": verdict, "repeat": repeat, "ns_per_run": per})
                );
            } else {
                println!("{index:6} {verdict:4} {per:10.1} ns/run ({repeat} runs)");
            }
        }
        Ok(())
    })();
    // Detaching frees the filter; an unattached one is unloaded.
    let unloaded = if via_bridge { dev.detach("lo") } else { dev.unload(id) };
    result.and(unloaded)
}
