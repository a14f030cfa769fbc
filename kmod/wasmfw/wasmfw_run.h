/* SPDX-License-Identifier: GPL-2.0 */
/* Running a filter on the calling CPU's instance (wasmfw_run.c), for the hooks and TEST_RUN. */
#ifndef _WASMFW_RUN_H
#define _WASMFW_RUN_H

#include <linux/types.h>

struct wf_filter;

/* wf_run's result (wasmfw_engine.h) for `f` on this CPU's instance; the
 * caller has bottom halves disabled, so the instance has one user. */
int wasmfw_run_bh_off(struct wf_filter *f, const u8 *data, size_t len, int link);
/* The same, from a context that may have bottom halves enabled. */
int wasmfw_run_local(struct wf_filter *f, const u8 *data, size_t len, int link);
/* The nesting test (module parameter nest_test): is it on, and run the
 * filter this CPU is running again, nested (from wasmfw_host_log). */
bool wasmfw_nest_test(void);
void wasmfw_run_nest_test(const u8 *data, size_t len);

#endif
