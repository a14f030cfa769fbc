// SPDX-License-Identifier: GPL-2.0
/*
 * bench/engine-compare.sh: linked into the module with an OLD engine object
 * (one from before the per-filter log ring of uapi v6, e.g. 6766f40's),
 * never into the real wasmfw.ko. Today's module sources expect two things
 * such an engine lacks or does differently:
 *
 * - wf_log_ring(), for WASMFW_IOC_LOG_READ: the old engine keeps no ring.
 *   Here: one empty ring for the whole module, allocated on the first
 *   `wasmfw log` (process context) and never freed (this is a benchmark
 *   module; the benchmark never reads logs).
 * - wasmfw_host_log(): the old engine passes the filter's id (u64) where
 *   today's glue takes a ring. engine-compare.sh renames the old object's
 *   reference to wasmfw_compat_host_log (objcopy --redefine-sym), which
 *   logs as that commit's glue did: rate-limited printk.
 *
 * Every other wf_* call the module makes keeps its layout (WfLoadArgs only
 * grew at the end; wf_run's fault/audit bits are simply never set; wf_load's
 * last argument, the error code, is never written, so a failed load reads
 * as WF_LOAD_INVALID: EINVAL), except
 * wf_map_dump's cursor, which an old engine ignores: a map dump through
 * this module returns one page at most (the benchmark never dumps maps).
 */
#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/types.h>
#include "wasmfw_engine.h"

void wasmfw_compat_host_log(u64 cookie, int level, const u8 *msg, size_t len);

void wasmfw_compat_host_log(u64 cookie, int level, const u8 *msg, size_t len)
{
	if (level <= 1)
		pr_warn_ratelimited("filter %llu: %.*s\n", cookie, (int)min_t(size_t, len, 256), msg);
	else
		pr_info_ratelimited("filter %llu: %.*s\n", cookie, (int)min_t(size_t, len, 256), msg);
}

void *wf_log_ring(const struct wf_filter *f)
{
	static void *ring;
	void *r = READ_ONCE(ring);

	if (!r) {
		r = wasmfw_host_logring_new(0);
		if (r && cmpxchg(&ring, NULL, r)) {
			wasmfw_host_logring_free(r);
			r = READ_ONCE(ring);
		}
	}
	return r;
}
