/* SPDX-License-Identifier: GPL-2.0 */
/* What the module's Rust (wasmfw_main.rs and its modules) exports to the C files. */
#ifndef _WASMFW_RS_H
#define _WASMFW_RS_H

#include <linux/types.h>

/* Called with the control mutex held (wasmfw_dev.c). */
long wasmfw_rs_ioctl(unsigned int cmd, unsigned long arg);
/* Called WITHOUT the control mutex: takes it per time slice itself. */
long wasmfw_rs_test_run(unsigned long arg);
/* LOAD, without the control mutex (it takes it to reserve and publish). */
long wasmfw_rs_load(unsigned long arg);
/* Detaches (and frees) every attachment on (net, ifindex); ifindex 0: every
 * one in net. `why` is logged. Control mutex held (wasmfw_lifetime.c). */
void wasmfw_rs_forget(void *net, int ifindex, const char *why);
void wasmfw_rs_teardown(void);
/* icmp_drop in native Rust (wasmfw_native.rs), behind a kfunc (wasmfw_xdp.c). */
int wasmfw_native_icmp_drop(const u8 *data, size_t len);

#endif
