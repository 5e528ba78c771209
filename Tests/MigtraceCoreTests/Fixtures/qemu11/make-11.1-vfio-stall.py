#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes 11.1-vfio-stall.log, a HAND-MADE QEMU 11.1 log trace of a migration with two VFIO devices that cannot
converge: one device holds 64 MiB it can only send while the VM is stopped, above every threshold.

Formats: migrate_transferred, qemu_savevm_query_pending and migrate_set_state as in the reference (§1, §7.3);
the ISO-8601 prefix of 10.1+ (§7.4), without a fraction on whole seconds. The 11.1 VFIO format strings are not in
the reference: the VFIO lines follow hw/vfio's style of 10.0 (` (name) label value …`) with the arguments §7.3
names. Every window is the real era-C window `transferred 3414546 time_spent 100` of
../qemu/usdt-eraC-converge.log (11.1's arithmetic: 273 Mbit/s, 34145 B/ms, threshold 10243638).
"""
import sys

GPU, NIC = "0000:00:02.0", "0000:00:03.0"
STOP = 64 << 20
out = []
t = 1_787_337_808_000_000  # µs: 2026-08-21T18:43:28Z


def stamp():
    s, us = divmod(t, 1_000_000)
    import datetime
    d = datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return d + ("" if us == 0 else ".%06d" % us) + "Z "


def line(body, dt=0):
    global t
    t += dt
    out.append(stamp() + body)


def query(exact, final, ram, nic_dirty):
    if exact:
        line(f"vfio_query_stop_copy_size  ({GPU}) stopcopy size {STOP} ret 0", 40)
        line(f"vfio_query_precopy_size  ({GPU}) init_size 0 dirty_size 0 reinit 0 ret 0", 5)
        line(f"vfio_query_stop_copy_size  ({NIC}) stopcopy size 1048576 ret 0", 5)
        line(f"vfio_query_precopy_size  ({NIC}) init_size 0 dirty_size {nic_dirty} reinit 0 ret 0", 5)
    line(f"vfio_state_pending  ({GPU}) stopcopy size {STOP} precopy initial size 0 precopy dirty size 0 "
         f"request switchover ack 1 exact {exact} final {final}", 10)
    line(f"vfio_state_pending  ({NIC}) stopcopy size 1048576 precopy initial size 0 precopy dirty size {nic_dirty} "
         f"request switchover ack 0 exact {exact} final {final}", 5)
    pre = ram + nic_dirty
    stop = STOP + 1048576
    line(f"qemu_savevm_query_pending exact={exact}, final={final}, precopy={pre}, stopcopy={stop}, postcopy=0, "
         f"total={pre + stop}, collected switchover ack pending=0, total switchover ack pending=1", 5)


line("migrate_set_state new state setup")
line(f"vfio_query_stop_copy_size  ({GPU}) stopcopy size {STOP} ret 0", 200)
line(f"vfio_query_stop_copy_size  ({NIC}) stopcopy size 0 ret -22", 100)
line("migration_bitmap_sync_start", 100)
line("migration_bitmap_sync_end dirty_pages 0", 300)
line("migrate_set_state new state active", 1_000_000 - 700)  # a whole second: no fraction
ram = 134_750_208
# RAM left after each pass: the guest dirties about 10 MB a pass, 20 passes (> 10 s of windows).
levels = [31_608_832, 12_000_000] + [10_000_000 - 50_000 * k for k in range(18)]
window = 0
for level in levels:
    # 11.1 ends an iteration when the total fits the threshold or no precopy data is left (§7.3): the devices'
    # stop-copy data keeps the total above it, so each pass sends RAM until none is left, then the exact query ends it.
    while ram > 0:
        line("migrate_transferred transferred 3414546 time_spent 100 bandwidth 273 switchover_bw 34145 max_size 10243638",
             100_000 - 80)
        ram = max(0, ram - 3414546)
        query(0, 0, ram, 0)
        window += 1
    line("migration_bitmap_sync_start", 10)
    line(f"migration_bitmap_sync_end dirty_pages {level // 4096}", 300)
    ram = level
    query(1, 0, ram, 8192)
    # The total stays above the threshold (the devices' stop-copy data alone is): another iteration.
    line("migrate_transferred transferred 3414546 time_spent 100 bandwidth 273 switchover_bw 34145 max_size 10243638",
         100_000 - 380)
    ram = max(0, ram - 3414546)
    query(0, 0, ram, 0)
t = (t // 1_000_000 + 1) * 1_000_000 - 0  # cancelled on a whole second
line("migrate_set_state new state cancelling")
line("migrate_set_state new state cancelled", 1500)
sys.stdout.write("\n".join(out) + "\n")
