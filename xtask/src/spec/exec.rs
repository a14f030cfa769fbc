//! Executing: the requests in userspace and in the kernel (UML guest), and
//! the guest-side driver of `/dev/wasmfw_spectest`.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wasmfw_spectest_exec::wire::{self, Status};

use super::{SpecFile, FAULT_SWEEP_N, FAULT_SWEEP_REQS, FAULT_SWEEP_STRIDE, GUEST_TIMEOUT_SECS, RESP_CAP};
use crate::deps::root;

pub(super) fn run_userspace(f: &SpecFile) -> Vec<Option<wire::Response>> {
    let mut s = wasmfw_spectest_exec::Session::new();
    f.requests
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            s.exec(r, &mut out);
            wire::decode_resp(&out)
        })
        .collect()
}

/// Builds wasmfw_spectest.ko, writes every file's requests to the scratch
/// dir, boots the guest with kmod/spectest/guest.sh (which feeds them to
/// the module through `xtask spec-guest`) and reads the responses back.
pub(super) fn run_kernel(files: &[SpecFile], guest: &str) -> Result<Vec<Vec<Option<wire::Response>>>> {
    if guest != "uml" && guest != "x86" {
        bail!("--guest {guest}: uml or x86");
    }
    let root = root();
    let out = Command::new("nice")
        .args(["-n", "10"])
        .arg(root.join("kmod/spectest/build.sh"))
        .arg(guest)
        .output()
        .context("kmod/spectest/build.sh")?;
    std::io::stderr().write_all(&out.stderr)?;
    if !out.status.success() {
        bail!("kmod/spectest/build.sh {guest} failed");
    }
    let ko = String::from_utf8(out.stdout)?.trim().to_string();
    let scratch = root.join("target/spectest/scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    write_batch(&scratch.join("requests.bin"), files)?;
    let xtask = std::env::current_exe()?;
    let log = root.join("target/spectest/guest.log");
    let status = Command::new(root.join("kmod/guest/boot.sh"))
        .arg(guest)
        .args(["--init", "kmod/spectest/guest.sh", "--timeout", &GUEST_TIMEOUT_SECS.to_string(), "--mem", "1G"])
        .arg("--scratch")
        .arg(&scratch)
        .arg("--log")
        .arg(&log)
        .arg("--env")
        .arg(format!("WFS_KO={ko}"))
        .arg("--env")
        .arg(format!("WFS_XTASK={}", xtask.display()))
        .arg("--env")
        .arg(format!("WFS_FAULT_SWEEP={FAULT_SWEEP_N}"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("kmod/guest/boot.sh")?;
    let resp = read_batch(&scratch.join("responses.bin"), files);
    match std::fs::read_to_string(scratch.join("fault.txt")) {
        Ok(t) => {
            eprintln!("spec: {}", t.trim());
            if !t.contains(" 0 ioctl errors") || t.contains(" 0 engine panics") {
                bail!("fault injection: expected recovered engine panics and no ioctl error: {}", t.trim());
            }
        }
        Err(e) => bail!("fault injection left no result ({e}); guest log: {}", log.display()),
    }
    if !status.success() {
        eprintln!(
            "spec: the guest exited with {status} (log: {}); responses missing from there on count as failures",
            log.display()
        );
        if status.code() == Some(126) {
            // boot.sh's findings (the one kernel-problem regex is there).
            let problems = std::fs::read_to_string(scratch.join("kernel-problems.txt")).unwrap_or_default();
            let first: Vec<&str> = problems.lines().take(5).collect();
            bail!("the kernel log of the spec run has problem reports (see {}):\n{}", log.display(), first.join("\n"));
        }
    }
    resp
}

/// requests.bin: per file: name len u32 + name, count u32, then count x
/// (len u32 + request).
fn write_batch(path: &Path, files: &[SpecFile]) -> Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for f in files {
        b.extend_from_slice(&(f.name.len() as u32).to_le_bytes());
        b.extend_from_slice(f.name.as_bytes());
        b.extend_from_slice(&(f.requests.len() as u32).to_le_bytes());
        for r in &f.requests {
            b.extend_from_slice(&(r.len() as u32).to_le_bytes());
            b.extend_from_slice(r);
        }
    }
    std::fs::write(path, b)?;
    Ok(())
}

/// responses.bin: the responses in request order, each len u32 + bytes;
/// whatever is missing (the guest died) stays None.
fn read_batch(path: &Path, files: &[SpecFile]) -> Result<Vec<Vec<Option<wire::Response>>>> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut pos = 0usize;
    let mut next = || -> Option<wire::Response> {
        let n = u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let r = wire::decode_resp(data.get(pos + 4..pos + 4 + n)?);
        pos += 4 + n;
        r
    };
    Ok(files.iter().map(|f| f.requests.iter().map(|_| next()).collect()).collect())
}

/// Inside the guest: feeds requests.bin to /dev/wasmfw_spectest, one
/// session per file, and writes responses.bin (flushed per file, so a
/// crash keeps what came before).
pub fn guest_driver(reqs: &Path, resps: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let data = std::fs::read(reqs)?;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/wasmfw_spectest")
        .context("/dev/wasmfw_spectest")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(resps)?);
    let mut pos = 0usize;
    let u32at = |pos: &mut usize| -> Result<usize> {
        let v = u32::from_le_bytes(data.get(*pos..*pos + 4).context("truncated")?.try_into()?) as usize;
        *pos += 4;
        Ok(v)
    };
    let nfiles = u32at(&mut pos)?;
    let mut resp = vec![0u8; RESP_CAP];
    for _ in 0..nfiles {
        let n = u32at(&mut pos)?;
        let name = String::from_utf8_lossy(&data[pos..pos + n]).to_string();
        pos += n;
        let count = u32at(&mut pos)?;
        // SAFETY: a plain ioctl without argument on an open fd.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) };
        if rc != 0 {
            bail!("{name}: reset: {}", std::io::Error::last_os_error());
        }
        let t = Instant::now();
        for _ in 0..count {
            let len = u32at(&mut pos)?;
            let req = &data[pos..pos + len];
            pos += len;
            let mut arg = WfsExec {
                req: req.as_ptr() as u64,
                req_len: len as u32,
                resp_cap: RESP_CAP as u32,
                resp: resp.as_mut_ptr() as u64,
                resp_len: 0,
                pad: 0,
            };
            // SAFETY: `arg` points to live buffers of the lengths it states
            // for the whole call.
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_EXEC as _, &mut arg as *mut WfsExec) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                let mut r = Vec::new();
                wire::encode_resp(&mut r, Status::Other, &format!("ioctl: {e}"), &wasmfw_spectest_exec::Resp::None);
                out.write_all(&(r.len() as u32).to_le_bytes())?;
                out.write_all(&r)?;
                continue;
            }
            let n = (arg.resp_len as usize).min(RESP_CAP);
            out.write_all(&(n as u32).to_le_bytes())?;
            out.write_all(&resp[..n])?;
        }
        out.flush()?;
        eprintln!("spec-guest: {name}: {count} requests in {:.2} s", t.elapsed().as_secs_f64());
    }
    if let Some(n) = std::env::var("WFS_FAULT_SWEEP").ok().and_then(|v| v.parse::<usize>().ok()) {
        fault_sweep(&dev, &data, n, &resps.with_file_name("fault.txt"))?;
    }
    Ok(())
}

