// SPDX-License-Identifier: GPL-2.0
/*
 * wasmfw C glue: only what the 6.12 Rust kernel crate has no abstraction
 * for - the misc device, netfilter hooks, RCU-protected filter pointers,
 * per-CPU bottom-half control - plus the host hooks the engine object
 * (wasmfw_engine.o, Rust/wasmi built for a kernel target) calls for memory,
 * time, logging and panics. The control logic lives in wasmfw_main.rs.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/log2.h>
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/objtool.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/sched/task_stack.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>
#include <net/xdp.h>

#include "wasmfw_glue.h"

/* ---- engine object (Rust, kmod/engine-ffi) ------------------------------ */

struct wf_load_args {
	u64 fuel;
	u64 memory_limit;
	u32 on_fault;
	u32 slots;
	u64 seed;
	u64 cookie;
	u32 audit;
	u32 pad;
};

struct wf_filter *wf_load(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
			  const struct wf_load_args *args, char *err, size_t err_cap);
int wf_run(const struct wf_filter *f, u32 slot, const u8 *pkt, size_t len, int link);
void wf_free(struct wf_filter *f);

/* ---- host hooks the engine calls ---------------------------------------- */

/* Set while this CPU runs a filter on a packet (bottom halves off). */
static DEFINE_PER_CPU(int, wasmfw_in_packet);

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

/* Copies text a filter (or a module it came from) chose into `dst` with
 * every byte outside printable ASCII replaced by '?': no newline or escape
 * sequence can forge or garble kernel log lines. */
