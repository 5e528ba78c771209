#!/bin/bash
# Regenerate the real QEMU trace fixtures:
#   Tests/qemu/make_fixtures.sh [OUTDIR]   (default Tests/MigtraceCoreTests/Fixtures/qemu)
# Runs every scenario on QEMU 7.2 and 10.0 (switchover-bw on 10.0 only) and
# `converge` once more with -msg timestamp=on (files *-ts.log). Needs
# scripts/setup to have run. libvirt-domain.log is made by hand (see README).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
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
    for s in converge nonconverge stall bandwidth-change downtime-change switchover-bw demo; do
        [ "$s" = switchover-bw ] && [ "$q" = 7.2 ] && continue
        run "$q" "$s" ""
    done
    run "$q" converge -ts --msg-timestamp
    out="$conv" run "$q" rescue -ts --msg-timestamp
    out="$conv" run "$q" idle -ts --msg-timestamp
done
exit $fail
