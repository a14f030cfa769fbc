//! The /dev/wasmfw ioctl interface (crate `wasmfw-uapi`), defined once:
//! the module (`kmod/wasmfw/wasmfw_main.rs`, which includes this file by
//! path), `wasmfw` (`ctl`), the policy checks (`ctl/policy`), engine-ffi
//! (the records it writes) and the eBPF twins (capture bits) use it.
//! `kmod/wasmfw/wasmfw_uapi.h` is generated from this file by `cargo xtask
//! uapi` (its doc comments become the header's comments);
//! `ctl/tests/uapi_layout.rs` compiles the header and checks every struct,
//! field offset, constant and ioctl number against [`LAYOUTS`] and
//! [`CONSTANTS`], and `kmod/tests/wfioctl.py` packs its requests from the
//! same tables (`wasmfw uapi-layout`).
//!
//! `core` only, no dependencies: the module, engine-ffi and compare-ebpf
//! build it for kernel and BPF targets. Every struct is `repr(C)`, 8-byte
//! aligned, with explicit padding and pointers as `u64`, so its bytes are
//! all initialised and any bit pattern is valid. Bump [`UAPI_VERSION`] on
//! any change.
#![no_std]
#![allow(dead_code, unreachable_pub)]

use core::mem::{offset_of, size_of};

/// 2: info.netns_ino; 3: MAP_DUMP pages; 4: load/info flags; 5: CAPTURE_CTL/READ; 6: LOG_READ.
pub const UAPI_VERSION: u32 = 6;
pub const NAME_LEN: usize = 32;
pub const IFNAME_LEN: usize = 16;
pub const POLICY_LEN: usize = 128;
/// Bytes of a module.
pub const MAX_WASM: u32 = 1 << 20;
pub const MAX_CONFIG: u32 = 8192;
/// Bytes a filter sees of a packet.
pub const MAX_PACKET: u32 = 2048;
/// Most fuel a filter may spend on one packet, i.e. the ceiling on the time
/// one packet can cost with bottom halves off. wasmi charges about one fuel
/// unit per executed instruction; measured in the UML guest (docs/safety.md,
/// kmod/tests/t_adversarial.sh) a looping filter runs at ~1-3 ns per fuel
/// unit, so the ceiling is ~1-3 ms per packet: a 64-packet NAPI batch of
/// worst-case packets stays far below the soft-lockup (20 s) and RCU-stall
/// (21 s) detectors. Loads asking for more get EINVAL and a message.
pub const MAX_FUEL: u64 = 1_000_000;
pub const MAX_TEST_REPEAT: u32 = 100_000_000;
/// Bytes of a TEST_RUN packet (a jumbo frame).
pub const MAX_TEST_PACKET: u32 = 9216;
/// Bytes of LOAD's error buffer the module fills at most.
pub const MAX_ERR: u32 = 4096;
/// Bytes one MAP_DUMP call writes at most.
pub const MAX_DUMP: u64 = 16 << 20;
/// `memory_limit`, bytes per instance.
pub const MIN_MEMORY_LIMIT: u64 = 64 << 10;
pub const MAX_MEMORY_LIMIT: u64 = 64 << 20;
/// Filters loaded at once.
pub const MAX_FILTERS: u32 = 64;
/// XDP attachments at once (the bridge's slots, WASMFW_XDP_SLOTS).
pub const MAX_XDP_ATTACHMENTS: u32 = 64;
/// Each loaded filter has a ring of this many log records (allocated at
/// load, ~72 KiB): the packet path overwrites the oldest record when the
/// ring is full; records no reader had seen count in the filter's
/// `log_dropped` counter.
pub const LOG_RING_RECORDS: u32 = 256;
/// Bytes of a logged line kept (the ABI's MAX_LOG_LEN).
pub const LOG_MSG_LEN: usize = 256;

