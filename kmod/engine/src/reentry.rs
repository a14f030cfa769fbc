//! The nesting guard of one instance: a host runs an instance only on the
//! CPU it belongs to, but a run can be interrupted there by another run of
//! the same instance (netpoll, a nested softirq from a driver, XDP with
//! interrupts off). The guard lets the first run have the instance and
//! refuses (and counts) any run that starts while it is in progress, so no
//! second `&mut` to the instance ever exists.

use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::{abi::RunResult, Limits, Verdict};

/// Whether a run of one instance is in progress, and how many runs were
/// refused because one was.
#[derive(Debug, Default)]
pub struct Reentry {
    running: AtomicBool,
    refused: AtomicU64,
}

/// The claim on an instance for one run; dropping it ends the run.
#[derive(Debug)]
pub struct Running<'a>(&'a Reentry);

impl Reentry {
    pub const fn new() -> Reentry {
        Reentry { running: AtomicBool::new(false), refused: AtomicU64::new(0) }
    }

    /// Claims the instance for one run, or `None` (counted) if a run of it
    /// is in progress. Only the instance's own CPU calls this, so the
    /// interrupting run always sees the flag the interrupted one set (an
    /// interrupt between the read and the write of `swap` cannot happen:
    /// it is one instruction, and even a load/store pair would be safe,
    /// since a nested run ends before the interrupted one resumes). The
    /// atomic read-modify-write also keeps the claim sound if a host ever
    /// broke the one-CPU rule.
    pub fn enter(&self) -> Option<Running<'_>> {
        if self.running.swap(true, Acquire) {
            // Nested runs can nest again: an atomic add, not a slot-local bump.
            self.refused.fetch_add(1, Relaxed);
            return None;
        }
        Some(Running(self))
    }

    /// Runs refused because a run of the instance was in progress.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Release);
    }
}

/// What a refused (nested) run returns: the policy's `on_fault` verdict,
/// marked as a fault, which audit mode passes like any other drop.
pub const fn refused_result(limits: Limits) -> RunResult {
    let audited = matches!(limits.on_fault, Verdict::Drop) && limits.audit;
    RunResult::new(if audited { Verdict::Pass } else { limits.on_fault }, true, audited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_during_the_first_is_refused_and_counted() {
        let g = Reentry::new();
        let outer = g.enter().expect("the first run gets the instance");
        assert!(g.enter().is_none(), "nested run refused");
        assert!(g.enter().is_none(), "and again");
        assert_eq!(g.refused(), 2);
        drop(outer);
        let again = g.enter().expect("after the run ends the instance is free");
        assert_eq!(g.refused(), 2);
        drop(again);
        assert!(g.enter().is_some());
    }

    #[test]
    fn refused_runs_give_on_fault_marked_as_faults() {
        let l = |on_fault, audit| Limits { fuel: 1, memory_limit: 65536, on_fault, audit };
        let r = refused_result(l(Verdict::Drop, false));
        assert_eq!((r.verdict(), r.faulted(), r.audited()), (Verdict::Drop, true, false));
        let r = refused_result(l(Verdict::Pass, false));
        assert_eq!((r.verdict(), r.faulted(), r.audited()), (Verdict::Pass, true, false));
        // Audit mode passes the would-be drop and says so.
        let r = refused_result(l(Verdict::Drop, true));
        assert_eq!((r.verdict(), r.faulted(), r.audited()), (Verdict::Pass, true, true));
    }
}
