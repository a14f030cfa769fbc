//! `wasmfw log --iface IF [-f]`: the `log` lines of the filter attached on
//! an interface, oldest first, from the filter's log ring (wasm engine:
//! WASMFW_IOC_LOG_READ) or its aya-log ring buffer (eBPF twins).

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::access::check_privileges;
use crate::attachments::{attached_here, kmod_attached, Attached};
use crate::kmod::{Device, InfoText as _};
use crate::{netns, records};

/// How often `-f` asks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub fn run(iface: &str, follow: bool, json: bool) -> Result<()> {
    check_privileges("reading a filter's log")?;
    let ns = netns::current()?;
    match attached_here(ns, iface)? {
        Attached::Wasm(id) => wasm(ns, iface, id, follow, json),
        Attached::Ebpf(prog_id) => {
            let name = records::read(ns, iface).map(|e| e.filter).unwrap_or_default();
            ebpf(prog_id, &name, follow, json)
        }
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

/// The filter's text, with control characters escaped: a filter must not
/// be able to forge lines or drive the terminal.
fn printable(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect()
}

fn print_line(json: bool, ts_ns: u64, cpu: Option<u32>, level: &str, filter: &str, seq: Option<u64>, msg: &str) {
    if json {
        println!("{}", json!({"ts_ns": ts_ns, "cpu": cpu, "level": level, "filter": filter, "seq": seq, "msg": msg}));
    } else {
        let cpu = cpu.map_or("-".to_string(), |c| c.to_string());
        println!("{:>5}.{:06} {cpu:>3} {level:<5} {filter} {msg}", ts_ns / 1_000_000_000, ts_ns % 1_000_000_000 / 1000);
    }
}

fn print_lost(json: bool, lost: u64, dropped: u64) {
    if json {
        println!("{}", json!({"lost": lost, "log_dropped": dropped}));
    } else {
        println!("-- {lost} lines lost: overwritten before this read (the filter's log_dropped: {dropped})");
    }
}

/// Follows the filter on (`ns`, `iface`); with `-f`, a replacement
/// (`load --replace`: a new filter, a new ring) is followed from its start.
fn wasm(ns: u64, iface: &str, mut id: u32, follow: bool, json: bool) -> Result<()> {
    let dev = Device::open()?;
    let mut name = kmod_attached(ns, iface)?.map(|i| i.name()).unwrap_or_default();
    let mut cursor = 0u64;
    loop {
        let page = match dev.log_read(id, cursor) {
            Ok(page) => page,
            Err(e) if follow => match kmod_attached(ns, iface)? {
                Some(info) if info.id != id => {
                    (id, name, cursor) = (info.id, info.name(), 0);
                    continue;
                }
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if page.lost > 0 {
            print_lost(json, page.lost, page.dropped);
        }
        for r in &page.records {
            print_line(json, r.ts_ns, Some(r.cpu), level_name(r.level), &name, Some(r.seq), &printable(r.msg()));
        }
        cursor = page.next;
        // A full page: more may be waiting right now.
        if page.records.len() as u32 == crate::kmod::LOG_RING_RECORDS {
            continue;
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// CLOCK_MONOTONIC now, ns: the clock of the kernel engine's records.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// aya-log records carry neither time nor CPU: the time is when wasmfw
/// read them, the CPU unknown; a full ring drops records uncounted.
fn ebpf(prog_id: u32, name: &str, follow: bool, json: bool) -> Result<()> {
    let mut reader = wasmfw_ebpf::LogReader::new(prog_id)?;
    loop {
        let now = monotonic_ns();
        for l in reader.read() {
            print_line(json, now, None, l.level, name, None, &printable(l.msg.as_bytes()));
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}
