// SPDX-License-Identifier: GPL-2.0
/*
 * Capture rings (`wasmfw capture`, WASMFW_IOC_CAPTURE_*): the packets an
 * attached filter gave a chosen verdict, copied on the packet path into a
 * ring of fixed-size slots allocated at start, in process context. The
 * packet path allocates nothing, takes the ring's lock for one bounded
 * copy (at most WASMFW_CAPTURE_SNAPLEN bytes) and drops and counts a
 * record when the ring is full. With no capture running it costs one
 * predictable branch (wasmfw_capture_running). Start, stop and read run
 * under the control mutex; a ring is unpublished, then freed after
 * synchronize_net(), since a CPU may still be writing to it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/minmax.h>
#include <linux/netdevice.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>

#include "wasmfw_capture.h"
#include "wasmfw_ctl.h"
#include "wasmfw_engine.h"
#include "wasmfw_uapi.h"
#include "wasmfw_verdict.h"

/* One slot: the record header and the most bytes a record keeps. */
#define WASMFW_CAPTURE_SLOT (sizeof(struct wasmfw_capture_rec) + WASMFW_CAPTURE_SNAPLEN)
#define WASMFW_CAPTURE_SLOTS (WASMFW_CAPTURE_RING_BYTES / WASMFW_CAPTURE_SLOT)

struct wasmfw_capture {
	/* Which attachment: (net, ifindex, hook), keys only. */
	struct net *net;
	int ifindex;
	u32 hook;
	u32 id;
	u32 verdicts;
	u32 snaplen;
	const struct file *owner;
	spinlock_t lock;		/* head, tail, lost, slots */
	u64 head;			/* records written */
	u64 tail;			/* records read */
	u64 lost;
	u8 *slots;			/* WASMFW_CAPTURE_SLOTS slots */
};

static struct wasmfw_capture __rcu *wasmfw_captures[WASMFW_MAX_CAPTURES];
/* Captures running: the packet path looks no further while it is 0. */
int wasmfw_capture_running;

static struct wasmfw_capture *wasmfw_capture_at(int i)
{
	return rcu_dereference_protected(wasmfw_captures[i], wasmfw_ctl_held());
}

/* Called by the hooks (RCU read side, any context but hardirq) when
 * wasmfw_capture_running is set. `raw` is wf_run's result. */
void wasmfw_capture_packet(struct net *net, int ifindex, u32 hook, int raw, const u8 *data, size_t len,
			   size_t orig_len, int link)
{
	/* The filter's verdict: a drop audit mode passed is a drop. */
	u32 bit = wf_run_capture_bit(raw);
	struct wasmfw_capture_rec *rec;
	struct wasmfw_capture *c = NULL;
	unsigned long flags;
	int i;

	for (i = 0; i < WASMFW_MAX_CAPTURES; i++) {
		/* Netfilter hooks run under rcu_read_lock(), XDP under it or
		 * with bottom halves off: synchronize_net() waits for all. */
		c = rcu_dereference_check(wasmfw_captures[i], rcu_read_lock_held() ||
					  rcu_read_lock_bh_held() || rcu_read_lock_sched_held());
		if (c && c->net == net && c->ifindex == ifindex && c->hook == hook)
			break;
		c = NULL;
	}
	if (!c || !(c->verdicts & bit))
		return;
	len = min_t(size_t, len, c->snaplen);
	/* irqsave: a driver may run XDP with interrupts off (netpoll). */
	spin_lock_irqsave(&c->lock, flags);
	if (c->head - c->tail >= WASMFW_CAPTURE_SLOTS) {
		c->lost++;
		spin_unlock_irqrestore(&c->lock, flags);
		return;
	}
	rec = (struct wasmfw_capture_rec *)(c->slots + (c->head % WASMFW_CAPTURE_SLOTS) * WASMFW_CAPTURE_SLOT);
	rec->ts_ns = ktime_get_ns();
	rec->cpu = raw_smp_processor_id();
	rec->verdict = bit;
	rec->id = c->id;
	rec->orig_len = orig_len;
	rec->caplen = len;
	rec->link = link;
	rec->flags = (raw & WF_RUN_AUDITED) ? WASMFW_CAPTURE_REC_AUDIT : 0;
	rec->pad = 0;
	memcpy(rec + 1, data, len);
	c->head++;
	spin_unlock_irqrestore(&c->lock, flags);
}

/* Starts a capture of attachment (net, ifindex, hook) running filter `id`,
 * owned by the file of the ioctl in progress. */
