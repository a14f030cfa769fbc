//! The verdict's numbers are ABIs: filters return 0/1 (ABI v1, stock
//! `.wasm` files), `wasmfw capture` bits are 1/2/4 (the uapi). Their
//! derivations must keep them, and the run result must round-trip.

use wasmfw_abi::{RunResult, Verdict, CAPTURE_FAULT_BIT};

#[test]
fn abi_values_are_v1() {
    assert_eq!((Verdict::Pass.abi(), Verdict::Drop.abi()), (0, 1));
    for v in Verdict::ALL {
        assert_eq!(Verdict::from_abi(v.abi()), Some(v));
    }
    assert_eq!(Verdict::from_abi(2), None);
    assert_eq!(Verdict::from_abi(-1), None);
}

#[test]
fn capture_bits_are_the_uapi_ones() {
    assert_eq!((Verdict::Pass.capture_bit(), Verdict::Drop.capture_bit(), CAPTURE_FAULT_BIT), (1, 2, 4));
}

#[test]
fn run_result_round_trips() {
    for v in Verdict::ALL {
        for fault in [false, true] {
            for audited in [false, true] {
                let r = RunResult::new(v, fault, audited);
                assert_eq!((r.verdict(), r.faulted(), r.audited()), (v, fault, audited));
            }
        }
    }
    // The layout the module's C has always decoded: bit 0 drop, 2 fault, 4 audited.
    assert_eq!(RunResult::new(Verdict::Drop, true, false).0, 3);
    assert_eq!(RunResult::new(Verdict::Pass, false, true).0, 4);
    assert_eq!(RunResult::new(Verdict::Pass, false, true).capture_bit(), 2);
    assert_eq!(RunResult::new(Verdict::Drop, true, false).capture_bit(), 4);
    assert_eq!(RunResult::new(Verdict::Pass, false, false).capture_bit(), 1);
}
