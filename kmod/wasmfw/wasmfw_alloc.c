// SPDX-License-Identifier: GPL-2.0
/*
 * The engine's memory (wasmfw_host_alloc/free): kvmalloc in process
 * context, charged to the loader's memory cgroup, a per-CPU pool of small
 * blocks on the packet path, every allocation of a load tracked so an
 * abandoned load can be freed, and fault injection for the tests. Also the
 * map locks and the clock the engine calls (wasmfw_engine.h).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/overflow.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>
#include <linux/vmalloc.h>

#include "wasmfw_alloc.h"
#include "wasmfw_engine.h"

DEFINE_PER_CPU(int, wasmfw_in_packet);


/*
 * The engine preallocates everything at load, but wasmi boxes the error
 * value of every trap, fuel exhaustion included (a few dozen bytes, freed
 * before the run returns). On the packet path such allocations come from
 * this per-CPU pool of small blocks, never from the slab allocator: no
 * GFP_ATOMIC under a flood, and nothing that can fail into the engine's
 * panic handler. Only if the pool is exhausted (more than
 * WASMFW_PKT_POOL_BLOCKS live allocations in one run: not seen) or a
 * request is larger than a block does the packet path fall back to
 * GFP_ATOMIC; every such fallback is counted in the read-only module
 * parameter packet_allocs, which the tests require to stay 0.
 */
#define WASMFW_PKT_POOL_BLOCKS 8
#define WASMFW_PKT_POOL_BLOCK 256
struct wasmfw_pkt_pool {
	unsigned long used;		/* bit i: block i is taken */
	u8 block[WASMFW_PKT_POOL_BLOCKS][WASMFW_PKT_POOL_BLOCK] __aligned(64);
};
static DEFINE_PER_CPU(struct wasmfw_pkt_pool, wasmfw_pool);

static atomic_long_t wasmfw_packet_allocs = ATOMIC_LONG_INIT(0);
static atomic_long_t wasmfw_pool_allocs = ATOMIC_LONG_INIT(0);

static int wasmfw_get_counter(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}
static const struct kernel_param_ops wasmfw_counter_ops = { .get = wasmfw_get_counter };
module_param_cb(packet_allocs, &wasmfw_counter_ops, &wasmfw_packet_allocs, 0444);
MODULE_PARM_DESC(packet_allocs, "heap allocations made on the packet path (must stay 0)");
module_param_cb(packet_pool_allocs, &wasmfw_counter_ops, &wasmfw_pool_allocs, 0444);
MODULE_PARM_DESC(packet_pool_allocs, "allocations on the packet path served by the per-CPU pool (wasmi trap errors)");

/* Header in front of each allocation: kvmalloc gives 8-byte alignment at
 * least; larger alignments are served by over-allocating. */
struct wasmfw_alloc_hdr {
	struct list_head load_node;	/* on wasmfw_load_allocs while tracked */
	void *base;
	u32 pool_cpu;			/* pool block: owning CPU + 1; 0: heap */
	u16 pool_idx;
	u16 tracked;			/* made by a load still in progress */
};

/*
 * Allocation failures during a load. wasmi allocates with plain Vec/Box
 * in many places, so a failed allocation there ends in the engine's panic
 * handler, not in an error value. A load therefore runs as a unit that
 * can be abandoned: every allocation it makes is tracked (in process
 * context, on the loading thread, serialised by the control mutex), and
 * if the engine panics during the load, wasmfw_host_panic frees them all
 * and abandons the load's stack (wasmfw_load_abort): the ioctl gets
 * ENOMEM and "out of memory", the kernel goes on. On success the tracking
 * is dropped. fail_load_alloc_nth makes the Nth allocation of each load
 * fail, to test this (kmod/tests/t_adversarial.sh); load_allocs says how
 * many allocations the last load made.
 */
static struct task_struct *wasmfw_load_task;	/* the thread running a load */
static LIST_HEAD(wasmfw_load_allocs);
static unsigned long wasmfw_load_nallocs;
static unsigned long wasmfw_last_load_allocs;
static unsigned long wasmfw_fail_nth;
module_param_named(fail_load_alloc_nth, wasmfw_fail_nth, ulong, 0600);
MODULE_PARM_DESC(fail_load_alloc_nth, "test only: fail the Nth allocation of every load (0: never)");
module_param_named(load_allocs, wasmfw_last_load_allocs, ulong, 0444);
MODULE_PARM_DESC(load_allocs, "allocations made by the last load");

static void *wasmfw_place(void *base, size_t align)
{
	uintptr_t p = ALIGN((uintptr_t)base + sizeof(struct wasmfw_alloc_hdr), align);
	struct wasmfw_alloc_hdr *h = &((struct wasmfw_alloc_hdr *)p)[-1];

	h->base = base;
	h->pool_cpu = 0;
	h->tracked = 0;
	return (void *)p;
}

