//! Who may do what, and what names resolve to: capabilities and
//! interface names (in the calling thread's network namespace).

use std::ffi::CString;

use anyhow::{anyhow, bail, Result};

/// Effective capabilities of this process (/proc/self/status CapEff).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

pub fn check_privileges(what: &str) -> Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !has(CAP_NET_ADMIN) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        bail!("{what} needs root (CAP_NET_ADMIN and CAP_BPF or CAP_SYS_ADMIN); run it with sudo");
    }
    Ok(())
}

pub fn check_iface(iface: &str) -> Result<u32> {
    if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
        bail!("'{iface}' is not a valid interface name");
    }
    let c = CString::new(iface).map_err(|_| anyhow!("'{iface}' is not a valid interface name"))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface '{iface}' (in this network namespace)");
    }
    Ok(idx)
}

/// The index of `iface` in this thread's namespace, if it exists.
pub fn ifindex_of(iface: &str) -> Option<u32> {
    let c = CString::new(iface).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}
