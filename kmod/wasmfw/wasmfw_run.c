// SPDX-License-Identifier: GPL-2.0
/*
 * Running a filter on a packet: the calling CPU's instance with bottom
 * halves off and the packet-path mark the allocator reads, and the
 * per-packet stack probe (module parameter stack_probe).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/bottom_half.h>
#include <linux/kernel.h>
#include <linux/kstrtox.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "wasmfw_alloc.h"
#include "wasmfw_engine.h"
#include "wasmfw_load.h"
#include "wasmfw_run.h"
#include "wasmfw_uapi.h"

/*
 * Per-packet stack probe (kmod/tests/t_stack.sh): while the writable module
 * parameter stack_probe is 1, every packet run paints the free part of the
 * stack it runs on (task stack, or on x86_64 the per-CPU IRQ stack that
 * softirqs use) and records the deepest byte wf_run overwrote, measured
 * from the probe's own frame. Writing 1 resets the figures, 0 stops; reading
 * gives "peak <bytes> runs <measured> skipped <not measurable>" (skipped:
 * a stack whose bounds the glue does not know, or KASAN, whose poisoned
 * redzones must not be painted). Off by default: painting costs a memset
 * of up to a whole stack per packet.
 */
#define WASMFW_STACK_PROBE_MARGIN 256	/* left unpainted below the probe's frame (memset's own) */
static bool wasmfw_stack_probe_on;
static atomic_t wasmfw_stack_probe_peak = ATOMIC_INIT(0);
static atomic_long_t wasmfw_stack_probe_runs = ATOMIC_LONG_INIT(0);
static atomic_long_t wasmfw_stack_probe_skipped = ATOMIC_LONG_INIT(0);

static int wasmfw_stack_probe_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "peak %d runs %ld skipped %ld\n", atomic_read(&wasmfw_stack_probe_peak),
			  atomic_long_read(&wasmfw_stack_probe_runs), atomic_long_read(&wasmfw_stack_probe_skipped));
}

static int wasmfw_stack_probe_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int err = kstrtobool(val, &on);

	if (err)
		return err;
	if (on) {
		atomic_set(&wasmfw_stack_probe_peak, 0);
		atomic_long_set(&wasmfw_stack_probe_runs, 0);
		atomic_long_set(&wasmfw_stack_probe_skipped, 0);
	}
	WRITE_ONCE(wasmfw_stack_probe_on, on);
	return 0;
}
static const struct kernel_param_ops wasmfw_stack_probe_ops = {
	.get = wasmfw_stack_probe_get, .set = wasmfw_stack_probe_set,
};
module_param_cb(stack_probe, &wasmfw_stack_probe_ops, NULL, 0600);
MODULE_PARM_DESC(stack_probe, "1: measure the kernel stack each packet run uses (test only; slow)");

/* The lowest usable byte of the stack `sp` is on, or NULL if unknown. */
static u8 *wasmfw_stack_bottom(u8 *sp)
{
	if (object_is_on_stack(sp))
		return (u8 *)end_of_stack(current) + sizeof(unsigned long);
#if defined(CONFIG_X86_64) && !defined(CONFIG_UML)
	{
		/* hardirq_stack_ptr is the IRQ stack's top minus 8. */
		u8 *top = (u8 *)this_cpu_read(pcpu_hot.hardirq_stack_ptr);

		if (top && sp < top && sp >= top + 8 - IRQ_STACK_SIZE)
			return top + 8 - IRQ_STACK_SIZE;
	}
#endif
	return NULL;
}

static noinline int wasmfw_run_probed(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	u8 *frame = __builtin_frame_address(0);
	u8 *bottom = IS_ENABLED(CONFIG_KASAN) ? NULL : wasmfw_stack_bottom(frame);
	u8 *low = frame - WASMFW_STACK_PROBE_MARGIN;
	int verdict, used, peak;

	if (!bottom || low <= bottom) {
		atomic_long_inc(&wasmfw_stack_probe_skipped);
		return wf_run(f, smp_processor_id(), data, len, link);
	}
	memset(bottom, STACK_PAINT, low - bottom);
	verdict = wf_run(f, smp_processor_id(), data, len, link);
	used = wasmfw_stack_depth(bottom, frame);
	peak = atomic_read(&wasmfw_stack_probe_peak);
	while (used > peak && !atomic_try_cmpxchg(&wasmfw_stack_probe_peak, &peak, used))
		;
	atomic_long_inc(&wasmfw_stack_probe_runs);
	return verdict;
}

