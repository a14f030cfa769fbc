/* SPDX-License-Identifier: GPL-2.0 */
/* The verdict and the engine's run result for the module's C. Generated from
 * filters/abi/src/verdict.rs by filters/abi/tests/c_header.rs: do not edit
 * (WASMFW_BLESS=1 cargo test -p wasmfw-abi rewrites it). */
#ifndef _WASMFW_VERDICT_H
#define _WASMFW_VERDICT_H

#include <linux/types.h>
#include "wasmfw_uapi.h" /* WASMFW_CAPTURE_*, derived from the verdict in Rust */

#define WF_VERDICT_PASS 0
#define WF_VERDICT_DROP 1
/* Bits of wf_run's result. */
#define WF_RUN_VERDICT 1 /* mask: the verdict applied */
#define WF_RUN_FAULT 2 /* trapped or out of fuel: the verdict is on_fault */
#define WF_RUN_AUDITED 4 /* audit mode passed a drop */

/* The verdict applied (WF_VERDICT_*). */
static inline int wf_run_verdict(int run)
{
	return run & WF_RUN_VERDICT;
}

static inline bool wf_run_drops(int run)
{
	return wf_run_verdict(run) == WF_VERDICT_DROP;
}

/* RunResult::capture_bit: a fault, else the filter's own verdict (a drop
 * that audit mode passed is captured as a drop). */
static inline u32 wf_run_capture_bit(int run)
{
	if (run & WF_RUN_FAULT)
		return WASMFW_CAPTURE_FAULT;
	if (run & WF_RUN_AUDITED)
		return WASMFW_CAPTURE_DROP;
	return wf_run_drops(run) ? WASMFW_CAPTURE_DROP : WASMFW_CAPTURE_PASS;
}

#endif
