//! Network namespaces: an attachment is identified by (namespace, interface)
//! everywhere (records, `status`, `stats`, `unload`).
//!
//! A namespace is named by the inode of its nsfs file (`/proc/PID/ns/net`,
//! what `ls -iL` or `ip netns identify` compare), which is stable while the
//! namespace lives, whatever mount namespace or launcher we run under. For
//! display it gets the name of the `/run/netns/NAME` bind mount that points
//! at it (`ip netns add`), `host` for PID 1's, else `net:[INODE]`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

const RUN_NETNS: &str = "/run/netns";

/// Why an attachment whose namespace is gone is no longer attached.
pub const DELETED: &str = "network namespace deleted";

fn ino(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The calling thread's network namespace.
pub fn current() -> Result<u64> {
    ino(Path::new("/proc/thread-self/ns/net"))
        .or_else(|| ino(Path::new("/proc/self/ns/net")))
        .ok_or_else(|| anyhow!("cannot stat /proc/self/ns/net (is /proc mounted?)"))
}

/// `ip netns` names, with their inodes.
fn named() -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(RUN_NETNS) else { return Vec::new() };
    let mut v: Vec<(String, u64)> =
        rd.flatten().filter_map(|e| Some((e.file_name().into_string().ok()?, ino(&e.path())?))).collect();
    v.sort();
    v
}

/// A display name: the `ip netns` name, `host`, or `net:[INODE]`.
pub fn display(ns: u64) -> String {
    if let Some((name, _)) = named().into_iter().find(|(_, i)| *i == ns) {
        return name;
    }
    if ino(Path::new("/proc/1/ns/net")) == Some(ns) {
        return "host".into();
    }
    format!("net:[{ns}]")
}

/// A file that refers to namespace `ns`, if it still exists: an `ip netns`
/// bind mount, else some process living in it.
fn find(ns: u64) -> Option<PathBuf> {
    if let Some((name, _)) = named().into_iter().find(|(_, i)| *i == ns) {
        return Some(Path::new(RUN_NETNS).join(name));
    }
    let want = format!("net:[{ns}]");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let p = e.path().join("ns/net");
        if std::fs::read_link(&p).is_ok_and(|l| l.to_string_lossy() == want) {
            return Some(p);
        }
    }
    None
}

fn setns(file: &File) -> std::io::Result<()> {
    // SAFETY: setns(2) on an open nsfs fd; only the calling thread moves.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` inside namespace `ns`: on this thread if it is already there,
/// else on a thread that enters it (setns moves one thread only, so this
/// process's own namespace is untouched). `Ok(None)`: the namespace is gone.
pub fn run_in<T: Send>(ns: u64, f: impl FnOnce() -> Result<T> + Send) -> Result<Option<T>> {
    if current()? == ns {
        return f().map(Some);
    }
    let Some(path) = find(ns) else { return Ok(None) };
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file)
                .map_err(|e| anyhow!("entering network namespace {} ({}): {e}", display(ns), path.display()))?;
            f().map(Some)
        })
        .join()
        .map_err(|_| anyhow!("thread inside namespace {} panicked", display(ns)))?
    })
}

/// `--netns NAME|PATH`: moves this process into that namespace, as `ip -n`
/// does, before anything else runs (the process is single-threaded then).
pub fn enter(name: &str) -> Result<()> {
    let path = if name.contains('/') { PathBuf::from(name) } else { Path::new(RUN_NETNS).join(name) };
    let file = File::open(&path).with_context(|| format!("no network namespace '{name}' ({})", path.display()))?;
    setns(&file).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            anyhow!("entering network namespace '{name}' needs root (CAP_SYS_ADMIN)")
        } else {
            anyhow!("entering network namespace '{name}': {e}")
        }
    })?;
    if current()? != ino(&path).unwrap_or(0) {
        bail!("setns to '{name}' did not take effect");
    }
    Ok(())
}
