/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * wasmfw control interface: ioctls on /dev/wasmfw (CAP_NET_ADMIN).
 * The C twin of kmod/wasmfw/wasmfw_uapi.rs, the one Rust definition that the
 * module and wasmfw include (and kmod/tests/wfioctl.py reads through
 * `wasmfw uapi-layout`); ctl/tests/uapi_layout.rs compiles this header and
 * checks every struct, offset, constant and ioctl number against it. Every
 * struct is 8-byte aligned with explicit padding; pointers are __u64. Bump
 * WASMFW_UAPI_VERSION on any change.
 */
#ifndef _WASMFW_UAPI_H
#define _WASMFW_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define WASMFW_UAPI_VERSION 6     /* 2: wasmfw_info.netns_ino; 3: MAP_DUMP pages; 4: load/info flags; 5: CAPTURE_CTL/READ; 6: LOG_READ */
#define WASMFW_NAME_LEN 32
#define WASMFW_IFNAME_LEN 16
#define WASMFW_POLICY_LEN 128
#define WASMFW_MAX_WASM (1u << 20)      /* bytes of a module */
#define WASMFW_MAX_CONFIG 8192
#define WASMFW_MAX_PACKET 2048          /* bytes a filter sees of a packet */
/*
 * Most fuel a filter may spend on one packet, i.e. the ceiling on the time
 * one packet can cost with bottom halves off. wasmi charges about one fuel
 * unit per executed instruction; measured in the UML guest (docs/safety.md,
 * kmod/tests/t_adversarial.sh) a looping filter runs at ~1-3 ns per fuel
 * unit, so the ceiling is ~1-3 ms per packet: a 64-packet NAPI batch of
 * worst-case packets stays far below the soft-lockup (20 s) and RCU-stall
 * (21 s) detectors. Loads asking for more get EINVAL and a message.
 */
#define WASMFW_MAX_FUEL 1000000
#define WASMFW_MAX_TEST_REPEAT 100000000
#define WASMFW_MAX_TEST_PACKET 9216         /* bytes of a TEST_RUN packet */
#define WASMFW_MAX_ERR 4096                 /* bytes of LOAD's error the module fills at most */
#define WASMFW_MAX_DUMP (16u << 20)         /* bytes one MAP_DUMP call writes at most */
#define WASMFW_MIN_MEMORY_LIMIT (64u << 10)  /* memory_limit, bytes per instance */
#define WASMFW_MAX_MEMORY_LIMIT (64u << 20)
#define WASMFW_MAX_FILTERS 64               /* loaded at once */
#define WASMFW_MAX_XDP_ATTACHMENTS 64       /* XDP slots (WASMFW_XDP_SLOTS) */
/*
 * Each loaded filter has a ring of this many log records (allocated at
 * load, ~72 KiB): the packet path overwrites the oldest record when the
 * ring is full; records no reader had seen count in the filter's
 * `log_dropped` counter.
 */
#define WASMFW_LOG_RING_RECORDS 256
#define WASMFW_LOG_MSG_LEN 256              /* bytes of a line kept (the ABI's MAX_LOG_LEN) */

#define WASMFW_HOOK_NETFILTER 1         /* IPv4+IPv6 PRE_ROUTING, one interface */
#define WASMFW_HOOK_XDP 2               /* through xdp-bridge (issue 5) */

#define WASMFW_MAP_HASH 1
#define WASMFW_MAP_PERCPU_ARRAY 2
#define WASMFW_LINK_ETHERNET 1          /* test_run.link */
#define WASMFW_LINK_RAW_IP 2
#define WASMFW_LOAD_AUDIT 1             /* load.flags: pass every packet, count would-be drops */

struct wasmfw_load {
	__u64 wasm;                     /* in: module bytes */
	__u64 config;                   /* in: key=value parameter text */
	__u32 wasm_len;
	__u32 config_len;
	__u64 fuel;                     /* per packet */
	__u64 memory_limit;             /* bytes */
	__u32 on_fault;                 /* 0 pass, 1 drop */
	__u32 id;                       /* out: filter id */
	char name[WASMFW_NAME_LEN];     /* filter name, for status */
	char policy[WASMFW_POLICY_LEN]; /* policy path, for status */
	__u64 err;                      /* in: buffer for a one-line error */
	__u32 err_len;
	__u32 stack_used;               /* out: kernel stack the load used, bytes */
	__u32 flags;                    /* in: WASMFW_LOAD_AUDIT or 0 */
	__u32 pad;
};

struct wasmfw_attach {
	__u32 id;
	__u32 hook;
	char ifname[WASMFW_IFNAME_LEN]; /* in the caller's network namespace */
};

