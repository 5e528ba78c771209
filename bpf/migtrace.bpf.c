// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * migtrace: QEMU migration USDT probes -> ring buffer.
 *
 * One program serves every probe: user space attaches it once per probe
 * with the probe id (MT_PROBE_*) as the USDT cookie. Records go to the
 * `events` ring buffer; every failed reserve bumps the per-CPU `drops`
 * counter, so user space can report losses exactly.
 *
 * Wakeups: a wakeup per record costs the traced thread an irq_work and
 * the reader a context switch per event (~2 us an event in a burst). So
 * records are submitted with BPF_RB_NO_WAKEUP and the reader is woken
 * (BPF_RB_FORCE_WAKEUP) only
 *   - when this record makes the pending data cross 1/MT_WAKEUP_FRACTION
 *     of the ring, so a small ring is read long before it fills (only on
 *     the crossing: a reader behind by more than that is awake anyway, its
 *     level-triggered epoll keeps returning while data is pending), or
 *   - when wakeup_interval_ns (1 ms unless user space sets another before
 *     load) have passed since the last wakeup, so QEMU's usual rate
 *     (<= 10 events/s) is delivered at once. `attach --all` sets 20 ms: a
 *     host's QEMUs together fire thousands of events a second, and a
 *     wakeup for each costs more than their analysis.
 * Whatever is left (the tail of a burst inside one interval) is read by
 * the poll thread on its poll timeout (ring_buffer__consume).
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

#include "migtrace_event.h"

/* Only events of this process (tgid) are kept; 0 keeps everything. Set before load. */
const volatile __u32 targ_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024); /* resized by user space before load */
} events SEC(".maps");

/* Wake the reader when this fraction of the ring (1/N) is pending. */
#define MT_WAKEUP_FRACTION 8
/* Ring bytes per record: the record and its 8-byte header, rounded up to 8. */
#define MT_RECORD_STRIDE ((sizeof(struct mt_event) + 8 + 7) / 8 * 8)
/* ... or when the last wakeup is this old (1 ms: at most 1000 wakeups a second). Set before load. */
const volatile __u64 wakeup_interval_ns = 1000000ULL;

/*
 * bpf_ktime_get_ns() of the last forced wakeup. Shared by every CPU without
 * a lock: a race costs at most one extra wakeup, never a lost record.
 */
__u64 last_wakeup_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * The same losses by process, for `attach --all`, where one ring serves every
 * QEMU of a binary: each process's summary gives its own drops. Only the
 * full-ring path touches it. A process that finds the table full is still
 * counted in `drops` (user space reports the difference as unattributed).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MT_MAX_DROP_PROCESSES);
	__type(key, __u32);
	__type(value, __u64);
} drops_by_tgid SEC(".maps");

static __always_inline void count_drop(__u32 tgid)
{
	__u32 zero = 0;
	__u64 *cnt = bpf_map_lookup_elem(&drops, &zero), one = 1;

	if (cnt)
		*cnt += 1; /* per-CPU slot: no other writer */
	cnt = bpf_map_lookup_elem(&drops_by_tgid, &tgid);
	if (cnt)
		__sync_fetch_and_add(cnt, 1); /* shared by every CPU */
	else if (bpf_map_update_elem(&drops_by_tgid, &tgid, &one, BPF_NOEXIST) < 0 &&
		 (cnt = bpf_map_lookup_elem(&drops_by_tgid, &tgid)))
		__sync_fetch_and_add(cnt, 1); /* another CPU inserted it first */
}

/*
 * The probe id and every argument, from one spec look-up.
 *
 * libbpf's bpf_usdt_cookie(), bpf_usdt_arg_cnt() and bpf_usdt_arg() each
 * look the spec up again, and bpf_usdt_arg() reads each register with its
 * own bpf_probe_read_kernel() call: for a 5-argument probe that was most of
 * this program's ~360 ns an event (kernel.bpf_stats_enabled), paid by the
 * traced QEMU thread. Here the spec is looked up once, pt_regs is copied
 * once, and register arguments are picked from the copy; the decoding is
 * libbpf's own (same header, so the same layout its user-space half, from
 * the same libbpf package, writes). An argument kind this does not know
 * goes through bpf_usdt_arg() unchanged.
 */
