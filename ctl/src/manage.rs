//! load / unload / status / stats / poll.
//!
//! Engines: `ebpf` (the filter's eBPF twin from compare-ebpf/, attached at
//! XDP) works today; `wasm` (the wasmfw kernel module, /dev/wasmfw) reports
//! that the module is not loaded. Both report the same shape (see
//! [`Entry`]): iface, engine, hook, mode, filter, policy, counters.
//!
//! An eBPF attachment outlives this process: program, link and maps are
//! pinned under `/sys/fs/bpf/wasmfw/<iface>/` (bpffs is mounted there if it
//! is missing) and what `status` needs is in `/run/wasmfw/<iface>.json`.
//! Removing the pinned link (`unload`) detaches the program. Interface names
//! are resolved in the caller's network namespace; pins are keyed by name
//! only, so use distinct names across namespaces, and enter a namespace
//! with `nsenter --net=...` rather than `ip netns exec` (which remounts
//! /sys, hiding /sys/fs/bpf).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use wasmfw_ebpf::Twin;
use wasmfw_policy::{Hook, Param, Policy};

use crate::{Engine, HookArg, LoadArgs, XdpMode};

/// Where pins live (`$WASMFW_BPFFS` overrides, for tests).
fn pin_root() -> PathBuf {
    std::env::var_os("WASMFW_BPFFS").map(PathBuf::from).unwrap_or_else(|| "/sys/fs/bpf".into()).join("wasmfw")
}

/// Where attachment records live (`$WASMFW_STATE_DIR` overrides).
fn state_dir() -> PathBuf {
    std::env::var_os("WASMFW_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| "/run/wasmfw".into())
}

/// One attached filter, as `status` and `stats` report it (text and JSON),
/// whatever the engine.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Entry {
    pub iface: String,
    /// `ebpf` or `wasm`.
    pub engine: String,
    /// `xdp` or `netfilter`.
    pub hook: String,
    /// XDP mode (`skb`, `native`); empty for netfilter.
    pub mode: String,
    pub filter: String,
    /// The policy file, or null for a bare filter with default parameters.
    pub policy: Option<String>,
    /// Unix time, seconds.
    pub loaded_at: u64,
    /// Kernel program id (ebpf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
    /// Filter id in the wasmfw module (wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<u32>,
    /// False if the record exists but its program is gone.
    #[serde(default = "yes")]
    pub attached: bool,
    /// Counter name -> value (summed over CPUs), `packets`, `pass`, `drop`
    /// and the filter's own (docs/filters.md).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

fn yes() -> bool {
    true
}

fn record_path(iface: &str) -> PathBuf {
    state_dir().join(format!("{iface}.json"))
}

fn pin_dir(iface: &str) -> PathBuf {
    pin_root().join(iface)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

// ---- checks ---------------------------------------------------------------

/// Effective capabilities of this process (/proc/self/status CapEff).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

fn check_privileges(what: &str) -> Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !has(CAP_NET_ADMIN) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        bail!("{what} needs root (CAP_NET_ADMIN and CAP_BPF); run it with sudo");
    }
    Ok(())
}

