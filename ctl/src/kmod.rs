//! Client of the wasmfw kernel module: the ioctls of /dev/wasmfw, with
//! the structs the module itself is built with (crate `wasmfw-uapi`, `kmod/uapi`).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_policy::Policy;

pub const DEVICE: &str = "/dev/wasmfw";

use uapi::*;
pub use uapi::{
    Info, LogRecord, MapInfo, HOOK_NETFILTER, HOOK_XDP, LOAD_AUDIT, LOG_RING_RECORDS, MAP_HASH, MAP_PERCPU_ARRAY,
};
pub use uapi::{CAPTURE_DROP, CAPTURE_FAULT, CAPTURE_PASS, CAPTURE_SNAPLEN};
pub use wasmfw_uapi as uapi;

/// One packet the module recorded (`wasmfw capture`).
pub struct CaptureRecord {
    /// CLOCK_MONOTONIC, ns.
    pub ts_ns: u64,
    pub cpu: u32,
    /// One CAPTURE_* bit.
    pub verdict: u32,
    pub id: u32,
    pub orig_len: u32,
    /// LINK_ETHERNET (XDP) or LINK_RAW_IP (netfilter).
    pub link: u32,
    /// Audit mode passed this drop.
    pub audit: bool,
    pub data: Vec<u8>,
}

/// The text fields of [`Info`] as Strings (a trait: the struct is the
/// wasmfw-uapi crate's).
pub trait InfoText {
    fn ifname(&self) -> String;
    fn name(&self) -> String;
    fn policy(&self) -> String;
}

impl InfoText for Info {
    fn ifname(&self) -> String {
        cstr(&self.ifname)
    }
    fn name(&self) -> String {
        cstr(&self.name)
    }
    fn policy(&self) -> String {
        cstr(&self.policy)
    }
}

/// [`MapInfo`]'s name as a String (a trait: the struct is the wasmfw-uapi crate's).
pub trait MapInfoText {
    fn name(&self) -> String;
}

impl MapInfoText for MapInfo {
    fn name(&self) -> String {
        cstr(&self.name)
    }
}

/// The interface as JSON: `{"structs": {c_name: {"size", "fields": [[name,
/// offset, size]]}}, "constants": {C name: value}}`.
pub fn uapi_layout_json() -> serde_json::Value {
    let mut structs = serde_json::Map::new();
    for l in LAYOUTS {
        let fields: Vec<_> = l.fields.iter().map(|f| serde_json::json!([f.name, f.offset, f.size])).collect();
        structs.insert(l.c_name.to_string(), serde_json::json!({ "size": l.size, "fields": fields }));
    }
    for (alias, of) in SAME_LAYOUT {
        let v = structs[*of].clone();
        structs.insert(alias.to_string(), v);
    }
    let constants: serde_json::Map<_, _> = CONSTANTS.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    serde_json::json!({ "structs": structs, "constants": constants })
}

/// Bytes one MAP_DUMP call asks for.
const MAP_DUMP_PAGE: usize = 1 << 20;

/// What one LOG_READ returned.
pub struct LogPage {
    pub records: Vec<LogRecord>,
    /// The cursor to read on from.
    pub next: u64,
    /// Records from the cursor on overwritten before this read.
    pub lost: u64,
    /// The filter's `log_dropped` counter.
    pub dropped: u64,
}

fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// `s` into a NUL-terminated fixed array, truncated.
fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// One map record of a dump: (cpu, key, value); the CPU matters for
/// per-CPU arrays only.
pub type MapRecord = (u32, Vec<u8>, Vec<u8>);

/// An open /dev/wasmfw.
pub struct Device {
    file: File,
}

/// What ioctl errors mean to a user.
fn explain(what: &str, e: std::io::Error) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => " (needs CAP_NET_ADMIN: run as root)",
        Some(libc::ENODEV) => " (no such interface in this network namespace)",
        Some(libc::ENOENT) => " (no such filter or attachment)",
        Some(libc::EOPNOTSUPP) => " (this module build does not support that hook)",
        Some(libc::ENOSPC) => " (too many filters loaded)",
        _ => "",
    };
    anyhow!("{what}: {e}{hint}")
}

