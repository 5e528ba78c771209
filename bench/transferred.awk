# SPDX-License-Identifier: Apache-2.0
#
# The per-window arithmetic of `migtrace analyze --format csv`, in awk, as the benchmark's baseline:
#   mawk -f bench/transferred.awk FILE > windows.csv
#
# For each migrate_transferred line (era A: 4 arguments; era B: 5, with switchover_bw): the window's
# start/end time (from a tid@sec.usec: prefix, else the running sum of time_spent), bandwidth =
# transferred / time_spent (bytes/ms), Mbit/s, MB/s, the threshold rebuilt as QEMU does for a fixed
# 300 ms downtime limit (int(bandwidth * 300), or int(switchover_bw * 300) when that is set), whether
# it equals the traced max_size, and the cumulative bytes. One CSV row per window.
# Numbers are printed with %.17g (round-trip exact, like migtrace's shortest form).

BEGIN {
    OFS = ","
    limit = 300
    print "index,line,start_time,end_time,transferred_bytes,time_spent_ms,bandwidth_traced,switchover_bw_traced,threshold_traced_bytes,bandwidth_bytes_per_ms,mbps,megabytes_per_second,threshold_rebuilt_bytes,threshold_exact,cumulative_bytes"
}

/migrate_transferred transferred / {
    # Find the event name: it may be glued to a "tid@sec.usec:" prefix.
    for (i = 1; i <= NF; i++) if ($i ~ /migrate_transferred$/) break
    tr = $(i + 2) + 0
    ts = $(i + 4) + 0
    bwt = $(i + 6)
    if ($(i + 7) == "switchover_bw") { sw = $(i + 8); mx = $(i + 10) } else { sw = ""; mx = $(i + 8) }
    if (ts <= 0) next
    # Time line: the prefix's wall clock, else the running sum of time_spent.
    at = index($i, "@")
    if (at > 0) {
        end = substr($i, at + 1, index($i, ":") - at - 1) + 0
        start = end - ts / 1000
    } else {
        start = elapsed / 1000
        end = (elapsed + ts) / 1000
    }
    elapsed += ts
    bw = tr / ts
    mbps = ((tr * 8.0) / (ts / 1000.0)) / 1000.0 / 1000.0
    thr = int((sw != "" && sw > 0 ? sw : bw) * limit)
    cum += tr
    printf "%d,%d,%.6f,%.6f,%.0f,%.0f,%s,%s,%s,%.17g,%.17g,%.17g,%.0f,%s,%.0f\n", \
        n++, NR, start, end, tr, ts, bwt, sw, mx, bw, mbps, bw / 1000, thr, (thr == mx + 0 ? "true" : "false"), cum
}
