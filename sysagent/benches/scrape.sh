#!/usr/bin/env bash
# sysagent vs prometheus-node-exporter: CPU per scrape, CPU per collection, wall time per
# scrape, RSS, in the same run, each scraped the same number of times over one keep-alive
# connection (as Prometheus does), in alternating rounds so that noise from a shared machine
# hits all alike.
#
#   sysagent/benches/scrape.sh [SCRAPES_PER_ROUND] [ROUNDS]      (defaults: 500, 3)
#
# Processes measured:
#   sysagent-collect  interval 100ms, never scraped: CPU per collection (and with
#                     [collect] processes = false, which node_exporter does not count either)
#   sysagent-render   interval 1h (one collection at start): CPU per scrape = rendering only
#   node_exporter     default collectors
#   node_exporter-min only the collectors covering what sysagent reports
# CPU is utime+stime from /proc/PID/stat (every thread that ever ran; clock ticks) and the sum
# of /proc/PID/task/*/schedstat (ns; live threads only, so it misses Go's exited threads).
# Needs: python3, prometheus-node-exporter (NODE_EXPORTER=path to override).
set -euo pipefail

N=${1:-500}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
WORK=$(mktemp -d /tmp/sysagent-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p sysagent >/dev/null 2>&1)
SYSAGENT="$ROOT/target/release/sysagent"
HZ=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# N GETs of a URL over one keep-alive connection; prints the median wall time in ms.
scrape() {
    python3 - "$1" "$2" <<'PY'
import http.client, statistics, sys, time, urllib.parse
url, n = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
walls = []
for _ in range(n):
    t = time.perf_counter()
    conn.request("GET", url.path)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{url.geturl()}: HTTP {r.status}")
    walls.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(walls):.3f}")
PY
}
wait_http() {
    for _ in $(seq 100); do python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "no answer from $1" >&2; return 1
}

start_sysagent() { # name interval [processes] -> url; pid in $LAST_PID
    local port; port=$(free_port)
    printf '[collect]\ninterval = %s\nprocesses = %s\n[prometheus]\nlisten = 127.0.0.1:%s\n' \
        "$2" "${3:-true}" "$port" >"$WORK/$1.ini"
    "$SYSAGENT" --config "$WORK/$1.ini" --log-level warn 2>"$WORK/$1.log" &
    LAST_PID=$!; PIDS+=("$LAST_PID")
    URL="http://127.0.0.1:$port/metrics"
}
start_sysagent collect 100ms; SAC=$LAST_PID; SAC_URL=$URL
start_sysagent collect-np 100ms false; SACN=$LAST_PID; SACN_URL=$URL
start_sysagent render 1h; SAR=$LAST_PID; SAR_URL=$URL
NE_PORT=$(free_port)
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" --log.level=warn 2>"$WORK/ne.log" &
NE=$!; PIDS+=("$NE"); NE_URL="http://127.0.0.1:$NE_PORT/metrics"
NEM_PORT=$(free_port)
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NEM_PORT" --log.level=warn \
    --collector.disable-defaults --collector.cpu --collector.meminfo --collector.filesystem \
    --collector.diskstats --collector.netdev --collector.loadavg --collector.stat \
    --collector.uname --collector.os 2>"$WORK/ne-min.log" &
NEM=$!; PIDS+=("$NEM"); NEM_URL="http://127.0.0.1:$NEM_PORT/metrics"
for u in "$SAC_URL" "$SACN_URL" "$SAR_URL" "$NE_URL" "$NEM_URL"; do wait_http "$u"; done
for u in "$SAR_URL" "$NE_URL" "$NEM_URL"; do scrape "$u" 20 >/dev/null; done

