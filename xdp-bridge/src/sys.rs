//! The few bpf(2) commands the bridge and the compiled tier (`wasm2ebpf`)
//! need, as raw syscalls.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{anyhow, Result};

/// One eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Insn {
    code: u8,
    /// dst_reg (low 4 bits) | src_reg (high 4 bits)
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src << 4) | (dst & 0xf), off, imm }
    }
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
pub const BPF_BTF_GET_FD_BY_ID: libc::c_int = 19;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
pub const BPF_BTF_GET_NEXT_ID: libc::c_int = 23;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// bpf(2) with a zero-padded attribute buffer.
pub fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a repr(C) prefix of `union bpf_attr` for `cmd`;
    // the kernel reads/writes at most size_of::<T>() bytes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as u32) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd(rc: libc::c_long) -> OwnedFd {
    // SAFETY: a successful bpf() that creates an object returns a new fd we own.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}

/// Bytes of verifier log asked for when a load is refused (the load is
/// retried with the log on: a log too small for a large program would
/// itself make the load fail).
const VERIFIER_LOG_BYTES: usize = 16 << 20;

/// Loads an XDP program; on failure the verifier's log is in the error.
pub fn prog_load_xdp(insns: &[Insn], fd_array: &[i32], name: &str) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_XDP,
        fd_array: if fd_array.is_empty() { 0 } else { fd_array.as_ptr() as u64 },
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Ok(rc) = bpf(BPF_PROG_LOAD, &mut attr) {
        return Ok(fd(rc));
    }
    let mut log = vec![0u8; VERIFIER_LOG_BYTES];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => Ok(fd(rc)),
        Err(e) => {
            let text = CStr::from_bytes_until_nul(&log).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
            Err(anyhow!("BPF_PROG_LOAD: {e}; verifier: {}", verifier_reason(&text)))
        }
    }
}

/// How many log lines [`verifier_reason`] quotes.
const VERIFIER_REASON_LINES: usize = 4;

/// The verifier's reason for a refusal: the last lines of its log before
/// the statistics line it ends with ("processed N insns ...").
fn verifier_reason(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let end = lines.iter().rposition(|l| !l.starts_with("processed ")).map_or(0, |i| i + 1);
    let reason = lines[end.saturating_sub(VERIFIER_REASON_LINES)..end].join(" / ");
    if reason.is_empty() {
        lines.last().copied().unwrap_or("(empty log)").to_string()
    } else {
        reason
    }
}

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// Creates a map.
pub fn map_create(map_type: u32, key_size: u32, value_size: u32, max_entries: u32, name: &str) -> Result<OwnedFd> {
    let mut attr = MapCreate { map_type, key_size, value_size, max_entries, ..Default::default() };
    let n = name.len().min(15);
    attr.map_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    bpf(BPF_MAP_CREATE, &mut attr)
        .map(fd)
        .map_err(|e| anyhow!("BPF_MAP_CREATE {name} (type {map_type}, key {key_size}, value {value_size} bytes): {e}"))
}

#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Sets `key` to `value` (for a per-CPU map: one value per possible CPU,
/// each rounded up to 8 bytes).
pub fn map_update(map: i32, key: &[u8], value: &[u8]) -> Result<()> {
    let mut attr =
        MapElem { map_fd: map as u32, key: key.as_ptr() as u64, value: value.as_ptr() as u64, ..Default::default() };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop).map_err(|e| anyhow!("BPF_MAP_UPDATE_ELEM: {e}"))
}

/// Reads `key` into `value` (sized as for [`map_update`]); false if absent.
pub fn map_lookup(map: i32, key: &[u8], value: &mut [u8]) -> Result<bool> {
    let mut attr = MapElem {
        map_fd: map as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(anyhow!("BPF_MAP_LOOKUP_ELEM: {e}")),
    }
}

#[repr(C)]
#[derive(Default)]
struct GetFdById {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: u32,
}

/// An fd of the program with this id (needs CAP_SYS_ADMIN).
pub fn prog_get_fd_by_id(id: u32) -> Result<OwnedFd> {
    let mut attr = GetFdById { id, ..Default::default() };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(fd).map_err(|e| anyhow!("BPF_PROG_GET_FD_BY_ID {id}: {e}"))
}

/// The head of `struct bpf_prog_info` (the kernel fills what fits).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct GetInfo {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// (id, name) of a loaded program.
pub fn prog_id_name(prog: i32) -> Result<(u32, String)> {
    let mut info = ProgInfo::default();
    let mut attr =
        GetInfo { bpf_fd: prog as u32, info_len: size_of::<ProgInfo>() as u32, info: &mut info as *mut _ as u64 };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|e| anyhow!("BPF_OBJ_GET_INFO_BY_FD: {e}"))?;
    let name = CStr::from_bytes_until_nul(&info.name).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((info.id, name))
}

#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// BPF_PROG_TEST_RUN: (return value, mean ns per run).
pub fn prog_test_run(prog: i32, data: &[u8], repeat: u32) -> Result<(u32, u32)> {
    let mut out = vec![0u8; data.len() + 256];
    let mut attr = TestRun {
        prog_fd: prog as u32,
        data_size_in: data.len() as u32,
        data_size_out: out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr).map_err(|e| anyhow!("BPF_PROG_TEST_RUN: {e}"))?;
    Ok((attr.retval, attr.duration))
}

#[cfg(test)]
mod tests {
    use super::verifier_reason;

    #[test]
    fn reason_skips_the_statistics_line() {
        let log = "func#0 @0\naddress of kernel function wasmfw_xdp_run is out of range\nprocessed 0 insns (limit 1000000) max_states_per_insn 0\n";
        assert_eq!(verifier_reason(log), "func#0 @0 / address of kernel function wasmfw_xdp_run is out of range");
        assert_eq!(verifier_reason("processed 0 insns\n"), "processed 0 insns");
        assert_eq!(verifier_reason(""), "(empty log)");
    }
}