/// IPv4+IPv6 PRE_ROUTING, one interface.
pub const HOOK_NETFILTER: u32 = 1;
/// Through xdp-bridge (issue 5).
pub const HOOK_XDP: u32 = 2;
pub const MAP_HASH: u32 = 1;
pub const MAP_PERCPU_ARRAY: u32 = 2;
pub const MAP_UPDATE: u32 = 1;
pub const MAP_DELETE: u32 = 2;
/// A packet's link layer (`test_run.link`, `capture_rec.link`).
pub const LINK_ETHERNET: u32 = 1;
pub const LINK_RAW_IP: u32 = 2;
/// [`Load`] `flags`: audit mode (every packet passes; drop verdicts are
/// counted in `drop` and `audit_would_drop`).
pub const LOAD_AUDIT: u32 = 1;

/// The verdict (`filters/abi/src/verdict.rs`, linked here as
/// `wasmfw_verdict.rs`: this file has no dependencies, and the module
/// builds it without crates): `Load::on_fault` is its ABI value, the
/// capture bits derive from it.
#[path = "wasmfw_verdict.rs"]
pub mod verdict;
use verdict::{Verdict, CAPTURE_FAULT_BIT};

/// Capture (`wasmfw capture`): the packets an attached filter gave one of
/// the chosen verdicts, copied on the packet path into a ring allocated at
/// START ([`CAPTURE_RING_BYTES`] of fixed-size slots, one per record),
/// records dropped and counted when it is full. A capture belongs to the
/// open file that started it: closing the file, STOP, detaching or
/// unloading the filter ends it; the ring is freed after a grace period.
///
/// Verdict bits (`verdicts`, a record's `verdict`).
pub const CAPTURE_PASS: u32 = Verdict::Pass.capture_bit();
pub const CAPTURE_DROP: u32 = Verdict::Drop.capture_bit();
/// Trapped or out of fuel: the filter's on_fault verdict applied.
pub const CAPTURE_FAULT: u32 = CAPTURE_FAULT_BIT;
/// Most bytes a capture keeps of a packet.
pub const CAPTURE_SNAPLEN: u32 = 2048;
/// Bytes of one capture's ring (fixed slots of a record header and
/// [`CAPTURE_SNAPLEN`] bytes).
pub const CAPTURE_RING_BYTES: u32 = 1 << 20;
/// Captures running at once.
pub const MAX_CAPTURES: u32 = 8;
/// Bytes one CAPTURE_READ returns at most.
pub const CAPTURE_READ_MAX: u32 = 1 << 20;
/// A record's `flags`: audit mode passed this drop verdict.
pub const CAPTURE_REC_AUDIT: u32 = 1;
pub const CAPTURE_START: u32 = 1;
pub const CAPTURE_STOP: u32 = 2;

/// A C `char`: the NUL-padded text fields (names, interface, policy path).
pub type CChar = u8;

/// One field of a struct as C lays it out.
pub struct FieldLayout {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// One struct: its C name (`struct wasmfw_<c_name>`), size and fields.
pub struct StructLayout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: &'static [FieldLayout],
}

