//! The interface every engine implements ([`Backend`]) and the requests and
//! results the commands and the engines exchange through it. The commands
//! (`manage`, `status`, `maps`, `log`, `capture`, `apply`) call these
//! traits and never ask which engine they talk to; `engines/` lists the
//! implementations once.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use wasmfw_policy::{Hook, Policy};

use crate::records::Entry;
use crate::replay::Packet;

pub use wasmfw_ebpf::rawmap::Carried;

/// How often `log -f` asks an engine for new lines.
pub const LOG_FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// How often a capture's ring is read (the kernel module's), or how long
/// its perf buffers are waited on (the eBPF twins').
pub const CAPTURE_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One engine: how filters are loaded, found, listed and detached.
pub trait Backend: Sync {
    /// The `--engine` value, also `engine` in `status` and in records.
    fn name(&self) -> &'static str;
    /// `--engine`'s help for this value.
    fn about(&self) -> &'static str;
    /// Reads a load target (a policy, or a filter with default parameters).
    fn prepare(&self, target: &Path) -> Result<Box<dyn Prepared>>;
    /// Called before another engine loads on (`ns`, `iface`): refuses if
    /// this engine has a filter attached there, forgets stale notes.
    fn make_room(&self, ns: u64, iface: &str) -> Result<()>;
    /// Detaches this engine's filter from `iface` of namespace `ns` (this
    /// thread's); `None` if this engine has nothing there.
    fn detach(&self, ns: u64, iface: &str) -> Result<Option<Detached>>;
    /// This engine's attachments, checked against the kernel, with their
    /// counters. `only`: one (namespace, interface).
    fn list(&self, only: Option<(u64, &str)>) -> Result<Vec<Entry>>;
    /// The filter this engine runs on (`ns`, `iface`), checked against the kernel.
    fn find(&self, ns: u64, iface: &str) -> Result<Option<Box<dyn Attachment>>>;
    /// `test-run`: loads `policy`, runs every packet `repeat` times (through
    /// the XDP path if `via_xdp`), calls `each(index, verdict, ns per run)`,
    /// unloads.
    fn test_run(&self, _policy: &Policy, _packets: &[Packet], _repeat: u32, _via_xdp: bool, _each: Each) -> Result<()> {
        bail!("the {} engine has no test-run", self.name())
    }
    /// Whether `apply` may use this engine.
    fn applies(&self) -> bool {
        true
    }
    /// Something `poll` calls each interval for entry `e` (the eBPF twins
    /// print their aya-log records); `None` if there is nothing to do.
    fn log_flusher(&self, _e: &Entry) -> Option<Box<dyn FnMut()>> {
        None
    }
}