struct wasmfw_detach {
	char ifname[WASMFW_IFNAME_LEN];
};

struct wasmfw_unload {
	__u32 id;
	__u32 pad;
};

struct wasmfw_info {
	__u32 id;
	__u32 hook;                     /* 0 = loaded, not attached */
	__u32 ifindex;
	__u32 on_fault;
	char ifname[WASMFW_IFNAME_LEN];
	char name[WASMFW_NAME_LEN];
	char policy[WASMFW_POLICY_LEN];
	__u64 fuel;
	__u64 memory_limit;
	__u64 netns_ino;                /* the attachment's network namespace
					 * (inode of /proc/PID/ns/net), 0 when
					 * not attached */
	__u32 flags;                    /* what it was loaded with (WASMFW_LOAD_AUDIT) */
	__u32 pad;
};

struct wasmfw_list {
	__u64 buf;                      /* struct wasmfw_info[cap] */
	__u32 cap;
	__u32 count;                    /* out: filters loaded (may exceed cap) */
};

struct wasmfw_counter {
	char name[WASMFW_NAME_LEN];
	__u64 value;
};

struct wasmfw_counters {
	__u32 id;
	__u32 cap;
	__u64 buf;                      /* struct wasmfw_counter[cap] */
	__u32 count;                    /* out */
	__u32 pad;
};