fn check_iface(iface: &str) -> Result<u32> {
    if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
        bail!("'{iface}' is not a valid interface name");
    }
    let c = CString::new(iface).map_err(|_| anyhow!("'{iface}' is not a valid interface name"))?;
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface '{iface}' (in this network namespace)");
    }
    Ok(idx)
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Mounts bpffs on /sys/fs/bpf if nothing bpffs is there.
fn ensure_bpffs() -> Result<()> {
    let root = pin_root();
    let base = root.parent().expect("pin root has a parent").to_path_buf();
    let c = CString::new(base.as_os_str().as_encoded_bytes()).expect("no NUL");
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let is_bpffs = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC;
    if !is_bpffs {
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let fstype = CString::new("bpf").unwrap();
        let opts = CString::new("mode=0700").unwrap();
        let r = unsafe { libc::mount(fstype.as_ptr(), c.as_ptr(), fstype.as_ptr(), 0, opts.as_ptr() as *const _) };
        if r != 0 {
            bail!("{} is not a bpffs and mounting one failed: {}", base.display(), std::io::Error::last_os_error());
        }
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    Ok(())
}

// ---- policy ---------------------------------------------------------------

/// Filter name, parameters, policy path and policy hook/iface of a load target.
struct Target {
    filter: String,
    params: Vec<(String, Param, usize)>,
    policy: Option<String>,
    hook: Hook,
    iface: Option<String>,
}

/// A load target for the ebpf engine, which needs the filter's name and
/// parameters but not its .wasm.
fn read_target(path: &Path) -> Result<Target> {
    if path.extension().is_some_and(|e| e == "wasm") {
        // A bare filter: its twin, default parameters.
        let filter = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(Target { filter, params: Vec::new(), policy: None, hook: Hook::Xdp, iface: None });
    }
    let policy = match Policy::load(path) {
        Ok(p) => p,
        // The ebpf engine does not need the policy's .wasm: if that is all
        // that is missing, resolve the name against an empty stand-in.
        Err(e) if e.key.as_deref() == Some("filter") && e.message.contains("not found") => {
            load_without_wasm(path)?
        }
        Err(e) => return Err(anyhow!("{e}")),
    };
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(Target {
        filter: policy.filter.clone(),
        params: policy.params.clone(),
        policy: Some(abs.display().to_string()),
        hook: policy.hook,
        iface: policy.iface.clone(),
    })
}

fn load_without_wasm(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = std::env::temp_dir().join(format!("wasmfw-ebpf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // An empty stand-in for every twin, so the name resolves.
    for t in Twin::ALL {
        std::fs::write(dir.join(format!("{}.wasm", t.name())), b"")?;
    }
    let prev = std::env::var_os("WASMFW_FILTER_DIR");
    std::env::set_var("WASMFW_FILTER_DIR", &dir);
    let r = Policy::parse(path, &text);
    match prev {
        Some(v) => std::env::set_var("WASMFW_FILTER_DIR", v),
        None => std::env::remove_var("WASMFW_FILTER_DIR"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    r.map_err(|e| anyhow!("{e}"))
}

// ---- commands -------------------------------------------------------------

/// Interface and hook of a load: the command line's, else the policy's.
fn placement(args: &LoadArgs, policy_iface: Option<String>, policy_hook: Hook) -> Result<(String, Hook)> {
    let iface = args
        .iface
        .clone()
        .or(policy_iface)
        .ok_or_else(|| anyhow!("no interface: pass --iface or set `iface` in the policy"))?;
    let hook = match args.hook {
        Some(HookArg::Xdp) => Hook::Xdp,
        Some(HookArg::Netfilter) => Hook::Netfilter,
        None => policy_hook,
    };
    Ok((iface, hook))
}

pub fn load(args: &LoadArgs) -> Result<()> {
    if args.engine == Engine::Wasm {
        return load_wasm(args);
    }
    let target = read_target(&args.target)?;
    let (iface, hook) = placement(args, target.iface.clone(), target.hook)?;
    if hook != Hook::Xdp {
        bail!("the ebpf engine attaches at the xdp hook only (policy or --hook asks for {})", hook.as_str());
    }
    let twin = Twin::for_filter(&target.filter)?;
    check_privileges("loading an eBPF program")?;
    check_iface(&iface)?;
    let dir = pin_dir(&iface);
    if let Some(e) = read_record(&iface) {
        bail!("wasmfw already has {} attached on {iface} ({}); run `wasmfw unload --iface {iface}` first", e.filter, e.engine);
    }
    if wasmfw_ebpf::is_pinned(&dir) {
        bail!("a wasmfw program is already pinned on {iface} ({}); run `wasmfw unload --iface {iface}` first", dir.display());
    }
    ensure_bpffs()?;
    if dir.exists() {
        wasmfw_ebpf::unpin_dir(&dir)?; // leftovers of an interrupted load
    }
    let (xdp_mode, mode) = match args.mode {
        XdpMode::Skb => (wasmfw_ebpf::Mode::Skb, "skb"),
        XdpMode::Native => (wasmfw_ebpf::Mode::Driver, "native"),
    };
    let loaded = wasmfw_ebpf::load(twin, &target.params)?;
    let prog_id = loaded.attach_pinned(&iface, xdp_mode, &dir)?;
    let entry = Entry {
        iface: iface.clone(),
        engine: "ebpf".into(),
        hook: "xdp".into(),
        mode: mode.into(),
        filter: twin.name().into(),
        policy: target.policy.clone(),
        loaded_at: now(),
        prog_id: Some(prog_id),
        filter_id: None,
        attached: true,
        counters: BTreeMap::new(),
    };
    if let Err(e) = write_record(&entry) {
        let _ = wasmfw_ebpf::unpin_dir(&dir);
        return Err(e);
    }
    println!(
        "{} attached to {iface} (engine ebpf, xdp {mode} mode, prog id {prog_id}, pinned in {})",
        twin.name(),
        dir.display()
    );
    Ok(())
}

fn write_record(e: &Entry) -> Result<()> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = record_path(&e.iface);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(e)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_record(iface: &str) -> Option<Entry> {
    let text = std::fs::read_to_string(record_path(iface)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn unload(iface: &str) -> Result<()> {
    let dir = pin_dir(iface);
    let record = read_record(iface);
    if record.is_none() {
        if let Some(info) = kmod_attached(iface)? {
            // XDP: drop the bridge program first, so no packet reaches the
            // kfunc after the filter is gone (it would pass anyway).
            if dir.exists() {
                wasmfw_ebpf::unpin_dir(&dir).with_context(|| format!("detaching xdp-bridge from {iface}"))?;
            }
            crate::kmod::Device::open()?.detach(iface)?;
            println!("{} detached from {iface} (wasm, {})", info.name(), if info.hook == crate::kmod::HOOK_XDP { "xdp" } else { "netfilter" });
            return Ok(());
        }
    }
    if record.is_none() && !dir.exists() {
        bail!("nothing attached on {iface} by wasmfw");
    }
    check_privileges("unloading an eBPF program")?;
    if dir.exists() {
        wasmfw_ebpf::unpin_dir(&dir).with_context(|| format!("detaching from {iface}"))?;
    }
    let _ = std::fs::remove_file(record_path(iface));
    match record {
        Some(e) => println!("{} detached from {iface} ({})", e.filter, e.engine),
        None => println!("detached from {iface}"),
    }
    Ok(())
}

/// Every attachment with its counters: eBPF records, then (once the kernel
/// module exists) the wasm engine's.
fn entries(iface: Option<&str>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(state_dir()) {
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .collect();
        names.sort();
        for name in names {
            if iface.is_some_and(|i| i != name) {
                continue;
            }
            let Some(mut e) = read_record(&name) else { continue };
            let dir = pin_dir(&name);
            e.attached = wasmfw_ebpf::is_pinned(&dir);
            if e.attached {
                if let Ok(t) = Twin::for_filter(&e.filter) {
                    let counters = wasmfw_ebpf::pinned_counters(t, &dir)
                        .with_context(|| format!("reading counters of {name} (needs root)"))?;
                    e.counters = counters.into_iter().collect();
                }
            }
            out.push(e);
        }
    }
    if Path::new(crate::kmod::DEVICE).exists() {
        let dev = crate::kmod::Device::open()?;
        for info in dev.list()? {
            if info.hook == 0 || iface.is_some_and(|i| i != info.ifname()) {
                continue;
            }
            let policy = info.policy();
            out.push(Entry {
                iface: info.ifname(),
                engine: "wasm".into(),
                hook: if info.hook == crate::kmod::HOOK_XDP { "xdp" } else { "netfilter" }.into(),
                mode: String::new(),
                filter: info.name(),
                policy: (!policy.is_empty()).then_some(policy),
                loaded_at: 0,
                prog_id: None,
                filter_id: Some(info.id),
                attached: true,
                counters: dev.counters(info.id)?.into_iter().collect(),
            });
        }
    }
    Ok(out)
}

/// The kernel module's attachment on `iface`, if the module is loaded.
fn kmod_attached(iface: &str) -> Result<Option<crate::kmod::Info>> {
    if !Path::new(crate::kmod::DEVICE).exists() {
        return Ok(None);
    }
    Ok(crate::kmod::Device::open()?.list()?.into_iter().find(|i| i.hook != 0 && i.ifname() == iface))
}

/// The policy of a load target for the Wasm engine (which needs the .wasm).
fn wasm_policy(target: &Path) -> Result<Policy> {
    Policy::load(target).map_err(|e| anyhow!("{e}"))
}

/// `load --engine wasm`: load into the kernel module, then attach; a
/// failed attach unloads again, so nothing is left behind.
fn load_wasm(args: &LoadArgs) -> Result<()> {
    let policy = wasm_policy(&args.target)?;
    let (iface, hook) = placement(args, policy.iface.clone(), policy.hook)?;
    let iface = iface.as_str();
    let dev = crate::kmod::Device::open()?;
    let ifindex = check_iface(iface)?;
    if let Some(old) = dev.list()?.into_iter().find(|i| i.hook != 0 && i.ifname() == iface) {
        if !args.replace {
            bail!("{} is already attached on {iface} (wasm); unload it first or pass --replace to swap atomically", old.name());
        }
    }
    if read_record(iface).is_some() {
        bail!("an eBPF filter is attached on {iface}; run `wasmfw unload --iface {iface}` first");
    }
    let hook_id = match hook {
        Hook::Netfilter => crate::kmod::HOOK_NETFILTER,
        Hook::Xdp => crate::kmod::HOOK_XDP,
    };
    let bridge_dir = pin_dir(iface);
    let replacing_xdp = hook == Hook::Xdp && bridge_dir.join("link").exists();
    let (id, stack) = dev.load(&policy)?;
    if let Err(e) = dev.attach(id, hook_id, iface) {
        let _ = dev.unload(id);
        return Err(e);
    }
    // XDP: the kfunc now finds the filter; attach the bridge program that
    // calls it (unless it is already there and this is a replacement).
    if hook == Hook::Xdp && !replacing_xdp {
        if let Err(e) = attach_bridge(ifindex, args.mode, &bridge_dir) {
            let _ = dev.detach(iface);
            return Err(e);
        }
    }
    println!(
        "{} attached to {iface} (engine wasm, hook {}, filter id {id}, fuel {}, on_fault {}; load used {stack} bytes of kernel stack)",
        policy.filter,
        hook.as_str(),
        policy.fuel,
        policy.on_fault.as_str()
    );
    Ok(())
}

/// Loads xdp-bridge and attaches it to `ifindex` with a pinned bpf link.
fn attach_bridge(ifindex: u32, mode: XdpMode, dir: &Path) -> Result<()> {
    ensure_bpffs()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bridge = wasmfw_xdp_bridge::Bridge::load()?;
    let mode = match mode {
        XdpMode::Skb => wasmfw_xdp_bridge::Mode::Skb,
        XdpMode::Native => wasmfw_xdp_bridge::Mode::Native,
    };
    bridge.attach_pinned(ifindex, mode, &dir.join("link"))
}

/// `test-run`: loads the filter, runs every packet of the capture
/// `repeat` times in the kernel, unloads. `via_bridge`: the filter is
/// attached at XDP on `lo` and the packets go through xdp-bridge with
/// BPF_PROG_TEST_RUN, whose device is this namespace's `lo`.
pub fn test_run(target: &Path, pcap: &Path, repeat: u32, via_bridge: bool, json: bool) -> Result<()> {
    let policy = wasm_policy(target)?;
    let packets = crate::replay::read_capture(pcap)?;
    let dev = crate::kmod::Device::open()?;
    let (id, _) = dev.load(&policy)?;
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
                println!("{}", serde_json::json!({"index": index, "verdict": verdict, "repeat": repeat, "ns_per_run": per}));
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

fn counters_text(e: &Entry) -> String {
    // packets, pass, drop first, then the filter's own, in their order.
    let order: Vec<&str> = Twin::for_filter(&e.filter).map(|t| t.counters()).unwrap_or_default();
    let mut parts: Vec<String> = order.iter().filter_map(|n| e.counters.get(*n).map(|v| format!("{n}={v}"))).collect();
    for (k, v) in &e.counters {
        if !order.contains(&k.as_str()) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

fn age(secs: u64) -> String {
    if secs == 0 {
        return "-".into(); // the kernel module does not record load times
    }
    let d = now().saturating_sub(secs);
    match d {
        0..=119 => format!("{d}s ago"),
        120..=7199 => format!("{}m ago", d / 60),
        _ => format!("{}h ago", d / 3600),
    }
}

pub fn status(json: bool) -> Result<()> {
    let list = entries(None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no filters attached");
        return Ok(());
    }
    println!("{:<15} {:<6} {:<10} {:<10} {:<12} {:<10} POLICY", "IFACE", "ENGINE", "HOOK", "STATE", "FILTER", "LOADED");
    for e in &list {
        let hook = if e.mode.is_empty() { e.hook.clone() } else { format!("{}/{}", e.hook, e.mode) };
        println!(
            "{:<15} {:<6} {:<10} {:<10} {:<12} {:<10} {}",
            e.iface,
            e.engine,
            hook,
            if e.attached { "attached" } else { "GONE" },
            e.filter,
            age(e.loaded_at),
            e.policy.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub fn stats(iface: Option<&str>, json: bool) -> Result<()> {
    let list = entries(iface)?;
    if let (Some(i), true) = (iface, list.is_empty()) {
        bail!("nothing attached on {i} by wasmfw");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no filters attached");
    }
    for e in &list {
        println!("{} {} ({}): {}", e.iface, e.filter, e.engine, counters_text(e));
    }
    Ok(())
}

pub fn poll(iface: Option<&str>, interval: u64, count: Option<u64>) -> Result<()> {
    let interval = Duration::from_secs(interval.max(1));
    let mut prev = entries(iface)?;
    if let (Some(i), true) = (iface, prev.is_empty()) {
        bail!("nothing attached on {i} by wasmfw");
    }
    // The programs' aya-log records (if loaded with WASMFW_EBPF_LOG=...).
    let mut loggers: Vec<_> = prev.iter().filter_map(|e| e.prog_id).filter_map(|id| wasmfw_ebpf::program_logger(id).ok()).collect();
    let mut t0 = Instant::now();
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        std::thread::sleep(interval);
        for l in &mut loggers {
            l.flush();
        }
        let cur = entries(iface)?;
        let secs = t0.elapsed().as_secs_f64();
        t0 = Instant::now();
        for e in &cur {
            let before = prev.iter().find(|p| p.iface == e.iface);
            let rates: Vec<String> = e
                .counters
                .iter()
                .map(|(k, v)| {
                    let d = v.saturating_sub(before.and_then(|b| b.counters.get(k)).copied().unwrap_or(0));
                    format!("{k}={:.0}/s", d as f64 / secs)
                })
                .collect();
            println!("{} {}: {}", e.iface, e.filter, rates.join(" "));
        }
        prev = cur;
        n += 1;
    }
    Ok(())
}
