//! Any map of an attached twin as raw bytes, found from the program's id,
//! for `wasmfw map` (like `bpftool map dump/update/delete`): the key and
//! value sizes come from the kernel, not from Rust types.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, bail, Result};
use aya::maps::{MapFd, MapInfo, MapType};

const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;
const BPF_ANY: u64 = 0;

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_int, attr: &mut ElemAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is the repr(C) prefix of `union bpf_attr` for the
    // map element commands; the kernel reads at most size_of::<ElemAttr>().
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut ElemAttr, size_of::<ElemAttr>() as u32) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// One map of a loaded program.
pub struct RawMap {
    fd: MapFd,
    pub name: String,
    /// `hash`, `array`, `percpu_array`, `lpm_trie`, ...
    pub kind: String,
    pub key_size: usize,
    /// Per CPU for per-CPU maps.
    pub value_size: usize,
    pub max_entries: u32,
    /// Values per key: the number of possible CPUs for per-CPU maps, else 1.
    pub cpus: usize,
}

fn kind(t: Result<MapType, aya::maps::MapError>) -> (String, bool) {
    match t {
        Ok(MapType::Hash) => ("hash".into(), false),
        Ok(MapType::Array) => ("array".into(), false),
        Ok(MapType::PerCpuArray) => ("percpu_array".into(), true),
        Ok(MapType::PerCpuHash) => ("percpu_hash".into(), true),
        Ok(MapType::LpmTrie) => ("lpm_trie".into(), false),
        Ok(MapType::LruHash) => ("lru_hash".into(), false),
        Ok(MapType::RingBuf) => ("ringbuf".into(), false),
        Ok(t) => (format!("{t:?}").to_lowercase(), false),
        Err(_) => ("unknown".into(), false),
    }
}

/// Every map of program `prog_id` that has a name (needs CAP_SYS_ADMIN).
pub fn maps_of_prog(prog_id: u32) -> Result<Vec<RawMap>> {
    let info = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| anyhow!("no loaded program with id {prog_id}"))?;
    let ncpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow!("{what}: {e}"))?;
    let mut out = Vec::new();
    for id in info.map_ids()?.unwrap_or_default() {
        let mi = MapInfo::from_id(id)?;
        let Some(name) = mi.name_as_str().filter(|n| !n.is_empty() && !n.starts_with('.')) else { continue };
        let (kind, percpu) = kind(mi.map_type());
        out.push(RawMap {
            name: name.to_string(),
            kind,
            key_size: mi.key_size() as usize,
            value_size: mi.value_size() as usize,
            max_entries: mi.max_entries(),
            cpus: if percpu { ncpus } else { 1 },
            fd: mi.fd()?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl RawMap {
    /// Bytes of one value slot in the kernel's per-CPU layout (8-aligned).
    fn slot(&self) -> usize {
        if self.cpus > 1 { self.value_size.div_ceil(8) * 8 } else { self.value_size }
    }

    fn attr(&self, key: &[u8], second: u64) -> ElemAttr {
        ElemAttr { map_fd: self.fd.as_fd().as_raw_fd() as u32, key: key.as_ptr() as u64, value_or_next_key: second, ..Default::default() }
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() != self.key_size {
            bail!("map {}: the key is {} bytes, {} given", self.name, self.key_size, key.len());
        }
        Ok(())
    }

    /// The value(s) of `key`: one per CPU for per-CPU maps.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        self.check_key(key)?;
        let mut buf = vec![0u8; self.slot() * self.cpus];
        let mut a = self.attr(key, buf.as_mut_ptr() as u64);
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
            Ok(()) => Ok(Some(buf.chunks(self.slot()).map(|c| c[..self.value_size].to_vec()).collect())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(anyhow!("map {}: lookup: {e}", self.name)),
        }
    }

    /// Sets `key` to `value` (on every CPU for per-CPU maps).
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_size {
            bail!("map {}: the value is {} bytes, {} given", self.name, self.value_size, value.len());
        }
        let mut buf = vec![0u8; self.slot() * self.cpus];
        for c in buf.chunks_mut(self.slot()) {
            c[..value.len()].copy_from_slice(value);
        }
        let mut a = self.attr(key, buf.as_ptr() as u64);
        a.flags = BPF_ANY;
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map_err(|e| match e.raw_os_error() {
            Some(libc::E2BIG) => anyhow!("map {}: full ({} entries)", self.name, self.max_entries),
            Some(libc::EINVAL) if self.kind.contains("array") => anyhow!("map {}: index out of range", self.name),
            _ => anyhow!("map {}: update: {e}", self.name),
        })
    }

    /// Deletes `key`: false if it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let mut a = self.attr(key, 0);
        match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.kind.contains("array") => {
                bail!("map {}: entries of an array cannot be deleted (set them instead)", self.name)
            }
            Err(e) => Err(anyhow!("map {}: delete: {e}", self.name)),
        }
    }

    /// Every key, in the kernel's iteration order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut next = vec![0u8; self.key_size];
        loop {
            let prev = out.last().map_or(0, |k| k.as_ptr() as u64);
            let mut a = ElemAttr {
                map_fd: self.fd.as_fd().as_raw_fd() as u32,
                key: prev,
                value_or_next_key: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
                Ok(()) => out.push(next.clone()),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
                Err(e) => bail!("map {}: next key: {e}", self.name),
            }
            if out.len() > self.max_entries as usize {
                bail!("map {}: more keys than max_entries (changing while dumped?)", self.name);
            }
        }
    }
}
