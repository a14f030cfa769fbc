// SPDX-License-Identifier: GPL-2.0
/*
 * Loading a filter on a measured kernel stack: wasmfw_load_on_stack runs
 * the engine's wf_load on a private stack (x86_64) or a kthread of its own
 * (UML, KASAN), and the engine's panic hook, which abandons a load whose
 * allocation failed inside wasmi instead of the kernel.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/memcontrol.h>
#include <linux/minmax.h>
#include <linux/mutex.h>
#include <linux/objtool.h>
#include <linux/panic.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/task_stack.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "wasmfw_alloc.h"
#include "wasmfw_engine.h"
#include "wasmfw_load.h"
#include "wasmfw_log.h"

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
	const struct wf_load_args *args;
	char *err;
	size_t err_cap;
	int error;			/* WF_LOAD_* */
	struct wf_filter *filter;
	u32 stack_used;
	bool aborted;
	struct mem_cgroup *memcg;	/* the loader's: charged for the load */
};

static DEFINE_MUTEX(wasmfw_load_mutex);

int wasmfw_load_lock(void)
{
	return mutex_lock_interruptible(&wasmfw_load_mutex);
}

void wasmfw_load_unlock(void)
{
	mutex_unlock(&wasmfw_load_mutex);
}

/* The load in progress (loads are serialised by wasmfw_load_mutex). */
static struct wasmfw_load_work *wasmfw_cur_load;

static void wasmfw_do_load(struct wasmfw_load_work *lw)
{
	lw->filter = wf_load(lw->wasm, lw->wasm_len, lw->cfg, lw->cfg_len, lw->args, lw->err, lw->err_cap,
			     &lw->error);
}

/* Frees everything the abandoned load allocated and records why. */
static void wasmfw_load_discard(const u8 *msg, size_t len)
{
	struct wasmfw_load_work *lw = wasmfw_cur_load;
	bool oom;
	char why[96];

	wasmfw_alloc_load_discard();
	wasmfw_sanitize(why, sizeof(why), msg, len);
	pr_info_ratelimited("load abandoned: %s\n", why);
	lw->filter = NULL;
	lw->aborted = true;
	/* wasmi's failed allocations panic with "memory allocation of N bytes
	 * failed"; anything else would be an engine bug, caught all the same. */
	oom = !strncmp(why, "memory allocation", 17);
	snprintf(lw->err, lw->err_cap, "%s (%s)", oom ? "out of memory" : "engine error", why);
	lw->error = oom ? WF_LOAD_NO_MEMORY : WF_LOAD_ENGINE_BUG;
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
		lw->error = WF_LOAD_NO_MEMORY;
		lw->aborted = true;
		return;
	}
	memset(stack, STACK_PAINT, WASMFW_LOAD_STACK);
	wasmfw_alloc_load_track(current);
	wasmfw_call_on_stack(stack + WASMFW_LOAD_STACK, lw);
	wasmfw_alloc_load_track(NULL);
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
	wasmfw_alloc_load_track(NULL);
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
	wasmfw_alloc_load_track(current);
	/* KASAN poisons dead stack redzones: painting them would be reported. */
	if (IS_ENABLED(CONFIG_KASAN) || low <= bottom) {
		wasmfw_do_load(lw);
	} else {
		memset(bottom, STACK_PAINT, low - bottom);
		wasmfw_do_load(lw);
		lw->stack_used = wasmfw_stack_depth(bottom, low) + 512;
	}
	wasmfw_alloc_load_track(NULL);
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
		lw->error = WF_LOAD_NO_MEMORY;
		lw->aborted = true;
	} else {
		wait_for_completion(&lw->done);
	}
	mem_cgroup_put(lw->memcg);
}
#endif

struct wf_filter *wasmfw_load_on_stack(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
				       const struct wf_load_args *args, char *err, size_t err_cap, int *error,
				       u32 *stack_used)
{
	struct wasmfw_load_work lw = {
		.wasm = wasm, .wasm_len = wasm_len, .cfg = cfg, .cfg_len = cfg_len, .args = args,
		.err = err, .err_cap = err_cap,
		/* Until wf_load says otherwise (an engine from before its error
		 * codes never does: bench/engine-compat.c). */
		.error = WF_LOAD_INVALID,
	};

	init_completion(&lw.done);
	wasmfw_cur_load = &lw;
	wasmfw_alloc_load_begin();
	wasmfw_run_load(&lw);
	wasmfw_cur_load = NULL;
	wasmfw_alloc_load_keep();
	*stack_used = lw.stack_used;
	*error = lw.filter ? WF_LOAD_OK : lw.error;
	return lw.filter;
}

void __noreturn wasmfw_host_panic(const u8 *msg, size_t len)
{
	/* During a load (an allocation failed inside wasmi, which aborts
	 * instead of returning an error): abandon the load, not the kernel. */
	if (wasmfw_alloc_in_load())
		wasmfw_load_abort(msg, len);
	/* On the packet path nothing allocates from the heap (the per-CPU
	 * pool serves wasmi's trap errors) and nothing indexes packet data
	 * unchecked: reaching this is a wasmfw bug. */
	panic("wasmfw engine bug: %.*s\n", (int)min_t(size_t, len, 160), msg);
}
