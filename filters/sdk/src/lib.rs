//! Write wasmfw packet filters in Rust.
//!
//! A filter is a type implementing [`Filter`], registered with
//! [`filter!`]. The SDK provides everything ABI v1 (`docs/filter-abi.md`)
//! requires: the exports, the I/O buffer, the panic handler and safe
//! wrappers over the host imports. It also parses headers ([`net`]), the
//! configuration ([`config`]), and gives typed maps and counters ([`maps`])
//! and a [`log!`] macro. Nothing allocates and nothing uses floats.
//!
//! ```ignore
//! #![no_std]
//! use wasmfw_filter_sdk::{filter, Config, Counter, Error, Filter, Ip, Link, Verdict};
//!
//! struct DropTelnet { dropped: Counter }
//!
//! impl Filter for DropTelnet {
//!     fn init(config: &Config) -> Result<Self, Error> {
//!         config.reject_unknown_keys(&[])?;
//!         Ok(DropTelnet { dropped: Counter::declare("dropped")? })
//!     }
//!     #[inline(always)] // copied into the SDK's entry points per packet shape
//!     fn filter(&self, packet: &[u8], link: Link) -> Verdict {
//!         match Ip::parse(packet, link).and_then(|ip| ip.tcp()) {
//!             Some(tcp) if tcp.dst_port == 23 => {
//!                 self.dropped.inc();
//!                 Verdict::Drop
//!             }
//!             _ => Verdict::Pass,
//!         }
//!     }
//! }
//!
//! filter!(DropTelnet);
//! ```
//!
//! Every packet runs under a fuel budget, charged per function and loop
//! body entered: [`net::Ip`] reads only the headers a filter asks for, and
//! the runtime calls `filter` from copies specialised per packet shape
//! (`filters/README.md`, "Fuel").
//!
//! On targets other than wasm32 the host imports are replaced by an
//! in-process mock ([`testing`]), so filters can be unit-tested with
//! `cargo test`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_arch = "wasm32"))]
extern crate std;

pub mod config;
pub mod lists;
pub mod log;
pub mod maps;
pub mod net;
#[doc(hidden)]
pub mod rt;
mod sys;

pub use config::{ArrayVec, Cidr, CidrList, Config, Error};
pub use lists::{CidrSet, NameKey, NameSet, PortSet};
pub use log::Level;
pub use maps::{Counter, HashMap, MapError, PerCpuArray, Pod};
pub use net::{Addr, Icmp, Ip, IpVersion, Packet, Tcp, Udp, L4};
pub use wasmfw_abi as abi;
/// What happens to a packet (the ABI's values, so returning it costs nothing).
pub use wasmfw_abi::Verdict;

#[cfg(not(target_arch = "wasm32"))]
pub use sys::testing;

/// Where the packet handed to [`Filter::filter`] starts. The values are
/// the ABI's, so converting costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Link {
    /// An Ethernet header (XDP; pcap `LINKTYPE_ETHERNET`).
    Ethernet = abi::LINK_ETHERNET,
    /// An IPv4 or IPv6 header (netfilter; pcap `LINKTYPE_RAW`).
    RawIp = abi::LINK_RAW_IP,
}

impl Link {
    /// The link for an ABI `link` value; `None` for values ABI v1 does not define.
    pub fn from_abi(link: i32) -> Option<Link> {
        match link {
            abi::LINK_ETHERNET => Some(Link::Ethernet),
            abi::LINK_RAW_IP => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// Monotonic time in nanoseconds: `ktime_get_ns()` in the kernel, the
/// capture timestamp of the current packet under `wasmfw replay`.
pub fn now_ns() -> u64 {
    sys::now_ns() as u64
}

/// A packet filter. One value is created per instance (per CPU) by
/// [`Filter::init`]; the host then calls [`Filter::filter`] for every packet.
pub trait Filter: Sized + 'static {
    /// Reads the configuration and declares maps and counters (only
    /// possible here). An error is logged as one line (`param <key>: <why>`
    /// for configuration errors) and rejects the load.
    fn init(config: &Config) -> Result<Self, Error>;

    /// Decides the fate of one packet. `packet` holds the bytes the host
    /// copied (possibly truncated to the buffer); `link` says where it starts.
    fn filter(&self, packet: &[u8], link: Link) -> Verdict;
}

/// Emits the ABI v1 exports (`wasmfw_abi_version`, `wasmfw_buffer`,
/// `wasmfw_buffer_len`, `wasmfw_init`, `wasmfw_filter`) for a [`Filter`]
/// type. Use it once, at the top level of a `cdylib` crate.
#[macro_export]
macro_rules! filter {
    ($ty:ty) => {
        static __WASMFW_STATE: $crate::rt::Slot<$ty> = $crate::rt::Slot::new();

        #[unsafe(no_mangle)]
        pub extern "C" fn wasmfw_abi_version() -> i32 {
            $crate::abi::ABI_VERSION as i32
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasmfw_buffer() -> i32 {
            $crate::rt::buffer_addr()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasmfw_buffer_len() -> i32 {
            $crate::rt::BUFFER_LEN as i32
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasmfw_init(config_len: i32) -> i32 {
            // SAFETY: the host calls the exports of an instance one at a
            // time, from one thread, and never from inside an import.
            unsafe { $crate::rt::init(&__WASMFW_STATE, config_len) }
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasmfw_filter(packet_len: i32, link: i32) -> i32 {
            // SAFETY: as for `wasmfw_init`.
            unsafe { $crate::rt::filter(&__WASMFW_STATE, packet_len, link) }
        }
    };
}

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A trap: the host counts a fault and applies the policy's `on_fault`.
    // Formatting the message would pull core::fmt's panic machinery in.
    core::arch::wasm32::unreachable()
}
