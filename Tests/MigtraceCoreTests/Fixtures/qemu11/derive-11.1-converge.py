#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes 11.1-converge-iso.log, a HAND-MADE QEMU 11.1 log trace, from the real era-C recording
../qemu/usdt-eraC-converge-ts.log (QEMU 10.0.13 with 11.1's switchover arithmetic, -msg timestamp=on).

No QEMU built here traces 11.1's pending query, so the trace is rewritten as 11.1 would print it
(reference §7.3, §7.4):
  * the `tid@sec.usec:` prefix becomes 10.1+'s ISO-8601 UTC prefix, fraction dropped when it is zero;
  * migrate_pending_estimate/_exact (removed in 11.1) become qemu_savevm_query_pending with exact=0/1,
    final=0, precopy=pre, stopcopy=0, postcopy=post, total=size, ack counts 0;
  * the final RAM sync after `device` is followed by the final query (exact=1, final=1) with the pages that
    sync found (2509 × 4096 bytes).
Windows, states and times are the recording's own.
"""
import datetime
import re
import sys

src = "../qemu/usdt-eraC-converge-ts.log"
out = []
final_after_device = False
for line in open(src):
    m = re.match(r"(\d+)@(\d+)\.(\d{6}):(.*)", line.rstrip("\n"))
    tid, sec, usec, body = m.groups()
    t = datetime.datetime.fromtimestamp(int(sec), datetime.timezone.utc)
    prefix = t.strftime("%Y-%m-%dT%H:%M:%S") + ("" if int(usec) == 0 else "." + usec) + "Z "
    p = re.match(r"migrate_pending_(estimate|exact) \w+ pending size (\d+) \(pre = (\d+) post=(\d+)\)", body)
    if p:
        kind, size, pre, post = p.groups()
        body = (f"qemu_savevm_query_pending exact={1 if kind == 'exact' else 0}, final=0, precopy={pre}, stopcopy=0, "
                f"postcopy={post}, total={size}, collected switchover ack pending=0, total switchover ack pending=0")
    out.append(prefix + body)
    if body == "migrate_set_state new state device":
        final_after_device = True
    if final_after_device and body.startswith("migration_bitmap_sync_end"):
        final_after_device = False
        n = int(body.split()[-1]) * 4096
        out.append(prefix + f"qemu_savevm_query_pending exact=1, final=1, precopy={n}, stopcopy=0, postcopy=0, "
                   f"total={n}, collected switchover ack pending=0, total switchover ack pending=0")
sys.stdout.write("\n".join(out) + "\n")