# Collection cost: 10 s of sysagent-collect, never scraped (two scrapes read the counter).
count() { scrape_body "$1" | awk '$1 == "sysagent_collections_total" {print $2}'; }
scrape_body() { python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$1"; }
c0=$(count "$SAC_URL"); s0=$(sched_ns "$SAC"); t0=$(ticks "$SAC")
n0=$(count "$SACN_URL"); ns0=$(sched_ns "$SACN"); nt0=$(ticks "$SACN")
sleep 10
s1=$(sched_ns "$SAC"); t1=$(ticks "$SAC"); c1=$(count "$SAC_URL")
ns1=$(sched_ns "$SACN"); nt1=$(ticks "$SACN"); n1=$(count "$SACN_URL")
COLL=$((c1 - c0)); COLLN=$((n1 - n0))
COLL_US=$(awk -v d=$((s1 - s0)) -v n=$COLL 'BEGIN {printf "%.1f", d / n / 1000}')
COLL_TICK_US=$(awk -v d=$((t1 - t0)) -v n=$COLL -v hz="$HZ" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
COLLN_US=$(awk -v d=$((ns1 - ns0)) -v n=$COLLN 'BEGIN {printf "%.1f", d / n / 1000}')
COLLN_TICK_US=$(awk -v d=$((nt1 - nt0)) -v n=$COLLN -v hz="$HZ" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')

round() { # pid url -> "sched_us_per_scrape tick_us_per_scrape wall_ms"
    local s0 t0 s1 t1 wall
    s0=$(sched_ns "$1"); t0=$(ticks "$1")
    wall=$(scrape "$2" "$N")
    s1=$(sched_ns "$1"); t1=$(ticks "$1")
    awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) -v n="$N" -v hz="$HZ" -v w="$wall" \
        'BEGIN {printf "%.1f %.1f %s\n", s / n / 1000, t * 1e6 / hz / n, w}'
}
: >"$WORK/sar"; : >"$WORK/ne"; : >"$WORK/nem"
for _ in $(seq "$ROUNDS"); do
    round "$SAR" "$SAR_URL" >>"$WORK/sar"
    round "$NE" "$NE_URL" >>"$WORK/ne"
    round "$NEM" "$NEM_URL" >>"$WORK/nem"
done
med() { cut -d' ' -f"$2" "$WORK/$1" | median; }
series() { scrape_body "$1" | grep -vc '^#'; }

echo "machine: $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$N scrapes per round over one keep-alive connection, $ROUNDS rounds alternating; medians over rounds"
echo "sysagent collection: $COLL_US µs CPU (schedstat), $COLL_TICK_US µs (utime+stime), over $COLL collections in 10 s"
echo
printf '| %-40s | %6s | %15s | %15s | %8s | %7s | %7s |\n' "process" "series" "schedstat µs/scr" "utime+stime µs" "wall ms" "RSS KiB" "HWM KiB"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "---" "---:" "---:" "---:" "---:" "---:" "---:"
row() { printf '| %-40s | %6s | %15s | %15s | %8s | %7s | %7s |\n' "$@"; }
SAR_S=$(med sar 1); SAR_T=$(med sar 2)
row "sysagent: render only" "$(series "$SAR_URL")" "$SAR_S" "$SAR_T" "$(med sar 3)" "$(status_kb "$SAR" VmRSS)" "$(status_kb "$SAR" VmHWM)"
row "sysagent: one collection" "" "$COLL_US" "$COLL_TICK_US" "" "$(status_kb "$SAC" VmRSS)" "$(status_kb "$SAC" VmHWM)"
row "sysagent: one collection, processes = false" "" "$COLLN_US" "$COLLN_TICK_US" "" "$(status_kb "$SACN" VmRSS)" "$(status_kb "$SACN" VmHWM)"
FAIR_S=$(awk -v a="$SAR_S" -v b="$COLL_US" 'BEGIN {printf "%.1f", a + b}')
FAIR_T=$(awk -v a="$SAR_T" -v b="$COLL_TICK_US" 'BEGIN {printf "%.1f", a + b}')
FAIRN_S=$(awk -v a="$SAR_S" -v b="$COLLN_US" 'BEGIN {printf "%.1f", a + b}')
FAIRN_T=$(awk -v a="$SAR_T" -v b="$COLLN_TICK_US" 'BEGIN {printf "%.1f", a + b}')
row "sysagent: render + one collection" "" "$FAIR_S" "$FAIR_T" "" "" ""
row "sysagent: render + one, processes = false" "" "$FAIRN_S" "$FAIRN_T" "" "" ""
row "node_exporter 1.5 (defaults)" "$(series "$NE_URL")" "$(med ne 1)" "$(med ne 2)" "$(med ne 3)" "$(status_kb "$NE" VmRSS)" "$(status_kb "$NE" VmHWM)"
row "node_exporter 1.5 (same collectors)" "$(series "$NEM_URL")" "$(med nem 1)" "$(med nem 2)" "$(med nem 3)" "$(status_kb "$NEM" VmRSS)" "$(status_kb "$NEM" VmHWM)"
echo
awk -v a="$FAIR_T" -v an="$FAIRN_T" -v b="$(med ne 2)" -v c="$(med nem 2)" 'BEGIN {
    printf "CPU per scrape, sysagent (render + one collection) / node_exporter, utime+stime:\n"
    printf "  process count on (default): %.3f vs defaults, %.3f vs same collectors\n", a / b, a / c
    printf "  process count off:          %.3f vs defaults, %.3f vs same collectors\n", an / b, an / c }'
