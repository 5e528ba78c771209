#!/usr/bin/env python3
"""Re-derive QEMU's migrate_transferred arithmetic from real traces.

    check_threshold.py TRACE.log [TRACE.log ...]   (default: all fixtures)

For every `migrate_transferred` line (log backend, with or without the
`tid@sec.usec:` prefix, CRLF tolerated) it checks, in IEEE double as QEMU does:

  bw = transferred / time_spent
  bandwidth == trunc(bw)
  era A (4 args):  max_size == trunc(bw * downtime_limit)
  era B (5 args):  switchover_bw == 0:  max_size == trunc(bw * downtime_limit)
                   switchover_bw != 0:  max_size == switchover_bw * downtime_limit
                   (and switchover_bw == avail-switchover-bandwidth // 1000)
  era C (the usdt-eraC build, QEMU 11.1's arithmetic; facts "qemu"):
                   mbps = transferred * 8.0 / (time_spent / 1000.0) / 1000.0 / 1000.0
                   bandwidth == trunc(mbps)
                   per_ms = avail / 1000.0 when set, else mbps / 8 * 1000 * 1000 / 1000
                   switchover_bw == trunc(per_ms), max_size == trunc(per_ms * downtime_limit)

The downtime limits come from the `.facts.json` next to the trace
(migrate.py --facts): the initial value and every later change, in order.
A window is checked against the limit in force; when it fails with that one
but matches the next value set, the change is taken to have happened there.
Without facts the default 300 ms is assumed and switchover_bw is not
compared with a parameter. It also compares the sum of
`transferred` with the final query-migrate `ram.transferred`.

Exit status 0 when every window matched. Python 3 standard library only.
"""

import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "MigtraceCoreTests", "Fixtures", "qemu")

LINE = re.compile(
    r"(?:(\d+)@(\d+)\.(\d{6}):)?migrate_transferred transferred (\d+) time_spent (\d+)"
    r" bandwidth (\d+)(?: switchover_bw (\d+))? max_size (-?\d+)\r?$")


def facts_for(path):
    base = path[:-4] if path.endswith(".log") else path
    f = base + ".facts.json"
    if os.path.exists(f):
        with open(f) as fh:
            return json.load(fh)
    return None


def limits_and_avail(facts):
    """[(downtime_limit...)] in the order they were in force, and avail values."""
    if not facts:
        return [300], None
    dls, avails = [], []
    init = facts.get("parameters_initial", {})
    dls.append(init.get("downtime-limit", 300))
    avails.append(init.get("avail-switchover-bandwidth", 0))
    for ch in facts.get("parameter_changes", []):
        if ch.get("when") == "before-migrate":
            continue
        p = ch["params"]
        if "downtime-limit" in p:
            dls.append(p["downtime-limit"])
        if "avail-switchover-bandwidth" in p:
            avails.append(p["avail-switchover-bandwidth"])
    return dls, avails


def expected(t, ts, sw, dl):
    bw = t / ts                      # double / double, both exact below 2**53
    if sw:
        return int(bw), sw * dl
    return int(bw), int(bw * dl)     # int() truncates toward zero like C


def expected_c(t, ts, sw, dl, avails):
    mbps = ((t * 8.0) / (ts / 1000.0)) / 1000.0 / 1000.0
    per = mbps / 8 * 1000 * 1000 / 1000
    for a in avails or []:
        if a and int(a / 1000.0) == sw:   # the user value in force
            per = a / 1000.0
    return int(mbps), int(per), int(per * dl)


def check(path):
    facts = facts_for(path)
    dls, avails = limits_and_avail(facts)
    era_c = bool(facts) and facts.get("qemu") == "usdt-eraC"
    di = 0
    ok = bad = 0
    total = 0
    bad_lines = []
    with open(path, "rb") as fh:
        lines = fh.read().decode("utf-8", "replace").split("\n")
    for lineno, line in enumerate(lines, 1):
        m = LINE.search(line)
        if not m:
            if "migrate_transferred transferred" in line:
                bad += 1
                bad_lines.append((lineno, line, "unparsed"))
            continue
        t, ts, bwv = int(m.group(4)), int(m.group(5)), int(m.group(6))
        sw = int(m.group(7)) if m.group(7) is not None else 0
        ms = int(m.group(8))
        total += t
        why = None
        if era_c:
            got = (bwv, sw, ms)
            want = expected_c(t, ts, sw, dls[di], avails)
            if want != got and di + 1 < len(dls) and expected_c(t, ts, sw, dls[di + 1], avails) == got:
                di += 1
                want = got
            if want != got:
                bad += 1
                bad_lines.append((lineno, line.rstrip("\r"), "era C: (bandwidth, switchover_bw, max_size) %s != %s (downtime-limit %d)"
                                  % (got, want, dls[di])))
            else:
                ok += 1
            continue
        ebw, ems = expected(t, ts, sw, dls[di])
        if (ebw, ems) != (bwv, ms) and di + 1 < len(dls):
            ebw2, ems2 = expected(t, ts, sw, dls[di + 1])
            if (ebw2, ems2) == (bwv, ms):
                di += 1
                ebw, ems = ebw2, ems2
        if ebw != bwv:
            why = "bandwidth %d != trunc(%d/%d) = %d" % (bwv, t, ts, ebw)
        elif ems != ms:
            why = "max_size %d != %d (downtime-limit %d)" % (ms, ems, dls[di])
        elif sw and avails is not None and sw not in [a // 1000 for a in avails]:
            why = "switchover_bw %d not in avail-switchover-bandwidth//1000 %s" % (
                sw, [a // 1000 for a in avails])
        if why:
            bad += 1
            bad_lines.append((lineno, line.rstrip("\r"), why))
        else:
            ok += 1
    ram = None
    if facts:
        ram = (facts.get("ram_transferred"))
    return ok, bad, bad_lines, total, ram, dls


def main(argv):
    paths = argv[1:] or sorted(glob.glob(os.path.join(FIXTURES, "*.log")))
    all_ok = all_bad = 0
    for p in paths:
        ok, bad, bad_lines, total, ram, dls = check(p)
        all_ok += ok
        all_bad += bad
        extra = ""
        if ram is not None:
            extra = "  sum(transferred)=%d ram.transferred=%d (diff %d)" % (total, ram, ram - total)
        print("%-40s %4d ok %3d bad  downtime-limits %s%s"
              % (os.path.basename(p), ok, bad, dls, extra))
        for lineno, line, why in bad_lines:
            print("    line %d: %s\n        %s" % (lineno, line, why))
    print("%d windows matched exactly, %d did not" % (all_ok, all_bad))
    return 0 if all_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