static __always_inline void read_args(struct pt_regs *ctx, struct mt_event *e)
{
	struct __bpf_usdt_arg_spec *arg;
	struct __bpf_usdt_spec *spec;
	struct pt_regs regs;
	unsigned long val;
	__u64 *slots = (__u64 *)&regs;
	unsigned int slot;
	long cnt, fallback;
	int spec_id, i;

	spec_id = __bpf_usdt_spec_id(ctx);
	spec = spec_id < 0 ? NULL : bpf_map_lookup_elem(&__bpf_usdt_specs, &spec_id);
	if (!spec) {
		/* not attached through libbpf's USDT support: nothing to decode */
		e->probe = MT_PROBE_UNKNOWN;
		e->arg_cnt = 0;
		e->flags |= MT_FLAG_ARG_ERROR;
		for (i = 0; i < MT_MAX_ARGS; i++)
			e->args[i] = 0;
		return;
	}
	e->probe = (__u8)spec->usdt_cookie;
	cnt = spec->arg_cnt;
	if (cnt < 0)
		cnt = 0;
	if (cnt > MT_MAX_ARGS) {
		e->flags |= MT_FLAG_ARGS_TRUNCATED;
		cnt = MT_MAX_ARGS;
	}
	e->arg_cnt = (__u8)cnt;
	if (cnt > 0 && bpf_probe_read_kernel(&regs, sizeof(regs), ctx) < 0)
		__builtin_memset(&regs, 0, sizeof(regs));

	for (i = 0; i < MT_MAX_ARGS; i++) {
		val = 0;
		if (i >= cnt)
			goto store;
		arg = &spec->args[i];
		slot = (unsigned short)arg->reg_off / sizeof(__u64);
		if ((arg->arg_type != BPF_USDT_ARG_REG && arg->arg_type != BPF_USDT_ARG_REG_DEREF &&
		     arg->arg_type != BPF_USDT_ARG_CONST) ||
		    (arg->arg_type != BPF_USDT_ARG_CONST &&
		     (arg->reg_off < 0 || arg->reg_off % sizeof(__u64) || slot >= sizeof(regs) / sizeof(__u64)))) {
			/* a kind (or register) this fast path does not know: libbpf decodes it */
			if (bpf_usdt_arg(ctx, i, &fallback) < 0) {
				e->flags |= MT_FLAG_ARG_ERROR;
				fallback = 0;
			}
			val = fallback;
			goto store;
		}
		if (arg->arg_type == BPF_USDT_ARG_CONST) {
			val = arg->val_off;
		} else {
			val = slots[slot];
			if (arg->arg_type == BPF_USDT_ARG_REG_DEREF &&
			    bpf_probe_read_user(&val, sizeof(val), (void *)val + arg->val_off) < 0) {
				e->flags |= MT_FLAG_ARG_ERROR;
				val = 0;
				goto store;
			}
		}
		/* 1-, 2- and 4-byte arguments: clear (or sign-extend) the upper bits, as bpf_usdt_arg() does */
		val <<= arg->arg_bitshift;
		if (arg->arg_signed)
			val = ((long)val) >> arg->arg_bitshift;
		else
			val = val >> arg->arg_bitshift;
store:
		e->args[i] = (__u64)val;
	}
}

SEC("usdt")
int handle_probe(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct mt_event *e;
	__u64 now, avail, mark, flags;

	if (targ_tgid && tgid != targ_tgid)
		return 0;

	/* reserve a record; a full buffer is counted, never silent */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(tgid);
		return 0;
	}

	now = bpf_ktime_get_ns();
	e->ts_ns = now;
	e->pid = tgid;
	e->tid = (__u32)id;
	e->flags = 0;
	e->reserved = 0;
	read_args(ctx, e);

	if (e->probe == MT_PROBE_MIGRATE_SET_STATE && e->arg_cnt >= 1) {
		/*
		 * args[0] is the `const char *new_state` in QEMU's address space; the
		 * string lies over args[1..4], which this 1-argument probe leaves unused
		 * (every other probe's arguments must stay untouched).
		 */
		if (bpf_probe_read_user_str(e->state, sizeof(e->state), (const void *)e->args[0]) < 0) {
			e->state[0] = '\0';
			e->flags |= MT_FLAG_STATE_ERROR;
		}
	}

	/* the wakeup policy: see the top of this file */
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA); /* this record included */
	mark = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / MT_WAKEUP_FRACTION;
	if (now - last_wakeup_ns >= wakeup_interval_ns ||
	    (avail >= mark && avail < mark + MT_RECORD_STRIDE)) {
		last_wakeup_ns = now;
		flags = BPF_RB_FORCE_WAKEUP;
	} else {
		flags = BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
