//! `include/wasmfw_verdict.h`, the C twin of `src/verdict.rs` the kernel
//! module's C includes, is generated here: this test fails when the
//! committed header differs from what the Rust definitions give, and
//! rewrites it with `WASMFW_BLESS=1`.

use std::path::Path;

use wasmfw_abi::{RunResult, Verdict};

fn header() -> String {
    let (pass, drop) = (Verdict::Pass, Verdict::Drop);
    format!(
        "/* SPDX-License-Identifier: GPL-2.0 */
/* The verdict and the engine's run result for the module's C. Generated from
 * filters/abi/src/verdict.rs by filters/abi/tests/c_header.rs: do not edit
 * (WASMFW_BLESS=1 cargo test -p wasmfw-abi rewrites it). */
#ifndef _WASMFW_VERDICT_H
#define _WASMFW_VERDICT_H

#include <linux/types.h>
#include \"wasmfw_uapi.h\" /* WASMFW_CAPTURE_*, derived from the verdict in Rust */

#define WF_VERDICT_PASS {pv}
#define WF_VERDICT_DROP {dv}
/* Bits of wf_run's result. */
#define WF_RUN_VERDICT {rv} /* mask: the verdict applied */
#define WF_RUN_FAULT {rf} /* trapped or out of fuel: the verdict is on_fault */
#define WF_RUN_AUDITED {ra} /* audit mode passed a drop */

/* The verdict applied (WF_VERDICT_*). */
static inline int wf_run_verdict(int run)
{{
	return run & WF_RUN_VERDICT;
}}

static inline bool wf_run_drops(int run)
{{
	return wf_run_verdict(run) == WF_VERDICT_DROP;
}}

/* RunResult::capture_bit: a fault, else the filter's own verdict (a drop
 * that audit mode passed is captured as a drop). */
static inline u32 wf_run_capture_bit(int run)
{{
	if (run & WF_RUN_FAULT)
		return WASMFW_CAPTURE_FAULT;
	if (run & WF_RUN_AUDITED)
		return WASMFW_CAPTURE_DROP;
	return wf_run_drops(run) ? WASMFW_CAPTURE_DROP : WASMFW_CAPTURE_PASS;
}}

#endif
",
        pv = pass.abi(),
        dv = drop.abi(),
        rv = RunResult::VERDICT,
        rf = RunResult::FAULT,
        ra = RunResult::AUDITED,
    )
}

#[test]
fn c_header_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/wasmfw_verdict.h");
    let want = header();
    if std::env::var_os("WASMFW_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "{} is stale: run WASMFW_BLESS=1 cargo test -p wasmfw-abi", path.display());
}
