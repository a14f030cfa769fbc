/* SPDX-License-Identifier: GPL-2.0 */
/* Capture rings (wasmfw_capture.c): _packet from the hooks, the rest called by Rust under the control mutex. */
#ifndef _WASMFW_CAPTURE_H
#define _WASMFW_CAPTURE_H

#include <linux/types.h>

struct file;
struct net;

/* Captures running: the packet path looks no further while it is 0. */
extern int wasmfw_capture_running;
void wasmfw_capture_packet(struct net *net, int ifindex, u32 hook, int raw, const u8 *data, size_t len,
			   size_t orig_len, int link);
int wasmfw_capture_start(void *net, int ifindex, u32 hook, u32 id, u32 verdicts, u32 snaplen);
int wasmfw_capture_stop(u32 id, bool any_owner);
void wasmfw_capture_release(const struct file *file);
long wasmfw_capture_peek(u32 id, u8 *out, size_t cap, u32 *count, u64 *lost);
void wasmfw_capture_consume(u32 id, u32 count);

#endif
