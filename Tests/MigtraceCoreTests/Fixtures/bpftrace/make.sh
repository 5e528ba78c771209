#!/bin/bash
# Regenerates the bpftrace fixtures: migtrace-demo-target (QEMU's migration USDT probes, as the dtrace backend
# builds them) replays the real QEMU 10.0 trace ../qemu/10.0-converge.log, one window every 20 ms, while bpftrace
# runs the one-liner PROGRAM.bt on it (BIN is replaced by the target's path). As root, after `swift build`.
set -e
cd "$(dirname "$0")"
BIN=$(cd ../../../.. && pwd)/.build/debug/migtrace-demo-target
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sed -nE \
    -e 's/^migrate_transferred transferred ([0-9]+) time_spent ([0-9]+) bandwidth ([0-9]+) switchover_bw ([0-9]+) max_size ([0-9]+)$/W 20000\nT \1 \2 \3 \4 \5/p' \
    -e 's/^migrate_pending_estimate estimate pending size ([0-9]+) \(pre = ([0-9]+) post=([0-9]+)\)$/E \1 \2 \3/p' \
    -e 's/^migrate_pending_exact exact pending size ([0-9]+) \(pre = ([0-9]+) post=([0-9]+)\)$/X \1 \2 \3/p' \
    -e 's/^migrate_set_state new state (.*)$/S \1/p' ../qemu/10.0-converge.log > "$WORK/script"
for program in positional labelled; do
    mkfifo "$WORK/fifo"
    "$BIN" < "$WORK/fifo" > /dev/null &
    target=$!
    exec 3> "$WORK/fifo"
    bpftrace -p "$target" -e "$(sed "s|BIN|$BIN|g" "$program.bt")" > "10.0-converge.$program.txt" 2> /dev/null 3>&- &
    tracer=$!
    for _ in $(seq 50); do grep -q Attaching "10.0-converge.$program.txt" && break; sleep 0.2; done
    sleep 0.5
    cat "$WORK/script" >&3
    exec 3>&-
    wait "$target"
    sleep 0.5
    kill -INT "$tracer"
    wait "$tracer" || true
    rm "$WORK/fifo"
done
