// SPDX-License-Identifier: GPL-2.0
/*
 * wasmfw_spectest.ko - TEST ONLY (issue 12): runs WebAssembly spec-suite
 * commands in the wasmi engine built for the kernel target, with floats
 * on and the spec's `spectest` imports. It is a separate module: the
 * product (wasmfw.ko) never contains this path and keeps refusing floats.
 *
 * /dev/wasmfw_spectest (0600, CAP_SYS_ADMIN): WFS_IOC_RESET starts a new
 * session for the open file, WFS_IOC_EXEC runs one encoded request in it
 * (kmod/spectest/exec/src/wire.rs). Every engine call runs on a kthread of
 * its own (the dev UML kernel has 32 KiB stacks; wasmi's validator needs
 * ~16 KiB), serialised by one mutex. If the engine panics (wasmi aborts
 * on some failed allocations), the panic hook ends that kthread: the
 * command gets an "engine panic" response, the session is abandoned (its
 * memory is leaked, this is a test module), the kernel goes on.
 */
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/objtool.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>
#include <linux/vmalloc.h>

#include "wasmfw_spectest_uapi.h"

struct wfs_session;	/* kmod/spectest/exec Session, opaque */
struct wfs_session *wfs_session_new(void);
void wfs_session_free(struct wfs_session *s);
size_t wfs_exec(struct wfs_session *s, const u8 *req, size_t req_len, u8 *resp, size_t cap);
/* The executor's host hooks (kmod/spectest/ffi). */
void *wfs_host_alloc(size_t size, size_t align);
void wfs_host_free(void *ptr);
void __noreturn wfs_host_panic(const u8 *msg, size_t len);

#define WFS_PANIC_MSG 160	/* bytes of an engine panic message kept */
#define WFS_STATUS_PANIC 7	/* wire.rs Status::Panic */

enum wfs_op { WFS_NEW, WFS_FREE, WFS_EXEC };

struct wfs_work {
	enum wfs_op op;
	struct wfs_session *s;
	const u8 *req;
	size_t req_len;
	u8 *resp;
	size_t resp_cap;
	size_t resp_len;
	bool panicked;
	char msg[WFS_PANIC_MSG + 1];
	struct completion done;
};

struct wfs_file {
	struct wfs_session *s;
};

static DEFINE_MUTEX(wfs_mutex);		/* one engine call at a time */
static struct wfs_work *wfs_cur;	/* the call in progress */
static struct task_struct *wfs_task;	/* its kthread */
static atomic_long_t wfs_panics = ATOMIC_LONG_INIT(0);
static unsigned long wfs_nallocs;	/* allocations of the command in progress */
static unsigned long wfs_fail_nth;
module_param_named(fail_alloc_nth, wfs_fail_nth, ulong, 0600);
MODULE_PARM_DESC(fail_alloc_nth, "test only: fail the Nth allocation of every command (0: never)");

#if defined(CONFIG_X86_64) && !defined(CONFIG_UML) && !defined(CONFIG_KASAN)
#define WFS_OWN_STACK 1
#define WFS_STACK_BYTES (64 * 1024)	/* private stack of an engine call */
#endif

/* Allocations carry the base pointer in front of the aligned block. */
void *wfs_host_alloc(size_t size, size_t align)
{
	size_t total;
	void *base;
	uintptr_t p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (check_add_overflow(size, align + sizeof(void *), &total))
		return NULL;
	if (current == READ_ONCE(wfs_task) && ++wfs_nallocs == READ_ONCE(wfs_fail_nth))
		return NULL;
	base = kvmalloc(total, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!base)
		return NULL;
	p = ALIGN((uintptr_t)base + sizeof(void *), align);
	((void **)p)[-1] = base;
	return (void *)p;
}

void wfs_host_free(void *ptr)
{
	if (ptr)
		kvfree(((void **)ptr)[-1]);
}

static void wfs_do(struct wfs_work *w)
{
	switch (w->op) {
	case WFS_NEW:
		w->s = wfs_session_new();
		break;
	case WFS_FREE:
		wfs_session_free(w->s);
		break;
	case WFS_EXEC:
		w->resp_len = wfs_exec(w->s, w->req, w->req_len, w->resp, w->resp_cap);
		break;
	}
}

#ifdef WFS_OWN_STACK
static void *wfs_stack;			/* WFS_STACK_BYTES, allocated at init */
static unsigned long wfs_saved_rsp;	/* the ioctl's RSP during a call */
static void *wfs_stack_top;