static void wasmfw_sanitize(char *dst, size_t cap, const u8 *src, size_t len)
{
	size_t i, n = min(len, cap - 1);

	for (i = 0; i < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[n] = 0;
}

#define WASMFW_LOG_MAX 256	/* bytes of a filter's log line kept */

static bool wasmfw_log_to_kernel;
module_param_named(log_to_kernel, wasmfw_log_to_kernel, bool, 0644);
MODULE_PARM_DESC(log_to_kernel, "also copy filters' log lines to the kernel log (rate limited)");

/*
 * A filter's log ring (`wasmfw log`): WASMFW_LOG_RING_RECORDS fixed-size
 * records, allocated at load with the filter and freed with it. The packet
 * path writes a record under `lock` (irqsave: the same lock is taken at
 * load by wasmfw_init's lines, in process context, and by readers), never
 * allocates, and when the ring is full overwrites the oldest record,
 * counting it in `dropped` if no reader had got it yet. Readers
 * (WASMFW_IOC_LOG_READ) copy one record per lock hold, so the packet path
 * waits at most one 288-byte copy.
 */
struct wasmfw_logring {
	spinlock_t lock;
	u64 id;			/* the filter's id, for the kernel log */
	u64 head;		/* seq of the next record written */
	u64 read_seq;		/* a reader got every record below this */
	u64 dropped;		/* overwritten before any reader got them */
	struct wasmfw_log_record rec[WASMFW_LOG_RING_RECORDS];
};

void *wasmfw_host_logring_new(u64 id)
{
	/* Through the engine's allocator: a load abandoned after an
	 * allocation failure frees its ring with everything else. */
	struct wasmfw_logring *r = wasmfw_host_alloc(sizeof(*r), __alignof__(struct wasmfw_logring));

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	spin_lock_init(&r->lock);
	r->id = id;
	return r;
}

void wasmfw_host_logring_free(void *ring)
{
	wasmfw_host_free(ring);
}

void wasmfw_host_log(void *ring, int level, const u8 *msg, size_t len)
{
	struct wasmfw_logring *r = ring;
	struct wasmfw_log_record *rec;
	unsigned long flags;
	char line[WASMFW_LOG_MAX + 1];

	len = min_t(size_t, len, WASMFW_LOG_MSG_LEN);
	spin_lock_irqsave(&r->lock, flags);
	if (r->head >= WASMFW_LOG_RING_RECORDS && r->head - WASMFW_LOG_RING_RECORDS >= r->read_seq)
		r->dropped++;
	rec = &r->rec[r->head % WASMFW_LOG_RING_RECORDS];
	rec->seq = r->head++;
	rec->ts_ns = ktime_get_ns();
	rec->cpu = raw_smp_processor_id();
	rec->level = level;
	rec->len = len;
	memcpy(rec->msg, msg, len);
	spin_unlock_irqrestore(&r->lock, flags);
	if (!READ_ONCE(wasmfw_log_to_kernel))
		return;
	wasmfw_sanitize(line, sizeof(line), msg, len);
	/* A filter logging per packet must not flood the kernel log. */
	if (level <= 1)
		pr_warn_ratelimited("filter %llu: %s\n", r->id, line);
	else
		pr_info_ratelimited("filter %llu: %s\n", r->id, line);
}

u64 wasmfw_host_logring_dropped(void *ring)
{
	struct wasmfw_logring *r = ring;
	unsigned long flags;
	u64 dropped;

	spin_lock_irqsave(&r->lock, flags);
	dropped = r->dropped;
	spin_unlock_irqrestore(&r->lock, flags);
	return dropped;
}

/* Copies up to `cap` records from seq *cursor on into `out` (a kernel
 * buffer; process context, the control mutex held so the filter stays).
 * Advances *cursor past what was copied; *lost: records from the cursor
 * on already overwritten. Returns the records copied. */
u32 wasmfw_logring_read(void *ring, u64 *cursor, struct wasmfw_log_record *out, u32 cap,
			u64 *lost, u64 *dropped)
{
	struct wasmfw_logring *r = ring;
	unsigned long flags;
	u64 oldest, seq = *cursor;
	u32 n = 0;

	*lost = 0;
	for (;;) {
		spin_lock_irqsave(&r->lock, flags);
		oldest = r->head > WASMFW_LOG_RING_RECORDS ? r->head - WASMFW_LOG_RING_RECORDS : 0;
		if (seq < oldest) {
			*lost += oldest - seq;
			seq = oldest;
		}
		if (n == cap || seq >= r->head) {
			if (seq > r->read_seq)
				r->read_seq = seq;
			*dropped = r->dropped;
			spin_unlock_irqrestore(&r->lock, flags);
			break;
		}
		out[n++] = r->rec[seq % WASMFW_LOG_RING_RECORDS];
		seq++;
		spin_unlock_irqrestore(&r->lock, flags);
	}
	*cursor = seq;
	return n;
}

/* Load refusals are triggered by whoever holds CAP_NET_ADMIN, and the text
 * comes partly from the module (import names): sanitized, rate limited. */
void wasmfw_log_refused(const u8 *msg, size_t len)
{
	char line[WASMFW_LOG_MAX + 1];

	wasmfw_sanitize(line, sizeof(line), msg, len);
	pr_info_ratelimited("load refused: %s\n", line);
}

static void __noreturn wasmfw_load_abort(const u8 *msg, size_t len);

void __noreturn wasmfw_host_panic(const u8 *msg, size_t len)
{
	/* During a load (an allocation failed inside wasmi, which aborts
	 * instead of returning an error): abandon the load, not the kernel. */
	if (in_task() && !this_cpu_read(wasmfw_in_packet) && current == READ_ONCE(wasmfw_load_task))
		wasmfw_load_abort(msg, len);
	/* On the packet path nothing allocates from the heap (the per-CPU
	 * pool serves wasmi's trap errors) and nothing indexes packet data
	 * unchecked: reaching this is a wasmfw bug. */
	panic("wasmfw engine bug: %.*s\n", (int)min_t(size_t, len, 160), msg);
}

/* ---- loading with a measured kernel stack --------------------------------- */

#define STACK_PAINT 0x5a

/*
 * wasmi's parser and translator keep large frames on the stack at once
 * (kmod/README.md, "Kernel stack"): measured at ~17 KiB with kernel
 * codegen, more than a 16 KiB x86_64 kernel stack. So on x86_64 the load
 * runs on a private 64 KiB vmalloc'ed stack: x86_64 finds `current`
 * through a per-CPU variable and takes interrupts on IRQ stacks, so
 * nothing depends on RSP being inside the task's stack. UML (which derives
 * thread_info from the stack pointer; its dev kernel has 32 KiB stacks)
 * and KASAN kernels (32 KiB stacks, and vmalloc shadow we would rather not
 * depend on) run the load on a fresh kthread of its own instead. Either way the
 * unused stack is painted first and the deepest overwritten byte is
 * reported: the budget is measured, not guessed.
 */
#if defined(CONFIG_X86_64) && !defined(CONFIG_UML) && !defined(CONFIG_KASAN)
#define WASMFW_OWN_STACK 1
#define WASMFW_LOAD_STACK (64 * 1024)
#endif

struct wasmfw_load_work {
	struct completion done;
	const u8 *wasm, *cfg;
	size_t wasm_len, cfg_len;
	struct wf_load_args args;
	char *err;
	size_t err_cap;
	struct wf_filter *filter;
	u32 stack_used;
	bool aborted;
	struct mem_cgroup *memcg;	/* the loader's: charged for the load */
};

/* The load in progress (loads are serialised by the control mutex). */
static struct wasmfw_load_work *wasmfw_cur_load;

static void wasmfw_do_load(struct wasmfw_load_work *lw)
{
	lw->filter = wf_load(lw->wasm, lw->wasm_len, lw->cfg, lw->cfg_len, &lw->args, lw->err, lw->err_cap);
}

/* Lowest painted byte still intact in [bottom, top): the depth reached. */
static u32 wasmfw_stack_depth(const u8 *bottom, const u8 *top)
{
	const u8 *p = bottom;

	while (p < top && *p == STACK_PAINT)
		p++;
	return (u32)(top - p);
}

/* Frees everything the abandoned load allocated and records why. */
static void wasmfw_load_discard(const u8 *msg, size_t len)
{
	struct wasmfw_load_work *lw = wasmfw_cur_load;
	struct wasmfw_alloc_hdr *h, *n;
	char why[96];

	list_for_each_entry_safe(h, n, &wasmfw_load_allocs, load_node) {
		list_del(&h->load_node);
		kvfree(h->base);
	}
	wasmfw_sanitize(why, sizeof(why), msg, len);
	pr_info_ratelimited("load abandoned: %s\n", why);
	lw->filter = NULL;
	lw->aborted = true;
	/* wasmi's failed allocations panic with "memory allocation of N bytes
	 * failed"; anything else would be an engine bug, caught all the same. */
	snprintf(lw->err, lw->err_cap, "%s (%s)",
		 strncmp(why, "memory allocation", 17) ? "engine error" : "out of memory", why);
}

#ifdef WASMFW_OWN_STACK
/* The ioctl thread's RSP while it runs the load on the private stack, and
 * the top of that stack. */
static unsigned long wasmfw_saved_rsp;
static void *wasmfw_load_top;

/*
 * Calls wasmfw_do_load(lw) with RSP at `top`. RBP is saved on the old
 * stack and every other callee-saved register is declared clobbered, so
 * wasmfw_load_resume - reached by the call returning, or by a jump from
 * wasmfw_load_abort with the private stack abandoned - needs nothing but
 * the saved RSP.
 */
static noinline void wasmfw_call_on_stack(void *top, struct wasmfw_load_work *lw)
{
	/* Operands in memory (globals, RIP-relative): with every
	 * general-purpose register clobbered none is left to pass them in. */
	wasmfw_load_top = top;
	wasmfw_cur_load = lw;
	asm volatile("push %%rbp\n\t"
		     "mov %%rsp, %[saved]\n\t"
		     "mov %[top], %%rsp\n\t"
		     "mov %[lw], %%rdi\n\t"
		     "call %P[fn]\n"
		     "wasmfw_load_resume:\n\t"
		     "mov %[saved], %%rsp\n\t"
		     "pop %%rbp"
		     : [saved] "+m"(wasmfw_saved_rsp)
		     : [top] "m"(wasmfw_load_top), [lw] "m"(wasmfw_cur_load), [fn] "i"(wasmfw_do_load)
		     : "rbx", "r12", "r13", "r14", "r15", "rax", "rcx", "rdx", "rsi", "rdi",
		       "r8", "r9", "r10", "r11", "memory", "cc");
}

/* Jumps into wasmfw_call_on_stack, which objtool cannot follow: its
 * stack checks are skipped for this function (it never returns anyway). */
static noinline void __noreturn wasmfw_load_abort(const u8 *msg, size_t len)
{
	wasmfw_load_discard(msg, len);
	asm volatile("jmp wasmfw_load_resume");
	unreachable();
}
STACK_FRAME_NON_STANDARD(wasmfw_load_abort);

static void wasmfw_run_load(struct wasmfw_load_work *lw)
{
	u8 *stack = vmalloc(WASMFW_LOAD_STACK);

	if (!stack) {
		strscpy(lw->err, "out of memory for the load stack", lw->err_cap);
		lw->aborted = true;
		return;
	}
	memset(stack, STACK_PAINT, WASMFW_LOAD_STACK);
	WRITE_ONCE(wasmfw_load_task, current);
	wasmfw_call_on_stack(stack + WASMFW_LOAD_STACK, lw);
	WRITE_ONCE(wasmfw_load_task, NULL);
	lw->stack_used = wasmfw_stack_depth(stack, stack + WASMFW_LOAD_STACK);
	vfree(stack);
}
#else
/* The load runs on a kthread of its own: abandoning it is kthread_exit()
 * from wherever the engine failed, and the stack goes with the thread
 * (no stale KASAN stack poison is left on a stack anyone reuses as is). */
static void __noreturn wasmfw_load_abort(const u8 *msg, size_t len)
{
	struct wasmfw_load_work *lw = wasmfw_cur_load;

	wasmfw_load_discard(msg, len);
	WRITE_ONCE(wasmfw_load_task, NULL);
	set_active_memcg(NULL);
	complete(&lw->done);
	kthread_exit(0);
}

static int wasmfw_load_thread(void *arg)
{
	struct wasmfw_load_work *lw = arg;
	u8 *bottom = (u8 *)end_of_stack(current) + sizeof(unsigned long);
	u8 *low = (u8 *)&lw - 512; /* leave our own live frame alone */

	/* Charge the loading process's memory cgroup, not the kthread's
	 * (GFP_KERNEL_ACCOUNT); reset before the thread ends. */
	set_active_memcg(lw->memcg);
	WRITE_ONCE(wasmfw_load_task, current);
	/* KASAN poisons dead stack redzones: painting them would be reported. */
	if (IS_ENABLED(CONFIG_KASAN) || low <= bottom) {
		wasmfw_do_load(lw);
	} else {
		memset(bottom, STACK_PAINT, low - bottom);
		wasmfw_do_load(lw);
		lw->stack_used = wasmfw_stack_depth(bottom, low) + 512;
	}
	WRITE_ONCE(wasmfw_load_task, NULL);
	set_active_memcg(NULL);
	complete(&lw->done);
	return 0;
}

static void wasmfw_run_load(struct wasmfw_load_work *lw)
{
	struct task_struct *t;

	lw->memcg = current->mm ? get_mem_cgroup_from_mm(current->mm) : NULL;
	t = kthread_run(wasmfw_load_thread, lw, "wasmfw-load");
	if (IS_ERR(t)) {
		strscpy(lw->err, "out of memory: cannot start the load thread", lw->err_cap);
		lw->aborted = true;
	} else {
		wait_for_completion(&lw->done);
	}
	mem_cgroup_put(lw->memcg);
}
#endif

/* Returns the filter, or NULL with a message in err and *errno_out set
 * (-ENOMEM when the load ran out of memory, -EINVAL otherwise). */
struct wf_filter *wasmfw_glue_load(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
				   u64 fuel, u64 memory_limit, u32 on_fault, u32 audit, u64 cookie,
				   char *err, size_t err_cap, u32 *stack_used, int *errno_out)
{
	struct wasmfw_load_work lw = {
		.wasm = wasm, .wasm_len = wasm_len, .cfg = cfg, .cfg_len = cfg_len,
		.args = {
			.fuel = fuel, .memory_limit = memory_limit, .on_fault = on_fault,
			.slots = nr_cpu_ids, .seed = get_random_u64(), .cookie = cookie,
			.audit = audit,
		},
		.err = err, .err_cap = err_cap,
	};
	struct wasmfw_alloc_hdr *h, *n;

	init_completion(&lw.done);
	wasmfw_cur_load = &lw;
	wasmfw_load_nallocs = 0;
	wasmfw_run_load(&lw);
	wasmfw_cur_load = NULL;
	wasmfw_last_load_allocs = wasmfw_load_nallocs;
	/* Loaded (or failed with an error value): what it allocated and kept
	 * belongs to the filter now, freed normally. */
	list_for_each_entry_safe(h, n, &wasmfw_load_allocs, load_node) {
		list_del(&h->load_node);
		h->tracked = 0;
	}
	*stack_used = lw.stack_used;
	if (!lw.filter)
		*errno_out = !strncmp(err, "out of memory", 13) ? -ENOMEM : -EINVAL;
	return lw.filter;
}

/* ---- netfilter attachment ---------------------------------------------- */

struct wasmfw_nf {
	struct net *net;
	int ifindex;
	struct wf_filter __rcu *filter;
	struct nf_hook_ops ops[2];
};

/* A per-CPU copy target for packets whose first bytes are not linear. */
static DEFINE_PER_CPU(u8[WASMFW_MAX_PACKET], wasmfw_pkt_buf);

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

/* Runs `f` on the calling CPU's instance; the caller has BH disabled, so
 * the instance has one user. */
static int wasmfw_run_bh_off(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	int verdict;

	this_cpu_write(wasmfw_in_packet, 1);
	if (unlikely(READ_ONCE(wasmfw_stack_probe_on)))
		verdict = wasmfw_run_probed(f, data, len, link);
	else
		verdict = wf_run(f, smp_processor_id(), data, len, link);
	this_cpu_write(wasmfw_in_packet, 0);
	return verdict;
}

/* The same, from a context that may have BH enabled. */
static int wasmfw_run_local(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	int verdict;

	local_bh_disable();
	verdict = wasmfw_run_bh_off(f, data, len, link);
	local_bh_enable();
	return verdict;
}

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

/* ---- XDP: the kfunc xdp-bridge calls ------------------------------------ */

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

/* ---- in-kernel test run ---------------------------------------------------- */

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

/* ---- /dev/wasmfw -------------------------------------------------------- */

static DEFINE_MUTEX(wasmfw_ctl_mutex);
/* The file of the ioctl holding the mutex (capture owners). */
const struct file *wasmfw_ioctl_file;

bool wasmfw_ctl_held(void)
{
#ifdef CONFIG_LOCKDEP
	return lockdep_is_held(&wasmfw_ctl_mutex);
#else
	return true;
#endif
}

/* For the ioctls that take the control mutex themselves (TEST_RUN): 0 or
 * -EINTR if a signal arrived while waiting. */
int wasmfw_ctl_lock(void)
{
	return mutex_lock_interruptible(&wasmfw_ctl_mutex);
}

void wasmfw_ctl_unlock(void)
{
	mutex_unlock(&wasmfw_ctl_mutex);
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

/* ---- namespace and device lifetime ----------------------------------------- */

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
	err = register_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &wasmfw_kfunc_set);
	if (err)
		goto out_notifier;
	err = misc_register(&wasmfw_misc);
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
	misc_deregister(&wasmfw_misc);
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
