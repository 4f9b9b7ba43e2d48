#!/usr/bin/env bash
# The README's main command: runs the whole pipeline on this machine, no Docker needed.
#
#   scripts/demo.sh                  run until Ctrl-C
#   scripts/demo.sh --duration 90    run 90 s after everything is up, then stop (for CI-like checks)
#   scripts/demo.sh --no-build       use the release binaries already built (target/release, or $CARGO_TARGET_DIR/release)
#
# Starts etcd, a Kafka-protocol broker (tansu), an Elasticsearch-API server (osmem-server),
# InfluxDB and Prometheus on loopback ports, then our binaries, and shows where each is.
# While it runs it shows the pipeline's live status per hop (lines/s read and sent by
# logagent, consumer lag, documents in the index, dead letters; scripts/lib/status.py):
# redrawn in place on a terminal, one line every 10 s otherwise.
# Everything lives under .demo/ (logs in .demo/logs/); Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=""
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --no-build) BUILD=""; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

DEMO=$ROOT/.demo
LOGS=$DEMO/logs
PIDS=()

stop_all() {
  trap - INT TERM EXIT
  say "stopping everything we started"
  local pid
  # Our binaries first (they flush into the servers), then the servers.
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  say "stopped; logs are in $LOGS"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # preferred port if free, else any free one
  if port_free "$1"; then echo "$1"; else
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
  fi
}
wait_http() { # url what [seconds]
  local deadline=$((SECONDS + ${3:-30}))
  until curl -fs -o /dev/null "$1"; do
    [ $SECONDS -lt $deadline ] || die "$2 did not answer at $1 (see $LOGS)"
    sleep 0.2
  done
}
wait_tcp() { # port what
  local deadline=$((SECONDS + 30))
  until ! port_free "$1"; do
    [ $SECONDS -lt $deadline ] || die "$2 did not listen on $1 (see $LOGS)"
    sleep 0.2
  done
}
start() { # name command...
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  PIDS+=($!)
}

say "checking setup (scripts/setup.sh)"
scripts/setup.sh

rm -rf "$DEMO"
mkdir -p "$LOGS" "$DEMO/etcd" "$DEMO/influx" "$DEMO/prometheus"

ETCD_PORT=$(pick_port 2379); ETCD_PEER_PORT=$(pick_port 2380)
KAFKA_PORT=$(pick_port 9092)
ES_PORT=$(pick_port 9200)
INFLUX_PORT=$(pick_port 8086); INFLUX_RPC_PORT=$(pick_port 8088)
PROM_PORT=$(pick_port 9090)
LOGAGENT_METRICS=$(pick_port 9101)
SYSAGENT_PORT=$(pick_port 9102)
LOGTRANSFER_METRICS=$(pick_port 9103)

# --- servers -----------------------------------------------------------------
say "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd etcd --name demo --data-dir "$DEMO/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER_PORT"

say "starting the Kafka-protocol broker (tansu) on 127.0.0.1:$KAFKA_PORT"
start kafka tansu broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/

say "starting the Elasticsearch-API server (osmem-server) on 127.0.0.1:$ES_PORT"
start elasticsearch osmem-server -addr "127.0.0.1:$ES_PORT" -no-stdin-watch -no-ja

say "starting InfluxDB on 127.0.0.1:$INFLUX_PORT"
cat > "$DEMO/influx/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$DEMO/influx/meta"
[data]
  dir = "$DEMO/influx/data"
  wal-dir = "$DEMO/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
start influxdb influxd -config "$DEMO/influx/influxdb.conf"

say "starting Prometheus on 127.0.0.1:$PROM_PORT"
cat > "$DEMO/prometheus/prometheus.yml" <<CONF
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: sysagent
    static_configs: [{targets: ['127.0.0.1:$SYSAGENT_PORT']}]
  - job_name: logagent
    static_configs: [{targets: ['127.0.0.1:$LOGAGENT_METRICS']}]
  - job_name: logtransfer
    static_configs: [{targets: ['127.0.0.1:$LOGTRANSFER_METRICS']}]
CONF
start prometheus prometheus --config.file="$DEMO/prometheus/prometheus.yml" \
  --storage.tsdb.path="$DEMO/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT"

wait_http "http://127.0.0.1:$ETCD_PORT/health" etcd
wait_tcp "$KAFKA_PORT" "Kafka broker"
wait_http "http://127.0.0.1:$ES_PORT/" Elasticsearch
wait_http "http://127.0.0.1:$INFLUX_PORT/ping" InfluxDB
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" Prometheus
curl -fs -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE sysagent" >/dev/null

# --- our binaries -------------------------------------------------------------
if [ -n "$BUILD" ]; then
  say "building our binaries (release; the first build takes a few minutes)"
  cargo build --release --locked -q -p logagent -p etcd-put -p logtransfer -p sysagent
  cargo build --release --locked -q -p logger --example demo_app
fi
# Where cargo put them: CARGO_TARGET_DIR when set (relative to the workspace), else target/.
BIN=${CARGO_TARGET_DIR:-target}/release
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
APPLOGS=$DEMO/applogs
mkdir -p "$APPLOGS" "$DEMO/logagent"

say "seeding etcd: logagent collects $APPLOGS/*.log into topic app-logs"
"$BIN/etcd-put" --endpoints "127.0.0.1:$ETCD_PORT" put --key '/logagent/{ip}/collect_config' \
  --value "[{\"path\": \"$APPLOGS/*.log\", \"topic\": \"app-logs\", \"fields\": {\"env\": \"demo\"}}]" \
  --allowed-paths "$DEMO/**"

