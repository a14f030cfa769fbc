//! The native-Rust baseline of the benchmarks: `icmp_drop` written
//! without Wasm, behind the same kind of kfunc as the engine.

use core::ffi::c_int;

/// The ICMP interceptor written natively in Rust (no policy parameters):
/// the native-module baseline the benchmarks set beside the Wasm filter,
/// behind the same kind of kfunc (`wasmfw_xdp_native_icmp`). 1 = drop.
#[no_mangle]
pub(crate) extern "C" fn wasmfw_native_icmp_drop(data: *const u8, len: usize) -> c_int {
    if data.is_null() {
        return 0;
    }
    // SAFETY: the kfunc passes the frame's linear part, `len` bytes.
    let p = unsafe { core::slice::from_raw_parts(data, len) };
    native_icmp_verdict(p) as c_int
}

fn native_icmp_verdict(p: &[u8]) -> bool {
    let be16 = |o: usize| p.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut off = 12;
    let mut ethertype = be16(off);
    // Up to two VLAN tags, like the SDK.
    for _ in 0..2 {
        if matches!(ethertype, Some(0x8100) | Some(0x88a8)) {
            off += 4;
            ethertype = be16(off);
        }
    }
    let l3 = off + 2;
    match ethertype {
        Some(0x0800) => {
            let Some(&vihl) = p.get(l3) else { return false };
            let ihl = usize::from(vihl & 0xf) * 4;
            let frag = be16(l3 + 6).unwrap_or(0) & 0x1fff;
            ihl >= 20 && frag == 0 && p.get(l3 + 9) == Some(&1) && p.get(l3 + ihl) == Some(&8)
        }
        Some(0x86dd) => p.get(l3 + 6) == Some(&58) && p.get(l3 + 40) == Some(&128),
        _ => false,
    }
}
