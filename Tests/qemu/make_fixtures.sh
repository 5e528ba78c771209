#!/bin/bash
# Regenerate the real QEMU trace fixtures:
#   Tests/qemu/make_fixtures.sh [--usdt-only] [OUTDIR]   (default Tests/MigtraceCoreTests/Fixtures/qemu)
# Runs every scenario on QEMU 7.2 and 10.0 (switchover-bw on 10.0 only) and
# `converge` once more with -msg timestamp=on (files *-ts.log). Needs
# scripts/setup to have run. libvirt-domain.log is made by hand (see README).
# Then the usdt builds (scripts/build-qemu-usdt): usdt-10.0-* (era B) and
# usdt-eraC-* (era C); their converge runs also write the simple backend's
# binary file of the same migration (*.simpletrace). --usdt-only: only those.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
usdt_only=0
if [ "${1:-}" = --usdt-only ]; then usdt_only=1; shift; fi
out="${1:-$here/../MigtraceCoreTests/Fixtures/qemu}"
conv="$out/convergence"  # idle and rescue: read by ConvergenceTests only
mkdir -p "$out"
fail=0
run() {  # run QEMU SCENARIO SUFFIX [ARGS...]
    local q=$1 s=$2 sfx=$3; shift 3
    local base="$out/$q-$s$sfx"
    if python3 "$here/migrate.py" --qemu "$q" --scenario "$s" \
        --out "$base.log" --facts "$base.facts.json" "$@"; then
        echo "ok   $q $s$sfx ($(grep -c 'migrate_transferred ' "$base.log") windows)"
    else
        echo "FAIL $q $s$sfx"; fail=1
    fi
}
for q in 7.2 10.0; do
    [ "$usdt_only" = 1 ] && break
    for s in converge nonconverge stall bandwidth-change downtime-change switchover-bw demo; do
        [ "$s" = switchover-bw ] && [ "$q" = 7.2 ] && continue
        run "$q" "$s" ""
    done
    run "$q" converge -ts --msg-timestamp
    out="$conv" run "$q" rescue -ts --msg-timestamp
    out="$conv" run "$q" idle -ts --msg-timestamp
done
for q in usdt-10.0 usdt-eraC; do
    for s in stall bandwidth-change downtime-change switchover-bw; do
        run "$q" "$s" ""
    done
    run "$q" converge "" --simpletrace "$out/$q-converge.simpletrace"
    run "$q" converge -ts --msg-timestamp
done
exit $fail