impl Device {
    /// Opens the module's device; a clear error if the module is not loaded.
    pub fn open() -> Result<Device> {
        if !Path::new(DEVICE).exists() {
            bail!("the wasmfw kernel module is not loaded (no {DEVICE}): insmod wasmfw.ko, or use --engine ebpf");
        }
        let file = OpenOptions::new().read(true).write(true).open(DEVICE).map_err(|e| explain(DEVICE, e))?;
        let dev = Device { file };
        let mut v = 0u32;
        dev.ioctl(IOC_VERSION, &mut v).map_err(|e| explain("asking the module's interface version", e))?;
        if v != UAPI_VERSION {
            bail!("the loaded wasmfw module speaks interface v{v}, this wasmfw speaks v{UAPI_VERSION}");
        }
        Ok(dev)
    }

    fn ioctl<T>(&self, req: u32, arg: &mut T) -> std::io::Result<()> {
        // SAFETY: `arg` is the repr(C) struct the request number encodes
        // (size included); the kernel reads/writes only that many bytes.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), req as _, arg as *mut T) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Loads the policy's filter into the kernel (not attached). Returns
    /// its id and the kernel stack the load used.
    pub fn load(&self, policy: &Policy, audit: bool) -> Result<(u32, u32)> {
        let wasm = std::fs::read(&policy.wasm).with_context(|| policy.wasm.display().to_string())?;
        let config = policy.config_bytes();
        let mut err = vec![0u8; 512];
        let limits = wasmfw_engine::Limits { audit, ..policy.limits() };
        let mut req = Load {
            wasm: wasm.as_ptr() as u64,
            config: config.as_ptr() as u64,
            wasm_len: wasm.len() as u32,
            config_len: config.len() as u32,
            fuel: limits.fuel,
            memory_limit: limits.memory_limit,
            on_fault: limits.on_fault.abi() as u32,
            id: 0,
            name: fixed(&policy.filter),
            policy: fixed(
                &policy
                    .source
                    .as_ref()
                    .map(|p| std::fs::canonicalize(p).unwrap_or(p.clone()).display().to_string())
                    .unwrap_or_default(),
            ),
            err: err.as_mut_ptr() as u64,
            err_len: err.len() as u32,
            stack_used: 0,
            flags: if limits.audit { LOAD_AUDIT } else { 0 },
            pad: 0,
        };
        if let Err(e) = self.ioctl(IOC_LOAD, &mut req) {
            let msg = cstr(&err);
            if let Some(le) = init_error(&msg) {
                bail!("{}", crate::wasm::describe(policy, &le));
            }
            if !msg.is_empty() {
                bail!("{}: {msg}", policy.wasm.display());
            }
            return Err(explain("loading the filter into the kernel", e));
        }
        Ok((req.id, req.stack_used))
    }

    pub fn attach(&self, id: u32, hook: u32, iface: &str) -> Result<()> {
        let mut req = Attach { id, hook, ifname: fixed(iface) };
        self.ioctl(IOC_ATTACH, &mut req).map_err(|e| explain(&format!("attaching to {iface}"), e))
    }

    pub fn detach(&self, iface: &str) -> Result<()> {
        let mut req = Detach { ifname: fixed(iface) };
        self.ioctl(IOC_DETACH, &mut req).map_err(|e| explain(&format!("detaching from {iface}"), e))
    }

    pub fn unload(&self, id: u32) -> Result<()> {
        let mut req = Unload { id, pad: 0 };
        self.ioctl(IOC_UNLOAD, &mut req).map_err(|e| explain(&format!("unloading filter {id}"), e))
    }

    /// Every filter the module holds.
    pub fn list(&self) -> Result<Vec<Info>> {
        let mut buf: Vec<Info> = Vec::with_capacity(64);
        let mut req = List { buf: buf.as_mut_ptr() as u64, cap: 64, count: 0 };
        self.ioctl(IOC_LIST, &mut req).map_err(|e| explain("listing filters", e))?;
        // SAFETY: the module wrote min(count, cap) entries.
        unsafe { buf.set_len(req.count.min(64) as usize) };
        Ok(buf)
    }

    /// A filter's counters, builtin ones first, summed over CPUs.
    pub fn counters(&self, id: u32) -> Result<Vec<(String, u64)>> {
        let mut buf = vec![Counter { name: [0; 32], value: 0 }; 64];
        let mut req = IdList { id, cap: 64, buf: buf.as_mut_ptr() as u64, count: 0, pad: 0 };
        self.ioctl(IOC_COUNTERS, &mut req).map_err(|e| explain("reading counters", e))?;
        buf.truncate(req.count.min(64) as usize);
        Ok(buf.iter().map(|c| (cstr(&c.name), c.value)).collect())
    }

    /// The maps filter `id` declared.
    pub fn maps(&self, id: u32) -> Result<Vec<MapInfo>> {
        let mut buf = vec![MapInfo { name: [0; 32], kind: 0, key_size: 0, value_size: 0, max_entries: 0 }; 64];
        let mut req = IdList { id, cap: 64, buf: buf.as_mut_ptr() as u64, count: 0, pad: 0 };
        self.ioctl(IOC_MAPS, &mut req).map_err(|e| explain("listing maps", e))?;
        buf.truncate(req.count.min(64) as usize);
        Ok(buf)
    }

    /// Updates (`value` Some) or deletes a key: the ABI result code
    /// (0 ok, 1 deleted; negative: `wasmfw_abi` error codes).
    pub fn map_op(&self, id: u32, map: &str, key: &[u8], value: Option<&[u8]>) -> Result<i32> {
        let mut req = MapOp {
            id,
            op: if value.is_some() { MAP_UPDATE } else { MAP_DELETE },
            map: fixed(map),
            key: key.as_ptr() as u64,
            value: value.map_or(0, |v| v.as_ptr() as u64),
            key_len: key.len() as u32,
            value_len: value.map_or(0, |v| v.len() as u32),
            result: 0,
            pad: 0,
        };
        self.ioctl(IOC_MAP_OP, &mut req).map_err(|e| explain(&format!("changing map {map}"), e))?;
        Ok(req.result)
    }

    /// Every entry of a map, page by page: (cpu, key, value) records; the
    /// CPU matters for per-CPU arrays only.
    pub fn map_dump(&self, id: u32, map: &MapInfo) -> Result<Vec<MapRecord>> {
        let (ks, vs) = (map.key_size as usize, map.value_size as usize);
        let rec = 4 + ks + vs;
        let mut buf = vec![0u8; MAP_DUMP_PAGE];
        let mut out = Vec::new();
        let mut cursor = 0u32;
        loop {
            let mut req =
                MapDump { id, cursor, map: map.name, buf: buf.as_mut_ptr() as u64, cap: buf.len() as u64, len: 0 };
            self.ioctl(IOC_MAP_DUMP, &mut req).map_err(|e| explain(&format!("dumping map {}", map.name()), e))?;
            let len = (req.len as usize).min(buf.len());
            for r in buf[..len].chunks_exact(rec) {
                let cpu = u32::from_le_bytes(r[..4].try_into().expect("4 bytes")); // the module writes it little-endian
                out.push((cpu, r[4..4 + ks].to_vec(), r[4 + ks..].to_vec()));
            }
            if req.cursor == 0 {
                return Ok(out);
            }
            cursor = req.cursor;
        }
    }

    /// Filter `id`'s log records from seq `cursor` on (0: the oldest held).
    pub fn log_read(&self, id: u32, cursor: u64) -> Result<LogPage> {
        let zero = LogRecord { seq: 0, ts_ns: 0, cpu: 0, level: 0, len: 0, pad: 0, msg: [0; LOG_MSG_LEN] };
        let mut buf = vec![zero; LOG_RING_RECORDS as usize];
        let mut req = LogRead {
            id,
            cap: LOG_RING_RECORDS,
            buf: buf.as_mut_ptr() as u64,
            cursor,
            lost: 0,
            dropped: 0,
            count: 0,
            pad: 0,
        };
        self.ioctl(IOC_LOG_READ, &mut req).map_err(|e| explain(&format!("reading the log of filter {id}"), e))?;
        buf.truncate(req.count.min(LOG_RING_RECORDS) as usize);
        Ok(LogPage { records: buf, next: req.cursor, lost: req.lost, dropped: req.dropped })
    }

    /// Runs filter `id` `repeat` times on `packet` in the kernel: verdict
    /// (0 pass, 1 drop) and total ns.
    pub fn test_run(&self, id: u32, packet: &[u8], link: i32, repeat: u32) -> Result<(u32, u64)> {
        let mut req = TestRun {
            id,
            link: link as u32,
            packet: packet.as_ptr() as u64,
            packet_len: packet.len() as u32,
            repeat,
            verdict: 0,
            pad: 0,
            total_ns: 0,
        };
        self.ioctl(IOC_TEST_RUN, &mut req).map_err(|e| explain("test run", e))?;
        Ok((req.verdict, req.total_ns))
    }

    /// Starts capturing the packets filter `id` gives one of `verdicts`
    /// (CAPTURE_* bits); the capture ends with [`Device::capture_stop`] or
    /// when this device is closed.
    pub fn capture_start(&self, id: u32, verdicts: u32, snaplen: u32) -> Result<()> {
        let mut req = CaptureCtl { id, op: CAPTURE_START, verdicts, snaplen };
        self.ioctl(IOC_CAPTURE_CTL, &mut req).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => " (a capture of that filter is running already)",
                Some(libc::ENOSPC) => " (too many captures running)",
                _ => "",
            };
            anyhow!("starting the capture of filter {id}: {e}{hint}")
        })
    }

    pub fn capture_stop(&self, id: u32) -> Result<()> {
        let mut req = CaptureCtl { id, op: CAPTURE_STOP, verdicts: 0, snaplen: 0 };
        self.ioctl(IOC_CAPTURE_CTL, &mut req).map_err(|e| explain("stopping the capture", e))
    }

    /// Takes the records waiting in the capture of filter `id`; returns
    /// them and the records lost so far (ring full).
    pub fn capture_read(&self, id: u32) -> Result<(Vec<CaptureRecord>, u64)> {
        let mut buf = vec![0u8; CAPTURE_READ_MAX as usize];
        let mut req =
            CaptureRead { id, count: 0, buf: buf.as_mut_ptr() as u64, cap: buf.len() as u64, len: 0, lost: 0 };
        self.ioctl(IOC_CAPTURE_READ, &mut req).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => anyhow!("the capture ended: filter {id} was detached, replaced or unloaded"),
            _ => explain("reading the capture", e),
        })?;
        let hdr = size_of::<CaptureRec>();
        let (mut off, len, mut out) = (0usize, (req.len as usize).min(buf.len()), Vec::new());
        while off + hdr <= len {
            // SAFETY: `hdr` bytes at `off` are inside buf; plain integers.
            let r: CaptureRec = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
            let end = (off + hdr + r.caplen as usize).min(len);
            out.push(CaptureRecord {
                ts_ns: r.ts_ns,
                cpu: r.cpu,
                verdict: r.verdict,
                id: r.id,
                orig_len: r.orig_len,
                link: r.link,
                audit: r.flags & CAPTURE_REC_AUDIT != 0,
                data: buf[off + hdr..end].to_vec(),
            });
            off = (off + hdr + r.caplen as usize).next_multiple_of(8);
        }
        Ok((out, req.lost))
    }
}

/// The module reports the engine's load error as text; a rejected
/// parameter is turned back into the error that names its policy line.
fn init_error(msg: &str) -> Option<wasmfw_engine::LoadError> {
    let rest = msg.strip_prefix("filter rejected its configuration (code ")?;
    let (code, message) = rest.split_once("): ")?;
    Some(wasmfw_engine::LoadError::Init { code: code.parse().unwrap_or(-1), message: message.to_string() })
}
