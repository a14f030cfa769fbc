//! What the XDP engines share: attach modes by name, and the
//! check that an interface's XDP slot is free (or holds xdp-bridge).

use anyhow::{bail, Result};
use wasmfw_xdp_bridge::Mode;

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Skb => "skb",
        Mode::Native => "native",
    }
}

pub fn mode_of(name: &str) -> Mode {
    if name == "native" {
        Mode::Native
    } else {
        Mode::Skb
    }
}

/// Refuses a load where another XDP program sits; `Ok(true)` if it is
/// xdp-bridge (a wasm filter is attached there).
pub fn xdp_slot_free(ifindex: u32, iface: &str) -> Result<bool> {
    match wasmfw_xdp_bridge::attached(ifindex)? {
        None => Ok(false),
        Some((_, name)) if name == wasmfw_xdp_bridge::PROG_NAME => Ok(true),
        Some((a, name)) => bail!(
            "another XDP program is attached on {iface} (id {}, '{name}'); detach it first (`ip link set dev {iface} xdp off`)",
            a.prog_id
        ),
    }
}
