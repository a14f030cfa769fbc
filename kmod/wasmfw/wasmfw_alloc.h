/* SPDX-License-Identifier: GPL-2.0 */
/* The engine's allocator (wasmfw_alloc.c): per-CPU packet pool, load tracking, fault injection, map locks, clock. */
#ifndef _WASMFW_ALLOC_H
#define _WASMFW_ALLOC_H

#include <linux/percpu.h>
#include <linux/types.h>

struct task_struct;

/* Set while this CPU runs a filter on a packet (bottom halves off). */
DECLARE_PER_CPU(int, wasmfw_in_packet);

/* A load's allocations (wasmfw_load.c; process context, control mutex held):
 * begin counts from 0; track(t) makes thread t's allocations tracked (NULL:
 * none); discard frees every tracked allocation (the load is abandoned);
 * keep hands them to the filter (the load returned). */
void wasmfw_alloc_load_begin(void);
void wasmfw_alloc_load_track(struct task_struct *t);
void wasmfw_alloc_load_discard(void);
void wasmfw_alloc_load_keep(void);
/* Is the caller the thread running a load (not on the packet path)? */
bool wasmfw_alloc_in_load(void);

#endif
