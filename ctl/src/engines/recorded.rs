//! What the engines whose XDP programs are attached by netlink and noted in
//! a record (`records.rs`) share: the eBPF twins and the compiled tier.
//! Each record is checked against the interface's XDP program before it is
//! believed; a program holds its own maps, so nothing is pinned.

use anyhow::{anyhow, bail, Context, Result};

use super::xdp::{mode_of, xdp_slot_free};
use crate::access::{check_iface, check_privileges, ifindex_of};
use crate::backend::{Detached, LoadRequest};
use crate::netns;
use crate::records::{self, Entry};

/// `engine`'s record of (`ns`, `iface`), if there is one.
pub(super) fn record(engine: &str, ns: u64, iface: &str) -> Option<Entry> {
    records::read(ns, iface).filter(|e| e.engine == engine)
}

/// Checks a record against the kernel: is its program still the one
/// attached on its interface, in its namespace? Sets `attached`/`gone`.
pub(super) fn check_attached(e: &mut Entry) {
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
        Ok(None) => Some(netns::DELETED.to_string()),
        Err(err) => Some(format!("cannot check: {err:#}")),
    };
    e.attached = gone.is_none();
    e.gone = gone;
}

/// Backend::make_room: a stale record of `engine` on `iface` is removed; a
/// live one (`what`: "an eBPF filter") must be unloaded first.
pub(super) fn make_room(engine: &str, what: &str, ns: u64, iface: &str) -> Result<()> {
    if let Some(mut e) = record(engine, ns, iface) {
        check_attached(&mut e);
        if e.attached {
            bail!("{what} is attached on {iface}; run `wasmfw unload --iface {iface}` first");
        }
        records::remove(ns, iface);
    }
    Ok(())
}

/// Backend::detach: detaches `engine`'s program from `iface` if it is still
/// the one there, and removes the record. `what`: the privilege message's
/// "unloading an eBPF program".
pub(super) fn detach(engine: &str, what: &str, ns: u64, iface: &str) -> Result<Option<Detached>> {
    let Some(mut e) = record(engine, ns, iface) else { return Ok(None) };
    check_privileges(what)?;
    check_attached(&mut e);
    let (was_attached, text) = if e.attached {
        let idx = check_iface(iface)?;
        let id = e.prog_id.ok_or_else(|| anyhow!("the record of {iface} has no program id"))?;
        wasmfw_xdp_bridge::detach(idx, id, mode_of(&e.mode)).with_context(|| format!("detaching from {iface}"))?;
        (true, format!("{} detached from {iface} ({})", e.filter, e.engine))
    } else {
        let why = e.gone.as_deref().unwrap_or("gone");
        (false, format!("{} was no longer attached on {iface} ({why}); record removed", e.filter))
    };
    records::remove(ns, iface);
    Ok(Some(Detached { filter: e.filter, engine: e.engine, was_attached, text }))
}

/// Backend::list: `engine`'s records (only (ns, iface)'s, if given), each
/// checked; `live` fills in what the kernel says of an attached one
/// (counters, mode) from its program id.
pub(super) fn list(
    engine: &str,
    only: Option<(u64, &str)>,
    mut live: impl FnMut(&mut Entry, u32) -> Result<()>,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for mut e in records::all() {
        if e.engine != engine || only.is_some_and(|(n, i)| n != e.netns_ino || i != e.iface) {
            continue;
        }
        check_attached(&mut e);
        if e.gone.as_deref() == Some(netns::DELETED) {
            // Nothing can unload it any more: report it this once, forget it.
            records::remove(e.netns_ino, &e.iface);
        }
        if let (true, Some(id)) = (e.attached, e.prog_id) {
            live(&mut e, id)?;
        }
        e.netns = netns::display(e.netns_ino);
        out.push(e);
    }
    Ok(out)
}

/// Backend::find's first half: the program id and filter of `engine`'s
/// record on `iface`, if that program is still attached there.
pub(super) fn attached_prog(engine: &str, ns: u64, iface: &str) -> Option<(u32, String)> {
    let mut e = record(engine, ns, iface)?;
    check_attached(&mut e);
    match (e.attached, e.prog_id) {
        (true, Some(prog_id)) => Some((prog_id, e.filter)),
        _ => None,
    }
}

/// Before attaching `engine`'s program on `iface` (`ifindex`, in `ns`): the
/// other engines make room, and the program this load replaces is found
/// (`--replace`, same XDP mode), or its stale record removed. Refuses a
/// live filter without `--replace` and a bridge without a filter.
pub(super) fn replaced_prog(
    engine: &str,
    req: &LoadRequest,
    ns: u64,
    ifindex: u32,
    iface: &str,
) -> Result<Option<u32>> {
    for other in &req.others {
        other.make_room(ns, iface)?;
    }
    let mut old = None;
    if let Some(mut e) = record(engine, ns, iface) {
        check_attached(&mut e);
        if e.attached && !req.replace {
            bail!(
                "wasmfw already has {} attached on {iface} ({}); unload it first or pass --replace to swap atomically",
                e.filter,
                e.engine
            );
        }
        if e.attached {
            if mode_of(&e.mode) != req.mode {
                bail!(
                    "{} is attached on {iface} in xdp {} mode; --replace keeps the mode (pass --mode {})",
                    e.filter,
                    e.mode,
                    e.mode
                );
            }
            old = e.prog_id;
        } else {
            records::remove(ns, iface); // stale: its program is gone
        }
    }
    if old.is_none() && xdp_slot_free(ifindex, iface)? {
        bail!("xdp-bridge is attached on {iface} without a wasm filter; run `wasmfw unload --iface {iface}` first");
    }
    Ok(old)
}
