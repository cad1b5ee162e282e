#!/usr/bin/env bash
# A city-scale year for the end-to-end settlement and audit figures (issue notes, README):
#   bash benches/big-year.sh [CASES] [DIR]      (defaults: 10000000 cases in /tmp/big)
#   BINS="/path/a/dipdrg /path/b/dipdrg" RUNS=5 bash benches/big-year.sh   (A/B: each run settles
#   with every binary in turn, interleaved, so that both see the same neighbours' load)
# Generates a year of cases over 300 hospitals with CHS-DRG 1.1 (../shared/reference), a year of
# history to build DRG weights from, and a DRG policy listing the generated hospitals; then
# times `settle` and `audit` and a bare CSV read of the same file.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-10000000}"
dir="${2:-/tmp/big}"
tables=../shared/reference/chs-drg-1.1
mkdir -p "$dir"
cargo build --release -q --bins --examples
target="${CARGO_TARGET_DIR:-target}"
bin=$target/release/dipdrg
[ -f "$dir/y2026.csv" ] || $bin gen -q --tables $tables --cases "$cases" --hospitals 300 --year 2026 --seed 2026 --out "$dir/y2026.csv"
[ -f "$dir/h2025.csv" ] || $bin gen -q --tables $tables --cases $((cases < 3000000 ? cases : 3000000)) --hospitals 300 --year 2025 --seed 2025 --out "$dir/h2025.csv"
# The demo DRG policy with the generated hospitals (and their levels) and weights from history,
# and its budgets and expected points (sized for about 10,000 cases) scaled to the year's volume,
# so that point values and payments come out at a city's scale. Amounts are integers with an
# optional fraction, scaled in whole numbers (exact below 2^53).
awk -F, -v f=$((cases / 10000 > 0 ? cases / 10000 : 1)) '
  function scaled(line, key,   out, amount) {
    out = ""
    while (match(line, key "[0-9]+")) {
      amount = substr(line, RSTART + length(key), RLENGTH - length(key))
      out = out substr(line, 1, RSTART - 1 + length(key)) sprintf("%.0f", amount * f)
      line = substr(line, RSTART + RLENGTH)
    }
    return out line
  }
  NR == FNR { if (FNR > 1) levels[FNR] = $1 " = { level = \"" $2 "\" }"; n = FNR; next }
  /^\[hospitals\]/ { print; for (i = 2; i <= n; i++) print levels[i]; skip = 1; next }
  /^\[/ { skip = 0 }
  /^drg_weights/ { print "drg_weights = \"drg-weights.csv\""; next }
  /^(annual_budget|budget_history|expected_points)/ {
    $0 = scaled(scaled(scaled($0, "annual_budget = \""), "amount = \""), "expected_points = ")
  }
  !skip { print }' "$dir/y2026.hospitals.csv" policies/demo-city-2026-drg.toml > "$dir/policy-drg.toml"
[ -f "$dir/drg-weights.csv" ] || $bin catalog build --scheme drg --tables $tables --history "$dir/h2025.csv" --weights 1 --policy "$dir/policy-drg.toml" --out "$dir/drg-weights.csv"
# This machine's speed varies with its neighbours' load (by a quarter, run to run): each settle
# run is preceded by a gauge, one thread grouping and pricing the year's first 1M cases, so that
# runs at different moments can be compared. RUNS settle runs (default 3): quote the median.
[ -f "$dir/p1m.csv" ] || head -1000001 "$dir/y2026.csv" > "$dir/p1m.csv"
for _ in $(seq "${RUNS:-3}"); do
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $target/release/examples/assess_stages "$dir/policy-drg.toml" $tables "$dir/p1m.csv" | grep '^assess'
  # A fresh output directory, written back first: the run neither truncates last run's 1.2 GB
  # cases.csv nor waits on its write-back.
  for settle_bin in ${BINS:-$bin}; do
    rm -rf "$dir/settle"; sync
    /usr/bin/time -f "settle: %e s wall, %M KB peak ($settle_bin)" "$settle_bin" settle --policy "$dir/policy-drg.toml" --tables $tables \
      --cases "$dir/y2026.csv" --violations "$dir/y2026.violations.csv" --mode annual --period 2026 --out "$dir/settle"
  done
done
# AUDIT=0 skips the audit (settle A/B runs).
[ "${AUDIT:-1}" = 0 ] || /usr/bin/time -f "audit: %e s wall, %M KB peak" $bin audit --policy "$dir/policy-drg.toml" --tables $tables --cases "$dir/y2026.csv" --outpatient-families "$dir/y2026.outpatient-families.txt" --injected "$dir/y2026.violations.csv" --out "$dir/flags.csv"
$target/release/examples/read_cases "$dir/y2026.csv"
