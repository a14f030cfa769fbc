/* SPDX-License-Identifier: GPL-2.0 */
/* Loading on a measured kernel stack (wasmfw_load.c), and the stack paint the packet path's probe shares. */
#ifndef _WASMFW_LOAD_H
#define _WASMFW_LOAD_H

#include <linux/types.h>

struct wf_filter;
struct wf_load_args;

/* The byte unused stack is painted with, to find the deepest one written. */
#define STACK_PAINT 0x5a

/* Lowest painted byte still intact in [bottom, top): the depth reached. */
static inline u32 wasmfw_stack_depth(const u8 *bottom, const u8 *top)
{
	const u8 *p = bottom;

	while (p < top && *p == STACK_PAINT)
		p++;
	return (u32)(top - p);
}

/* Calls wf_load (same arguments, wasmfw_engine.h) on the load stack and
 * returns what it returned; *stack_used: the bytes of stack the load used.
 * Process context, load mutex held (called by Rust, wasmfw_ioctl.rs). */
struct wf_filter *wasmfw_load_on_stack(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
				       const struct wf_load_args *args, char *err, size_t err_cap, int *error,
				       u32 *stack_used);

/* The load mutex: one load at a time (the load stack, the allocator's load
 * tracking and the panic hook are global), and not the control mutex, so
 * that the netdevice notifier never waits behind a compile. 0 or -EINTR. */
int wasmfw_load_lock(void);
void wasmfw_load_unlock(void);

#endif
