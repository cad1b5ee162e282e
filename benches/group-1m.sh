#!/usr/bin/env bash
# `dipdrg group` end to end on 1M CHS-DRG 1.1 cases with 2 threads (issue 14's floor: 600,000
# cases/s), beside a bare read of the same file:
#   RUNS=5 bash benches/group-1m.sh [FILE]                       (default /tmp/p1m-chs.csv)
#   BINS="/path/a/dipdrg /path/b/dipdrg" RUNS=5 bash benches/group-1m.sh   (A/B, interleaved)
# Prints each run's wall time and cases/s, then the median per binary.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-/tmp/p1m-chs.csv}"
tables=../shared/reference/chs-drg-1.1
cargo build --release -q --bins --examples
target="${CARGO_TARGET_DIR:-target}"
bin=$target/release/dipdrg
[ -f "$file" ] || $bin gen -q --tables $tables --cases 1000000 --hospitals 300 --year 2026 --seed 7 --out "$file"
cases=$(($(wc -l < "$file") - 1))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for _ in $(seq "${RUNS:-5}"); do
  for group_bin in ${BINS:-$bin}; do
    started=$(date +%s.%N)
    "$group_bin" group -q --tables $tables --input "$file" --output "$out/groups.csv" --threads 2
    ended=$(date +%s.%N)
    echo "$group_bin $started $ended" | awk -v n="$cases" '{ s = $3 - $2; printf "group: %.2f s wall, %.0f cases/s (%s)\n", s, n / s, $1 }'
  done
done | tee "$out/runs.txt"
for group_bin in ${BINS:-$bin}; do
  grep -F "($group_bin)" "$out/runs.txt" | awk '{ print $2 }' | sort -n |
    awk -v b="$group_bin" -v n="$cases" '{ t[NR] = $1 } END { m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2; printf "median: %.2f s wall, %.0f cases/s (%s)\n", m, n / m, b }'
done
$target/release/examples/read_cases "$file"
