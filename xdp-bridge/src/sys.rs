//! The few bpf(2) commands the bridge needs, as raw syscalls.

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

/// Loads an XDP program; on failure the verifier's log is in the error.
pub fn prog_load_xdp(insns: &[Insn], fd_array: &[i32], name: &str) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: BPF_XDP,
        fd_array: fd_array.as_ptr() as u64,
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => Ok(fd(rc)),
        Err(e) => {
            let text = CStr::from_bytes_until_nul(&log).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
            Err(anyhow!("BPF_PROG_LOAD: {e}; verifier: {}", verifier_reason(&text)))
        }
    }
}

/// The verifier's reason for a refusal: the last lines of its log before
/// the statistics line it always ends with ("processed N insns ..."), which
/// alone says nothing when the program was refused before verification.
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

/// How many log lines [`verifier_reason`] quotes.
const VERIFIER_REASON_LINES: usize = 3;

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
