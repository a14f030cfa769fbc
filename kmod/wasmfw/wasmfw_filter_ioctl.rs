//! The ioctls on one loaded filter: its counters and maps, its log ring,
//! its capture ring, and TEST_RUN (which runs it on a given packet).

use core::ffi::c_int;
use core::mem::size_of;

use kernel::prelude::*;
use kernel::types::AsBytes;
use kernel::uaccess::UserSlice;

use crate::ffi::*;
use crate::ioctl::{checked_name, read, read_bytes, write};
use crate::registry::{Registry, REGISTRY};
use crate::uapi::*;

/// Most counters a filter has: the builtin ones (engine's
/// BUILTIN_COUNTERS), `log_dropped` and `nested_runs` (HOST_COUNTERS) and
/// ABI v1's 32.
const MAX_COUNTERS: usize = 6 + 2 + 32;
/// Most maps a filter has (ABI v1).
const MAX_MAPS: usize = 16;

/// A zeroed heap buffer of `n` items (these arrays are too big for the
/// kernel stack).
fn zeroed<T: Copy>(n: usize, zero: T) -> Result<KVec<T>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(zero, GFP_KERNEL)?;
    }
    Ok(v)
}

/// Answers a COUNTERS/MAPS request: the first `cap` of `items`, and how
/// many there are in all (`total`, which may exceed what fit).
fn reply_list<T: AsBytes>(arg: usize, mut req: IdList, items: &[T], total: usize) -> Result {
    let mut out = UserSlice::new(req.buf as usize, req.cap as usize * size_of::<T>()).writer();
    for it in items.iter().take(total.min(req.cap as usize)) {
        out.write(it)?;
    }
    req.count = total as u32;
    write(arg, &req)
}

pub(crate) fn counters(reg: &mut Registry, arg: usize) -> Result {
    let req: IdList = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let mut buf = zeroed(MAX_COUNTERS, Counter { name: [0; 32], value: 0 })?;
    // SAFETY: f is live; buf has MAX_COUNTERS entries.
    let n = unsafe { wf_counters(f, buf.as_mut_ptr(), MAX_COUNTERS) };
    reply_list(arg, req, &buf[..n.min(MAX_COUNTERS)], n)
}

pub(crate) fn maps(reg: &mut Registry, arg: usize) -> Result {
    let req: IdList = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let mut buf = zeroed(MAX_MAPS, MapInfo { name: [0; 32], kind: 0, key_size: 0, value_size: 0, max_entries: 0 })?;
    // SAFETY: f is live; buf has MAX_MAPS entries.
    let n = unsafe { wf_maps(f, buf.as_mut_ptr(), MAX_MAPS) };
    reply_list(arg, req, &buf[..n.min(MAX_MAPS)], n)
}

pub(crate) fn map_op(reg: &mut Registry, arg: usize) -> Result {
    let mut req: MapOp = read(arg)?;
    checked_name(&req.map)?;
    let f = reg.get(req.id)?.filter;
    let key = read_bytes(req.key, req.key_len, 64)?;
    let name = req.map.as_ptr().cast();
    req.result = match req.op {
        1 => {
            let value = read_bytes(req.value, req.value_len, 256)?;
            // SAFETY: live filter, NUL-terminated name, buffers of the given sizes.
            unsafe { wf_map_update(f, name, key.as_ptr(), key.len(), value.as_ptr(), value.len()) }
        }
        // SAFETY: as above.
        2 => unsafe { wf_map_delete(f, name, key.as_ptr(), key.len()) },
        _ => return Err(EINVAL),
    };
    write(arg, &req)
}

