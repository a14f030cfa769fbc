/* SPDX-License-Identifier: GPL-2.0 */
/* Filters' log rings and sanitized kernel log lines (wasmfw_log.c). */
#ifndef _WASMFW_LOG_H
#define _WASMFW_LOG_H

#include <linux/types.h>

#include "wasmfw_uapi.h"

/* Copies `src` into `dst` (NUL-terminated, at most cap - 1 bytes) with
 * every byte outside printable ASCII replaced by '?'. */
void wasmfw_sanitize(char *dst, size_t cap, const u8 *src, size_t len);
/* A refused load's message, sanitized and rate limited (called by Rust). */
void wasmfw_log_refused(const u8 *msg, size_t len);
/* How a wasmfw_logring_read() moved the ring's read mark, to take it back. */
struct wasmfw_logring_undo {
	u64 prev_read_seq;	/* the mark before the read */
	u64 read_seq;		/* where the read left its cursor */
	u64 oldest;		/* the oldest record held when it did */
};

/* WASMFW_IOC_LOG_READ (called by Rust, control mutex held): the records
 * copied or -EINVAL; _unread() undoes a read whose copy out failed. */
int wasmfw_logring_read(void *ring, u64 *cursor, struct wasmfw_log_record *out, u32 cap, u64 *lost,
			u64 *dropped, struct wasmfw_logring_undo *undo);
void wasmfw_logring_unread(void *ring, const struct wasmfw_logring_undo *undo);

#endif
