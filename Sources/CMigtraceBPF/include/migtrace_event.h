/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The record the BPF program writes into the ring buffer, shared by
 * bpf/migtrace.bpf.c (clang -target bpf) and the CMigtraceBPF target.
 * Plain data with fixed-width types only; the layout is guarded by
 * _Static_assert on both sides and by a Swift test.
 *
 *   0               8       12      16  17  18      20      24
 *   +---------------+-------+-------+---+---+-------+-------+
 *   | ts_ns         | pid   | tid   |prb|cnt| flags | rsvd  |
 *   +---------------+-------+-------+---+---+-------+-------+
 *   | args[0] ... args[7]  (8 x u64, 24..88)                 |
 *   +--------------------------------------------------------+
 *
 * migrate_set_state's string lies over args[1..4] (32..64, NUL-terminated):
 * its only argument is args[0], the pointer it was read from. Sharing the
 * space keeps a record at 88 bytes, 96 in the ring with its header.
 */
#ifndef MIGTRACE_EVENT_H
#define MIGTRACE_EVENT_H

#ifdef __bpf__
#include <linux/types.h>
typedef __u8 mt_u8;
typedef __u16 mt_u16;
typedef __u32 mt_u32;
typedef __u64 mt_u64;
#else
#include <stdint.h>
typedef uint8_t mt_u8;
typedef uint16_t mt_u16;
typedef uint32_t mt_u32;
typedef uint64_t mt_u64;
#endif

/* Maximum number of probe arguments kept per record (qemu_savevm_query_pending has 8). */
#define MT_MAX_ARGS 8
/* Room for migrate_set_state's string, NUL included ("postcopy-recover-setup" is 23). */
#define MT_STATE_LEN 32
/* sizeof(struct mt_event). */
#define MT_EVENT_SIZE 88
/* offsetof(struct mt_event, state): args[1]. */
#define MT_STATE_OFFSET 32

/* Probe ids (USDT cookies); equal to ProbeKind's raw values in TraceEvent.swift. */
#define MT_PROBE_MIGRATE_TRANSFERRED 0
#define MT_PROBE_MIGRATE_PENDING_ESTIMATE 1
#define MT_PROBE_MIGRATE_PENDING_EXACT 2
#define MT_PROBE_MIGRATE_PENDING 3
#define MT_PROBE_MIGRATION_THREAD_LOW_PENDING 4
#define MT_PROBE_BITMAP_SYNC_START 5
#define MT_PROBE_BITMAP_SYNC_END 6
#define MT_PROBE_MIGRATE_SET_STATE 7
#define MT_PROBE_QEMU_SAVEVM_QUERY_PENDING 8
#define MT_PROBE_COUNT 9
/* Processes whose ring-buffer losses are counted one by one (the drops_by_tgid map). */
#define MT_MAX_DROP_PROCESSES 4096
/* probe: no USDT spec for this attachment (never expected); user space counts the record as undecodable. */
#define MT_PROBE_UNKNOWN 0xff

/* flags: bpf_usdt_arg failed for at least one argument (its slot is 0). */
#define MT_FLAG_ARG_ERROR 0x1
/* flags: the state string could not be read (state is empty). */
#define MT_FLAG_STATE_ERROR 0x2
/* flags: the probe has more than MT_MAX_ARGS arguments; extra ones are not kept. */
#define MT_FLAG_ARGS_TRUNCATED 0x4

struct mt_event {
	mt_u64 ts_ns;       /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	mt_u32 pid;         /* tgid */
	mt_u32 tid;         /* thread id */
	mt_u8 probe;        /* MT_PROBE_* (the USDT cookie) */
	mt_u8 arg_cnt;      /* bpf_usdt_arg_cnt(), capped at MT_MAX_ARGS */
	mt_u16 flags;       /* MT_FLAG_* */
	mt_u32 reserved;    /* zero */
	union {
		mt_u64 args[MT_MAX_ARGS];
		struct {
			mt_u64 state_arg;         /* args[0] of migrate_set_state */
			char state[MT_STATE_LEN]; /* the string it points to */
		};
	};
};

_Static_assert(sizeof(struct mt_event) == MT_EVENT_SIZE, "struct mt_event layout changed");
_Static_assert(__builtin_offsetof(struct mt_event, state) == MT_STATE_OFFSET, "struct mt_event layout changed");

#endif /* MIGTRACE_EVENT_H */
