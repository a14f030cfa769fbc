//! Throughput helpers for kmod/tests/bench-throughput-guest.sh:
//! `wasmfw-bench flood`: sends one benchmark frame (ICMP echo request, 64
//! bytes, the packet every filter configuration drops or the stack ignores)
//! out of an interface as fast as it can for a fixed time, through an
//! AF_PACKET socket with `sendmmsg` batches (one syscall per batch: in UML
//! a syscall costs ~20 us, so one frame per syscall would measure the
//! sender, not the receiver's filter);
//! `wasmfw-bench attach-native`: attaches xdp-bridge calling the module's
//! native-Rust kfunc (`wasmfw_xdp_native_icmp`) at XDP on an interface.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::packets;

/// Frames per sendmmsg call.
const BATCH: usize = 256;

fn ifindex(iface: &str) -> Result<u32> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        bail!("no interface {iface} in this network namespace");
    }
    Ok(i)
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<std::result::Result<_, _>>()?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC address {s}"))
}

/// Sends the 64-byte ICMP echo request (from 192.0.2.1 to 10.0.0.2, MACs
/// replaced by `src_mac`/`dst_mac`) out of `iface` for `secs` seconds;
/// prints a JSON line with the frames the kernel accepted.
pub fn flood(iface: &str, dst_mac: &str, src_mac: &str, secs: f64) -> Result<()> {
    let p = packets::all(&["icmp_drop"])?.into_iter().next().context("no icmp_drop packet")?;
    let mut frame = p.frame.clone();
    frame[0..6].copy_from_slice(&parse_mac(dst_mac)?);
    frame[6..12].copy_from_slice(&parse_mac(src_mac)?);
    let idx = ifindex(iface)?;
    // SAFETY: plain socket calls on a descriptor we own.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = idx as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    let rc =
        unsafe { libc::bind(fd, &sll as *const _ as *const libc::sockaddr, size_of::<libc::sockaddr_ll>() as u32) };
    if rc < 0 {
        bail!("bind to {iface}: {}", std::io::Error::last_os_error());
    }
    let mut iov = libc::iovec { iov_base: frame.as_mut_ptr() as *mut libc::c_void, iov_len: frame.len() };
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        // SAFETY: msgs holds BATCH initialised headers pointing at `frame`.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            errors += 1; // ENOBUFS and the like: the receiver is behind
        } else {
            sent += n as u64;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    println!(
        "{}",
        json!({"iface": iface, "frame_bytes": frame.len(), "sent": sent, "send_errors": errors, "secs": elapsed})
    );
    Ok(())
}

/// Attaches xdp-bridge calling `wasmfw_xdp_native_icmp` on `iface` (native
/// mode, through netlink: it stays after this process exits; `ip link set
/// IFACE xdp off` removes it).
pub fn attach_native(iface: &str) -> Result<()> {
    let b = wasmfw_xdp_bridge::Bridge::load_calling("wasmfw_xdp_native_icmp")?;
    let id = b.attach(ifindex(iface)?, wasmfw_xdp_bridge::Mode::Native)?;
    println!("xdp-bridge -> wasmfw_xdp_native_icmp attached on {iface} (prog id {id})");
    Ok(())
}