/// One page of a map: whole records from `cursor` on (0 = the start),
/// `len` = bytes written, `cursor` = where the next call continues (0 when
/// the map is done). The engine takes the map's lock per chunk of entries,
/// never across the whole map.
pub(crate) fn map_dump(reg: &mut Registry, arg: usize) -> Result {
    let mut req: MapDump = read(arg)?;
    checked_name(&req.map)?;
    let f = reg.get(req.id)?.filter;
    let cap = req.cap.min(MAX_DUMP) as usize;
    let mut buf = KVVec::with_capacity(cap, GFP_KERNEL)?;
    for _ in 0..cap {
        buf.push(0u8, GFP_KERNEL)?;
    }
    let mut cursor = u64::from(req.cursor);
    // SAFETY: live filter, NUL-terminated name, buf has `cap` bytes.
    let len = unsafe { wf_map_dump(f, req.map.as_ptr().cast(), buf.as_mut_ptr(), cap, &mut cursor) };
    match len {
        -2 => return Err(ENOENT),
        -3 => return Err(ENOSPC),
        l if l < 0 => return Err(EINVAL),
        _ => {}
    }
    let n = (len as usize).min(cap);
    UserSlice::new(req.buf as usize, n).writer().write_slice(&buf[..n])?;
    req.len = n as u64;
    req.cursor = u32::try_from(cursor).map_err(|_| EINVAL)?;
    write(arg, &req)
}

/// The filter's log records from `cursor` on (0: the oldest held), at
/// most `cap` (and at most a ring's worth) per call; `lost` = records from
/// the cursor on that were overwritten before this read. A cursor beyond
/// the next record to be written is refused (EINVAL). If the records or
/// the reply cannot be copied out (EFAULT), the read is undone: nothing is
/// consumed and the next read from the same cursor returns the same records.
pub(crate) fn log_read(reg: &mut Registry, arg: usize) -> Result {
    let mut req: LogRead = read(arg)?;
    let f = reg.get(req.id)?.filter;
    let cap = req.cap.min(LOG_RING_RECORDS);
    let mut buf =
        zeroed(cap as usize, LogRecord { seq: 0, ts_ns: 0, cpu: 0, level: 0, len: 0, pad: 0, msg: [0; LOG_MSG_LEN] })?;
    let (mut cursor, mut lost, mut dropped) = (req.cursor, 0u64, 0u64);
    let mut undo = LogringUndo::default();
    // SAFETY: f is live (the control mutex is held).
    let ring = unsafe { wf_log_ring(f) };
    // SAFETY: the ring lives as long as f; buf has `cap` records; the
    // call writes `undo`.
    let n =
        unsafe { wasmfw_logring_read(ring, &mut cursor, buf.as_mut_ptr(), cap, &mut lost, &mut dropped, &mut undo) };
    let n = u32::try_from(n).map_err(|_| Error::from_errno(n))?.min(cap);
    req.count = n;
    req.cursor = cursor;
    req.lost = lost;
    req.dropped = dropped;
    let copied = log_reply(arg, &req, &buf[..n as usize]);
    if copied.is_err() {
        // SAFETY: the same ring, still live; `undo` is what the read wrote.
        unsafe { wasmfw_logring_unread(ring, &undo) };
    }
    copied
}

/// LOG_READ's copies out: the records, then the reply.
fn log_reply(arg: usize, req: &LogRead, records: &[LogRecord]) -> Result {
    let mut out = UserSlice::new(req.buf as usize, records.len() * size_of::<LogRecord>()).writer();
    for r in records {
        out.write(r)?;
    }
    write(arg, req)
}

