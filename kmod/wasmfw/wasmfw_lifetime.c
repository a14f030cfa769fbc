// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetime: the netdevice notifier and pernet exit that detach what was
 * attached on a device or namespace going away, and the C side's module
 * init and exit (pernet, notifier, kfuncs, device, in that order).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/notifier.h>
#include <net/net_namespace.h>

#include "wasmfw_ctl.h"
#include "wasmfw_dev.h"
#include "wasmfw_lifetime.h"
#include "wasmfw_rs.h"
#include "wasmfw_xdp.h"

/*
 * Attachments are keyed by (netns, ifindex) and hold no reference on
 * either. When a device is unregistered - deleted, or moved to another
 * namespace, which unregisters it from the old one - or a namespace is
 * dismantled, every attachment there is detached and its filter freed
 * (after a grace period), so `status` no longer lists it and nothing
 * keeps the namespace alive.
 *
 * Lock order: rtnl (notifier) / pernet_ops_rwsem (pernet exit) ->
 * wasmfw_ctl_mutex -> nf_hook_mutex. Nothing under wasmfw_ctl_mutex takes
 * rtnl or pernet_ops_rwsem.
 */
/* Set at module exit: unregistering the notifier replays NETDEV_UNREGISTER
 * for every device, which then detaches everything (and says why). */
static bool wasmfw_exiting;

static int wasmfw_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	if (event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	mutex_lock(&wasmfw_ctl_mutex);
	wasmfw_rs_forget(dev_net(dev), dev->ifindex,
			 READ_ONCE(wasmfw_exiting) ? "module unloading" : "interface unregistered");
	mutex_unlock(&wasmfw_ctl_mutex);
	return NOTIFY_DONE;
}

static struct notifier_block wasmfw_netdev_nb = {
	.notifier_call = wasmfw_netdev_event,
};

/* Anything the notifier did not see (it sees every device of a dying
 * namespace, so this is a safety net). */
static void __net_exit wasmfw_net_exit(struct net *net)
{
	mutex_lock(&wasmfw_ctl_mutex);
	wasmfw_rs_forget(net, 0, "network namespace deleted");
	mutex_unlock(&wasmfw_ctl_mutex);
}

static struct pernet_operations wasmfw_net_ops = {
	.exit = wasmfw_net_exit,
};

int wasmfw_glue_init(void)
{
	int err;

	err = register_pernet_subsys(&wasmfw_net_ops);
	if (err)
		return err;
	err = register_netdevice_notifier(&wasmfw_netdev_nb);
	if (err)
		goto out_pernet;
	err = wasmfw_xdp_register_kfuncs();
	if (err)
		goto out_notifier;
	err = wasmfw_dev_register();
	if (err)
		goto out_notifier;
	return 0;
out_notifier:
	unregister_netdevice_notifier(&wasmfw_netdev_nb);
out_pernet:
	unregister_pernet_subsys(&wasmfw_net_ops);
	return err;
}

void wasmfw_glue_exit(void)
{
	wasmfw_dev_unregister();
	/* No ioctl can run any more (an open file pins the module). These two
	 * replay NETDEV_UNREGISTER for every device and the pernet exit for
	 * every namespace, detaching every attachment (they take the mutex
	 * themselves, so it must not be held here). */
	WRITE_ONCE(wasmfw_exiting, true);
	unregister_netdevice_notifier(&wasmfw_netdev_nb);
	unregister_pernet_subsys(&wasmfw_net_ops);
	/* The Rust side frees what is left (filters loaded, not attached). */
	mutex_lock(&wasmfw_ctl_mutex);
	wasmfw_rs_teardown();
	mutex_unlock(&wasmfw_ctl_mutex);
}
