//! Finding a kfunc's BTF id in a module's split BTF, and an fd for that
//! BTF object: the two numbers a kfunc call instruction needs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};

use crate::sys::{bpf, BPF_BTF_GET_FD_BY_ID, BPF_BTF_GET_NEXT_ID, BPF_OBJ_GET_INFO_BY_FD};

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_FUNC: u32 = 12;

/// A parsed BTF blob: its types (as offsets) and strings.
struct Btf {
    data: Vec<u8>,
    /// (offset of each type record) in order.
    types: Vec<usize>,
    str_off: usize,
    str_len: usize,
}

fn u32_at(d: &[u8], off: usize) -> Result<u32> {
    d.get(off..off + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).ok_or_else(|| anyhow!("truncated BTF"))
}

impl Btf {
    fn parse(data: Vec<u8>) -> Result<Btf> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            bail!("not little-endian BTF");
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let (type_off, type_len) = (u32_at(&data, 8)? as usize, u32_at(&data, 12)? as usize);
        let (str_off, str_len) = (u32_at(&data, 16)? as usize, u32_at(&data, 20)? as usize);
        let (start, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
        let mut types = Vec::new();
        let mut off = start;
        while off < end {
            types.push(off);
            let info = u32_at(&data, off + 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            // Each kind's trailing data (include/uapi/linux/btf.h).
            let extra = match kind {
                1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
                3 => 12,              // ARRAY
                4 | 5 => 12 * vlen,   // STRUCT, UNION
                6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen, // DATASEC, ENUM64
                2 | 7..=12 | 16 | 18 => 0,
                k => bail!("unknown BTF kind {k}"),
            };
            off += 12 + extra;
        }
        Ok(Btf { data, types, str_off: hdr_len + str_off, str_len })
    }

    fn string(&self, off: usize) -> Option<&[u8]> {
        let s = self.data.get(self.str_off + off..self.str_off + self.str_len)?;
        Some(&s[..s.iter().position(|&b| b == 0)?])
    }
}

/// The BTF id of function `func` in module `module`, and an fd for the
/// module's BTF object.
pub fn find_kfunc(module: &str, func: &str) -> Result<(OwnedFd, u32)> {
    crate::require_module()?;
    let base = Btf::parse(std::fs::read("/sys/kernel/btf/vmlinux").context("reading /sys/kernel/btf/vmlinux")?)?;
    let path = format!("/sys/kernel/btf/{module}");
    let split = Btf::parse(std::fs::read(&path).with_context(|| format!("reading {path}"))?)?;
    // Split BTF: ids and string offsets continue after the base's.
    let mut id = None;
    for (i, &off) in split.types.iter().enumerate() {
        let name_off = u32_at(&split.data, off)? as usize;
        let kind = (u32_at(&split.data, off + 4)? >> 24) & 0x1f;
        if kind != KIND_FUNC || name_off < base.str_len {
            continue;
        }
        if split.string(name_off - base.str_len) == Some(func.as_bytes()) {
            id = Some((base.types.len() + 1 + i) as u32);
            break;
        }
    }
    let id = id.ok_or_else(|| anyhow!("{path} has no function {func}: is this the wasmfw module with XDP support?"))?;
    Ok((btf_fd_by_name(module, split.data.len())?, id))
}

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// Walks the kernel's BTF objects to the module's: the newest one named
/// `name` whose size is `size` (the length of /sys/kernel/btf/<name>). A
/// module that was unloaded and inserted again can leave its old BTF object
/// behind while something still holds it; that one comes first in id order,
/// and its type ids need not be the new module's.
fn btf_fd_by_name(name: &str, size: usize) -> Result<OwnedFd> {
    let mut attr = IdAttr::default();
    let mut found = None;
    while bpf(BPF_BTF_GET_NEXT_ID, &mut attr).is_ok() {
        let mut get = IdAttr { id: attr.next_id, ..Default::default() };
        attr.id = attr.next_id;
        let Ok(rc) = bpf(BPF_BTF_GET_FD_BY_ID, &mut get) else { continue };
        // SAFETY: a new BTF fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(rc as i32) };
        let mut buf = [0u8; 64];
        let mut info = BtfInfo { name: buf.as_mut_ptr() as u64, name_len: buf.len() as u32, ..Default::default() };
        let mut q = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: size_of::<BtfInfo>() as u32,
            info: &mut info as *mut _ as u64,
        };
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut q).is_ok() {
            let n = buf.iter().position(|&b| b == 0).unwrap_or(0);
            if &buf[..n] == name.as_bytes() && info.kernel_btf != 0 && info.btf_size as usize == size {
                found = Some(fd);
            }
        }
    }
    found.ok_or_else(|| anyhow!("no kernel BTF object named {name} of {size} bytes (is the module loaded?)"))
}
