//! The verdict, defined once: the numbers filters return (ABI v1), the run
//! result the engine packs for the kernel module, and the capture bits of
//! `wasmfw capture` (a uapi), both derived from it.
//!
//! `core` only and self-contained: the kernel module and the /dev/wasmfw
//! uapi include this file by path (`kmod/wasmfw/wasmfw_verdict.rs`), the C
//! side gets the same numbers from `include/wasmfw_verdict.h`, generated
//! from here (`tests/c_header.rs` fails when it is stale).

/// What happens to a packet; the value is what `wasmfw_filter` returns.
/// Any other return value is a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Verdict {
    Pass = 0,
    Drop = 1,
}

impl Verdict {
    /// Every verdict, in value order.
    pub const ALL: [Verdict; 2] = [Verdict::Pass, Verdict::Drop];

    /// The verdict a filter's return value stands for; `None` (a fault)
    /// for values ABI v1 does not define.
    pub const fn from_abi(value: i32) -> Option<Verdict> {
        match value {
            0 => Some(Verdict::Pass),
            1 => Some(Verdict::Drop),
            _ => None,
        }
    }

    /// The ABI v1 value (what a filter returns, `on_fault` in the uapi).
    pub const fn abi(self) -> i32 {
        self as i32
    }

    /// As policies and `wasmfw` output spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
        }
    }

    /// The capture bit of a packet the filter gave this verdict
    /// (`CAPTURE_PASS` = 1, `CAPTURE_DROP` = 2 in the uapi).
    pub const fn capture_bit(self) -> u32 {
        1 << self as u32
    }
}

/// The capture bit of a packet whose run faulted (`CAPTURE_FAULT` = 4): the
/// bit after the verdicts'.
pub const CAPTURE_FAULT_BIT: u32 = 1 << Verdict::ALL.len();

/// The engine's result for one packet (engine-ffi `wf_run`), packed in an
/// int for the module's C: the verdict applied in [`RunResult::VERDICT`],
/// plus flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult(pub i32);

impl RunResult {
    /// Mask of the verdict applied (after `on_fault` and audit mode).
    pub const VERDICT: i32 = 1;
    /// The filter trapped or ran out of fuel: the verdict is its `on_fault`.
    pub const FAULT: i32 = 1 << 1;
    /// Audit mode passed what the filter dropped.
    pub const AUDITED: i32 = 1 << 2;

    pub const fn new(verdict: Verdict, fault: bool, audited: bool) -> RunResult {
        let fault = if fault { RunResult::FAULT } else { 0 };
        let audited = if audited { RunResult::AUDITED } else { 0 };
        RunResult(verdict.abi() | fault | audited)
    }

    /// The verdict applied to the packet.
    pub const fn verdict(self) -> Verdict {
        match Verdict::from_abi(self.0 & RunResult::VERDICT) {
            Some(v) => v,
            None => Verdict::Pass, // not reached: the mask keeps 0 or 1
        }
    }

    pub const fn faulted(self) -> bool {
        self.0 & RunResult::FAULT != 0
    }

    pub const fn audited(self) -> bool {
        self.0 & RunResult::AUDITED != 0
    }

    /// The capture bit: a fault, else the filter's own verdict (a drop
    /// that audit mode passed is captured as a drop).
    pub const fn capture_bit(self) -> u32 {
        if self.faulted() {
            CAPTURE_FAULT_BIT
        } else if self.audited() {
            Verdict::Drop.capture_bit()
        } else {
            self.verdict().capture_bit()
        }
    }
}
