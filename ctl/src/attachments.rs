//! The truth about attachments: what runs on which (network namespace,
//! interface), for both engines, each checked against the kernel (the
//! interface's XDP program through netlink, the module's list), never
//! taken from a record alone.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasmfw_ebpf::Twin;
use wasmfw_xdp_bridge::Mode;

use crate::access::ifindex_of;
use crate::kmod::InfoText as _;
use crate::netns;
use crate::records::{self, Entry};
use crate::status::nothing_on;
use crate::XdpMode;

pub fn xdp_mode(m: XdpMode) -> Mode {
    match m {
        XdpMode::Skb => Mode::Skb,
        XdpMode::Native => Mode::Native,
    }
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Skb => "skb",
        Mode::Native => "native",
    }
}

pub fn mode_of(name: &str) -> Mode {
    if name == "native" {
        Mode::Native
    } else {
        Mode::Skb
    }
}

const NETNS_DELETED: &str = "network namespace deleted";

/// Checks an eBPF record against the kernel: is its program still the one
/// attached on its interface, in its namespace? Sets `attached`/`gone`.
pub fn check_ebpf(e: &mut Entry) {
    let iface = e.iface.clone();
    let want = e.prog_id;
    let verdict = netns::run_in(e.netns_ino, move || {
        let Some(idx) = ifindex_of(&iface) else { return Ok(Err("interface deleted or moved".to_string())) };
        Ok(match wasmfw_xdp_bridge::netlink::query(idx)? {
            Some(a) if Some(a.prog_id) == want => Ok(()),
            Some(a) => Err(format!("the interface now has another XDP program (id {})", a.prog_id)),
            None => Err("detached by someone else".to_string()),
        })
    });
    let gone = match verdict {
        Ok(Some(Ok(()))) => None,
        Ok(Some(Err(why))) => Some(why),
        Ok(None) => Some(NETNS_DELETED.to_string()),
        Err(err) => Some(format!("cannot check: {err:#}")),
    };
    e.attached = gone.is_none();
    e.gone = gone;
}

/// For a wasm filter at XDP: is xdp-bridge attached on its interface (else
/// no packet reaches the filter)? Sets `attached`/`gone`, `mode`, `prog_id`.
pub fn check_bridge(e: &mut Entry) {
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
            e.gone = Some(NETNS_DELETED.into());
        }
        Err(err) => {
            e.attached = false;
            e.gone = Some(format!("cannot check: {err:#}"));
        }
    }
}

/// Refuses a load where another XDP program sits; `Ok(true)` if it is
/// xdp-bridge (a wasm filter is attached there).
pub fn xdp_slot_free(ifindex: u32, iface: &str) -> Result<bool> {
    match wasmfw_xdp_bridge::attached(ifindex)? {
        None => Ok(false),
        Some((_, name)) if name == wasmfw_xdp_bridge::PROG_NAME => Ok(true),
        Some((a, name)) => bail!(
            "another XDP program is attached on {iface} (id {}, '{name}'); detach it first (`ip link set dev {iface} xdp off`)",
            a.prog_id
        ),
    }
}

/// Every attachment, checked against the kernel, with its counters: eBPF
/// records, then the wasm engine's. `only`: one (namespace, interface).
pub fn entries(only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let wanted = |ns: u64, iface: &str| only.is_none_or(|(n, i)| n == ns && i == iface);
    for mut e in records::all() {
        if !wanted(e.netns_ino, &e.iface) {
            continue;
        }
        check_ebpf(&mut e);
        if e.gone.as_deref() == Some(NETNS_DELETED) {
            // Nothing can unload it any more: report it this once, forget it.
            records::remove(e.netns_ino, &e.iface);
        }
        if let (true, Ok(t), Some(id)) = (e.attached, Twin::for_filter(&e.filter), e.prog_id) {
            let counters = wasmfw_ebpf::counters_of_prog(t, id)
                .with_context(|| format!("reading counters of {} on {} (needs root)", e.filter, e.iface))?;
            e.counters = counters.into_iter().collect();
            let audit = wasmfw_ebpf::rawmap::audit_of_prog(id)
                .with_context(|| format!("reading the mode of {} on {} (needs root)", e.filter, e.iface))?;
            e.filter_mode = if audit { "audit" } else { "enforce" }.into();
        }
        e.netns = netns::display(e.netns_ino);
        out.push(e);
    }
    if Path::new(crate::kmod::DEVICE).exists() {
        let dev = crate::kmod::Device::open()?;
        for info in dev.list()? {
            let ns = info.netns_ino().unwrap_or(0);
            if info.hook == 0 || !wanted(ns, &info.ifname()) {
                continue;
            }
            let policy = info.policy();
            let xdp = info.hook == crate::kmod::HOOK_XDP;
            let mut e = Entry {
                netns: netns::display(ns),
                netns_ino: ns,
                iface: info.ifname(),
                engine: "wasm".into(),
                hook: if xdp { "xdp" } else { "netfilter" }.into(),
                mode: String::new(),
                filter: info.name(),
                filter_mode: if info.flags & crate::kmod::LOAD_AUDIT != 0 { "audit" } else { "enforce" }.into(),
                policy: (!policy.is_empty()).then_some(policy),
                loaded_at: 0,
                prog_id: None,
                filter_id: Some(info.id),
                attached: true,
                gone: None,
                counters: dev.counters(info.id)?.into_iter().collect(),
            };
            if xdp {
                check_bridge(&mut e);
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// Every attachment of namespace `ns`, checked against the kernel.
pub fn entries_in(ns: u64) -> Result<Vec<Entry>> {
    Ok(entries(None)?.into_iter().filter(|e| e.netns_ino == ns).collect())
}

/// What runs on (`ns`, `iface`): a wasm filter (its id in the module) or
/// an eBPF twin (its program id).
pub enum Attached {
    Wasm(u32),
    Ebpf(u32),
}

/// The attachment on (`ns`, `iface`), checked against the kernel.
pub fn attached_here(ns: u64, iface: &str) -> Result<Attached> {
    if let Some(info) = kmod_attached(ns, iface)? {
        return Ok(Attached::Wasm(info.id));
    }
    if let Some(mut e) = records::read(ns, iface) {
        check_ebpf(&mut e);
        if let (true, Some(id)) = (e.attached, e.prog_id) {
            return Ok(Attached::Ebpf(id));
        }
    }
    Err(nothing_on(iface))
}

/// The kernel module's attachment on (`ns`, `iface`), if the module is loaded.
pub fn kmod_attached(ns: u64, iface: &str) -> Result<Option<crate::kmod::Info>> {
    if !Path::new(crate::kmod::DEVICE).exists() {
        return Ok(None);
    }
    Ok(crate::kmod::Device::open()?
        .list()?
        .into_iter()
        .find(|i| i.hook != 0 && i.ifname() == iface && i.netns_ino().is_none_or(|n| n == ns)))
}
