/* SPDX-License-Identifier: GPL-2.0 */
/* The C side's init and exit (wasmfw_lifetime.c), called by Rust's module init and drop. */
#ifndef _WASMFW_LIFETIME_H
#define _WASMFW_LIFETIME_H

int wasmfw_glue_init(void);
void wasmfw_glue_exit(void);

#endif
