// SPDX-License-Identifier: GPL-2.0
/*
 * Filters at XDP: the kfunc xdp-bridge's program calls (wasmfw_xdp_run),
 * the native baseline kfunc, their BTF registration, and the table of
 * filters by (netns, ifindex) the kfunc reads under RCU.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/filter.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/nsproxy.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <net/net_namespace.h>
#include <net/xdp.h>

#include "wasmfw_capture.h"
#include "wasmfw_rs.h"
#include "wasmfw_run.h"
#include "wasmfw_uapi.h"
#include "wasmfw_verdict.h"
#include "wasmfw_xdp.h"

/*
 * Filters attached at XDP, by (netns, ifindex). Written under the control
 * mutex; read by the kfunc inside the XDP program's RCU section.
 */
#define WASMFW_XDP_SLOTS WASMFW_MAX_XDP_ATTACHMENTS
struct wasmfw_xdp_slot {
	struct net *net;
	int ifindex;
	struct wf_filter __rcu *filter;
};
static struct wasmfw_xdp_slot wasmfw_xdp[WASMFW_XDP_SLOTS];

__bpf_kfunc_start_defs();

/**
 * wasmfw_xdp_run - run the Wasm filter attached to the packet's interface
 * @ctx: the XDP context of the calling program
 *
 * Return: XDP_DROP or XDP_PASS (XDP_PASS when no filter is attached).
 */
__bpf_kfunc int wasmfw_xdp_run(struct xdp_md *ctx)
{
	struct xdp_buff *xdp = (struct xdp_buff *)ctx;
	struct net_device *dev = xdp->rxq->dev;
	struct wf_filter *f = NULL;
	size_t len;
	int i, verdict;

	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (READ_ONCE(wasmfw_xdp[i].ifindex) == dev->ifindex &&
		    READ_ONCE(wasmfw_xdp[i].net) == dev_net(dev)) {
			/* Drivers run XDP under rcu_read_lock() or only with
			 * bottom halves off (NAPI): both are RCU readers. */
			f = rcu_dereference_check(wasmfw_xdp[i].filter,
						  rcu_read_lock_bh_held() || rcu_read_lock_sched_held());
			break;
		}
	}
	if (!f)
		return XDP_PASS;
	/* The linear part: XDP frames of interest (headers) live there. */
	len = min_t(size_t, xdp->data_end - xdp->data, WASMFW_MAX_PACKET);
	verdict = wasmfw_run_local(f, xdp->data, len, WASMFW_LINK_ETHERNET);
	if (unlikely(READ_ONCE(wasmfw_capture_running)))
		wasmfw_capture_packet(dev_net(dev), dev->ifindex, WASMFW_HOOK_XDP, verdict, xdp->data, len,
				      xdp->data_end - xdp->data, WASMFW_LINK_ETHERNET);
	return wf_run_drops(verdict) ? XDP_DROP : XDP_PASS;
}

/**
 * wasmfw_xdp_native_icmp - the ICMP interceptor in native Rust
 * @ctx: the XDP context of the calling program
 *
 * The benchmarks' native-module baseline: same kfunc path as
 * wasmfw_xdp_run, no Wasm. Return: XDP_DROP or XDP_PASS.
 */
__bpf_kfunc int wasmfw_xdp_native_icmp(struct xdp_md *ctx)
{
	struct xdp_buff *xdp = (struct xdp_buff *)ctx;

	return wasmfw_native_icmp_drop(xdp->data, xdp->data_end - xdp->data) ? XDP_DROP : XDP_PASS;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(wasmfw_kfunc_ids)
BTF_ID_FLAGS(func, wasmfw_xdp_run)
BTF_ID_FLAGS(func, wasmfw_xdp_native_icmp)
BTF_KFUNCS_END(wasmfw_kfunc_ids)

static const struct btf_kfunc_id_set wasmfw_kfunc_set = {
	.owner = THIS_MODULE,
	.set = &wasmfw_kfunc_ids,
};

/* Publishes `f` for `ifname` (caller's netns); if a filter is there, it is
 * swapped atomically and returned once no CPU runs it. */
int wasmfw_xdp_attach(const char *ifname, struct wf_filter *f, struct wf_filter **old, int *ifindex)
{
	struct net *net = current->nsproxy->net_ns;
	struct net_device *dev = dev_get_by_name(net, ifname);
	int i, free_slot = -1;

	*old = NULL;
	if (!dev)
		return -ENODEV;
	*ifindex = dev->ifindex;
	dev_put(dev);
	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (wasmfw_xdp[i].net == net && wasmfw_xdp[i].ifindex == *ifindex) {
			*old = rcu_replace_pointer(wasmfw_xdp[i].filter, f, true);
			synchronize_rcu();
			return 0;
		}
		if (!wasmfw_xdp[i].net && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	rcu_assign_pointer(wasmfw_xdp[free_slot].filter, f);
	WRITE_ONCE(wasmfw_xdp[free_slot].ifindex, *ifindex);
	/* Publish the netns last: a reader matching it sees the filter. No
	 * reference (see wasmfw_nf_attach): the pernet exit and the netdevice
	 * notifier empty the slot before the namespace or device is gone. */
	smp_store_release(&wasmfw_xdp[free_slot].net, net);
	return 0;
}

/* Unpublishes the XDP filter of (net, ifindex) and returns it once no CPU
 * can run it any more (after a grace period); NULL if there is none. */
struct wf_filter *wasmfw_xdp_detach_at(void *netp, int ifindex)
{
	struct net *net = netp;
	struct wf_filter *f;
	int i;

	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (wasmfw_xdp[i].net == net && wasmfw_xdp[i].ifindex == ifindex) {
			f = rcu_replace_pointer(wasmfw_xdp[i].filter, NULL, true);
			WRITE_ONCE(wasmfw_xdp[i].ifindex, 0);
			WRITE_ONCE(wasmfw_xdp[i].net, NULL);
			synchronize_rcu();
			return f;
		}
	}
	return NULL;
}

/* Unpublishes the XDP filter on `ifname` (caller's netns), once unused. */
struct wf_filter *wasmfw_xdp_detach(const char *ifname)
{
	struct net *net = current->nsproxy->net_ns;
	struct net_device *dev = dev_get_by_name(net, ifname);
	int ifindex;

	if (!dev)
		return NULL;
	ifindex = dev->ifindex;
	dev_put(dev);
	return wasmfw_xdp_detach_at(net, ifindex);
}

/* Module exit: drops every XDP filter; returns them one by one. */
struct wf_filter *wasmfw_xdp_take_any(void)
{
	int i;

	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (wasmfw_xdp[i].net)
			return wasmfw_xdp_detach_at(wasmfw_xdp[i].net, wasmfw_xdp[i].ifindex);
	}
	return NULL;
}

int wasmfw_xdp_register_kfuncs(void)
{
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &wasmfw_kfunc_set);
}