static void *wasmfw_pool_alloc(size_t total, size_t align)
{
	struct wasmfw_pkt_pool *pool = this_cpu_ptr(&wasmfw_pool);
	struct wasmfw_alloc_hdr *h;
	void *p;
	int i;

	if (total > WASMFW_PKT_POOL_BLOCK)
		return NULL;
	for (i = 0; i < WASMFW_PKT_POOL_BLOCKS; i++) {
		if (!test_and_set_bit(i, &pool->used))
			break;
	}
	if (i == WASMFW_PKT_POOL_BLOCKS)
		return NULL;
	p = wasmfw_place(pool->block[i], align);
	h = &((struct wasmfw_alloc_hdr *)p)[-1];
	h->pool_cpu = smp_processor_id() + 1;
	h->pool_idx = i;
	atomic_long_inc(&wasmfw_pool_allocs);
	return p;
}

void *wasmfw_host_alloc(size_t size, size_t align)
{
	bool packet = this_cpu_read(wasmfw_in_packet) || !in_task();
	bool loading = !packet && current == READ_ONCE(wasmfw_load_task);
	struct wasmfw_alloc_hdr *h;
	size_t total;
	void *base, *p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (check_add_overflow(size, sizeof(struct wasmfw_alloc_hdr) + align, &total))
		return NULL;
	if (packet) {
		p = wasmfw_pool_alloc(total, align);
		if (p)
			return p;
		atomic_long_inc(&wasmfw_packet_allocs);
		base = kmalloc(total, GFP_ATOMIC | __GFP_NOWARN);
		return base ? wasmfw_place(base, align) : NULL;
	}
	if (loading && ++wasmfw_load_nallocs == wasmfw_fail_nth)
		return NULL;
	/* Charged to the loading process's memory cgroup. */
	base = kvmalloc(total, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!base)
		return NULL;
	p = wasmfw_place(base, align);
	if (loading) {
		h = &((struct wasmfw_alloc_hdr *)p)[-1];
		h->tracked = 1;
		list_add(&h->load_node, &wasmfw_load_allocs);
	}
	return p;
}

void wasmfw_host_free(void *ptr)
{
	struct wasmfw_alloc_hdr *h;

	if (!ptr)
		return;
	h = &((struct wasmfw_alloc_hdr *)ptr)[-1];
	if (h->pool_cpu) {
		clear_bit(h->pool_idx, &per_cpu_ptr(&wasmfw_pool, h->pool_cpu - 1)->used);
		return;
	}
	if (h->tracked)
		list_del(&h->load_node);
	kvfree(h->base);
}

void wasmfw_alloc_load_begin(void)
{
	wasmfw_load_nallocs = 0;
}

void wasmfw_alloc_load_track(struct task_struct *t)
{
	WRITE_ONCE(wasmfw_load_task, t);
}

bool wasmfw_alloc_in_load(void)
{
	return in_task() && !this_cpu_read(wasmfw_in_packet) && current == READ_ONCE(wasmfw_load_task);
}

void wasmfw_alloc_load_discard(void)
{
	struct wasmfw_alloc_hdr *h, *n;

	list_for_each_entry_safe(h, n, &wasmfw_load_allocs, load_node) {
		list_del(&h->load_node);
		kvfree(h->base);
	}
}

void wasmfw_alloc_load_keep(void)
{
	struct wasmfw_alloc_hdr *h, *n;

	wasmfw_last_load_allocs = wasmfw_load_nallocs;
	/* Loaded (or failed with an error value): what it allocated and kept
	 * belongs to the filter now, freed normally. */
	list_for_each_entry_safe(h, n, &wasmfw_load_allocs, load_node) {
		list_del(&h->load_node);
		h->tracked = 0;
	}
}


/* Map locks (kmod/engine/src/lock.rs): shared by softirq (the packet path,
 * bottom halves already off: plain spin_lock) and process context (map
 * ioctls, wasmfw_init at load: spin_lock_bh, so a softirq on this CPU
 * cannot interrupt the holder and spin forever). A kernel spinlock_t, so
 * lockdep checks every use. */
void *wasmfw_host_lock_new(void)
{
	/* Through the engine's allocator: a load abandoned after an
	 * allocation failure frees its locks with everything else. */
	spinlock_t *l = wasmfw_host_alloc(sizeof(*l), __alignof__(spinlock_t));

	if (l)
		spin_lock_init(l);
	return l;
}

void wasmfw_host_lock_free(void *l)
{
	wasmfw_host_free(l);
}

void wasmfw_host_lock(void *l, bool packet)
{
	if (packet)
		spin_lock(l);
	else
		spin_lock_bh(l);
}

void wasmfw_host_unlock(void *l, bool packet)
{
	if (packet)
		spin_unlock(l);
	else
		spin_unlock_bh(l);
}

u64 wasmfw_host_now_ns(void)
{
	return ktime_get_ns();
}
