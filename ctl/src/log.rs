//! `wasmfw log --iface IF [-f]`: the `log` lines of the filter attached on
//! an interface, oldest first, from the filter's log ring (wasm engine:
//! WASMFW_IOC_LOG_READ) or its aya-log ring buffer (eBPF twins).

use anyhow::Result;
use serde_json::json;

use crate::access::check_privileges;
use crate::backend::{LogLine, LogSink};
use crate::{engines, netns};

pub fn run(iface: &str, follow: bool, json: bool) -> Result<()> {
    check_privileges("reading a filter's log")?;
    let (_, filter) = engines::attached(netns::current()?, iface)?;
    filter.log(follow, &mut Printer { json })
}

/// The filter's text, with control characters escaped: a filter must not
/// be able to forge lines or drive the terminal.
fn printable(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect()
}

/// Prints what an engine reads, one line a record.
struct Printer {
    json: bool,
}

impl LogSink for Printer {
    fn line(&mut self, l: &LogLine) {
        let (ts_ns, level, filter, msg) = (l.ts_ns, l.level, l.filter, printable(l.msg));
        if self.json {
            println!(
                "{}",
                json!({"ts_ns": ts_ns, "cpu": l.cpu, "level": level, "filter": filter, "seq": l.seq, "msg": msg})
            );
        } else {
            let cpu = l.cpu.map_or("-".to_string(), |c| c.to_string());
            println!(
                "{:>5}.{:06} {cpu:>3} {level:<5} {filter} {msg}",
                ts_ns / 1_000_000_000,
                ts_ns % 1_000_000_000 / 1000
            );
        }
    }

    fn lost(&mut self, lost: u64, dropped: u64) {
        if self.json {
            println!("{}", json!({"lost": lost, "log_dropped": dropped}));
        } else {
            println!("-- {lost} lines lost: overwritten before this read (the filter's log_dropped: {dropped})");
        }
    }
}
