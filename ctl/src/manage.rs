//! load / unload / test-run: putting filters on interfaces and taking them
//! off, through the engine's [`Backend`](crate::backend::Backend)
//! (`status.rs` reports, `engines/` tells what is attached).
//!
//! Attachments outlive this process without pins: XDP programs are
//! attached through netlink (`wasmfw_xdp_bridge::netlink`), so they belong
//! to the interface, whatever launched wasmfw (`ip netns exec`, `nsenter`,
//! a unit, a container). Everything is keyed by (network namespace,
//! interface): the namespace is this process's (or `--netns`'s), and
//! `status` lists every namespace, each entry checked against the kernel.

use std::path::Path;

use anyhow::{bail, Result};
use wasmfw_policy::{Hook, Policy};

use crate::args::LoadArgs;
use crate::backend::{LoadRequest, Report};
use crate::engines;
use crate::netns;

/// Interfaces and hook of a load: `--iface` (one), else the policy's (one
/// or more); `--hook`, else the policy's.
fn placement(args: &LoadArgs, policy_ifaces: &[String], policy_hook: Hook) -> Result<(Vec<String>, Hook)> {
    let ifaces = match &args.iface {
        Some(i) => vec![i.clone()],
        None if policy_ifaces.is_empty() => bail!("no interface: pass --iface or set `iface` in the policy"),
        None => policy_ifaces.to_vec(),
    };
    Ok((ifaces, args.hook.map_or(policy_hook, |h| h.hook())))
}

thread_local! {
    /// Set while `apply` drives load/unload: it reports the changes itself.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub fn set_quiet(q: bool) {
    QUIET.with(|c| c.set(q));
}

/// Prints a command's result: its text, or its value with `--json`.
fn report(json: bool, r: Report) {
    if QUIET.with(|c| c.get()) {
        return;
    }
    if json {
        println!("{}", r.value);
    } else {
        println!("{}", r.text);
    }
}

/// `load`: on each interface of the placement in turn; if one fails, the
/// ones this command attached are detached again (all or nothing).
/// The target is read once, then attached on each interface.
pub fn load(args: &LoadArgs, json: bool) -> Result<()> {
    let target = args.engine.prepare(&args.target)?;
    let (ifaces, hook) = placement(args, target.ifaces(), target.hook())?;
    let req = LoadRequest {
        mode: args.mode.bridge(),
        replace: args.replace,
        audit: args.audit,
        keep_maps: args.keep_maps,
        others: args.engine.others(),
    };
    on_each(&ifaces, |iface| target.attach(&req, iface, hook).map(|r| report(json, r)))
}

/// Runs `attach` on each interface; if one fails, detaches the ones done.
fn on_each(ifaces: &[String], attach: impl Fn(&str) -> Result<()>) -> Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for iface in ifaces {
        if let Err(e) = attach(iface) {
            for d in done.iter().rev() {
                let _ = engines::detach(d);
            }
            let undone =
                if done.is_empty() { String::new() } else { format!(" (detached again from {})", done.join(", ")) };
            return Err(e.context(format!("loading on {iface}{undone}")));
        }
        done.push(iface);
    }
    Ok(())
}

pub fn unload(iface: &str, json: bool) -> Result<()> {
    let d = engines::detach(iface)?;
    let value = serde_json::json!({"detached": {"iface": iface, "netns": netns::current().map(netns::display).unwrap_or_default(),
        "filter": d.filter, "engine": d.engine, "was_attached": d.was_attached}});
    report(json, Report { text: d.text, value });
    Ok(())
}

/// `unload --all`: every attachment of this network namespace.
pub fn unload_all(json: bool) -> Result<()> {
    let ns = netns::current()?;
    let ifaces: Vec<String> = engines::entries_in(ns)?.into_iter().map(|e| e.iface).collect();
    if ifaces.is_empty() && !json {
        println!("nothing attached in network namespace {}", netns::display(ns));
    }
    for iface in ifaces {
        unload(&iface, json)?;
    }
    Ok(())
}

/// `test-run`: loads the filter, runs every packet of the capture
/// `repeat` times in the kernel (the default engine's), unloads.
/// `via_bridge`: through xdp-bridge with BPF_PROG_TEST_RUN.
pub fn test_run(target: &Path, pcap: &Path, repeat: u32, via_bridge: bool, json: bool) -> Result<()> {
    let policy = Policy::load(target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let packets = crate::replay::read_capture(pcap)?;
    let repeat = repeat.max(1);
    engines::DEFAULT.test_run(&policy, &packets, repeat, via_bridge, &mut |index, verdict, per| {
        if json {
            println!(
                "{}",
                serde_json::json!({"index": index, "verdict": verdict, "repeat": repeat, "ns_per_run": per})
            );
        } else {
            println!("{index:6} {verdict:4} {per:10.1} ns/run ({repeat} runs)");
        }
        Ok(())
    })
}
