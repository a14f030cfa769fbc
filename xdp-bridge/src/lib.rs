//! xdp-bridge: the XDP program that hands every packet to the Wasm filter
//! in the wasmfw kernel module, through the module's kfunc
//! `wasmfw_xdp_run(struct xdp_md *)`.
//!
//! The program is five instructions, written here directly: aya 0.14 cannot
//! relocate a call to a kfunc that lives in a *module* (only vmlinux
//! kfuncs), and rustc emits no BTF for extern declarations. So the loader
//! does what libbpf does for `__ksym` calls: it finds the kfunc's BTF id in
//! the module's split BTF (`/sys/kernel/btf/wasmfw`), gets an fd for that
//! BTF object, and passes it in `fd_array`, with the call instruction's
//! offset pointing at it (`docs/xdp-bridge.md`).

mod btf;
pub mod netlink;
/// Raw bpf(2): shared with the compiled tier (`wasm2ebpf`).
pub mod sys;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

pub use btf::find_kfunc;

/// The kfunc the bridge calls, and the module that defines it.
pub const KFUNC: &str = "wasmfw_xdp_run";
pub const MODULE: &str = "wasmfw";

const XDP_PASS: i32 = 2;

/// `r0 = wasmfw_xdp_run(ctx); return r0 <= XDP_REDIRECT ? r0 : XDP_PASS`.
fn program(btf_id: u32) -> [sys::Insn; 5] {
    use sys::Insn;
    [
        // call kfunc: src_reg = BPF_PSEUDO_KFUNC_CALL, off = fd_array index of the module BTF
        Insn::new(0x85, 0, 2, 1, btf_id as i32),
        // if r0 > 4 goto +1
        Insn::new(0x25, 0, 0, 1, 4),
        Insn::new(0x95, 0, 0, 0, 0),        // exit
        Insn::new(0xb7, 0, 0, 0, XDP_PASS), // r0 = XDP_PASS
        Insn::new(0x95, 0, 0, 0, 0),        // exit
    ]
}

/// A loaded bridge program.
pub struct Bridge {
    pub prog: OwnedFd,
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Skb,
    Native,
}

impl Bridge {
    /// Loads the bridge, resolving the kfunc in the wasmfw module's BTF.
    pub fn load() -> Result<Bridge> {
        Bridge::load_calling(KFUNC)
    }

    /// A bridge to another kfunc of the module with the same signature
    /// (`wasmfw_xdp_native_icmp`, the benchmarks' native baseline).
    pub fn load_calling(kfunc: &str) -> Result<Bridge> {
        let (btf_fd, btf_id) = find_kfunc(MODULE, kfunc)?;
        let insns = program(btf_id);
        let prog = sys::prog_load_xdp(&insns, &[btf_fd.as_raw_fd(), btf_fd.as_raw_fd()], PROG_NAME)
            .context("loading the xdp-bridge program")?;
        Ok(Bridge { prog })
    }

    /// Attaches at XDP on `ifindex` through netlink ([`netlink`]): the
    /// attachment belongs to the interface and outlives this process,
    /// whatever mount namespace it runs in. Returns the program id.
    pub fn attach(&self, ifindex: u32, mode: Mode) -> Result<u32> {
        netlink::attach(ifindex, self.prog.as_raw_fd(), mode).context("attaching xdp-bridge")?;
        Ok(sys::prog_id_name(self.prog.as_raw_fd())?.0)
    }

    /// BPF_PROG_TEST_RUN: the XDP verdict and the kernel's mean ns per run.
    /// The packet's device is the test run's (`lo` of this netns).
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<(u32, u32)> {
        sys::prog_test_run(self.prog.as_raw_fd(), packet, repeat)
    }
}

/// The name the bridge program is loaded with (what `bpftool prog` shows).
pub const PROG_NAME: &str = "wasmfw_bridge";

/// The XDP program attached on `ifindex` in this namespace: its id, mode
/// and name, if any.
pub fn attached(ifindex: u32) -> Result<Option<(netlink::Attached, String)>> {
    let Some(a) = netlink::query(ifindex)? else { return Ok(None) };
    let name = sys::prog_get_fd_by_id(a.prog_id).and_then(|fd| sys::prog_id_name(fd.as_raw_fd())).map(|(_, n)| n)?;
    Ok(Some((a, name)))
}

/// Detaches the XDP program with id `prog_id` from `ifindex`, if it is
/// still the one attached (another program is left alone).
pub fn detach(ifindex: u32, prog_id: u32, mode: Mode) -> Result<()> {
    let fd = sys::prog_get_fd_by_id(prog_id)?;
    netlink::detach(ifindex, fd.as_raw_fd(), mode)
}

/// Replaces the XDP program with id `old_prog_id` on `ifindex` by `new_fd`
/// atomically (see [`netlink::replace`]).
pub fn replace(ifindex: u32, new_fd: std::os::fd::RawFd, old_prog_id: u32, mode: Mode) -> Result<()> {
    let old = sys::prog_get_fd_by_id(old_prog_id)?;
    netlink::replace(ifindex, new_fd, old.as_raw_fd(), mode)
}

/// An XDP program that only returns XDP_PASS: the test-run floor.
pub fn load_empty() -> Result<Bridge> {
    let insns = [sys::Insn::new(0xb7, 0, 0, 0, XDP_PASS), sys::Insn::new(0x95, 0, 0, 0, 0)];
    Ok(Bridge { prog: sys::prog_load_xdp(&insns, &[], "wasmfw_empty")? })
}

/// Fails with a clear message if the module (and so its kfunc) is absent.
pub fn require_module() -> Result<()> {
    if !Path::new("/sys/kernel/btf").join(MODULE).exists() {
        bail!("the wasmfw kernel module (with BTF) is not loaded: /sys/kernel/btf/{MODULE} is missing");
    }
    Ok(())
}
