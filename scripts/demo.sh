#!/usr/bin/env bash
# The main job end to end on built-in defaults: services and stand-ins up, the shipped
# sample registry (1,000 debtors, Windows-1251, ';') through a real `tts_precache` run,
# progress drawn live from the RabbitMQ queue, a summary at the end.
#   REGISTRY=/path/to/file.csv BUILD_ID=4021 REGISTRY_ID=my-reg scripts/demo.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
bash scripts/bootstrap.sh
bash scripts/services.sh up
REGISTRY="${REGISTRY:-$REPO/samples/debtors.csv}"
BUILD_ID="${BUILD_ID:-4021}"
REGISTRY_ID="${REGISTRY_ID:-demo-debtors}"
export PRECACHE_QUEUE_DRAIN_TIMEOUT="${PRECACHE_QUEUE_DRAIN_TIMEOUT:-60}"
log="$PRECACHE_HOME/logs/demo-$(date +%Y%m%dT%H%M%S).log"
conf="{\"registry_id\": \"$REGISTRY_ID\", \"build_id\": \"$BUILD_ID\", \"registry\": {\"path\": \"$REGISTRY\"}}"
echo "==> tts_precache $conf"
echo "    (Airflow's task log: $log)"
since=$(date +%s)
python -m precache.cli follow --registry-id "$REGISTRY_ID" --since "$since" --timeout 1800 &
follower=$!
SECONDS=0
if airflow dags test tts_precache -c "$conf" > "$log" 2>&1; then state=success; else state=failed; fi
wait "$follower" || true
stats=$(curl -s "http://127.0.0.1:$TTS_PORT/_admin/stats" | python -c '
import json, sys
s = json.load(sys.stdin)
print("%d requests, %d phrases synthesized since it started, peak %d in flight"
      % (s["requests"], s["synthesized"], s["peak_in_flight"]))')
printf '==> DAG run %s in %ds (incl. Airflow start-up); TTS proxy: %s\n' "$state" "$SECONDS" "$stats"
[ "$state" = success ] || { grep -E "ERROR|Error|error" "$log" | tail -5; exit 1; }