/*
 * Nesting test (kmod/tests/t_faults.sh): while the writable module
 * parameter nest_test is 1, every log line a filter writes from a packet
 * run makes wasmfw_host_log() run that same filter again on the same CPU,
 * inside the first run (as netpoll or a nested softirq could): the
 * engine's nesting guard must refuse it without touching the instance
 * (wf_run returns on_fault, counted in nested_runs). Reading gives "runs
 * <nested runs made> last <their last wf_run result>". Off by default.
 */
static bool wasmfw_nest_test_on;
static atomic_long_t wasmfw_nest_test_runs = ATOMIC_LONG_INIT(0);
static atomic_t wasmfw_nest_test_last = ATOMIC_INIT(-1);
/* The filter this CPU is running (innermost), for the nesting test only. */
static DEFINE_PER_CPU(struct wf_filter *, wasmfw_running_filter);

static int wasmfw_nest_test_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "runs %ld last %d\n", atomic_long_read(&wasmfw_nest_test_runs),
			  atomic_read(&wasmfw_nest_test_last));
}

static int wasmfw_nest_test_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int err = kstrtobool(val, &on);

	if (err)
		return err;
	if (on) {
		atomic_long_set(&wasmfw_nest_test_runs, 0);
		atomic_set(&wasmfw_nest_test_last, -1);
	}
	WRITE_ONCE(wasmfw_nest_test_on, on);
	return 0;
}
static const struct kernel_param_ops wasmfw_nest_test_ops = {
	.get = wasmfw_nest_test_get, .set = wasmfw_nest_test_set,
};
module_param_cb(nest_test, &wasmfw_nest_test_ops, NULL, 0600);
MODULE_PARM_DESC(nest_test, "1: each filter log line runs the filter again, nested (test only)");

/* Called by wasmfw_host_log() (no lock held) while nest_test is on: runs
 * the filter this CPU is inside of again, nested, on `data`. */
void wasmfw_run_nest_test(const u8 *data, size_t len)
{
	struct wf_filter *f = this_cpu_read(wasmfw_running_filter);

	/* Only from inside a packet run: a load's wasmfw_init logs too. */
	if (!f || !this_cpu_read(wasmfw_in_packet))
		return;
	atomic_set(&wasmfw_nest_test_last, wasmfw_run_bh_off(f, data, len, WASMFW_LINK_RAW_IP));
	atomic_long_inc(&wasmfw_nest_test_runs);
}

/* Runs `f` on the calling CPU's instance; the caller has BH disabled, so
 * no other CPU uses the instance. A run nested in another on this CPU
 * (netpoll, a nested softirq) restores the outer run's marks when it ends;
 * one of the same filter is refused by the engine's nesting guard. */
int wasmfw_run_bh_off(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	int verdict, in_packet = this_cpu_read(wasmfw_in_packet);
	struct wf_filter *outer = this_cpu_read(wasmfw_running_filter);

	this_cpu_write(wasmfw_in_packet, 1);
	this_cpu_write(wasmfw_running_filter, f);
	if (unlikely(READ_ONCE(wasmfw_stack_probe_on)))
		verdict = wasmfw_run_probed(f, data, len, link);
	else
		verdict = wf_run(f, smp_processor_id(), data, len, link);
	this_cpu_write(wasmfw_running_filter, outer);
	this_cpu_write(wasmfw_in_packet, in_packet);
	return verdict;
}

/* wasmfw_host_log() asks this before wasmfw_run_nest_test(). */
bool wasmfw_nest_test(void)
{
	return unlikely(READ_ONCE(wasmfw_nest_test_on));
}

/* The same, from a context that may have BH enabled. */
int wasmfw_run_local(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	int verdict;

	local_bh_disable();
	verdict = wasmfw_run_bh_off(f, data, len, link);
	local_bh_enable();
	return verdict;
}
