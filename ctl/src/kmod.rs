//! Client of the wasmfw kernel module: the ioctls of /dev/wasmfw
//! (`kmod/wasmfw/wasmfw_uapi.h`, mirrored here field for field).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_policy::Policy;

pub const DEVICE: &str = "/dev/wasmfw";
pub const HOOK_NETFILTER: u32 = 1;
pub const HOOK_XDP: u32 = 2;
const UAPI_VERSION: u32 = 4;

#[repr(C)]
struct Load {
    wasm: u64,
    config: u64,
    wasm_len: u32,
    config_len: u32,
    fuel: u64,
    memory_limit: u64,
    on_fault: u32,
    id: u32,
    name: [u8; 32],
    policy: [u8; 128],
    err: u64,
    err_len: u32,
    stack_used: u32,
}

#[repr(C)]
struct Attach {
    id: u32,
    hook: u32,
    ifname: [u8; 16],
}

#[repr(C)]
struct Detach {
    ifname: [u8; 16],
}

#[repr(C)]
struct Unload {
    id: u32,
    pad: u32,
}

/// A loaded filter as the module lists it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Info {
    pub id: u32,
    /// 0 = loaded, not attached.
    pub hook: u32,
    pub ifindex: u32,
    pub on_fault: u32,
    ifname: [u8; 16],
    name: [u8; 32],
    policy: [u8; 128],
    pub fuel: u64,
    pub memory_limit: u64,
    netns_ino: u64,
}

impl Info {
    /// The attachment's network namespace, as the inode number of
    /// `/proc/PID/ns/net` (what `ls -iL` and `stat -L` show); `None` when
    /// the filter is loaded but not attached.
    pub fn netns_ino(&self) -> Option<u64> {
        (self.netns_ino != 0).then_some(self.netns_ino)
    }
    pub fn ifname(&self) -> String {
        cstr(&self.ifname)
    }
    pub fn name(&self) -> String {
        cstr(&self.name)
    }
    pub fn policy(&self) -> String {
        cstr(&self.policy)
    }
}

// The module's sizes (kmod/wasmfw/wasmfw_main.rs asserts the same).
const _: () = assert!(size_of::<Info>() == 216);

#[repr(C)]
struct List {
    buf: u64,
    cap: u32,
    count: u32,
}

#[repr(C)]
struct IdList {
    id: u32,
    cap: u32,
    buf: u64,
    count: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Counter {
    name: [u8; 32],
    value: u64,
}

/// A map a filter declared (`struct wasmfw_map_info`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MapInfo {
    name: [u8; 32],
    /// 1 hash, 2 per-CPU array.
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl MapInfo {
    pub fn name(&self) -> String {
        cstr(&self.name)
    }
}

pub const MAP_HASH: u32 = 1;
pub const MAP_PERCPU_ARRAY: u32 = 2;
const MAP_UPDATE: u32 = 1;
const MAP_DELETE: u32 = 2;

#[repr(C)]
struct MapOp {
    id: u32,
    op: u32,
    map: [u8; 32],
    key: u64,
    value: u64,
    key_len: u32,
    value_len: u32,
    result: i32,
    pad: u32,
}

#[repr(C)]
struct MapDump {
    id: u32,
    cursor: u32,
    map: [u8; 32],
    buf: u64,
    cap: u64,
    len: u64,
}

/// Bytes one MAP_DUMP call returns at most.
const MAP_DUMP_PAGE: usize = 1 << 20;

#[repr(C)]
struct TestRun {
    id: u32,
    link: u32,
    packet: u64,
    packet_len: u32,
    repeat: u32,
    verdict: u32,
    pad: u32,
    total_ns: u64,
}

/// Bytes of a logged line kept (WASMFW_LOG_MSG_LEN).
const LOG_MSG_LEN: usize = 256;
/// Records a filter's log ring holds (WASMFW_LOG_RING_RECORDS): one read asks for that many.
pub const LOG_RING_RECORDS: u32 = 256;

/// One line a filter logged (`struct wasmfw_log_record`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LogRecord {
    pub seq: u64,
    /// CLOCK_MONOTONIC ns when logged.
    pub ts_ns: u64,
    pub cpu: u32,
    /// 0 error, 1 warn, 2 info, 3 debug.
    pub level: u32,
    len: u32,
    pad: u32,
    msg: [u8; LOG_MSG_LEN],
}

