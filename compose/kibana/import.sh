#!/bin/sh
# Imports the logs data view, saved searches, visualizations and dashboard into Kibana.
#
#   KIBANA_URL=http://kibana:5601 compose/kibana/import.sh
#
# Idempotent (overwrite=true). Waits up to KIBANA_WAIT_S (default 300) seconds for Kibana
# to answer. Optional KIBANA_AUTH=user:password. As a one-shot compose service:
#   image: curlimages/curl, volumes: ["./kibana:/kibana:ro"],
#   entrypoint: ["/bin/sh", "/kibana/import.sh"], environment: {KIBANA_URL: "http://kibana:5601"}
set -eu

KIBANA_URL=${KIBANA_URL:-http://127.0.0.1:5601}
WAIT=${KIBANA_WAIT_S:-300}
DIR=$(cd "$(dirname "$0")" && pwd)
AUTH=""
if [ -n "${KIBANA_AUTH:-}" ]; then AUTH="-u ${KIBANA_AUTH}"; fi

i=0
until curl -fsS $AUTH "$KIBANA_URL/api/status" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge "$WAIT" ]; then
    echo "kibana not reachable at $KIBANA_URL after ${WAIT}s" >&2
    exit 1
  fi
  sleep 1
done

# Kibana answers /api/status before its saved-objects service is ready: retry the import.
i=0
until out=$(curl -fsS $AUTH -X POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: true' --form "file=@$DIR/saved_objects.ndjson"); do
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then
    echo "import into $KIBANA_URL failed" >&2
    exit 1
  fi
  sleep 2
done
echo "$out"
case "$out" in
  *'"success":true'*) echo "kibana saved objects imported" ;;
  *) echo "import reported errors" >&2; exit 1 ;;
esac