struct wasmfw_map_info {
	char name[WASMFW_NAME_LEN];
	__u32 kind;                     /* WASMFW_MAP_HASH, WASMFW_MAP_PERCPU_ARRAY */
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

struct wasmfw_maps {
	__u32 id;
	__u32 cap;
	__u64 buf;                      /* struct wasmfw_map_info[cap] */
	__u32 count;                    /* out */
	__u32 pad;
};

#define WASMFW_MAP_UPDATE 1
#define WASMFW_MAP_DELETE 2

struct wasmfw_map_op {
	__u32 id;
	__u32 op;
	char map[WASMFW_NAME_LEN];
	__u64 key;
	__u64 value;
	__u32 key_len;
	__u32 value_len;
	__s32 result;                   /* out: ABI code (0 ok, 1 deleted, <0 error) */
	__u32 pad;
};

/* One page of a map. Records: __u32 cpu, key bytes, value bytes; whole
 * records only. Start with cursor 0 and call again with the cursor
 * returned until it is 0. The map is locked per chunk of entries, so a
 * page is not a snapshot (entries changed meanwhile may or may not show).
 * ENOSPC: cap cannot hold one record. */
struct wasmfw_map_dump {
	__u32 id;
	__u32 cursor;                   /* in: where to start; out: where to go on, 0 = done */
	char map[WASMFW_NAME_LEN];
	__u64 buf;
	__u64 cap;                      /* bytes at buf (at most 16 MiB used) */
	__u64 len;                      /* out: bytes written */
};

/* Runs a loaded filter `repeat` times (at most WASMFW_MAX_TEST_REPEAT) on
 * one packet, in the kernel, on the calling CPU's instance, like
 * BPF_PROG_TEST_RUN. Interruptible: a signal ends it with EINTR. */
struct wasmfw_test_run {
	__u32 id;
	__u32 link;                     /* WASMFW_LINK_* */
	__u64 packet;
	__u32 packet_len;
	__u32 repeat;
	__u32 verdict;                  /* out: 0 pass, 1 drop */
	__u32 pad;
	__u64 total_ns;                 /* out: time for all runs */
};

/*
 * Capture (`wasmfw capture`): the packets an attached filter gave one of
 * the chosen verdicts, copied on the packet path into a ring allocated at
 * START (WASMFW_CAPTURE_RING_BYTES of fixed-size slots, one per record),
 * records dropped and counted when it is full. A capture belongs to the
 * open file that started it: closing the file, STOP, detaching or
 * unloading the filter ends it; the ring is freed after a grace period.
 */
#define WASMFW_CAPTURE_PASS 1           /* verdict bits */
#define WASMFW_CAPTURE_DROP 2
#define WASMFW_CAPTURE_FAULT 4          /* trapped or out of fuel: on_fault applied */
#define WASMFW_CAPTURE_SNAPLEN 2048     /* most bytes kept of a packet */
#define WASMFW_CAPTURE_RING_BYTES (1u << 20)  /* per capture */
#define WASMFW_MAX_CAPTURES 8           /* running at once */
#define WASMFW_CAPTURE_READ_MAX (1u << 20)    /* bytes one READ returns at most */

#define WASMFW_CAPTURE_START 1
#define WASMFW_CAPTURE_STOP 2

struct wasmfw_capture_ctl {
	__u32 id;                       /* filter (attached) */
	__u32 op;                       /* WASMFW_CAPTURE_START or _STOP */
	__u32 verdicts;                 /* WASMFW_CAPTURE_* bits, START */
	__u32 snaplen;                  /* 1..WASMFW_CAPTURE_SNAPLEN, START */
};

/* One record in a READ buffer, followed by caplen bytes of the packet and
 * padding to 8 bytes. link: 1 Ethernet (XDP), 2 raw IP (netfilter). */
struct wasmfw_capture_rec {
	__u64 ts_ns;                    /* ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 cpu;
	__u32 verdict;                  /* one WASMFW_CAPTURE_* bit */
	__u32 id;                       /* filter */
	__u32 orig_len;
	__u32 caplen;
	__u32 link;
	__u32 flags;                    /* WASMFW_CAPTURE_REC_AUDIT: audit mode passed this drop */
	__u32 pad;
};
#define WASMFW_CAPTURE_REC_AUDIT 1

/* Takes (consumes) the oldest records of the capture of filter `id` this
 * file started; whole records only, at most WASMFW_CAPTURE_READ_MAX bytes. */
struct wasmfw_capture_read {
	__u32 id;
	__u32 count;                    /* out: records in buf */
	__u64 buf;
	__u64 cap;                      /* bytes at buf */
	__u64 len;                      /* out: bytes written */
	__u64 lost;                     /* out: records dropped (ring full) since START */
};

/* One line a filter logged: its bytes as the filter wrote them (UTF-8 by
 * the ABI, not checked: a reader must neutralise control characters). */
struct wasmfw_log_record {
	__u64 seq;                      /* 0, 1, 2 ... per filter */
	__u64 ts_ns;                    /* ktime_get_ns() when logged */
	__u32 cpu;
	__u32 level;                    /* 0 error, 1 warn, 2 info, 3 debug */
	__u32 len;                      /* bytes of msg used */
	__u32 pad;
	__u8 msg[WASMFW_LOG_MSG_LEN];
};

/* Reads a filter's log records from sequence number `cursor` on (0: the
 * oldest still held). Records older than the oldest held were overwritten:
 * `lost` says how many of those the cursor asked for. Call again with the
 * cursor returned to follow the log. */
struct wasmfw_log_read {
	__u32 id;
	__u32 cap;                      /* records at buf */
	__u64 buf;                      /* struct wasmfw_log_record[cap] */
	__u64 cursor;                   /* in: first seq wanted; out: next seq to ask for */
	__u64 lost;                     /* out: records asked for but overwritten */
	__u64 dropped;                  /* out: the filter's log_dropped counter */
	__u32 count;                    /* out: records written */
	__u32 pad;
};

#define WASMFW_IOC_MAGIC 0xf7
#define WASMFW_IOC_VERSION   _IOR(WASMFW_IOC_MAGIC, 0, __u32)
#define WASMFW_IOC_LOAD      _IOWR(WASMFW_IOC_MAGIC, 1, struct wasmfw_load)
#define WASMFW_IOC_ATTACH    _IOW(WASMFW_IOC_MAGIC, 2, struct wasmfw_attach)
#define WASMFW_IOC_DETACH    _IOW(WASMFW_IOC_MAGIC, 3, struct wasmfw_detach)
#define WASMFW_IOC_UNLOAD    _IOW(WASMFW_IOC_MAGIC, 4, struct wasmfw_unload)
#define WASMFW_IOC_LIST      _IOWR(WASMFW_IOC_MAGIC, 5, struct wasmfw_list)
#define WASMFW_IOC_COUNTERS  _IOWR(WASMFW_IOC_MAGIC, 6, struct wasmfw_counters)
#define WASMFW_IOC_MAPS      _IOWR(WASMFW_IOC_MAGIC, 7, struct wasmfw_maps)
#define WASMFW_IOC_MAP_OP    _IOWR(WASMFW_IOC_MAGIC, 8, struct wasmfw_map_op)
#define WASMFW_IOC_MAP_DUMP  _IOWR(WASMFW_IOC_MAGIC, 9, struct wasmfw_map_dump)
#define WASMFW_IOC_TEST_RUN  _IOWR(WASMFW_IOC_MAGIC, 10, struct wasmfw_test_run)
#define WASMFW_IOC_CAPTURE_CTL  _IOW(WASMFW_IOC_MAGIC, 12, struct wasmfw_capture_ctl)
#define WASMFW_IOC_CAPTURE_READ _IOWR(WASMFW_IOC_MAGIC, 13, struct wasmfw_capture_read)
#define WASMFW_IOC_LOG_READ  _IOWR(WASMFW_IOC_MAGIC, 11, struct wasmfw_log_read)

#endif
