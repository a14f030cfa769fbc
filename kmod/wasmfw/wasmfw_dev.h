/* SPDX-License-Identifier: GPL-2.0 */
/* /dev/wasmfw and its ioctl entry, TEST_RUN's timed loop, kernel facts Rust reads (wasmfw_dev.c). */
#ifndef _WASMFW_DEV_H
#define _WASMFW_DEV_H

#include <linux/types.h>

struct wf_filter;

int wasmfw_dev_register(void);
void wasmfw_dev_unregister(void);

/* Called by Rust (wasmfw_filter_ioctl.rs, wasmfw_ioctl.rs). */
int wasmfw_glue_test_run(struct wf_filter *f, const u8 *pkt, u32 len, int link, u32 repeat,
			 u64 *ns, u32 *ran);
bool wasmfw_signal_pending(void);
void wasmfw_cond_resched(void);
u32 wasmfw_nr_cpu_ids(void);
u64 wasmfw_random_u64(void);

#endif