/*
 * Calls wfs_do(wfs_cur) with RSP at the top of the private stack (the
 * technique of kmod/wasmfw/wasmfw_load.c's load stack): RBP is saved on
 * the old stack, every other callee-saved register is declared clobbered,
 * so wfs_resume - reached by the call returning or by the jump in
 * wfs_abandon - needs nothing but the saved RSP.
 */
static noinline void wfs_call_on_stack(void)
{
	wfs_stack_top = wfs_stack + WFS_STACK_BYTES;
	asm volatile("push %%rbp\n\t"
		     "mov %%rsp, %[saved]\n\t"
		     "mov %[top], %%rsp\n\t"
		     "mov %[w], %%rdi\n\t"
		     "call %P[fn]\n"
		     "wfs_resume:\n\t"
		     "mov %[saved], %%rsp\n\t"
		     "pop %%rbp"
		     : [saved] "+m"(wfs_saved_rsp)
		     : [top] "m"(wfs_stack_top), [w] "m"(wfs_cur), [fn] "i"(wfs_do)
		     : "rbx", "r12", "r13", "r14", "r15", "rax", "rcx", "rdx", "rsi", "rdi",
		       "r8", "r9", "r10", "r11", "memory", "cc");
}

/* Back to wfs_call_on_stack's caller, the private stack abandoned. objtool
 * cannot follow the jump: its checks are skipped here (never returns). */
static noinline void __noreturn wfs_abandon(struct wfs_work *w)
{
	asm volatile("jmp wfs_resume");
	unreachable();
}
STACK_FRAME_NON_STANDARD(wfs_abandon);

/* Runs w on the private stack; caller holds wfs_mutex. */
static int wfs_run(struct wfs_work *w)
{
	wfs_cur = w;
	wfs_nallocs = 0;
	WRITE_ONCE(wfs_task, current);
	wfs_call_on_stack();
	WRITE_ONCE(wfs_task, NULL);
	wfs_cur = NULL;
	return 0;
}
#else
/* The call runs on a kthread of its own: abandoning it is kthread_exit()
 * from wherever the engine failed; the stack goes with the thread. */
static void __noreturn wfs_abandon(struct wfs_work *w)
{
	WRITE_ONCE(wfs_task, NULL);
	complete(&w->done);	/* w may be gone after this */
	kthread_exit(0);
}

static int wfs_thread(void *arg)
{
	struct wfs_work *w = arg;

	wfs_nallocs = 0;
	WRITE_ONCE(wfs_task, current);
	wfs_do(w);
	WRITE_ONCE(wfs_task, NULL);
	complete(&w->done);
	return 0;
}

/* Runs w on a fresh kthread; caller holds wfs_mutex. */
static int wfs_run(struct wfs_work *w)
{
	struct task_struct *t;

	init_completion(&w->done);
	wfs_cur = w;
	t = kthread_run(wfs_thread, w, "wasmfw-spectest");
	if (IS_ERR(t)) {
		wfs_cur = NULL;
		return PTR_ERR(t);
	}
	wait_for_completion(&w->done);
	wfs_cur = NULL;
	return 0;
}
#endif

void __noreturn wfs_host_panic(const u8 *msg, size_t len)
{
	struct wfs_work *w = wfs_cur;

	if (w && current == READ_ONCE(wfs_task)) {
		size_t i, n = min_t(size_t, len, WFS_PANIC_MSG);

		/* printable ASCII only: the text may quote the module */
		for (i = 0; i < n; i++)
			w->msg[i] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? msg[i] : '?';
		w->msg[n] = 0;
		w->panicked = true;
		atomic_long_inc(&wfs_panics);
		pr_warn("wasmfw_spectest: engine panic, command abandoned: %s\n", w->msg);
		wfs_abandon(w);
	}
	panic("wasmfw_spectest: engine panic outside a command: %.*s\n", (int)min_t(size_t, len, WFS_PANIC_MSG), msg);
}

static int wfs_open(struct inode *inode, struct file *file)
{
	struct wfs_file *f;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	file->private_data = f;
	return 0;
}

/* Frees the file's session (not if a panic abandoned it). */
static void wfs_drop_session(struct wfs_file *f)
{
	struct wfs_work w = { .op = WFS_FREE, .s = f->s };

	if (!f->s)
		return;
	f->s = NULL;
	wfs_run(&w);
}