/// Declares the structs and [`LAYOUTS`] from one list, so the table
/// cannot drift from the definitions.
macro_rules! uapi_structs {
    ($( $(#[$meta:meta])* struct $name:ident = $c_name:literal {
        $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
    } )*) => {
        $(
            $(#[$meta])*
            #[repr(C)]
            #[derive(Clone, Copy)]
            pub struct $name { $( $(#[$fmeta])* pub $field: $ty ),* }
        )*
        /// Every struct of the interface, as the C header must lay it out.
        pub const LAYOUTS: &[StructLayout] = &[$(
            StructLayout {
                c_name: $c_name,
                size: size_of::<$name>(),
                fields: &[$( FieldLayout {
                    name: stringify!($field),
                    offset: offset_of!($name, $field),
                    size: size_of::<$ty>(),
                } ),*],
            }
        ),*];
    };
}

uapi_structs! {
    struct Load = "load" {
        /// In: module bytes.
        wasm: u64,
        /// In: `key=value` parameter text.
        config: u64,
        wasm_len: u32,
        config_len: u32,
        /// Per packet.
        fuel: u64,
        /// Bytes.
        memory_limit: u64,
        /// 0 pass, 1 drop.
        on_fault: u32,
        /// Out: the filter's id.
        id: u32,
        /// The filter's name, for status.
        name: [CChar; NAME_LEN],
        /// The policy's path, for status.
        policy: [CChar; POLICY_LEN],
        /// In: a buffer for a one-line error.
        err: u64,
        err_len: u32,
        /// Out: kernel stack the load used, bytes.
        stack_used: u32,
        /// In: [`LOAD_AUDIT`] or 0.
        flags: u32,
        pad: u32,
    }

    struct Attach = "attach" {
        id: u32,
        hook: u32,
        /// In the caller's network namespace.
        ifname: [CChar; IFNAME_LEN],
    }

    struct Detach = "detach" {
        ifname: [CChar; IFNAME_LEN],
    }

    struct Unload = "unload" {
        id: u32,
        pad: u32,
    }

    struct Info = "info" {
        id: u32,
        /// 0 = loaded, not attached.
        hook: u32,
        ifindex: u32,
        on_fault: u32,
        ifname: [CChar; IFNAME_LEN],
        name: [CChar; NAME_LEN],
        policy: [CChar; POLICY_LEN],
        fuel: u64,
        memory_limit: u64,
        /// The attachment's network namespace (inode of /proc/PID/ns/net),
        /// 0 when not attached.
        netns_ino: u64,
        /// The flags it was loaded with ([`LOAD_AUDIT`]).
        flags: u32,
        pad: u32,
    }

    /// LIST: an array of [`Info`] to fill and its size.
    struct List = "list" {
        /// An array of `cap` [`Info`].
        buf: u64,
        cap: u32,
        /// Out: filters loaded (may exceed cap).
        count: u32,
    }

    /// COUNTERS and MAPS: one filter's array to fill.
    struct IdList = "counters" {
        id: u32,
        cap: u32,
        /// An array of `cap` [`Counter`] (COUNTERS) or [`MapInfo`] (MAPS).
        buf: u64,
        /// Out.
        count: u32,
        pad: u32,
    }

    struct Counter = "counter" {
        name: [CChar; NAME_LEN],
        value: u64,
    }

    struct MapInfo = "map_info" {
        name: [CChar; NAME_LEN],
        /// [`MAP_HASH`] or [`MAP_PERCPU_ARRAY`].
        kind: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    }

    struct MapOp = "map_op" {
        id: u32,
        /// [`MAP_UPDATE`] or [`MAP_DELETE`].
        op: u32,
        map: [CChar; NAME_LEN],
        key: u64,
        value: u64,
        key_len: u32,
        value_len: u32,
        /// Out: ABI code (0 ok, 1 deleted, <0 error).
        result: i32,
        pad: u32,
    }

    /// One page of a map: records of `u32` CPU (little-endian), key bytes,
    /// value bytes; whole records only. Cursor 0 starts; call again with
    /// the returned cursor until it is 0. The map is locked per chunk of
    /// entries, so a page is not a snapshot (entries changed meanwhile may
    /// or may not show). ENOSPC: cap cannot hold one record.
    struct MapDump = "map_dump" {
        id: u32,
        /// In: where to start; out: where to go on, 0 = done.
        cursor: u32,
        map: [CChar; NAME_LEN],
        buf: u64,
        /// Bytes at buf (at most [`MAX_DUMP`] used).
        cap: u64,
        /// Out: bytes written.
        len: u64,
    }

    /// Runs a loaded filter `repeat` times (at most [`MAX_TEST_REPEAT`]) on
    /// one packet, in the kernel, on the calling CPU's instance, like
    /// BPF_PROG_TEST_RUN. Interruptible: a signal ends it with EINTR.
    struct TestRun = "test_run" {
        id: u32,
        /// [`LINK_ETHERNET`] or [`LINK_RAW_IP`].
        link: u32,
        packet: u64,
        packet_len: u32,
        repeat: u32,
        /// Out: [`Verdict::abi`] of the last run, 0 pass, 1 drop.
        verdict: u32,
        pad: u32,
        /// Out: time for all runs.
        total_ns: u64,
    }

    /// Starts or stops the capture of an attached filter; the capture
    /// belongs to the open file that started it.
    struct CaptureCtl = "capture_ctl" {
        /// The filter (attached).
        id: u32,
        /// [`CAPTURE_START`] or [`CAPTURE_STOP`].
        op: u32,
        /// CAPTURE_* bits (START).
        verdicts: u32,
        /// 1..=[`CAPTURE_SNAPLEN`] (START).
        snaplen: u32,
    }

    /// One record of a CAPTURE_READ buffer; `caplen` packet bytes and
    /// padding to 8 follow.
    struct CaptureRec = "capture_rec" {
        /// ktime_get_ns(): CLOCK_MONOTONIC.
        ts_ns: u64,
        cpu: u32,
        /// One CAPTURE_* bit.
        verdict: u32,
        /// The filter.
        id: u32,
        orig_len: u32,
        caplen: u32,
        /// [`LINK_ETHERNET`] (XDP) or [`LINK_RAW_IP`] (netfilter).
        link: u32,
        /// [`CAPTURE_REC_AUDIT`]: audit mode passed this drop.
        flags: u32,
        pad: u32,
    }

    /// Takes (consumes) the oldest whole records of the capture of filter
    /// `id` this file started, at most [`CAPTURE_READ_MAX`] bytes.
    struct CaptureRead = "capture_read" {
        id: u32,
        /// Out: records in buf.
        count: u32,
        buf: u64,
        /// Bytes at buf (at most [`CAPTURE_READ_MAX`] used).
        cap: u64,
        /// Out: bytes written.
        len: u64,
        /// Out: records dropped (ring full) since START.
        lost: u64,
    }

    /// One line a filter logged: its bytes as the filter wrote them (UTF-8
    /// by the ABI, not checked: a reader must neutralise control characters).
    struct LogRecord = "log_record" {
        /// 0, 1, 2 ... per filter.
        seq: u64,
        /// `ktime_get_ns()` (CLOCK_MONOTONIC) when logged.
        ts_ns: u64,
        cpu: u32,
        /// 0 error, 1 warn, 2 info, 3 debug.
        level: u32,
        /// Bytes of msg used.
        len: u32,
        pad: u32,
        msg: [u8; LOG_MSG_LEN],
    }

    /// LOG_READ: a filter's log records from sequence number `cursor` on
    /// (0: the oldest still held). Records older than the oldest held were
    /// overwritten: `lost` says how many of those the cursor asked for. Call
    /// again with the cursor returned to follow the log.
    struct LogRead = "log_read" {
        id: u32,
        /// Records at buf.
        cap: u32,
        /// An array of `cap` [`LogRecord`].
        buf: u64,
        /// In: first seq wanted; out: next seq to ask for.
        cursor: u64,
        /// Out: records asked for but overwritten.
        lost: u64,
        /// Out: the filter's `log_dropped` counter.
        dropped: u64,
        /// Out: records written.
        count: u32,
        pad: u32,
    }
}

impl Info {
    /// The attachment's network namespace, as the inode number of
    /// `/proc/PID/ns/net` (what `ls -iL` and `stat -L` show); `None` when
    /// the filter is loaded but not attached.
    pub fn netns_ino(&self) -> Option<u64> {
        (self.netns_ino != 0).then_some(self.netns_ino)
    }
}

impl LogRecord {
    /// The filter's bytes (UTF-8 by the ABI, not checked by the kernel).
    pub fn msg(&self) -> &[u8] {
        &self.msg[..(self.len as usize).min(LOG_MSG_LEN)]
    }
}

/// MAPS: one filter's array of [`MapInfo`] to fill, laid out as COUNTERS'.
pub type Maps = IdList;

/// `_IOC(dir, 0xf7, nr, size)` as <asm-generic/ioctl.h> encodes it.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((IOC_MAGIC as u32) << 8) | nr
}
pub const IOC_MAGIC: u8 = 0xf7;
const W: u32 = 1;
const R: u32 = 2;
pub const IOC_VERSION: u32 = ioc(R, 0, size_of::<u32>());
pub const IOC_LOAD: u32 = ioc(R | W, 1, size_of::<Load>());
pub const IOC_ATTACH: u32 = ioc(W, 2, size_of::<Attach>());
pub const IOC_DETACH: u32 = ioc(W, 3, size_of::<Detach>());
pub const IOC_UNLOAD: u32 = ioc(W, 4, size_of::<Unload>());
pub const IOC_LIST: u32 = ioc(R | W, 5, size_of::<List>());
pub const IOC_COUNTERS: u32 = ioc(R | W, 6, size_of::<IdList>());
pub const IOC_MAPS: u32 = ioc(R | W, 7, size_of::<Maps>());
pub const IOC_MAP_OP: u32 = ioc(R | W, 8, size_of::<MapOp>());
pub const IOC_MAP_DUMP: u32 = ioc(R | W, 9, size_of::<MapDump>());
pub const IOC_TEST_RUN: u32 = ioc(R | W, 10, size_of::<TestRun>());
pub const IOC_CAPTURE_CTL: u32 = ioc(W, 12, size_of::<CaptureCtl>());
pub const IOC_CAPTURE_READ: u32 = ioc(R | W, 13, size_of::<CaptureRead>());
pub const IOC_LOG_READ: u32 = ioc(R | W, 11, size_of::<LogRead>());

/// Every constant the C header defines, by its C name: checked against
/// the header, and read by wfioctl.py.
pub const CONSTANTS: &[(&str, u64)] = &[
    ("WASMFW_UAPI_VERSION", UAPI_VERSION as u64),
    ("WASMFW_NAME_LEN", NAME_LEN as u64),
    ("WASMFW_IFNAME_LEN", IFNAME_LEN as u64),
    ("WASMFW_POLICY_LEN", POLICY_LEN as u64),
    ("WASMFW_MAX_WASM", MAX_WASM as u64),
    ("WASMFW_MAX_CONFIG", MAX_CONFIG as u64),
    ("WASMFW_MAX_PACKET", MAX_PACKET as u64),
    ("WASMFW_MAX_FUEL", MAX_FUEL),
    ("WASMFW_MAX_TEST_REPEAT", MAX_TEST_REPEAT as u64),
    ("WASMFW_MAX_TEST_PACKET", MAX_TEST_PACKET as u64),
    ("WASMFW_MAX_ERR", MAX_ERR as u64),
    ("WASMFW_MAX_DUMP", MAX_DUMP),
    ("WASMFW_MIN_MEMORY_LIMIT", MIN_MEMORY_LIMIT),
    ("WASMFW_MAX_MEMORY_LIMIT", MAX_MEMORY_LIMIT),
    ("WASMFW_MAX_FILTERS", MAX_FILTERS as u64),
    ("WASMFW_MAX_XDP_ATTACHMENTS", MAX_XDP_ATTACHMENTS as u64),
    ("WASMFW_LOG_RING_RECORDS", LOG_RING_RECORDS as u64),
    ("WASMFW_LOG_MSG_LEN", LOG_MSG_LEN as u64),
    ("WASMFW_HOOK_NETFILTER", HOOK_NETFILTER as u64),
    ("WASMFW_HOOK_XDP", HOOK_XDP as u64),
    ("WASMFW_MAP_HASH", MAP_HASH as u64),
    ("WASMFW_MAP_PERCPU_ARRAY", MAP_PERCPU_ARRAY as u64),
    ("WASMFW_MAP_UPDATE", MAP_UPDATE as u64),
    ("WASMFW_MAP_DELETE", MAP_DELETE as u64),
    ("WASMFW_LINK_ETHERNET", LINK_ETHERNET as u64),
    ("WASMFW_LINK_RAW_IP", LINK_RAW_IP as u64),
    ("WASMFW_LOAD_AUDIT", LOAD_AUDIT as u64),
    ("WASMFW_IOC_MAGIC", IOC_MAGIC as u64),
    ("WASMFW_IOC_VERSION", IOC_VERSION as u64),
    ("WASMFW_IOC_LOAD", IOC_LOAD as u64),
    ("WASMFW_IOC_ATTACH", IOC_ATTACH as u64),
    ("WASMFW_IOC_DETACH", IOC_DETACH as u64),
    ("WASMFW_IOC_UNLOAD", IOC_UNLOAD as u64),
    ("WASMFW_IOC_LIST", IOC_LIST as u64),
    ("WASMFW_IOC_COUNTERS", IOC_COUNTERS as u64),
    ("WASMFW_IOC_MAPS", IOC_MAPS as u64),
    ("WASMFW_IOC_MAP_OP", IOC_MAP_OP as u64),
    ("WASMFW_IOC_MAP_DUMP", IOC_MAP_DUMP as u64),
    ("WASMFW_IOC_TEST_RUN", IOC_TEST_RUN as u64),
    ("WASMFW_CAPTURE_PASS", CAPTURE_PASS as u64),
    ("WASMFW_CAPTURE_DROP", CAPTURE_DROP as u64),
    ("WASMFW_CAPTURE_FAULT", CAPTURE_FAULT as u64),
    ("WASMFW_CAPTURE_SNAPLEN", CAPTURE_SNAPLEN as u64),
    ("WASMFW_CAPTURE_RING_BYTES", CAPTURE_RING_BYTES as u64),
    ("WASMFW_MAX_CAPTURES", MAX_CAPTURES as u64),
    ("WASMFW_CAPTURE_READ_MAX", CAPTURE_READ_MAX as u64),
    ("WASMFW_CAPTURE_REC_AUDIT", CAPTURE_REC_AUDIT as u64),
    ("WASMFW_CAPTURE_START", CAPTURE_START as u64),
    ("WASMFW_CAPTURE_STOP", CAPTURE_STOP as u64),
    ("WASMFW_IOC_CAPTURE_CTL", IOC_CAPTURE_CTL as u64),
    ("WASMFW_IOC_CAPTURE_READ", IOC_CAPTURE_READ as u64),
    ("WASMFW_IOC_LOG_READ", IOC_LOG_READ as u64),
];

/// C structs with the layout of another one in [`LAYOUTS`]: (C name, the
/// one whose layout it has), one per `pub type` alias of a struct ([`Maps`]).
pub const SAME_LAYOUT: &[(&str, &str)] = &[("maps", "counters")];

#[cfg(test)]
mod tests {
    use super::*;

    /// What the module's `AsBytes`/`FromBytes` impls rely on: every struct is
    /// 8-byte aligned and its fields cover it with no implicit padding.
    #[test]
    fn structs_have_no_hidden_padding() {
        for s in LAYOUTS {
            assert_eq!(s.size % 8, 0, "{}", s.c_name);
            let mut at = 0;
            for f in s.fields {
                assert_eq!(f.offset, at, "{}.{}: padding before it", s.c_name, f.name);
                at += f.size;
            }
            assert_eq!(at, s.size, "{}: padding at the end", s.c_name);
        }
    }

    #[test]
    fn constant_names_are_unique() {
        for (i, (a, _)) in CONSTANTS.iter().enumerate() {
            assert!(CONSTANTS[i + 1..].iter().all(|(b, _)| a != b), "{a} twice");
        }
    }
}