/// `test-run`'s per-packet report: (index, verdict, ns per run).
pub type Each<'a> = &'a mut dyn FnMut(usize, &'static str, f64) -> Result<()>;

/// A load target read by its engine, to attach on one interface at a time.
pub trait Prepared {
    /// The policy's interfaces (none for a bare filter).
    fn ifaces(&self) -> &[String];
    /// The policy's hook.
    fn hook(&self) -> Hook;
    /// Loads and attaches on `iface` at `hook`; returns what to report.
    fn attach(&self, req: &LoadRequest, iface: &str, hook: Hook) -> Result<Report>;
}

/// What `load` asks of an engine beyond the target and the interface.
pub struct LoadRequest {
    pub mode: wasmfw_xdp_bridge::Mode,
    pub replace: bool,
    pub audit: bool,
    pub keep_maps: bool,
    /// Every other engine, asked to [`Backend::make_room`] on the interface.
    pub others: Vec<&'static dyn Backend>,
}

/// A command's result: a line for humans, an object for `--json`.
pub struct Report {
    pub text: String,
    pub value: serde_json::Value,
}

/// What one detach did.
pub struct Detached {
    pub filter: String,
    pub engine: String,
    /// False when the filter was already gone (its record is removed).
    pub was_attached: bool,
    pub text: String,
}

/// A filter attached on an interface, reached through its engine.
pub trait Attachment {
    /// The filter's name.
    fn filter(&self) -> &str;
    /// Its maps (`wasmfw map`).
    fn maps(&self) -> Result<Box<dyn Maps>>;
    /// Its `log` lines, oldest first, into `sink`; with `follow`, until
    /// interrupted.
    fn log(&self, follow: bool, sink: &mut dyn LogSink) -> Result<()>;
    /// Starts recording the packets given one of `verdicts` (CAPTURE_* bits).
    fn capture(&self, verdicts: u32, snaplen: u32) -> Result<Box<dyn CaptureSource>>;
}

/// A map as `map list` shows it.
#[derive(Serialize)]
pub struct MapDesc {
    pub name: String,
    pub kind: String,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
}

/// A map entry as `map dump` and `map get` show it.
#[derive(Serialize)]
pub struct MapEntry {
    pub key: String,
    /// The key in its typed form (`443`, `10.0.0.0/8`), for list maps.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub typed: Option<String>,
    /// One value, or one per CPU for per-CPU maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl MapEntry {
    /// `key` with its value (`vals[0]`), or its per-CPU values.
    pub fn new(key: &[u8], vals: Vec<Vec<u8>>, percpu: bool) -> MapEntry {
        if percpu {
            MapEntry { key: hex(key), typed: None, value: None, values: Some(vals.iter().map(|v| hex(v)).collect()) }
        } else {
            MapEntry { key: hex(key), typed: None, value: vals.first().map(|v| hex(v)), values: None }
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The maps of an attached filter. `name` is always one of [`Maps::list`]'s
/// and keys and values have its sizes (`maps.rs` checks both first).
pub trait Maps {
    fn list(&self) -> Vec<MapDesc>;
    fn dump(&self, name: &str) -> Result<Vec<MapEntry>>;
    fn get(&self, name: &str, key: &[u8]) -> Result<Option<MapEntry>>;
    fn set(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Whether the key was there.
    fn del(&self, name: &str, key: &[u8]) -> Result<bool>;
}

/// One `log` line of a filter.
pub struct LogLine<'a> {
    /// CLOCK_MONOTONIC, ns.
    pub ts_ns: u64,
    pub cpu: Option<u32>,
    pub level: &'a str,
    pub filter: &'a str,
    pub seq: Option<u64>,
    /// The filter's bytes, unescaped.
    pub msg: &'a [u8],
}

/// Where an engine writes a filter's log (`log.rs` prints it).
pub trait LogSink {
    fn line(&mut self, line: &LogLine);
    /// `lost` lines were overwritten before this read; `dropped`: the
    /// filter's `log_dropped` counter.
    fn lost(&mut self, lost: u64, dropped: u64);
}

/// One captured packet, whichever engine recorded it.
pub struct Captured {
    pub ts_mono_ns: u64,
    pub cpu: u32,
    /// One CAPTURE_* bit.
    pub verdict: u32,
    /// The filter's id (the kernel engine's) or program id (eBPF).
    pub filter: u32,
    /// 1 Ethernet, 2 raw IP.
    pub link: u32,
    /// Audit mode passed this drop (kernel engine).
    pub audit: bool,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A running capture.
pub trait CaptureSource {
    /// New records into `out` (waiting up to [`CAPTURE_POLL_INTERVAL`]);
    /// returns the records lost so far.
    fn poll(&mut self, out: &mut Vec<Captured>) -> Result<u64>;
    /// Disarms the capture.
    fn stop(&mut self) -> Result<()>;
}

/// `--keep-maps`' report: one object per map of the old filter.
pub fn carried_json(carried: &[Carried]) -> serde_json::Value {
    carried
        .iter()
        .map(|c| serde_json::json!({"map": c.name, "entries": c.entries, "kept": c.skipped.is_none(), "why_not": c.skipped}))
        .collect()
}

/// `--keep-maps`' report for humans: one line per map of the old filter.
pub fn carried_text(carried: &[Carried]) -> String {
    carried
        .iter()
        .map(|c| match &c.skipped {
            None => format!("\n  map {}: {} entries kept", c.name, c.entries),
            Some(why) => format!("\n  map {}: not kept ({why})", c.name),
        })
        .collect()
}
