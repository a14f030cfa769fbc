//! `wasmfw capture` on an attached twin: sets its `wasmfw_cap_cfg` while
//! the capture runs and reads the records its programs write to the
//! `wasmfw_capture` perf ring (one buffer per CPU), found from the program
//! id like the other maps (no pins).

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{Array, Map, MapData, MapInfo};

use crate::common::{CaptureConfig, CaptureMeta, CAPTURE_SNAPLEN};

/// Pages of each CPU's perf buffer (a power of two): 64 x 4 KiB holds ~120
/// full-size records per CPU between two reads.
const PAGES_PER_CPU: usize = 64;

/// One packet a twin recorded.
pub struct Record {
    /// CLOCK_MONOTONIC, ns.
    pub ts_ns: u64,
    pub cpu: u32,
    /// CAPTURE_PASS or CAPTURE_DROP.
    pub verdict: u32,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A running capture; dropping it turns capture off in the program.
pub struct Capture {
    cfg: Array<MapData, CaptureConfig>,
    bufs: Vec<(u32, PerfEventArrayBuffer<MapData>)>,
    // Keeps the perf array (and its buffers' slots) open.
    _perf: PerfEventArray<MapData>,
    /// Records the kernel could not write because a buffer was full.
    pub lost: u64,
}

fn map_by_name(prog_id: u32, name: &str) -> Result<MapData> {
    let info = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| anyhow!("no loaded program with id {prog_id}"))?;
    for id in info.map_ids()?.unwrap_or_default() {
        if MapInfo::from_id(id)?.name_as_str() == Some(name) {
            return Ok(MapData::from_id(id)?);
        }
    }
    bail!("program {prog_id} has no map {name} (an eBPF twin built before `wasmfw capture` existed? reload it)")
}

impl Capture {
    /// Opens the perf buffers, then arms the program: `verdicts` are
    /// CAPTURE_* bits, `snaplen` is clamped to CAPTURE_SNAPLEN.
    pub fn start(prog_id: u32, verdicts: u32, snaplen: u32) -> Result<Capture> {
        let mut perf = PerfEventArray::try_from(Map::PerfEventArray(map_by_name(prog_id, "wasmfw_capture")?))?;
        let mut cfg: Array<MapData, CaptureConfig> =
            Array::try_from(Map::Array(map_by_name(prog_id, "wasmfw_cap_cfg")?))?;
        let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow!("{what}: {e}"))?;
        let mut bufs = Vec::new();
        for cpu in cpus {
            bufs.push((cpu, perf.open(cpu, Some(PAGES_PER_CPU)).with_context(|| format!("perf buffer of CPU {cpu}"))?));
        }
        let on = CaptureConfig { verdicts, snaplen: snaplen.min(CAPTURE_SNAPLEN) };
        cfg.set(0, on, 0).context("arming capture (wasmfw_cap_cfg)")?;
        Ok(Capture { cfg, bufs, _perf: perf, lost: 0 })
    }

    /// Turns capture off in the program (also done on drop).
    pub fn stop(&mut self) -> Result<()> {
        self.cfg.set(0, CaptureConfig::default(), 0).context("disarming capture (wasmfw_cap_cfg)")?;
        Ok(())
    }

    /// Waits up to `timeout` for records and appends what is there to `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Record>) -> Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .bufs
            .iter()
            .map(|(_, b)| libc::pollfd { fd: b.as_raw_fd() as RawFd, events: libc::POLLIN, revents: 0 })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of fds.len() pollfd structs.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e).context("poll on the perf buffers");
        }
        let meta_len = size_of::<CaptureMeta>();
        for (cpu, buf) in &mut self.bufs {
            let cpu = *cpu;
            let lost = &mut self.lost;
            buf.for_each(|ev| match ev {
                PerfEvent::Sample { head, tail } => {
                    let mut raw = Vec::with_capacity(head.len() + tail.len());
                    raw.extend_from_slice(head);
                    raw.extend_from_slice(tail);
                    if raw.len() < meta_len {
                        return;
                    }
                    // SAFETY: at least size_of::<CaptureMeta>() bytes; an
                    // unaligned read of plain integers.
                    let meta: CaptureMeta = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
                    let end = (meta_len + meta.caplen as usize).min(raw.len());
                    out.push(Record {
                        ts_ns: meta.ts_ns,
                        cpu,
                        verdict: meta.verdict,
                        orig_len: meta.orig_len,
                        data: raw[meta_len..end].to_vec(),
                    });
                }
                PerfEvent::Lost { count } => *lost += count,
            });
        }
        Ok(())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
