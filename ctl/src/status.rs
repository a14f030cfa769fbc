//! `status`, `stats`, `poll`: what is attached where, with its counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmfw_ebpf::Twin;

use crate::access::check_privileges;
use crate::engines::{self, entries, nothing_on};
use crate::netns;
use crate::records::{now, Entry};

fn counters_text(e: &Entry) -> String {
    // packets, pass, drop first, then the filter's own, in their order
    // (a compiled filter's record has it; a twin knows its own).
    let order: Vec<&str> = if e.counter_names.is_empty() {
        Twin::for_filter(&e.filter).map(|t| t.counters()).unwrap_or_default()
    } else {
        e.counter_names.iter().map(String::as_str).collect()
    };
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

/// `--iface` of stats/poll: that interface in this namespace.
fn only(iface: Option<&str>) -> Result<Option<(u64, &str)>> {
    iface.map(|i| Ok((netns::current()?, i))).transpose()
}

pub fn status(json: bool) -> Result<()> {
    check_privileges("reading the attachments of every network namespace")?;
    let list = entries(None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no filters attached");
        return Ok(());
    }
    println!(
        "{:<16} {:<15} {:<8} {:<10} {:<8} {:<12} {:<8} {:<10} POLICY",
        "NETNS", "IFACE", "ENGINE", "HOOK", "STATE", "FILTER", "MODE", "LOADED"
    );
    for e in &list {
        let hook = if e.mode.is_empty() { e.hook.clone() } else { format!("{}/{}", e.hook, e.mode) };
        println!(
            "{:<16} {:<15} {:<8} {:<10} {:<8} {:<12} {:<8} {:<10} {}",
            e.netns,
            e.iface,
            e.engine,
            hook,
            if e.attached { "attached" } else { "GONE" },
            e.filter,
            if e.filter_mode.is_empty() { "-" } else { &e.filter_mode },
            age(e.loaded_at),
            e.policy.as_deref().unwrap_or("-")
        );
        if let Some(why) = &e.gone {
            println!("    gone: {why}");
        }
    }
    Ok(())
}

pub fn stats(iface: Option<&str>, json: bool) -> Result<()> {
    check_privileges("reading filter counters")?;
    let list = entries(only(iface)?)?;
    if let (Some(i), true) = (iface, list.is_empty()) {
        return Err(nothing_on(i));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no filters attached");
    }
    for e in &list {
        let state = if e.attached { String::new() } else { " GONE".to_string() };
        println!("{} {} {} ({}){state}: {}", e.netns, e.iface, e.filter, e.engine, counters_text(e));
    }
    Ok(())
}

pub fn poll(iface: Option<&str>, interval: u64, count: Option<u64>, json: bool) -> Result<()> {
    check_privileges("reading filter counters")?;
    let interval = Duration::from_secs(interval.max(1));
    let only = only(iface)?;
    let mut prev = entries(only)?;
    if let (Some(i), true) = (iface, prev.is_empty()) {
        return Err(nothing_on(i));
    }
    // What the engines print meanwhile (the eBPF twins' aya-log records).
    let mut loggers: Vec<_> =
        prev.iter().filter_map(|e| engines::by_name(&e.engine).and_then(|b| b.log_flusher(e))).collect();
    let mut t0 = Instant::now();
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        std::thread::sleep(interval);
        for flush in &mut loggers {
            flush();
        }
        let cur = entries(only)?;
        let secs = t0.elapsed().as_secs_f64();
        t0 = Instant::now();
        for e in &cur {
            let before = prev.iter().find(|p| p.iface == e.iface && p.netns_ino == e.netns_ino);
            let rates: Vec<String> = e
                .counters
                .iter()
                .map(|(k, v)| {
                    let d = v.saturating_sub(before.and_then(|b| b.counters.get(k)).copied().unwrap_or(0));
                    format!("{k}={:.0}/s", d as f64 / secs)
                })
                .collect();
            if json {
                let per_sec: BTreeMap<&str, f64> = e
                    .counters
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            v.saturating_sub(before.and_then(|b| b.counters.get(k)).copied().unwrap_or(0)) as f64
                                / secs,
                        )
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"netns": e.netns, "iface": e.iface, "filter": e.filter, "per_second": per_sec})
                );
            } else {
                println!("{} {} {}: {}", e.netns, e.iface, e.filter, rates.join(" "));
            }
        }
        prev = cur;
        n += 1;
    }
    Ok(())
}
