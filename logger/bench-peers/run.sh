#!/usr/bin/env bash
# Runs every logger in its own process, RUNS times each (interleaved), and prints a
# Markdown table of medians. Usage: logger/bench-peers/run.sh [RECORDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")"
RECORDS=${1:-1000000}
RUNS=${2:-3}
LOGGERS=${LOGGERS:-"logger logger-sync spdlog spdlog-async ftlog fast_log tracing-nb log4rs logger-disabled"}
cargo build --release --quiet
BIN=./target/release/bench-peers
OUT=$(mktemp)
DIR=$(mktemp -d)
trap 'rm -rf "$OUT" "$DIR"' EXIT
for run in $(seq "$RUNS"); do
  for l in $LOGGERS; do
    rm -rf "$DIR/$l"
    "$BIN" "$l" "$DIR/$l" "$RECORDS" >>"$OUT"
    rm -rf "$DIR/$l"
  done
done
echo "records=$RECORDS runs=$RUNS $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| logger | lines written | drained records/s | loop mean ns | caller p50 ns | p99 ns | p99.9 ns | max ns | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for l in $LOGGERS; do
  awk -v l="$l" '$1 == l' "$OUT" | sort -t$'\t' -k5,5n | awk -F'\t' -v runs="$RUNS" '
    { rows[NR] = $0; lines[NR] = $3; rps[NR] = $5; mean[NR] = $6; p50[NR] = $7; p99[NR] = $8; p999[NR] = $9; mx[NR] = $10; rss[NR] = $11 }
    function med(a, n,   t, i, j, k) { for (i = 1; i <= n; i++) t[i] = a[i]; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (t[j] < t[i]) { k = t[i]; t[i] = t[j]; t[j] = k } return t[int((n + 1) / 2)] }
    END {
      n = NR; split(rows[1], f, "\t")
      minl = lines[1]; for (i = 2; i <= n; i++) if (lines[i] < minl) minl = lines[i]
      printf "| %s | %d (min of %d runs) | %.0f | %.0f | %d | %d | %d | %d | %.1f |\n", f[1], minl, n, med(rps, n), med(mean, n), med(p50, n), med(p99, n), med(p999, n), med(mx, n), med(rss, n) / 1024
    }'
done
