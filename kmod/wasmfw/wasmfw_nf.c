// SPDX-License-Identifier: GPL-2.0
/*
 * Filters at netfilter PRE_ROUTING (IPv4 and IPv6, one interface): the
 * hook, attach/swap/detach under RCU, and the caller's network namespace.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bottom_half.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/nsproxy.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <net/net_namespace.h>

#include "wasmfw_capture.h"
#include "wasmfw_nf.h"
#include "wasmfw_run.h"
#include "wasmfw_uapi.h"
#include "wasmfw_verdict.h"

struct wasmfw_nf {
	struct net *net;
	int ifindex;
	struct wf_filter __rcu *filter;
	struct nf_hook_ops ops[2];
};

/* A per-CPU copy target for packets whose first bytes are not linear. */
static DEFINE_PER_CPU(u8[WASMFW_MAX_PACKET], wasmfw_pkt_buf);

static unsigned int wasmfw_nf_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	struct wasmfw_nf *att = priv;
	struct wf_filter *f;
	unsigned int len;
	const u8 *data;
	int verdict;

	if (!state->in || state->in->ifindex != att->ifindex)
		return NF_ACCEPT;
	/* Netfilter hooks already run inside an RCU read-side section. */
	f = rcu_dereference(att->filter);
	if (!f)
		return NF_ACCEPT;
	len = min_t(unsigned int, skb->len, WASMFW_MAX_PACKET);
	local_bh_disable(); /* this CPU's copy buffer and filter instance */
	data = skb_header_pointer(skb, 0, len, this_cpu_ptr(wasmfw_pkt_buf));
	verdict = data ? wasmfw_run_bh_off(f, data, len, WASMFW_LINK_RAW_IP) : 0;
	if (unlikely(READ_ONCE(wasmfw_capture_running)) && data)
		wasmfw_capture_packet(att->net, att->ifindex, WASMFW_HOOK_NETFILTER, verdict, data, len,
				      skb->len, WASMFW_LINK_RAW_IP);
	local_bh_enable();
	return wf_run_drops(verdict) ? NF_DROP : NF_ACCEPT;
}

struct wasmfw_nf *wasmfw_nf_attach(const char *ifname, struct wf_filter *f, int *err)
{
	struct net *net = current->nsproxy->net_ns;
	struct net_device *dev;
	struct wasmfw_nf *att;
	int i;

	dev = dev_get_by_name(net, ifname);
	if (!dev) {
		*err = -ENODEV;
		return NULL;
	}
	att = kzalloc(sizeof(*att), GFP_KERNEL);
	if (!att) {
		dev_put(dev);
		*err = -ENOMEM;
		return NULL;
	}
	/* No reference on the namespace: an attachment must not keep a
	 * deleted namespace (and its devices) alive. The pernet exit and the
	 * NETDEV_UNREGISTER notifier below release the attachment before the
	 * namespace or the device goes away, so `net` stays valid. */
	att->net = net;
	att->ifindex = dev->ifindex;
	dev_put(dev);
	RCU_INIT_POINTER(att->filter, f);
	for (i = 0; i < 2; i++) {
		att->ops[i].hook = wasmfw_nf_hook;
		att->ops[i].priv = att;
		att->ops[i].pf = i == 0 ? NFPROTO_IPV4 : NFPROTO_IPV6;
		att->ops[i].hooknum = NF_INET_PRE_ROUTING;
		att->ops[i].priority = NF_IP_PRI_FIRST + 1;
	}
	*err = nf_register_net_hooks(net, att->ops, 2);
	if (*err) {
		/* The IPv4 hook may have been live (and running on packets, with
		 * `att` as priv) before the IPv6 one failed and nf_register_net_hooks
		 * unregistered it again; unregistering does not wait for running
		 * hooks in 6.12, so wait here before freeing what they use. */
		synchronize_net();
		kfree(att);
		return NULL;
	}
	return att;
}

int wasmfw_nf_ifindex(const struct wasmfw_nf *att)
{
	return att->ifindex;
}

u64 wasmfw_nf_netns_ino(const struct wasmfw_nf *att)
{
	return att->net->ns.inum;
}

/* The caller's network namespace, as a key (never dereferenced by Rust). */
void *wasmfw_current_net(void)
{
	return current->nsproxy->net_ns;
}

/* The caller's network namespace, as /proc/PID/ns/net names it. */
u64 wasmfw_current_netns_ino(void)
{
	return current->nsproxy->net_ns->ns.inum;
}

/* Swaps in a new filter; every packet sees the old one or the new one.
 * Returns the old filter, which no CPU runs any more. */
struct wf_filter *wasmfw_nf_swap(struct wasmfw_nf *att, struct wf_filter *f)
{
	struct wf_filter *old = rcu_replace_pointer(att->filter, f, true);

	synchronize_rcu();
	return old;
}

/* Unhooks and frees the attachment; returns its filter, no longer in use. */
struct wf_filter *wasmfw_nf_detach(struct wasmfw_nf *att)
{
	struct wf_filter *f;

	nf_unregister_net_hooks(att->net, att->ops, 2);
	/* Not a wait: in 6.12 nf_unregister_net_hooks() only unlinks the hooks
	 * and hands the old hook array to call_rcu. A CPU may still be inside
	 * wasmfw_nf_hook() with `att` and its filter; only after a grace period
	 * can neither be reached (and the filter's last references - wasmi's
	 * engine Arcs included - are then dropped here, in process context,
	 * never in softirq). */
	synchronize_net();
	f = rcu_dereference_protected(att->filter, true);
	kfree(att);
	return f;
}

/* Is `att` in the caller's network namespace and on `ifname`? */
bool wasmfw_nf_matches(const struct wasmfw_nf *att, const char *ifname)
{
	struct net *net = current->nsproxy->net_ns;
	struct net_device *dev;
	bool same;

	if (att->net != net)
		return false;
	dev = dev_get_by_name(net, ifname);
	if (!dev)
		return false;
	same = dev->ifindex == att->ifindex;
	dev_put(dev);
	return same;
}
