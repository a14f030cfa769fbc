// SPDX-License-Identifier: GPL-2.0
/*
 * wasmfw C glue: only what the 6.12 Rust kernel crate has no abstraction
 * for - the misc device, netfilter hooks, RCU-protected filter pointers,
 * per-CPU bottom-half control - plus the host hooks the engine object
 * (wasmfw_engine.o, Rust/wasmi built for a kernel target) calls for memory,
 * time, logging and panics. The control logic lives in wasmfw_main.rs.
 */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/sched/task_stack.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
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
};

struct wf_filter *wf_load(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
			  const struct wf_load_args *args, char *err, size_t err_cap);
int wf_run(struct wf_filter *f, u32 slot, const u8 *pkt, size_t len, int link);
void wf_free(struct wf_filter *f);

/* ---- host hooks the engine calls ---------------------------------------- */

/* Set while this CPU runs a filter on a packet: allocations there must not
 * sleep. The engine preallocates everything at load, so this is a guard. */
static DEFINE_PER_CPU(int, wasmfw_in_packet);

/* Header in front of each allocation: kvmalloc gives 8-byte alignment at
 * least; larger alignments are served by over-allocating. */
struct wasmfw_alloc_hdr {
	void *base;
	size_t pad;
};

void *wasmfw_host_alloc(size_t size, size_t align)
{
	gfp_t gfp = this_cpu_read(wasmfw_in_packet) || !in_task() ? GFP_ATOMIC : GFP_KERNEL;
	size_t hdr = sizeof(struct wasmfw_alloc_hdr);
	size_t total;
	void *base;
	uintptr_t p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (check_add_overflow(size, hdr + align, &total))
		return NULL;
	base = (gfp == GFP_KERNEL) ? kvmalloc(total, gfp | __GFP_NOWARN) : kmalloc(total, gfp | __GFP_NOWARN);
	if (!base)
		return NULL;
	p = ALIGN((uintptr_t)base + hdr, align);
	((struct wasmfw_alloc_hdr *)p)[-1].base = base;
	return (void *)p;
}

void wasmfw_host_free(void *ptr)
{
	if (ptr)
		kvfree(((struct wasmfw_alloc_hdr *)ptr)[-1].base);
}

u64 wasmfw_host_now_ns(void)
{
	return ktime_get_ns();
}

void wasmfw_host_log(u64 cookie, int level, const u8 *msg, size_t len)
{
	/* A filter logging per packet must not flood the kernel log. */
	if (level <= 1)
		pr_warn_ratelimited("filter %llu: %.*s\n", cookie, (int)min_t(size_t, len, 256), msg);
	else
		pr_info_ratelimited("filter %llu: %.*s\n", cookie, (int)min_t(size_t, len, 256), msg);
}

void __noreturn wasmfw_host_panic(const u8 *msg, size_t len)
{
	/* The engine never panics by design (fallible allocation on the load
	 * path, no indexing on packet data): reaching this is a wasmfw bug. */
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
 * depend on) run the load on a fresh kworker stack instead. Either way the
 * unused stack is painted first and the deepest overwritten byte is
 * reported: the budget is measured, not guessed.
 */
#if defined(CONFIG_X86_64) && !defined(CONFIG_UML) && !defined(CONFIG_KASAN)
#define WASMFW_OWN_STACK 1
#define WASMFW_LOAD_STACK (64 * 1024)
#endif

struct wasmfw_load_work {
	struct work_struct work;
	const u8 *wasm, *cfg;
	size_t wasm_len, cfg_len;
	struct wf_load_args args;
	char *err;
	size_t err_cap;
	struct wf_filter *filter;
	u32 stack_used;
};

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

