//! What `status` and `stats` report ([`Entry`]), and the records of eBPF
//! attachments: `/run/wasmfw/<netns inode>/<iface>.json`, one per
//! (network namespace, interface).
//!
//! A record is a note, not the truth: the truth is the program the
//! interface has attached at XDP (netlink), and a record whose program is
//! no longer there is reported as gone, never as attached. `/run` is
//! shared by `ip netns exec` and `nsenter` alike (only `/sys` is remounted).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Where attachment records live (`$WASMFW_STATE_DIR` overrides).
fn state_dir() -> PathBuf {
    std::env::var_os("WASMFW_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| "/run/wasmfw".into())
}

/// One attached filter, as `status` and `stats` report it (text and JSON),
/// whatever the engine.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Entry {
    /// The network namespace's display name (`ip netns` name, `host`, or
    /// `net:[INODE]`); filled in when reported.
    #[serde(default)]
    pub netns: String,
    /// The network namespace's inode (`stat -L /proc/PID/ns/net`).
    pub netns_ino: u64,
    pub iface: String,
    /// `wasm`, `ebpf` or `compiled`.
    pub engine: String,
    /// `xdp` or `netfilter`.
    pub hook: String,
    /// XDP mode (`skb`, `native`); empty for netfilter.
    pub mode: String,
    pub filter: String,
    /// `enforce`, or `audit` (every packet passes, would-be drops counted);
    /// read from the kernel when reported.
    #[serde(default)]
    pub filter_mode: String,
    /// The policy file, or null for a bare filter with default parameters.
    pub policy: Option<String>,
    /// Unix time, seconds.
    pub loaded_at: u64,
    /// Kernel program id of the XDP program (the eBPF twin, the compiled
    /// filter, or xdp-bridge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
    /// Filter id in the wasmfw module (wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<u32>,
    /// Checked against the kernel each time it is reported.
    #[serde(default)]
    pub attached: bool,
    /// Why `attached` is false (namespace deleted, interface gone, program
    /// replaced or detached by someone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<String>,
    /// Counter name -> value (summed over CPUs), `packets`, `pass`, `drop`
    /// and the filter's own (docs/filters.md).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// The counters in the filter's order, built-in first (a compiled
    /// filter's: its counter map holds values, not names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_names: Vec<String>,
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn path(netns_ino: u64, iface: &str) -> PathBuf {
    state_dir().join(netns_ino.to_string()).join(format!("{iface}.json"))
}

pub fn write(e: &Entry) -> Result<()> {
    let path = path(e.netns_ino, &e.iface);
    let dir = path.parent().expect("record has a dir");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(e)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read(netns_ino: u64, iface: &str) -> Option<Entry> {
    let text = std::fs::read_to_string(path(netns_ino, iface)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn remove(netns_ino: u64, iface: &str) {
    let p = path(netns_ino, iface);
    let _ = std::fs::remove_file(&p);
    if let Some(dir) = p.parent() {
        let _ = std::fs::remove_dir(dir); // only if empty
    }
}

/// Every record, ordered by namespace then interface.
pub fn all() -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(state_dir()) else { return out };
    let mut dirs: Vec<(u64, PathBuf)> =
        rd.flatten().filter_map(|d| Some((d.file_name().to_str()?.parse().ok()?, d.path()))).collect();
    dirs.sort();
    for (ns, dir) in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .collect();
        names.sort();
        out.extend(names.iter().filter_map(|n| read(ns, n)));
    }
    out
}
