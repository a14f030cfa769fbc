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
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
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
        if self.cpus > 1 {
            self.value_size.div_ceil(8) * 8
        } else {
            self.value_size
        }
    }

    fn attr(&self, key: &[u8], second: u64) -> ElemAttr {
        ElemAttr {
            map_fd: self.fd.as_fd().as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value_or_next_key: second,
            ..Default::default()
        }
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

/// What `--keep-maps` did with one map of the old program.
#[derive(Debug, Clone)]
pub struct Carried {
    pub name: String,
    /// Entries copied into the new program's map (0 if not carried).
    pub entries: usize,
    /// Why the map was not carried, if it was not.
    pub skipped: Option<String>,
}

/// Copies the entries of the old program's state maps (`state`: by name)
/// into the new program's maps of the same name, kind, key and value sizes
/// (and at least as many max_entries). Every other map of the old program
/// is reported with why it is not carried. Entries the old program writes
/// after its map was copied are not carried (the window until the caller
/// swaps the programs).
pub fn carry_maps(old_prog_id: u32, new_prog_id: u32, state: &[&str]) -> Result<Vec<Carried>> {
    let old = maps_of_prog(old_prog_id)?;
    let new = maps_of_prog(new_prog_id)?;
    let mut out = Vec::new();
    for o in &old {
        let skip = |why: String| Carried { name: o.name.clone(), entries: 0, skipped: Some(why) };
        if !state.contains(&o.name.as_str()) {
            let why = if o.kind == "percpu_array" && o.max_entries == 1 && o.value_size == 8 {
                "a counter: starts at zero"
            } else {
                "configuration: filled from the new policy"
            };
            out.push(skip(why.into()));
            continue;
        }
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            out.push(skip("the new program has no map of that name".into()));
            continue;
        };
        if (n.kind.as_str(), n.key_size, n.value_size) != (o.kind.as_str(), o.key_size, o.value_size) {
            out.push(skip(format!(
                "kind or sizes differ ({} {}/{} -> {} {}/{})",
                o.kind, o.key_size, o.value_size, n.kind, n.key_size, n.value_size
            )));
            continue;
        }
        if o.max_entries > n.max_entries {
            out.push(skip(format!("max_entries shrinks ({} -> {})", o.max_entries, n.max_entries)));
            continue;
        }
        let mut entries = 0;
        for key in o.keys()? {
            // A key deleted since it was listed is not an error.
            let Some(values) = o.lookup(&key)? else { continue };
            n.update_per_cpu(&key, &values)?;
            entries += 1;
        }
        out.push(Carried { name: o.name.clone(), entries, skipped: None });
    }
    Ok(out)
}

impl RawMap {
    /// Sets `key` to one value per CPU (as [`RawMap::lookup`] returns them).
    fn update_per_cpu(&self, key: &[u8], values: &[Vec<u8>]) -> Result<()> {
        self.check_key(key)?;
        if values.len() != self.cpus || values.iter().any(|v| v.len() != self.value_size) {
            bail!("map {}: {} values of {} bytes expected", self.name, self.cpus, self.value_size);
        }
        let mut buf = vec![0u8; self.slot() * self.cpus];
        for (c, v) in buf.chunks_mut(self.slot()).zip(values) {
            c[..v.len()].copy_from_slice(v);
        }
        let mut a = self.attr(key, buf.as_ptr() as u64);
        a.flags = BPF_ANY;
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map_err(|e| anyhow!("map {}: update: {e}", self.name))
    }
}

/// Whether program `prog_id` (a twin) runs in audit mode (its `run_cfg`).
pub fn audit_of_prog(prog_id: u32) -> Result<bool> {
    let maps = maps_of_prog(prog_id)?;
    let Some(m) = maps.iter().find(|m| m.name == "run_cfg") else { return Ok(false) };
    let v = m.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
    Ok(v.first().is_some_and(|b| b.iter().any(|x| *x != 0)))
}
