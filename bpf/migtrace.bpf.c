// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * migtrace: QEMU migration USDT probes -> ring buffer.
 *
 * One program serves every probe: user space attaches it once per probe
 * with the probe id (MT_PROBE_*) as the USDT cookie. Records go to the
 * `events` ring buffer; every failed reserve bumps the per-CPU `drops`
 * counter, so user space can report losses exactly.
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *cnt = bpf_map_lookup_elem(&drops, &zero);

	if (cnt)
		*cnt += 1; /* per-CPU slot: no other writer */
}

SEC("usdt")
int handle_probe(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct mt_event *e;
	long cnt, val;
	int i;

	if (targ_tgid && tgid != targ_tgid)
		return 0;

	/* reserve a record; a full buffer is counted, never silent */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}

	e->ts_ns = bpf_ktime_get_ns();
	e->pid = tgid;
	e->tid = (__u32)id;
	e->probe = (__u8)bpf_usdt_cookie(ctx);
	e->flags = 0;
	e->reserved = 0;

	cnt = bpf_usdt_arg_cnt(ctx);
	if (cnt < 0)
		cnt = 0;
	if (cnt > MT_MAX_ARGS) {
		e->flags |= MT_FLAG_ARGS_TRUNCATED;
		cnt = MT_MAX_ARGS;
	}
	e->arg_cnt = (__u8)cnt;

	for (i = 0; i < MT_MAX_ARGS; i++) {
		val = 0;
		if (i < cnt && bpf_usdt_arg(ctx, i, &val) < 0) {
			e->flags |= MT_FLAG_ARG_ERROR;
			val = 0;
		}
		e->args[i] = (__u64)val;
	}

	e->state[0] = '\0';
	if (e->probe == MT_PROBE_MIGRATE_SET_STATE && cnt >= 1) {
		/* args[0] is the `const char *new_state` in QEMU's address space */
		if (bpf_probe_read_user_str(e->state, sizeof(e->state), (const void *)e->args[0]) < 0) {
			e->state[0] = '\0';
			e->flags |= MT_FLAG_STATE_ERROR;
		}
	}

	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