static int wfs_release(struct inode *inode, struct file *file)
{
	struct wfs_file *f = file->private_data;

	mutex_lock(&wfs_mutex);
	wfs_drop_session(f);
	mutex_unlock(&wfs_mutex);
	kfree(f);
	return 0;
}

static long wfs_reset(struct wfs_file *f)
{
	struct wfs_work w = { .op = WFS_NEW };
	int err;

	wfs_drop_session(f);
	err = wfs_run(&w);
	if (err)
		return err;
	if (w.panicked || !w.s)
		return -ENOMEM;
	f->s = w.s;
	return 0;
}

static long wfs_do_exec(struct wfs_file *f, struct wfs_exec __user *uarg)
{
	struct wfs_exec a;
	struct wfs_work w = { .op = WFS_EXEC };
	u8 *req = NULL, *resp = NULL;
	size_t n;
	long err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.pad || a.req_len == 0 || a.req_len > WFS_MAX_REQ || a.resp_cap < 16 || a.resp_cap > WFS_MAX_RESP)
		return -EINVAL;
	if (!f->s)
		return -ENOENT;	/* no session: WFS_IOC_RESET first */
	req = kvmalloc(a.req_len, GFP_KERNEL_ACCOUNT);
	resp = kvmalloc(a.resp_cap, GFP_KERNEL_ACCOUNT);
	err = -ENOMEM;
	if (!req || !resp)
		goto out;
	err = -EFAULT;
	if (copy_from_user(req, u64_to_user_ptr(a.req), a.req_len))
		goto out;
	w.s = f->s;
	w.req = req;
	w.req_len = a.req_len;
	w.resp = resp;
	w.resp_cap = a.resp_cap;
	err = wfs_run(&w);
	if (err)
		goto out;
	if (w.panicked) {
		/* The session may be half-modified: abandon it (leaked). */
		size_t len = strlen(w.msg);

		f->s = NULL;
		n = 1 + 4 + len + 1;
		resp[0] = WFS_STATUS_PANIC;
		put_unaligned_le32(len, resp + 1);
		memcpy(resp + 5, w.msg, len);
		resp[5 + len] = 0;
	} else {
		n = min_t(size_t, w.resp_len, a.resp_cap);
	}
	err = -EFAULT;
	if (copy_to_user(u64_to_user_ptr(a.resp), resp, n) || put_user((u32)n, &uarg->resp_len))
		goto out;
	err = 0;
out:
	kvfree(req);
	kvfree(resp);
	return err;
}

static long wfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct wfs_file *f = file->private_data;
	long err;

	if (mutex_lock_interruptible(&wfs_mutex))
		return -EINTR;
	switch (cmd) {
	case WFS_IOC_RESET:
		err = wfs_reset(f);
		break;
	case WFS_IOC_EXEC:
		err = wfs_do_exec(f, (struct wfs_exec __user *)arg);
		break;
	default:
		err = -ENOTTY;
	}
	mutex_unlock(&wfs_mutex);
	return err;
}

static const struct file_operations wfs_fops = {
	.owner = THIS_MODULE,
	.open = wfs_open,
	.release = wfs_release,
	.unlocked_ioctl = wfs_ioctl,
};

static struct miscdevice wfs_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wasmfw_spectest",
	.fops = &wfs_fops,
	.mode = 0600,
};

static int __init wfs_init(void)
{
	int err;

#ifdef WFS_OWN_STACK
	wfs_stack = vmalloc(WFS_STACK_BYTES);
	if (!wfs_stack)
		return -ENOMEM;
#endif
	pr_info("wasmfw_spectest: TEST ONLY module loaded (spec-suite executor, floats on)\n");
	err = misc_register(&wfs_dev);
#ifdef WFS_OWN_STACK
	if (err)
		vfree(wfs_stack);
#endif
	return err;
}

static void __exit wfs_exit(void)
{
	misc_deregister(&wfs_dev);
#ifdef WFS_OWN_STACK
	vfree(wfs_stack);
#endif
	if (atomic_long_read(&wfs_panics))
		pr_warn("wasmfw_spectest: %ld engine panics during this load (their sessions leaked)\n",
			atomic_long_read(&wfs_panics));
}

module_init(wfs_init);
module_exit(wfs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("wasmfw test only: WebAssembly spec suite in the kernel's wasmi build");