impl LogRecord {
    /// The filter's bytes (UTF-8 by the ABI, not checked by the kernel).
    pub fn msg(&self) -> &[u8] {
        &self.msg[..(self.len as usize).min(LOG_MSG_LEN)]
    }
}

#[repr(C)]
struct LogRead {
    id: u32,
    cap: u32,
    buf: u64,
    cursor: u64,
    lost: u64,
    dropped: u64,
    count: u32,
    pad: u32,
}

const _: () = assert!(size_of::<LogRecord>() == 288 && size_of::<LogRead>() == 48);

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

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (0xf7 << 8) | nr
}
const W: u64 = 1;
const R: u64 = 2;
const IOC_VERSION: u64 = ioc(R, 0, 4);
const IOC_LOAD: u64 = ioc(R | W, 1, size_of::<Load>());
const IOC_ATTACH: u64 = ioc(W, 2, size_of::<Attach>());
const IOC_DETACH: u64 = ioc(W, 3, size_of::<Detach>());
const IOC_UNLOAD: u64 = ioc(W, 4, size_of::<Unload>());
const IOC_LIST: u64 = ioc(R | W, 5, size_of::<List>());
const IOC_COUNTERS: u64 = ioc(R | W, 6, size_of::<IdList>());
const IOC_MAPS: u64 = ioc(R | W, 7, size_of::<IdList>());
const IOC_MAP_OP: u64 = ioc(R | W, 8, size_of::<MapOp>());
const IOC_MAP_DUMP: u64 = ioc(R | W, 9, size_of::<MapDump>());
const IOC_TEST_RUN: u64 = ioc(R | W, 10, size_of::<TestRun>());
const IOC_LOG_READ: u64 = ioc(R | W, 11, size_of::<LogRead>());

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

    fn ioctl<T>(&self, req: u64, arg: &mut T) -> std::io::Result<()> {
        // SAFETY: `arg` is the repr(C) struct the request number encodes
        // (size included); the kernel reads/writes only that many bytes.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), req as _, arg as *mut T) };
        if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Loads the policy's filter into the kernel (not attached). Returns
    /// its id and the kernel stack the load used.
    pub fn load(&self, policy: &Policy) -> Result<(u32, u32)> {
        let wasm = std::fs::read(&policy.wasm).with_context(|| policy.wasm.display().to_string())?;
        let config = policy.config_bytes();
        let mut err = vec![0u8; 512];
        let mut req = Load {
            wasm: wasm.as_ptr() as u64,
            config: config.as_ptr() as u64,
            wasm_len: wasm.len() as u32,
            config_len: config.len() as u32,
            fuel: policy.fuel,
            memory_limit: policy.memory_limit,
            on_fault: policy.on_fault.abi() as u32,
            id: 0,
            name: fixed(&policy.filter),
            policy: fixed(&policy.source.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or(p.clone()).display().to_string()).unwrap_or_default()),
            err: err.as_mut_ptr() as u64,
            err_len: err.len() as u32,
            stack_used: 0,
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
    pub fn map_dump(&self, id: u32, map: &MapInfo) -> Result<Vec<(u32, Vec<u8>, Vec<u8>)>> {
        let (ks, vs) = (map.key_size as usize, map.value_size as usize);
        let rec = 4 + ks + vs;
        let mut buf = vec![0u8; MAP_DUMP_PAGE];
        let mut out = Vec::new();
        let mut cursor = 0u32;
        loop {
            let mut req = MapDump { id, cursor, map: map.name, buf: buf.as_mut_ptr() as u64, cap: buf.len() as u64, len: 0 };
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
        let mut req = LogRead { id, cap: LOG_RING_RECORDS, buf: buf.as_mut_ptr() as u64, cursor, lost: 0, dropped: 0, count: 0, pad: 0 };
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
}

/// The module reports the engine's load error as text; a rejected
/// parameter is turned back into the error that names its policy line.
fn init_error(msg: &str) -> Option<wasmfw_engine::LoadError> {
    let rest = msg.strip_prefix("filter rejected its configuration (code ")?;
    let (code, message) = rest.split_once("): ")?;
    Some(wasmfw_engine::LoadError::Init { code: code.parse().unwrap_or(-1), message: message.to_string() })
}
