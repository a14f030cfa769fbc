/* SPDX-License-Identifier: GPL-2.0 */
/*
 * wasmfw_spectest.ko (test only, issue 12): the control interface of
 * /dev/wasmfw_spectest. Mirrored in xtask/src/spec/exec.rs (WfsExec, WFS_IOC_*).
 * One session (a wasmi store with the spec's `spectest` imports) per open
 * file; requests and responses are encoded as in
 * kmod/spectest/exec/src/wire.rs.
 */
#ifndef WASMFW_SPECTEST_UAPI_H
#define WASMFW_SPECTEST_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Largest request (a binary module) and response the module accepts. */
#define WFS_MAX_REQ (16u << 20)
#define WFS_MAX_RESP (1u << 20)

struct wfs_exec {
	__u64 req;	/* user pointer to the request */
	__u32 req_len;
	__u32 resp_cap;	/* bytes at resp */
	__u64 resp;	/* user pointer to the response buffer */
	__u32 resp_len;	/* out: bytes written */
	__u32 pad;
};

/* Drops the file's session and starts a new one. */
#define WFS_IOC_RESET _IO('S', 1)
/* Runs one request in the file's session. */
#define WFS_IOC_EXEC _IOWR('S', 2, struct wfs_exec)

#endif
