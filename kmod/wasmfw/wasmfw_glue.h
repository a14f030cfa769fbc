/* SPDX-License-Identifier: GPL-2.0 */
/* Between wasmfw_glue.c and wasmfw_main.rs (declared there as extern "C"). */
#ifndef _WASMFW_GLUE_H
#define _WASMFW_GLUE_H

#include <linux/types.h>
#include "wasmfw_uapi.h"	/* WASMFW_LINK_*, WASMFW_HOOK_*, limits */

/* Bit of wf_run's result: the filter faulted (engine-ffi WF_RUN_FAULT). */
#define WF_RUN_FAULT 2
/* Bit of wf_run's result: audit mode passed a drop (engine-ffi WF_RUN_AUDITED). */
#define WF_RUN_AUDITED 4

struct wf_filter;
struct wasmfw_nf;
struct file;
struct net;

/* Rust (wasmfw_main.rs), called with the control mutex held. */
long wasmfw_rs_ioctl(unsigned int cmd, unsigned long arg);
/* Called WITHOUT the control mutex: takes it per time slice itself. */
long wasmfw_rs_test_run(unsigned long arg);
/* Detaches (and frees) every attachment on (net, ifindex); ifindex 0: every
 * one in net. `why` is logged. */
void wasmfw_rs_forget(void *net, int ifindex, const char *why);
void wasmfw_rs_teardown(void);
int wasmfw_native_icmp_drop(const u8 *data, size_t len);

/* Host hooks the engine object calls (wasmfw_glue.c). */
void *wasmfw_host_alloc(size_t size, size_t align);
void wasmfw_host_free(void *ptr);
u64 wasmfw_host_now_ns(void);
void *wasmfw_host_logring_new(u64 id);
void wasmfw_host_logring_free(void *ring);
void wasmfw_host_log(void *ring, int level, const u8 *msg, size_t len);
u64 wasmfw_host_logring_dropped(void *ring);
void __noreturn wasmfw_host_panic(const u8 *msg, size_t len);
void *wasmfw_host_lock_new(void);
void wasmfw_host_lock_free(void *l);
void wasmfw_host_lock(void *l, bool packet);
void wasmfw_host_unlock(void *l, bool packet);
void wasmfw_log_refused(const u8 *msg, size_t len);

/* C (wasmfw_glue.c). */
int wasmfw_glue_init(void);
void wasmfw_glue_exit(void);
struct wf_filter *wasmfw_glue_load(const u8 *wasm, size_t wasm_len, const u8 *cfg, size_t cfg_len,
				   u64 fuel, u64 memory_limit, u32 on_fault, u32 audit, u64 cookie,
				   char *err, size_t err_cap, u32 *stack_used, int *errno_out);
int wasmfw_glue_test_run(struct wf_filter *f, const u8 *pkt, u32 len, int link, u32 repeat,
			 u64 *ns, u32 *ran);
int wasmfw_ctl_lock(void);
void wasmfw_ctl_unlock(void);
bool wasmfw_signal_pending(void);
void wasmfw_cond_resched(void);
u32 wasmfw_logring_read(void *ring, u64 *cursor, struct wasmfw_log_record *out, u32 cap,
			u64 *lost, u64 *dropped);
void *wasmfw_current_net(void);
struct wasmfw_nf *wasmfw_nf_attach(const char *ifname, struct wf_filter *f, int *err);
struct wf_filter *wasmfw_nf_swap(struct wasmfw_nf *att, struct wf_filter *f);
struct wf_filter *wasmfw_nf_detach(struct wasmfw_nf *att);
bool wasmfw_nf_matches(const struct wasmfw_nf *att, const char *ifname);
int wasmfw_nf_ifindex(const struct wasmfw_nf *att);
u64 wasmfw_nf_netns_ino(const struct wasmfw_nf *att);
u64 wasmfw_current_netns_ino(void);
int wasmfw_xdp_attach(const char *ifname, struct wf_filter *f, struct wf_filter **old, int *ifindex);
struct wf_filter *wasmfw_xdp_detach(const char *ifname);
struct wf_filter *wasmfw_xdp_detach_at(void *net, int ifindex);
struct wf_filter *wasmfw_xdp_take_any(void);
bool wasmfw_ctl_held(void);
extern const struct file *wasmfw_ioctl_file;

/* Capture rings (wasmfw_capture.c); all but _packet under the control mutex. */
extern int wasmfw_capture_running;
void wasmfw_capture_packet(struct net *net, int ifindex, u32 hook, int raw, const u8 *data, size_t len,
			   size_t orig_len, int link);
int wasmfw_capture_start(void *net, int ifindex, u32 hook, u32 id, u32 verdicts, u32 snaplen);
int wasmfw_capture_stop(u32 id, bool any_owner);
void wasmfw_capture_release(const struct file *file);
long wasmfw_capture_take(u32 id, u8 *out, size_t cap, u32 *count, u64 *lost);

#endif