int wasmfw_capture_start(void *net, int ifindex, u32 hook, u32 id, u32 verdicts, u32 snaplen)
{
	struct wasmfw_capture *c;
	int i, free_slot = -1;

	if (!verdicts || verdicts & ~(WASMFW_CAPTURE_PASS | WASMFW_CAPTURE_DROP | WASMFW_CAPTURE_FAULT) ||
	    !snaplen || snaplen > WASMFW_CAPTURE_SNAPLEN)
		return -EINVAL;
	for (i = 0; i < WASMFW_MAX_CAPTURES; i++) {
		c = wasmfw_capture_at(i);
		if (c && c->net == net && c->ifindex == ifindex && c->hook == hook)
			return -EBUSY;
		if (!c && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
	if (!c)
		return -ENOMEM;
	c->slots = vmalloc(WASMFW_CAPTURE_SLOTS * WASMFW_CAPTURE_SLOT);
	if (!c->slots) {
		kfree(c);
		return -ENOMEM;
	}
	c->net = net;
	c->ifindex = ifindex;
	c->hook = hook;
	c->id = id;
	c->verdicts = verdicts;
	c->snaplen = snaplen;
	c->owner = wasmfw_ioctl_file;
	spin_lock_init(&c->lock);
	rcu_assign_pointer(wasmfw_captures[free_slot], c);
	WRITE_ONCE(wasmfw_capture_running, wasmfw_capture_running + 1);
	return 0;
}

static void wasmfw_capture_free_at(int i)
{
	struct wasmfw_capture *c = wasmfw_capture_at(i);

	RCU_INIT_POINTER(wasmfw_captures[i], NULL);
	WRITE_ONCE(wasmfw_capture_running, wasmfw_capture_running - 1);
	/* A hook may still be copying into the ring. */
	synchronize_net();
	vfree(c->slots);
	kfree(c);
}

/* Stops the captures of filter `id` (any owner: the filter is going away)
 * or, with `owner`, only that file's. Returns how many were stopped. */
int wasmfw_capture_stop(u32 id, bool any_owner)
{
	int i, n = 0;

	for (i = 0; i < WASMFW_MAX_CAPTURES; i++) {
		struct wasmfw_capture *c = wasmfw_capture_at(i);

		if (c && c->id == id && (any_owner || c->owner == wasmfw_ioctl_file)) {
			wasmfw_capture_free_at(i);
			n++;
		}
	}
	return n;
}

/* The file is being closed: its captures end. */
void wasmfw_capture_release(const struct file *file)
{
	int i;

	for (i = 0; i < WASMFW_MAX_CAPTURES; i++) {
		struct wasmfw_capture *c = wasmfw_capture_at(i);

		if (c && c->owner == file)
			wasmfw_capture_free_at(i);
	}
}

static struct wasmfw_capture *wasmfw_capture_of_caller(u32 id)
{
	int i;

	for (i = 0; i < WASMFW_MAX_CAPTURES; i++) {
		struct wasmfw_capture *c = wasmfw_capture_at(i);

		if (c && c->id == id && c->owner == wasmfw_ioctl_file)
			return c;
	}
	return NULL;
}

/*
 * Copies the oldest whole records of the calling file's capture of filter
 * `id` into `out` (kernel memory, `cap` bytes), one record per lock hold,
 * WITHOUT consuming them: the caller copies them to userspace and only
 * then calls wasmfw_capture_consume(), so a failed copy (EFAULT) loses
 * nothing. The slots stay the reader's meanwhile (the writer never
 * overwrites: a full ring drops new records and counts them in `lost`).
 * Returns the bytes written or -ENOENT; *count, *lost are set.
 */
long wasmfw_capture_peek(u32 id, u8 *out, size_t cap, u32 *count, u64 *lost)
{
	struct wasmfw_capture *c = wasmfw_capture_of_caller(id);
	size_t used = 0;
	u64 seq;

	if (!c)
		return -ENOENT;
	*count = 0;
	spin_lock_irq(&c->lock);
	seq = c->tail;
	spin_unlock_irq(&c->lock);
	for (;; seq++) {
		const struct wasmfw_capture_rec *rec;
		size_t n;

		spin_lock_irq(&c->lock);
		if (seq == c->head) {
			spin_unlock_irq(&c->lock);
			break;
		}
		rec = (const void *)(c->slots + (seq % WASMFW_CAPTURE_SLOTS) * WASMFW_CAPTURE_SLOT);
		n = ALIGN(sizeof(*rec) + rec->caplen, 8);
		if (used + n > cap) {
			spin_unlock_irq(&c->lock);
			break;
		}
		memcpy(out + used, rec, sizeof(*rec) + rec->caplen);
		memset(out + used + sizeof(*rec) + rec->caplen, 0, n - sizeof(*rec) - rec->caplen);
		spin_unlock_irq(&c->lock);
		used += n;
		(*count)++;
	}
	spin_lock_irq(&c->lock);
	*lost = c->lost;
	spin_unlock_irq(&c->lock);
	return used;
}

/* The `count` records the last wasmfw_capture_peek() returned reached
 * userspace: their slots are free again. Reads are serialised by the
 * control mutex, so the tail is where that peek started. */
void wasmfw_capture_consume(u32 id, u32 count)
{
	struct wasmfw_capture *c = wasmfw_capture_of_caller(id);

	if (!c)
		return;
	spin_lock_irq(&c->lock);
	c->tail += min_t(u64, count, c->head - c->tail);
	spin_unlock_irq(&c->lock);
}
