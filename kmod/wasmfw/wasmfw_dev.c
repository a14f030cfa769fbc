// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/wasmfw: the misc device, its ioctl entry (CAP_NET_ADMIN, the
 * control mutex, then the Rust dispatch), TEST_RUN's timed loop, and the
 * kernel facts the 6.12 Rust kernel crate cannot read for the Rust side.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/cpumask.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/lockdep.h>
#include <linux/log2.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

#include "wasmfw_capture.h"
#include "wasmfw_ctl.h"
#include "wasmfw_dev.h"
#include "wasmfw_rs.h"
#include "wasmfw_run.h"
#include "wasmfw_uapi.h"
#include "wasmfw_verdict.h"

/*
 * Runs `f` up to `repeat` times on one packet, but returns after
 * WASMFW_TEST_RUN_SLICE_NS (with at least one run done): the caller holds
 * the control mutex around each slice and drops it between slices, checks
 * for signals and reschedules (wasmfw_filter_ioctl.rs, test_run). *ran gets the
 * runs done, *ns their time.
 */
#define WASMFW_TEST_RUN_SLICE_NS (2 * NSEC_PER_MSEC)

int wasmfw_glue_test_run(struct wf_filter *f, const u8 *pkt, u32 len, int link, u32 repeat,
			 u64 *ns, u32 *ran)
{
	int verdict = 0;
	u64 t0, now = 0;
	u32 i;

	t0 = ktime_get_ns();
	for (i = 0; i < repeat; ) {
		verdict = wf_run_verdict(wasmfw_run_local(f, pkt, len, link));
		i++;
		/* The clock is read after runs 1, 2, 4 ... 64, then every 64th:
		 * a slow filter (a run can cost WASMFW_MAX_FUEL) ends the slice
		 * after its first run, a fast one is timed without a clock read
		 * per run. */
		if ((i & 63) == 0 || (i < 64 && is_power_of_2(i)) || i == repeat) {
			now = ktime_get_ns();
			if (now - t0 >= WASMFW_TEST_RUN_SLICE_NS)
				break;
		}
	}
	*ns = now - t0;
	*ran = i;
	return verdict;
}

bool wasmfw_signal_pending(void)
{
	return signal_pending(current);
}

void wasmfw_cond_resched(void)
{
	cond_resched();
}

/* A filter has one instance per possible CPU id (wf_load_args.slots). */
u32 wasmfw_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

/* The seed of a filter's hash maps (wf_load_args.seed). */
u64 wasmfw_random_u64(void)
{
	return get_random_u64();
}

static long wasmfw_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long ret;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	/* A test run may last long (repeat x fuel): it takes the mutex per
	 * time slice, so rmmod, other ioctls and the netdevice notifier are
	 * never held up for more than a slice. */
	if (cmd == WASMFW_IOC_TEST_RUN)
		return wasmfw_rs_test_run(arg);
	/* A load compiles for every possible CPU and runs wasmfw_init: it
	 * takes the mutex only to reserve and to publish (wasmfw_ioctl.rs),
	 * so the netdevice notifier and pernet exit never wait behind it. */
	if (cmd == WASMFW_IOC_LOAD)
		return wasmfw_rs_load(arg);
	/* One control operation at a time: the Rust registry relies on it. */
	if (mutex_lock_interruptible(&wasmfw_ctl_mutex))
		return -EINTR;
	wasmfw_ioctl_file = file;
	ret = wasmfw_rs_ioctl(cmd, arg);
	wasmfw_ioctl_file = NULL;
	mutex_unlock(&wasmfw_ctl_mutex);
	return ret;
}

/* Captures end with the file that started them (wasmfw_capture.c). */
static int wasmfw_release(struct inode *inode, struct file *file)
{
	mutex_lock(&wasmfw_ctl_mutex);
	wasmfw_capture_release(file);
	mutex_unlock(&wasmfw_ctl_mutex);
	return 0;
}

static const struct file_operations wasmfw_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = wasmfw_ioctl,
	.release = wasmfw_release,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice wasmfw_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wasmfw",
	.fops = &wasmfw_fops,
	.mode = 0600,
};


int wasmfw_dev_register(void)
{
	return misc_register(&wasmfw_misc);
}

void wasmfw_dev_unregister(void)
{
	misc_deregister(&wasmfw_misc);
}
