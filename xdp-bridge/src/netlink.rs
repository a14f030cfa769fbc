//! XDP attachment through rtnetlink (`RTM_SETLINK` + `IFLA_XDP`), as
//! `ip link set dev IF xdp` and libxdp do.
//!
//! Why not a bpf link: a bpf link lives as long as an fd or a bpffs pin
//! holds it, and a pin lives in a mount namespace. `ip netns exec` runs its
//! command with a private mount namespace and a fresh `/sys`, so a link
//! pinned there dies with the command and the filter silently detaches. A
//! netlink attachment belongs to the interface: it stays until it is
//! detached or the interface goes away, whatever started the loader
//! (`ip netns exec`, `nsenter`, a systemd unit, a container). Programs and
//! their maps are then found from the interface (`IFLA_XDP_PROG_ID`), not
//! from pins. The socket is bound to the calling thread's network
//! namespace, so every call here acts on that namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Result};

use crate::Mode;

const NETLINK_ROUTE: i32 = 0;
const NETLINK_EXT_ACK: i32 = 11;
const SOL_NETLINK: i32 = 270;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// In an NLMSG_ERROR: extended-ack attributes follow the echoed header.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_EXPECTED_FD: u16 = 8;

const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// `IFLA_XDP_ATTACHED` values.
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;

/// What an interface has attached at XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    pub prog_id: u32,
    pub mode: Mode,
}

fn mode_flags(mode: Mode) -> u32 {
    match mode {
        Mode::Skb => XDP_FLAGS_SKB_MODE,
        Mode::Native => XDP_FLAGS_DRV_MODE,
    }
}

/// A route netlink socket of the calling thread's network namespace.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> Result<Socket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_ROUTE) };
        if fd < 0 {
            bail!("netlink socket: {}", io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let sock = Socket(unsafe { OwnedFd::from_raw_fd(fd) });
        let one: i32 = 1;
        // Best effort: extended acks carry the kernel's error text.
        // SAFETY: setsockopt reads size_of::<i32>() bytes at &one.
        unsafe {
            libc::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one as *const i32 as *const _, 4);
        }
        Ok(sock)
    }

    /// Sends one request and returns the reply messages up to the ack.
    fn request(&self, msg: &[u8]) -> Result<Vec<(u16, Vec<u8>)>> {
        // SAFETY: `msg` is a valid buffer of msg.len() bytes.
        let n = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr() as *const _, msg.len(), 0) };
        if n < 0 {
            bail!("netlink send: {}", io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), 0) };
            if n < 0 {
                bail!("netlink recv: {}", io::Error::last_os_error());
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().unwrap());
                if len < 16 || off + len > n {
                    bail!("netlink: malformed reply");
                }
                let body = &buf[off + 16..off + len];
                if ty == NLMSG_ERROR {
                    let errno = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                    if errno == 0 {
                        return Ok(out);
                    }
                    let err = io::Error::from_raw_os_error(-errno);
                    return Err(match extack_message(body, flags) {
                        Some(m) => anyhow!("{err} ({m})"),
                        None => anyhow!("{err}"),
                    });
                }
                out.push((ty, body.to_vec()));
                off += (len + 3) & !3;
            }
        }
    }
}

/// The kernel's error text of an extended ack, if it sent one.
fn extack_message(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || body.len() < 20 {
        return None;
    }
    // errno (4) + the echoed request header (16); with NLM_F_CAPPED unset
    // the whole request follows, its length is in that header.
    let echoed = u32::from_ne_bytes(body[4..8].try_into().ok()?) as usize;
    let capped = flags & 0x100 != 0;
    let start = 4 + if capped { 16 } else { (echoed + 3) & !3 };
    attrs(body.get(start..)?)
        .find(|(t, _)| *t == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| String::from_utf8_lossy(v).trim_end_matches('\0').to_string())
}

/// Iterates the (type, payload) attributes of a buffer.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let val = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((ty, val))
    })
}

/// Builds `nlmsghdr + ifinfomsg(ifindex) + attrs`.
fn link_msg(ty: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + attrs.len());
    let len = 16 + 16 + attrs.len();
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
                                              // struct ifinfomsg: family, pad, type, index, flags, change
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(attrs);
    m
}

fn attr(ty: u16, val: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + val.len() + 3);
    a.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(val);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

fn set_xdp(ifindex: u32, fd: RawFd, flags: u32, expected_fd: Option<RawFd>) -> Result<()> {
    let mut inner = attr(IFLA_XDP_FD, &fd.to_ne_bytes());
    let flags = if expected_fd.is_some() { flags | XDP_FLAGS_REPLACE } else { flags };
    inner.extend(attr(IFLA_XDP_FLAGS, &flags.to_ne_bytes()));
    if let Some(e) = expected_fd {
        inner.extend(attr(IFLA_XDP_EXPECTED_FD, &e.to_ne_bytes()));
    }
    let xdp = attr(IFLA_XDP | NLA_F_NESTED, &inner);
    Socket::open()?.request(&link_msg(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ifindex, &xdp))?;
    Ok(())
}

/// Attaches `prog_fd` at XDP on `ifindex`; fails (EBUSY) if any XDP program
/// is already attached there.
pub fn attach(ifindex: u32, prog_fd: RawFd, mode: Mode) -> Result<()> {
    set_xdp(ifindex, prog_fd, mode_flags(mode) | XDP_FLAGS_UPDATE_IF_NOEXIST, None).map_err(|e| {
        if e.to_string().contains("Device or resource busy") {
            anyhow!("another XDP program is already attached there (detach it first, e.g. `ip link set dev IF xdp off`): {e}")
        } else {
            e
        }
    })
}

/// Swaps the XDP program of `ifindex` from `old_fd`'s to `new_fd`'s in one
/// step (XDP_FLAGS_REPLACE: no moment without a program), only if `old_fd`'s
/// program is still the one attached.
pub fn replace(ifindex: u32, new_fd: RawFd, old_fd: RawFd, mode: Mode) -> Result<()> {
    set_xdp(ifindex, new_fd, mode_flags(mode), Some(old_fd))
}

/// Detaches the XDP program of `ifindex`, only if it is still `prog_fd`'s
/// program (someone else's program is left alone).
pub fn detach(ifindex: u32, prog_fd: RawFd, mode: Mode) -> Result<()> {
    set_xdp(ifindex, -1, mode_flags(mode), Some(prog_fd))
}

/// The XDP program attached on `ifindex`, if any (in this namespace).
pub fn query(ifindex: u32) -> Result<Option<Attached>> {
    let replies = Socket::open()?.request(&link_msg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, ifindex, &[]))?;
    for (ty, body) in replies {
        if ty != RTM_NEWLINK || body.len() < 16 {
            continue;
        }
        let Some((_, xdp)) = attrs(&body[16..]).find(|(t, _)| *t == IFLA_XDP) else { continue };
        let mut mode = None;
        let mut prog_id = 0;
        for (t, v) in attrs(xdp) {
            match (t, v.len()) {
                (IFLA_XDP_ATTACHED, 1..) => {
                    mode = match v[0] {
                        XDP_ATTACHED_SKB => Some(Mode::Skb),
                        XDP_ATTACHED_DRV => Some(Mode::Native),
                        _ => None,
                    }
                }
                (IFLA_XDP_PROG_ID, 4..) => prog_id = u32::from_ne_bytes(v[..4].try_into().unwrap()),
                _ => {}
            }
        }
        return Ok(mode.filter(|_| prog_id != 0).map(|mode| Attached { prog_id, mode }));
    }
    bail!("no interface with index {ifindex}")
}
