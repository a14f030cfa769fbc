//! The runtime behind [`filter!`](crate::filter): the I/O buffer, the
//! configuration copy and the filter state. Not for direct use.
//!
//! A Wasm instance is single-threaded and the host never re-enters it (no
//! import calls back into an export), so the statics below are only ever
//! touched by one call at a time. The functions that touch them are
//! `unsafe` because that is only true when the exports call them.

use core::cell::UnsafeCell;

use crate::config::Config;
use crate::log::Level;
use crate::{abi, net, Filter, Link, Verdict};

/// Size of the I/O buffer: room for a jumbo-ish frame and the largest config.
pub const BUFFER_LEN: usize = 16 * 1024;
const _: () = assert!(BUFFER_LEN >= abi::MIN_BUFFER_LEN as usize && BUFFER_LEN >= abi::MAX_CONFIG_LEN);

/// A static the host or the runtime writes, accessed as described above.
struct Cell<T>(UnsafeCell<T>);

// SAFETY: only used through the `unsafe` functions of this module, whose
// contract (one call at a time, single thread) rules out data races.
unsafe impl<T> Sync for Cell<T> {}

/// The I/O buffer: the host writes the config or the packet here.
static BUFFER: Cell<[u8; BUFFER_LEN]> = Cell(UnsafeCell::new([0; BUFFER_LEN]));

/// A copy of the configuration, kept for the whole life of the instance so
/// that a filter can keep `&'static str` slices of it (e.g. names to match).
static CONFIG: Cell<[u8; abi::MAX_CONFIG_LEN]> = Cell(UnsafeCell::new([0; abi::MAX_CONFIG_LEN]));

/// The filter's state, set by a successful init.
pub struct Slot<T>(UnsafeCell<Option<T>>);

// SAFETY: as for `Cell`: accessed only through `init` and `filter` below.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub const fn new() -> Self {
        Slot(UnsafeCell::new(None))
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The address of the I/O buffer in linear memory.
pub fn buffer_addr() -> i32 {
    BUFFER.0.get() as usize as i32
}

/// `wasmfw_init`: copies the config out of the buffer and runs `F::init`.
///
/// # Safety
/// Must be called only from the `wasmfw_init` export: no other call into
/// this module may be running (single thread, no re-entrance).
pub unsafe fn init<F: Filter>(slot: &'static Slot<F>, config_len: i32) -> i32 {
    // SAFETY: no call is running, so nothing borrows the state (which may
    // hold `&'static` slices of CONFIG): drop it before CONFIG changes.
    unsafe { *slot.0.get() = None };
    let len = match usize::try_from(config_len) {
        Ok(n) if n <= abi::MAX_CONFIG_LEN => n,
        _ => {
            crate::log!(Level::Error, "config: length {} is not within 0..={}", config_len, abi::MAX_CONFIG_LEN);
            return abi::E_INVAL;
        }
    };
    // SAFETY: no reference to CONFIG exists any more (the state is gone and
    // Config values do not outlive an init call), and BUFFER is not written
    // by the host while we run; `len` is within both arrays.
    let text: &'static [u8] = unsafe {
        let config = &mut *CONFIG.0.get();
        let buffer = &*BUFFER.0.get();
        config[..len].copy_from_slice(&buffer[..len]);
        &config[..len]
    };
    let Ok(text) = core::str::from_utf8(text) else {
        crate::log!(Level::Error, "config: not UTF-8");
        return abi::E_INVAL;
    };
    match F::init(&Config::new(text)) {
        Ok(state) => {
            // SAFETY: nothing borrows the state (see above).
            unsafe { *slot.0.get() = Some(state) };
            0
        }
        Err(e) => {
            crate::log!(Level::Error, "{}", e);
            e.code()
        }
    }
}

/// `wasmfw_filter`: runs `F::filter` on the packet in the buffer.
/// Passes if init did not succeed or `link` is unknown; a `packet_len`
/// outside `0..=BUFFER_LEN` (which no host passes) is an empty packet.
///
/// # Safety
/// Must be called only from the `wasmfw_filter` export (see [`init`]).
#[inline(always)]
pub unsafe fn filter<F: Filter>(slot: &'static Slot<F>, packet_len: i32, link: i32) -> i32 {
    // SAFETY: only `init` writes the state and it is not running.
    let Some(state) = (unsafe { &*slot.0.get() }) else {
        return Verdict::Pass.abi();
    };
    // SAFETY: the host writes the buffer only between calls; nothing else
    // writes it while this shared borrow lives (it ends with this call).
    let buffer = unsafe { &*BUFFER.0.get() };
    let len = match usize::try_from(packet_len) {
        Ok(n) if n <= BUFFER_LEN => n,
        _ => 0,
    };
    // Always a prefix of the buffer, so the compiler knows where it starts.
    let packet = buffer.get(..len).unwrap_or(&[]);
    // wasmi charges for every instruction of a function when the function
    // is entered, taken or not. So the filter runs from copies specialised
    // by packet shape: here, inlined, for untagged IPv4 over Ethernet (the
    // XDP common case), where the compiler sees the EtherType test repeated
    // in `Ip::parse` and drops every other parsing path; out of line for
    // anything else. Each packet pays for its own path only.
    let verdict = if link == abi::LINK_ETHERNET && net::is_untagged_ipv4(packet) {
        state.filter(packet, Link::Ethernet)
    } else {
        filter_other(state, packet, link)
    };
    verdict.abi()
}

/// The filter for every packet that is not untagged IPv4 over Ethernet: a
/// dispatcher to a copy per common shape (each out of line, so that a
/// packet pays for its copy only) and a general one.
#[inline(never)]
fn filter_other<F: Filter>(state: &F, packet: &[u8], link: i32) -> Verdict {
    match Link::from_abi(link) {
        Some(Link::RawIp) if net::is_raw_ipv4(packet) => filter_raw_ipv4(state, packet),
        Some(Link::Ethernet) if net::is_untagged_ipv6(packet) => filter_ipv6(state, packet),
        Some(link) => filter_any(state, packet, link),
        None => Verdict::Pass,
    }
}

/// Raw IPv4 (netfilter): the compiler sees the version test repeated in
/// `Ip::parse` and keeps the IPv4 path only.
#[inline(never)]
fn filter_raw_ipv4<F: Filter>(state: &F, packet: &[u8]) -> Verdict {
    if net::is_raw_ipv4(packet) {
        state.filter(packet, Link::RawIp)
    } else {
        Verdict::Pass // not reached: the caller checked
    }
}

/// Untagged IPv6 over Ethernet, as above.
#[inline(never)]
fn filter_ipv6<F: Filter>(state: &F, packet: &[u8]) -> Verdict {
    if net::is_untagged_ipv6(packet) {
        state.filter(packet, Link::Ethernet)
    } else {
        Verdict::Pass // not reached: the caller checked
    }
}

/// Everything else: VLAN tags, raw IPv6, not IP.
#[inline(never)]
fn filter_any<F: Filter>(state: &F, packet: &[u8], link: Link) -> Verdict {
    state.filter(packet, link)
}
