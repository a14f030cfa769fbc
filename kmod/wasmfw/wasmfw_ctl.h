/* SPDX-License-Identifier: GPL-2.0 */
/* The control mutex (wasmfw_ctl.c): one control operation at a time; shared by the device, lifetime and capture files. */
#ifndef _WASMFW_CTL_H
#define _WASMFW_CTL_H

#include <linux/mutex.h>
#include <linux/types.h>

struct file;

extern struct mutex wasmfw_ctl_mutex;
/* The file of the ioctl holding the mutex (capture owners). */
extern const struct file *wasmfw_ioctl_file;

/* Is the control mutex held (always true without lockdep)? */
bool wasmfw_ctl_held(void);
/* For the ioctls that take the control mutex themselves (TEST_RUN, LOAD):
 * 0 or -EINTR if a signal arrived while waiting. Called by Rust. */
int wasmfw_ctl_lock(void);
/* For giving back what a load reserved: must not be skipped. */
void wasmfw_ctl_lock_uninterruptible(void);
void wasmfw_ctl_unlock(void);

#endif