/// TEST_RUN, entered WITHOUT the control mutex (wasmfw_dev.c): it takes
/// the mutex for one time slice of runs at a time, looks the filter up
/// again each time (it may have been unloaded in between: ENOENT), and
/// between slices reschedules and stops with EINTR on a signal. So a
/// 100-million-run request neither blocks other ioctls, the netdevice
/// notifier or rmmod, nor ignores Ctrl-C.
pub(crate) fn test_run(arg: usize) -> Result {
    let mut req: TestRun = read(arg)?;
    if req.repeat == 0 || req.repeat > MAX_TEST_REPEAT || !(1..=2).contains(&req.link) {
        return Err(EINVAL);
    }
    let pkt = read_bytes(req.packet, req.packet_len, MAX_TEST_PACKET)?;
    let (mut done, mut total_ns, mut verdict) = (0u32, 0u64, 0);
    while done < req.repeat {
        // SAFETY: plain C call; returns nonzero (-EINTR) on a signal.
        if unsafe { wasmfw_ctl_lock() } != 0 {
            return Err(EINTR);
        }
        // SAFETY: the control mutex is held: this is the only reference.
        let reg = unsafe { &mut *REGISTRY.0.get() };
        let f = match reg.get(req.id) {
            Ok(e) => e.filter,
            Err(e) => {
                // SAFETY: locked just above.
                unsafe { wasmfw_ctl_unlock() };
                return Err(e);
            }
        };
        let (mut ns, mut ran) = (0u64, 0u32);
        // SAFETY: live filter (the control mutex keeps it from being
        // freed); the packet buffer lives across the call.
        verdict = unsafe {
            wasmfw_glue_test_run(
                f,
                pkt.as_ptr(),
                pkt.len() as u32,
                req.link as c_int,
                req.repeat - done,
                &mut ns,
                &mut ran,
            )
        };
        // SAFETY: locked above.
        unsafe { wasmfw_ctl_unlock() };
        done += ran.max(1);
        total_ns = total_ns.saturating_add(ns);
        // SAFETY: plain C calls, process context, no lock held.
        if done < req.repeat && unsafe { wasmfw_signal_pending() } {
            return Err(EINTR);
        }
        // SAFETY: as above.
        unsafe { wasmfw_cond_resched() };
    }
    req.verdict = verdict as u32;
    req.total_ns = total_ns;
    write(arg, &req)
}

/// CAPTURE_CTL: starts a capture of an attached filter (owned by the
/// calling file; wasmfw_capture.c) or stops the caller's.
pub(crate) fn capture_ctl(reg: &mut Registry, arg: usize) -> Result {
    let req: CaptureCtl = read(arg)?;
    let e = reg.get(req.id)?;
    match req.op {
        CAPTURE_START => {
            if e.hook == 0 {
                return Err(ENODEV); // loaded, not attached
            }
            // SAFETY: plain C call under the control mutex; `net` is a key.
            let rc =
                unsafe { wasmfw_capture_start(e.net, e.ifindex as c_int, e.hook, e.id, req.verdicts, req.snaplen) };
            if rc != 0 {
                return Err(Error::from_errno(rc));
            }
            Ok(())
        }
        // SAFETY: as above.
        CAPTURE_STOP => match unsafe { wasmfw_capture_stop(req.id, false) } {
            0 => Err(ENOENT),
            _ => Ok(()),
        },
        _ => Err(EINVAL),
    }
}

/// CAPTURE_READ: moves the oldest records of the caller's capture to
/// userspace, through a bounce buffer (the ring's lock is never held
/// across a copy to userspace). They leave the ring only once copied: on
/// EFAULT nothing is consumed and the next read returns the same records.
pub(crate) fn capture_read(arg: usize) -> Result {
    let mut req: CaptureRead = read(arg)?;
    let cap = req.cap.min(u64::from(CAPTURE_READ_MAX)) as usize;
    let mut buf = KVVec::from_elem(0u8, cap, GFP_KERNEL)?;
    let (mut count, mut lost) = (0u32, 0u64);
    // SAFETY: under the control mutex; buf has `cap` bytes.
    let len = unsafe { wasmfw_capture_peek(req.id, buf.as_mut_ptr(), cap, &mut count, &mut lost) };
    if len < 0 {
        return Err(Error::from_errno(len as c_int));
    }
    let n = (len as usize).min(cap);
    UserSlice::new(req.buf as usize, n).writer().write_slice(&buf[..n])?;
    req.len = n as u64;
    req.count = count;
    req.lost = lost;
    write(arg, &req)?;
    // SAFETY: under the control mutex, as the peek above (the capture is
    // still there: stopping it takes the mutex).
    unsafe { wasmfw_capture_consume(req.id, count) };
    Ok(())
}
