// SPDX-License-Identifier: GPL-2.0
/*
 * A filter's log: its ring of records (`wasmfw log`, the engine's
 * wasmfw_host_log*), optionally copied to the kernel log, and the
 * sanitizer every line from a filter or a module passes before printk.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/smp.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "wasmfw_engine.h"
#include "wasmfw_log.h"
#include "wasmfw_run.h"

/* Copies text a filter (or a module it came from) chose into `dst` with
 * every byte outside printable ASCII replaced by '?': no newline or escape
 * sequence can forge or garble kernel log lines. */
void wasmfw_sanitize(char *dst, size_t cap, const u8 *src, size_t len)
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
 * counting it in `dropped` if no reader had got it yet; lines past the
 * engine's per-packet cap are counted there too. Readers
 * (WASMFW_IOC_LOG_READ) copy one record per lock hold, so the packet path
 * waits at most one 288-byte copy.
 */
struct wasmfw_logring {
	spinlock_t lock;
	u64 id;			/* the filter's id, for the kernel log */
	u64 head;		/* seq of the next record written */
	u64 read_seq;		/* a reader got every record below this */
	u64 dropped;		/* overwritten before any reader got them, or capped */
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
	if (wasmfw_nest_test())
		wasmfw_run_nest_test(msg, len);
	if (!READ_ONCE(wasmfw_log_to_kernel))
		return;
	wasmfw_sanitize(line, sizeof(line), msg, len);
	/* A filter logging per packet must not flood the kernel log. */
	if (level <= 1)
		pr_warn_ratelimited("filter %llu: %s\n", r->id, line);
	else
		pr_info_ratelimited("filter %llu: %s\n", r->id, line);
}

/* Lines a packet logged past the engine's per-packet cap
 * (MAX_LOG_RECORDS_PER_PACKET, kmod/engine/src/fuel.rs): never written,
 * counted with the overwritten ones in `log_dropped`. Once per such packet. */
void wasmfw_host_logring_add_dropped(void *ring, u64 records)
{
	struct wasmfw_logring *r = ring;
	unsigned long flags;

	spin_lock_irqsave(&r->lock, flags);
	r->dropped += records;
	spin_unlock_irqrestore(&r->lock, flags);
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

/*
 * Copies up to `cap` records from seq *cursor on into `out` (a kernel
 * buffer; process context, the control mutex held so the filter stays and
 * reads are serialised). Advances *cursor past what was copied; *lost:
 * records from the cursor on already overwritten. Returns the records
 * copied, or -EINVAL for a cursor beyond the next record to be written (it
 * would raise read_seq past the head, and log_dropped would stop counting).
 * The read is provisional: `undo` records how read_seq moved, and
 * wasmfw_logring_unread() takes it back if the copy to userspace fails.
 */
int wasmfw_logring_read(void *ring, u64 *cursor, struct wasmfw_log_record *out, u32 cap, u64 *lost,
			u64 *dropped, struct wasmfw_logring_undo *undo)
{
	struct wasmfw_logring *r = ring;
	unsigned long flags;
	u64 oldest, seq = *cursor;
	u32 n = 0;

	*lost = 0;
	spin_lock_irqsave(&r->lock, flags);
	if (seq > r->head) {
		spin_unlock_irqrestore(&r->lock, flags);
		return -EINVAL;
	}
	spin_unlock_irqrestore(&r->lock, flags);
	for (;;) {
		spin_lock_irqsave(&r->lock, flags);
		oldest = r->head > WASMFW_LOG_RING_RECORDS ? r->head - WASMFW_LOG_RING_RECORDS : 0;
		if (seq < oldest) {
			*lost += oldest - seq;
			seq = oldest;
		}
		if (n == cap || seq >= r->head) {
			undo->prev_read_seq = r->read_seq;
			undo->read_seq = seq;
			undo->oldest = oldest;
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

/*
 * The records a wasmfw_logring_read() returned never reached userspace
 * (EFAULT): as if it had not happened, so the next read from the same
 * cursor gets them. Records the writer overwrote meanwhile were not counted
 * in `dropped` (read_seq said a reader had them): counted now. Control
 * mutex held, as for the read.
 */
void wasmfw_logring_unread(void *ring, const struct wasmfw_logring_undo *undo)
{
	struct wasmfw_logring *r = ring;
	unsigned long flags;
	u64 oldest, from, to;

	spin_lock_irqsave(&r->lock, flags);
	/* Only a read that raised read_seq has something to take back; reads
	 * are serialised, so read_seq is still what that read set. */
	if (undo->read_seq > undo->prev_read_seq && r->read_seq == undo->read_seq) {
		oldest = r->head > WASMFW_LOG_RING_RECORDS ? r->head - WASMFW_LOG_RING_RECORDS : 0;
		/* Overwritten since the read: [undo->oldest, oldest); of those,
		 * the ones below read_seq and not below prev_read_seq escaped
		 * the writer's count. */
		from = max(undo->oldest, undo->prev_read_seq);
		to = min(oldest, undo->read_seq);
		if (to > from)
			r->dropped += to - from;
		r->read_seq = undo->prev_read_seq;
	}
	spin_unlock_irqrestore(&r->lock, flags);
}

/* Load refusals are triggered by whoever holds CAP_NET_ADMIN, and the text
 * comes partly from the module (import names): sanitized, rate limited. */
void wasmfw_log_refused(const u8 *msg, size_t len)
{
	char line[WASMFW_LOG_MAX + 1];

	wasmfw_sanitize(line, sizeof(line), msg, len);
	pr_info_ratelimited("load refused: %s\n", line);
}
