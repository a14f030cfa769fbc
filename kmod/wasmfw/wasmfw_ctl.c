// SPDX-License-Identifier: GPL-2.0
/*
 * The control mutex: every control operation (ioctls, the netdevice
 * notifier, the pernet exit, module exit) runs under it, one at a time;
 * the Rust registry and the capture table rely on it. LOAD holds it only
 * to reserve and to publish (its compile runs under wasmfw_load.c's load
 * mutex), so nothing under rtnl waits behind a compile.
 */
#include <linux/lockdep.h>
#include <linux/mutex.h>

#include "wasmfw_ctl.h"

DEFINE_MUTEX(wasmfw_ctl_mutex);
const struct file *wasmfw_ioctl_file;

bool wasmfw_ctl_held(void)
{
#ifdef CONFIG_LOCKDEP
	return lockdep_is_held(&wasmfw_ctl_mutex);
#else
	return true;
#endif
}

int wasmfw_ctl_lock(void)
{
	return mutex_lock_interruptible(&wasmfw_ctl_mutex);
}

void wasmfw_ctl_lock_uninterruptible(void)
{
	mutex_lock(&wasmfw_ctl_mutex);
}

void wasmfw_ctl_unlock(void)
{
	mutex_unlock(&wasmfw_ctl_mutex);
}
