/* SPDX-License-Identifier: GPL-2.0 */
/* Netfilter attachments and the caller's namespace (wasmfw_nf.c), called by Rust under the control mutex. */
#ifndef _WASMFW_NF_H
#define _WASMFW_NF_H

#include <linux/types.h>

struct wf_filter;
struct wasmfw_nf;

struct wasmfw_nf *wasmfw_nf_attach(const char *ifname, struct wf_filter *f, int *err);
struct wf_filter *wasmfw_nf_swap(struct wasmfw_nf *att, struct wf_filter *f);
struct wf_filter *wasmfw_nf_detach(struct wasmfw_nf *att);
bool wasmfw_nf_matches(const struct wasmfw_nf *att, const char *ifname);
int wasmfw_nf_ifindex(const struct wasmfw_nf *att);
u64 wasmfw_nf_netns_ino(const struct wasmfw_nf *att);
void *wasmfw_current_net(void);
u64 wasmfw_current_netns_ino(void);

#endif
