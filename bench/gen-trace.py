#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate a synthetic QEMU log-backend migration trace of a given size.

The output looks like `qemu-system-x86_64 -msg timestamp=on -trace migrate_transferred
-trace 'migrate_pending*' -D FILE` of QEMU 7.2 (era A, 4-argument migrate_transferred):

    12345@1700000000.123456:migrate_set_state new state setup
    12345@1700000000.223456:migrate_pending pending size 1073741824 max 0 (pre = 1073741824 compat=0 post=0)
    12345@1700000000.323456:migrate_transferred transferred 12345678 time_spent 104 bandwidth 118708 max_size 35612580

max_size is computed as QEMU computes threshold_size (`bandwidth * downtime_limit` in IEEE doubles,
truncated), with the default 300 ms downtime limit, so `migtrace analyze` rebuilds every threshold
exactly. Between windows come 1-6 `migrate_pending` lines and, now and then, a
`migration_bitmap_sync_start`/`_end` pair (`--pending estimate` writes QEMU 8.0's
`migrate_pending_estimate` / `migrate_pending_exact` lines instead, `--pending both` mixes them).

Usage: gen-trace.py [--seed N] [--pending pending|estimate|both] [--limit MS] SIZE OUTPUT
SIZE is bytes with an optional K/M/G suffix (powers of 1000: 100M = 100,000,000 bytes).
Prints the number of lines and migrate_transferred windows written to stderr.
"""

import argparse
import random
import sys

BLOCK = 4 << 20  # write in 4 MiB blocks


def parse_size(text):
    mult = {"K": 1000, "M": 1000**2, "G": 1000**3}
    t = text.strip().upper().rstrip("B")
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", help="target size in bytes (suffix K, M or G, powers of 1000)")
    ap.add_argument("output", help="output file ('-' for standard output)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1: deterministic output)")
    ap.add_argument("--pending", choices=["pending", "estimate", "both"], default="pending",
                    help="pending events: 7.2's migrate_pending (default), 8.0's migrate_pending_estimate/exact, or both")
    ap.add_argument("--limit", type=int, default=300, help="downtime limit in ms (default 300)")
    args = ap.parse_args()

    target = parse_size(args.size)
    rng = random.Random(args.seed)
    rand = rng.random
    randint = rng.randint
    limit = float(args.limit)

    tid = 41873
    t_us = 1_700_000_000_000_000 + randint(0, 999_999)  # wall clock, microseconds
    ram = 16 << 30  # guest RAM still to send
    pending = ram
    threshold = 0
    lines = 0
    windows = 0
    written = 0

    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    parts = []
    size = 0

    def ts():
        return "%d@%d.%06d:" % (tid, t_us // 1_000_000, t_us % 1_000_000)

    # As in real 7.2 traces: `setup` from the main thread, then the migration thread's first sync.
    head = ["%d@%d.%06d:migrate_set_state new state setup\n" % (tid - 24, t_us // 1_000_000, t_us % 1_000_000)]
    t_us += 800
    head.append(ts() + "migration_bitmap_sync_start \n")
    t_us += 2100
    head += [ts() + "migration_bitmap_sync_end dirty_pages 0\n", ts() + "migrate_set_state new state active\n"]
    for s in head:
        parts.append(s)
        size += len(s)
        lines += 1

    mode = args.pending
    while written + size < target:
        # Pending checks of the migration thread loop during the window.
        n_pending = randint(1, 6)
        time_spent = randint(100, 130) if rand() > 0.01 else randint(131, 2500)
        step = time_spent * 1000 // (n_pending + 1)
        for _ in range(n_pending):
            t_us += step
            pending = max(0, pending - randint(0, 4_000_000)) if rand() < 0.9 else pending + randint(0, 50_000_000)
            if pending < 64 << 20:
                pending += randint(200, 900) << 20  # the guest keeps dirtying memory: never converges
            kind = mode if mode != "both" else ("pending" if rand() < 0.5 else "estimate")
            if kind == "pending":
                s = "%smigrate_pending pending size %d max %d (pre = %d compat=0 post=0)\n" % (
                    ts(), pending, threshold, pending)
            elif pending < threshold:
                s = "%smigrate_pending_exact exact pending size %d (pre = %d post=0)\n" % (ts(), pending, pending)
            else:
                s = "%smigrate_pending_estimate estimate pending size %d (pre = %d post=0)\n" % (ts(), pending, pending)
            parts.append(s)
            size += len(s)
            lines += 1
        t_us += time_spent * 1000 - step * n_pending + randint(0, 999)
        if rand() < 0.05:  # a RAM dirty-bitmap sync now and then
            s = "%smigration_bitmap_sync_start \n" % ts()
            t_us += randint(200, 3000)
            s += "%smigration_bitmap_sync_end dirty_pages %d\n" % (ts(), randint(0, 400_000))
            parts.append(s)
            size += len(s)
            lines += 2
        # A window: 1-40 MB, mostly 8-20 MB (a ~1 Gbit/s link), now and then almost idle.
        r = rand()
        if r < 0.8:
            transferred = randint(8_000_000, 20_000_000)
        elif r < 0.98:
            transferred = randint(1_000_000, 40_000_000)
        else:
            transferred = randint(0, 1_000_000)
        bw = transferred / time_spent  # (double)transferred / time_spent
        threshold = int(bw * limit)  # threshold_size = bandwidth * downtime_limit, truncated
        s = "%smigrate_transferred transferred %d time_spent %d bandwidth %d max_size %d\n" % (
            ts(), transferred, time_spent, int(bw), threshold)
        parts.append(s)
        size += len(s)
        lines += 1
        windows += 1
        if size >= BLOCK:
            out.write("".join(parts).encode())
            written += size
            parts = []
            size = 0
    if parts:
        out.write("".join(parts).encode())
        written += size
    if out is not sys.stdout.buffer:
        out.close()
    print("%d bytes, %d lines, %d windows" % (written, lines, windows), file=sys.stderr)


if __name__ == "__main__":
    main()
