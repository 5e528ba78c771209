# SPDX-License-Identifier: Apache-2.0
# Measuring helpers of bench/fleet and bench/fleet-qemu (sourced; `die` is the caller's).

# wait_for FILE PATTERN [COUNT]: until FILE has COUNT (1) lines matching PATTERN (60 s at most).
wait_for() {
    local i want="${3:-1}"
    for ((i = 0; i < 6000; i++)); do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$want" ] && return 0
        sleep 0.01
    done
    die "timed out waiting for $want x '$2' in $1"
}

# cpu_ns PID...: the CPU time of these processes, ns, all their threads (schedstat: the scheduler's own
# nanoseconds, where /proc/PID/stat has 10 ms ticks).
cpu_ns() {
    local p
    for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null || true; done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
# rss KEY PID...: the sum of a /proc/PID/status field (VmRSS, VmHWM), in MB.
rss() {
    local key="$1" kb=0 p v
    shift
    for p in "$@"; do
        v=$(awk -v k="$key:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        kb=$((kb + ${v:-0}))
    done
    awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}
pct() { awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { printf "%.3f", (b - a) / 1e9 / s * 100 }'; }