#ifdef WASMFW_OWN_STACK
/* Calls wasmfw_do_load(lw) with RSP at `top`; RBX keeps the old RSP. */
static noinline void wasmfw_call_on_stack(void *top, struct wasmfw_load_work *lw)
{
	asm volatile("mov %%rsp, %%rbx\n\t"
		     "mov %[top], %%rsp\n\t"
		     "mov %[lw], %%rdi\n\t"
		     "call %P[fn]\n\t"
		     "mov %%rbx, %%rsp"
		     : : [top] "r"(top), [lw] "r"(lw), [fn] "i"(wasmfw_do_load)
		     : "rbx", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
}

static void wasmfw_load_on_own_stack(struct wasmfw_load_work *lw)
{
	u8 *stack = vmalloc(WASMFW_LOAD_STACK);

	if (!stack) {
		strscpy(lw->err, "out of memory for the load stack", lw->err_cap);
		return;
	}
	memset(stack, STACK_PAINT, WASMFW_LOAD_STACK);
	wasmfw_call_on_stack(stack + WASMFW_LOAD_STACK, lw);
	lw->stack_used = wasmfw_stack_depth(stack, stack + WASMFW_LOAD_STACK);
	vfree(stack);
}
#else
static void wasmfw_load_fn(struct work_struct *work)
{
	struct wasmfw_load_work *lw = container_of(work, struct wasmfw_load_work, work);
	u8 *bottom = (u8 *)end_of_stack(current) + sizeof(unsigned long);
	u8 *low = (u8 *)&lw - 512; /* leave our own live frame alone */

	/* KASAN poisons dead stack redzones: painting them would be reported. */
	if (IS_ENABLED(CONFIG_KASAN) || low <= bottom) {
		wasmfw_do_load(lw);
		return;
	}
	memset(bottom, STACK_PAINT, low - bottom);
	wasmfw_do_load(lw);
	lw->stack_used = wasmfw_stack_depth(bottom, low) + 512;
}
#endif

struct wf_filter *wasmfw_glue_load(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
				   u64 fuel, u64 memory_limit, u32 on_fault, u64 cookie,
				   char *err, size_t err_cap, u32 *stack_used)
{
	struct wasmfw_load_work lw = {
		.wasm = wasm, .wasm_len = wasm_len, .cfg = cfg, .cfg_len = cfg_len,
		.args = {
			.fuel = fuel, .memory_limit = memory_limit, .on_fault = on_fault,
			.slots = nr_cpu_ids, .seed = get_random_u64(), .cookie = cookie,
		},
		.err = err, .err_cap = err_cap,
	};

#ifdef WASMFW_OWN_STACK
	wasmfw_load_on_own_stack(&lw);
#else
	INIT_WORK_ONSTACK(&lw.work, wasmfw_load_fn);
	queue_work(system_unbound_wq, &lw.work);
	flush_work(&lw.work);
	destroy_work_on_stack(&lw.work);
#endif
	*stack_used = lw.stack_used;
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

/* Runs `f` on the calling CPU's instance; the caller has BH disabled, so
 * the instance has one user. */
static int wasmfw_run_bh_off(struct wf_filter *f, const u8 *data, size_t len, int link)
{
	int verdict;

	this_cpu_write(wasmfw_in_packet, 1);
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
	local_bh_enable();
	return verdict == 1 ? NF_DROP : NF_ACCEPT;
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
	att->net = get_net(net);
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
		put_net(att->net);
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
	/* nf_unregister waits for running hooks (synchronize_net). */
	f = rcu_dereference_protected(att->filter, true);
	put_net(att->net);
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
#define WASMFW_XDP_SLOTS 64
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
	int i;

	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (READ_ONCE(wasmfw_xdp[i].ifindex) == dev->ifindex &&
		    READ_ONCE(wasmfw_xdp[i].net) == dev_net(dev)) {
			f = rcu_dereference(wasmfw_xdp[i].filter);
			break;
		}
	}
	if (!f)
		return XDP_PASS;
	/* The linear part: XDP frames of interest (headers) live there. */
	len = min_t(size_t, xdp->data_end - xdp->data, WASMFW_MAX_PACKET);
	return wasmfw_run_local(f, xdp->data, len, WASMFW_LINK_ETHERNET) == 1 ? XDP_DROP : XDP_PASS;
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
	/* Publish the netns last: a reader matching it sees the filter. */
	smp_store_release(&wasmfw_xdp[free_slot].net, get_net(net));
	return 0;
}

/* Unpublishes the XDP filter on `ifname` and returns it once unused. */
struct wf_filter *wasmfw_xdp_detach(const char *ifname)
{
	struct net *net = current->nsproxy->net_ns;
	struct net_device *dev = dev_get_by_name(net, ifname);
	struct wf_filter *f = NULL;
	int i, ifindex;

	if (!dev)
		return NULL;
	ifindex = dev->ifindex;
	dev_put(dev);
	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (wasmfw_xdp[i].net == net && wasmfw_xdp[i].ifindex == ifindex) {
			f = rcu_replace_pointer(wasmfw_xdp[i].filter, NULL, true);
			WRITE_ONCE(wasmfw_xdp[i].ifindex, 0);
			WRITE_ONCE(wasmfw_xdp[i].net, NULL);
			synchronize_rcu();
			put_net(net);
			break;
		}
	}
	return f;
}

/* Module exit: drops every XDP filter; returns them one by one. */
struct wf_filter *wasmfw_xdp_take_any(void)
{
	int i;

	for (i = 0; i < WASMFW_XDP_SLOTS; i++) {
		if (wasmfw_xdp[i].net) {
			struct wf_filter *f = rcu_replace_pointer(wasmfw_xdp[i].filter, NULL, true);

			WRITE_ONCE(wasmfw_xdp[i].ifindex, 0);
			put_net(wasmfw_xdp[i].net);
			WRITE_ONCE(wasmfw_xdp[i].net, NULL);
			synchronize_rcu();
			return f;
		}
	}
	return NULL;
}

/* ---- in-kernel test run ---------------------------------------------------- */

int wasmfw_glue_test_run(struct wf_filter *f, const u8 *pkt, u32 len, int link, u32 repeat, u64 *total_ns)
{
	int verdict = 0;
	u64 t0;
	u32 i;

	t0 = ktime_get_ns();
	for (i = 0; i < repeat; i++) {
		verdict = wasmfw_run_local(f, pkt, len, link);
		if ((i & 1023) == 1023)
			cond_resched();
	}
	*total_ns = ktime_get_ns() - t0;
	return verdict;
}

/* ---- /dev/wasmfw -------------------------------------------------------- */

static DEFINE_MUTEX(wasmfw_ctl_lock);

static long wasmfw_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long ret;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	/* One control operation at a time: the Rust registry relies on it. */
	mutex_lock(&wasmfw_ctl_lock);
	ret = wasmfw_rs_ioctl(cmd, arg);
	mutex_unlock(&wasmfw_ctl_lock);
	return ret;
}

static const struct file_operations wasmfw_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = wasmfw_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice wasmfw_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wasmfw",
	.fops = &wasmfw_fops,
	.mode = 0600,
};

int wasmfw_glue_init(void)
{
	int err = register_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &wasmfw_kfunc_set);

	if (err)
		return err;
	return misc_register(&wasmfw_misc);
}

void wasmfw_glue_exit(void)
{
	misc_deregister(&wasmfw_misc);
	/* No ioctl can run any more; the Rust side frees what is left. */
	mutex_lock(&wasmfw_ctl_lock);
	wasmfw_rs_teardown();
	mutex_unlock(&wasmfw_ctl_lock);
}