/// Fails allocation n of every command for n = 1..=max while the first
/// requests of the first file run: each command must answer (an engine
/// panic, an error, or its result), the module must stay usable.
fn fault_sweep(dev: &std::fs::File, data: &[u8], max: usize, out: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // The first file's first requests (write_batch's layout).
    let mut reqs = Vec::new();
    let mut pos = 4usize;
    let rd = |pos: usize| -> usize { u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize };
    pos += 4 + rd(pos);
    let count = rd(pos).min(FAULT_SWEEP_REQS);
    pos += 4;
    for _ in 0..count {
        let len = rd(pos);
        reqs.push(&data[pos + 4..pos + 4 + len]);
        pos += 4 + len;
    }
    let param = "/sys/module/wasmfw_spectest/parameters/fail_alloc_nth";
    let (mut panics, mut other, mut ok, mut ioctl_err, mut reset_fail) = (0, 0, 0, 0, 0);
    let mut resp = vec![0u8; RESP_CAP];
    for n in (1..=max).step_by(FAULT_SWEEP_STRIDE) {
        std::fs::write(param, n.to_string())?;
        // SAFETY: a plain ioctl without argument on an open fd.
        if unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) } != 0 {
            reset_fail += 1; // the session itself could not be made
            continue;
        }
        for req in &reqs {
            let mut arg = WfsExec {
                req: req.as_ptr() as u64,
                req_len: req.len() as u32,
                resp_cap: RESP_CAP as u32,
                resp: resp.as_mut_ptr() as u64,
                resp_len: 0,
                pad: 0,
            };
            // SAFETY: as in guest_driver.
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_EXEC as _, &mut arg as *mut WfsExec) };
            let err = std::io::Error::last_os_error();
            if rc != 0 {
                // ENOENT: an earlier panic abandoned the session; anything else is wrong.
                if err.raw_os_error() != Some(libc::ENOENT) {
                    ioctl_err += 1;
                }
                continue;
            }
            match wire::decode_resp(&resp[..arg.resp_len as usize]).map(|r| r.status) {
                Some(Status::Panic) => panics += 1,
                Some(Status::Ok) => ok += 1,
                _ => other += 1,
            }
        }
    }
    std::fs::write(param, "0")?;
    // The module still works after the sweep.
    // SAFETY: as above.
    let alive = unsafe { libc::ioctl(dev.as_raw_fd(), WFS_IOC_RESET as _) } == 0;
    let line = format!(
        "fault injection (fail_alloc_nth = 1..{max} step {FAULT_SWEEP_STRIDE}, first {count} requests of the first file): {panics} engine panics recovered, {reset_fail} sessions refused (ENOMEM), {other} errors, {ok} ok, {ioctl_err} ioctl errors, module {} afterwards",
        if alive { "usable" } else { "UNUSABLE" }
    );
    eprintln!("spec-guest: {line}");
    std::fs::write(out, line)?;
    if !alive {
        bail!("the module is unusable after fault injection");
    }
    Ok(())
}

/// Mirrors kmod/spectest/module/wasmfw_spectest_uapi.h.
#[repr(C)]
struct WfsExec {
    req: u64,
    req_len: u32,
    resp_cap: u32,
    resp: u64,
    resp_len: u32,
    pad: u32,
}
const WFS_MAGIC: u64 = b'S' as u64;
/// _IO('S', 1)
const WFS_IOC_RESET: u64 = WFS_MAGIC << 8 | 1;
/// _IOWR('S', 2, struct wfs_exec): dir 3 << 30, size << 16.
const WFS_IOC_EXEC: u64 = 3 << 30 | (size_of::<WfsExec>() as u64) << 16 | WFS_MAGIC << 8 | 2;
