/* SPDX-License-Identifier: GPL-2.0 */
/* Filters at XDP (wasmfw_xdp.c): the slot table Rust drives under the control mutex, and the kfunc set. */
#ifndef _WASMFW_XDP_H
#define _WASMFW_XDP_H

struct wf_filter;

int wasmfw_xdp_attach(const char *ifname, struct wf_filter *f, struct wf_filter **old, int *ifindex);
struct wf_filter *wasmfw_xdp_detach(const char *ifname);
struct wf_filter *wasmfw_xdp_detach_at(void *net, int ifindex);
struct wf_filter *wasmfw_xdp_take_any(void);
/* Registers the kfuncs for XDP programs (module init). */
int wasmfw_xdp_register_kfuncs(void);

#endif