cat > "$DEMO/logagent.ini" <<CONF
[kafka]
address = 127.0.0.1:$KAFKA_PORT
[etcd]
address = 127.0.0.1:$ETCD_PORT
collect_log_key = /logagent/{ip}/collect_config
[agent]
data_dir = $DEMO/logagent
allowed_paths = $DEMO/**
metrics_address = 127.0.0.1:$LOGAGENT_METRICS
CONF
say "starting logagent (metrics on 127.0.0.1:$LOGAGENT_METRICS)"
start logagent "$BIN/logagent" --config "$DEMO/logagent.ini"

cat > "$DEMO/logtransfer.ini" <<CONF
[kafka]
address = 127.0.0.1:$KAFKA_PORT
group_id = demo-logtransfer
topics = app-logs
[es]
address = http://127.0.0.1:$ES_PORT
index = logs-{topic}-%Y.%m.%d
[batch]
max_wait_ms = 500
[transfer]
dead_letter_topic = logtransfer-dead-letter
metrics_address = 127.0.0.1:$LOGTRANSFER_METRICS
CONF
say "starting logtransfer (metrics on 127.0.0.1:$LOGTRANSFER_METRICS)"
start logtransfer "$BIN/logtransfer" --config "$DEMO/logtransfer.ini"

cat > "$DEMO/sysagent.ini" <<CONF
[collect]
interval = 5s
[influxdb]
address = http://127.0.0.1:$INFLUX_PORT
database = sysagent
[prometheus]
listen = 127.0.0.1:$SYSAGENT_PORT
CONF
say "starting sysagent (/metrics on 127.0.0.1:$SYSAGENT_PORT, InfluxDB database sysagent)"
start sysagent "$BIN/sysagent" --config "$DEMO/sysagent.ini"

say "starting the demo app: logs JSON through logger into $APPLOGS/app.log"
start demo_app "$BIN/examples/demo_app" --dir "$APPLOGS" --rate 20

show_results() {
  say "the demo app's lines in Elasticsearch (latest 5 of logs-app-logs-*):"
  curl -fs "http://127.0.0.1:$ES_PORT/logs-app-logs-*/_search" -H 'Content-Type: application/json' -d '{
      "size": 5, "sort": [{"@timestamp": "desc"}],
      "_source": ["@timestamp", "log.level", "message", "log.origin", "host.name", "log.file.path"]
    }' | python3 scripts/lib/show.py es || say "(no documents yet; see $LOGS/logtransfer.log)"
  say "latest host metrics in InfluxDB:"
  curl -fs -G "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "db=sysagent" \
    --data-urlencode "q=SELECT last(usage_idle) AS cpu_idle_pct FROM cpu WHERE cpu='cpu-total'; SELECT last(used_percent) AS mem_used_pct FROM mem; SELECT last(load1) AS load1 FROM system" \
    | python3 scripts/lib/show.py influx || say "(no points yet; see $LOGS/sysagent.log)"
  say "the same host through Prometheus (node_exporter names):"
  curl -fs -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query={__name__=~"up|node_load1|node_memory_MemAvailable_bytes"}' \
    | python3 scripts/lib/show.py prom || true
}

say "waiting for the first documents to reach Elasticsearch"
deadline=$((SECONDS + 120))
until [ "$(curl -fs "http://127.0.0.1:$ES_PORT/logs-app-logs-*/_count" 2>/dev/null | python3 scripts/lib/show.py count 2>/dev/null || echo 0)" -gt 0 ]; do
  [ $SECONDS -lt $deadline ] || die "no documents in Elasticsearch after 120 s; see $LOGS"
  sleep 1
done
sleep 6   # one more sysagent interval and Prometheus scrape
show_results

cat >&2 <<TABLE

  what                 where
  etcd                 http://127.0.0.1:$ETCD_PORT
  Kafka (tansu)        127.0.0.1:$KAFKA_PORT
  Elasticsearch API    http://127.0.0.1:$ES_PORT
  InfluxDB             http://127.0.0.1:$INFLUX_PORT   (database sysagent)
  Prometheus           http://127.0.0.1:$PROM_PORT
  logagent /metrics    http://127.0.0.1:$LOGAGENT_METRICS/metrics
  logtransfer /metrics http://127.0.0.1:$LOGTRANSFER_METRICS/metrics
  sysagent /metrics    http://127.0.0.1:$SYSAGENT_PORT/metrics
  demo app log files   $APPLOGS
  logs                 $LOGS

TABLE

STATUS=(python3 scripts/lib/status.py
  --logagent "http://127.0.0.1:$LOGAGENT_METRICS/metrics"
  --logtransfer "http://127.0.0.1:$LOGTRANSFER_METRICS/metrics"
  --es "http://127.0.0.1:$ES_PORT" --index 'logs-app-logs-*')
# In the background, waited for: `wait` returns at once for a trapped signal (Ctrl-C, a
# SIGTERM to this script), where a foreground child would hold the trap until it exits.
if [ -n "$DURATION" ]; then
  say "running for $DURATION s; live status:"
  "${STATUS[@]}" --duration "$DURATION" &
  PIDS+=($!)
  wait $!
  show_results
else
  say "up; live status below, press Ctrl-C to stop"
  "${STATUS[@]}" &
  PIDS+=($!)
  wait $!
fi
