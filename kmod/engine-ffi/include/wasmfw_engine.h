/* SPDX-License-Identifier: GPL-2.0 */
/* The engine object's C ABI (kmod/engine-ffi): what it exports and the host hooks it calls. */
#ifndef _WASMFW_ENGINE_H
#define _WASMFW_ENGINE_H

/*
 * The records and numbers are defined in Rust (kmod/engine-ffi/src/abi.rs);
 * kmod/engine/tests/ffi_layout.rs compiles this header and checks every
 * size, offset and constant against that file. The prototypes follow
 * kmod/engine-ffi/src/lib.rs (exports) and its extern block (host hooks).
 */
#ifdef __KERNEL__
#include <linux/types.h>
#include "wasmfw_uapi.h"
#else
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "wasmfw_uapi.h"
#ifndef __noreturn
#define __noreturn __attribute__((__noreturn__))
#endif
#endif

/* A loaded filter: the shared part and one instance per CPU; opaque. */
struct wf_filter;

/* Limits and placement of a filter to load. */
struct wf_load_args {
	__u64 fuel;
	__u64 memory_limit;
	__u32 on_fault;		/* 0 pass, 1 drop */
	__u32 slots;		/* instances to create (nr_cpu_ids) */
	__u64 seed;
	__u64 cookie;		/* the filter's id, named in its log lines */
	__u32 audit;		/* non-zero: audit mode */
	__u32 pad;
};

/* wf_counters and wf_maps write the interface's own records (struct
 * wasmfw_counter, struct wasmfw_map_info of wasmfw_uapi.h). */

/* wf_run's result is a RunResult (filters/abi/src/verdict.rs): decode it
 * with wasmfw_verdict.h (WF_RUN_*, wf_run_drops()). */

/* wf_load's error code (*error). */
#define WF_LOAD_OK 0
#define WF_LOAD_INVALID 1	/* not a valid Wasm module for this engine */
#define WF_LOAD_ABI 2		/* valid Wasm, not a wasmfw filter */
#define WF_LOAD_INIT 3		/* the filter's wasmfw_init rejected its configuration */
#define WF_LOAD_NO_MEMORY 4	/* out of memory (the engine's or the host's) */
#define WF_LOAD_ENGINE_BUG 5	/* the host abandoned a load after an engine panic */

/* Exports. Process context for all but wf_run. */
struct wf_filter *wf_load(const __u8 *wasm, size_t wasm_len, const __u8 *cfg, size_t cfg_len,
			  const struct wf_load_args *args, char *err, size_t err_cap, int *error);
int wf_run(const struct wf_filter *f, __u32 slot, const __u8 *pkt, size_t len, int link);
void wf_free(struct wf_filter *f);
size_t wf_counters(const struct wf_filter *f, struct wasmfw_counter *out, size_t cap);
size_t wf_maps(const struct wf_filter *f, struct wasmfw_map_info *out, size_t cap);
int wf_map_update(const struct wf_filter *f, const char *name, const __u8 *key, size_t key_len,
		  const __u8 *value, size_t value_len);
int wf_map_delete(const struct wf_filter *f, const char *name, const __u8 *key, size_t key_len);
long long wf_map_dump(const struct wf_filter *f, const char *name, __u8 *out, size_t cap, __u64 *cursor);
void *wf_log_ring(const struct wf_filter *f);

/* Host hooks the engine calls (wasmfw_alloc.c, wasmfw_log.c, wasmfw_load.c). */
void *wasmfw_host_alloc(size_t size, size_t align);
void wasmfw_host_free(void *ptr);
__u64 wasmfw_host_now_ns(void);
void *wasmfw_host_logring_new(__u64 id);
void wasmfw_host_logring_free(void *ring);
__u64 wasmfw_host_logring_dropped(void *ring);
void wasmfw_host_logring_add_dropped(void *ring, __u64 records);
void wasmfw_host_log(void *ring, int level, const __u8 *msg, size_t len);
void __noreturn wasmfw_host_panic(const __u8 *msg, size_t len);
void *wasmfw_host_lock_new(void);
void wasmfw_host_lock_free(void *lock);
void wasmfw_host_lock(void *lock, bool packet);
void wasmfw_host_unlock(void *lock, bool packet);

#endif
