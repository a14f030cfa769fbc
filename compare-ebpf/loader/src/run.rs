//! Running: a loaded twin on single packets (BPF_PROG_TEST_RUN), its
//! counters, and the counters of an attached twin by program id.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};

use crate::{Loaded, Twin};

impl Loaded {
    pub fn program(&self) -> &Xdp {
        self.ebpf.program(self.twin.name()).expect("loaded").try_into().expect("xdp")
    }

    /// Runs the program once on a frame (BPF_PROG_TEST_RUN): XDP_PASS / XDP_DROP.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32> {
        test_run(self.program(), frame, 1).map(|(v, _)| v)
    }

    /// Mean time per run over `repeat` runs (the kernel's own timing).
    pub fn bench(&self, frame: &[u8], repeat: u32) -> Result<Duration> {
        test_run(self.program(), frame, repeat).map(|(_, d)| d)
    }

    /// Counter values, summed over CPUs, `packets`, `pass`, `drop` first.
    pub fn counters(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for name in self.twin.counters() {
            let m = self.ebpf.map(name).ok_or_else(|| anyhow!("no map {name}"))?;
            let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(m)?;
            out.push((name.to_string(), arr.get(&0, 0)?.iter().sum()));
        }
        Ok(out)
    }

    /// The loaded program's fd, to attach it (the caller attaches through
    /// netlink: `wasmfw_xdp_bridge::netlink`) and its id.
    pub fn prog_fd_and_id(&self) -> Result<(std::os::fd::RawFd, u32)> {
        use std::os::fd::{AsFd, AsRawFd};
        let prog = self.program();
        Ok((prog.fd()?.as_fd().as_raw_fd(), prog.info()?.id()))
    }
}

pub(crate) fn test_run(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(u32, Duration)> {
    let opts = TestRunOptions { data_in: Some(frame), repeat: repeat.max(1), ..Default::default() };
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration))
}

/// Bytes of a map name the kernel keeps (BPF_OBJ_NAME_LEN - 1).
pub const BPF_NAME_MAX: usize = 15;

/// Counters of a loaded twin found by its program id (the program's maps,
/// by name; no pins needed), summed over CPUs, `packets`, `pass`, `drop`
/// first. Needs CAP_SYS_ADMIN.
pub fn counters_of_prog(twin: Twin, prog_id: u32) -> Result<Vec<(String, u64)>> {
    let info = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| anyhow!("no loaded program with id {prog_id}"))?;
    let mut by_name = BTreeMap::new();
    for id in info.map_ids()?.unwrap_or_default() {
        let mi = aya::maps::MapInfo::from_id(id)?;
        if let Some(name) = mi.name_as_str() {
            by_name.insert(name.to_string(), id);
        }
    }
    let mut out = Vec::new();
    for name in twin.counters() {
        // The kernel keeps 15 bytes of a map's name (`audit_would_dro`).
        let Some(&id) = by_name.get(&name[..name.len().min(BPF_NAME_MAX)]) else { continue };
        let data = MapData::from_id(id)?;
        let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
        out.push((name.to_string(), arr.get(&0, 0)?.iter().sum()));
    }
    Ok(out)
}
