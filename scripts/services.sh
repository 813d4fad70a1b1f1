#!/usr/bin/env bash
# Brings up (idempotently) what the DAGs talk to: RabbitMQ, a MongoDB-protocol server
# (FerretDB on SQLite unless MONGO_URI names another server), the portal and TTS stand-ins.
#   scripts/services.sh up | down | status
set -euo pipefail
source "$(dirname "$0")/env.sh"
FERRETDB_VERSION=v1.24.2
mkdir -p "$PRECACHE_HOME/bin" "$PRECACHE_HOME/logs"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # name port seconds
  for _ in $(seq 1 "$(( $3 * 5 ))"); do port_open "$2" && return 0; sleep 0.2; done
  echo "!! $1 did not open port $2 within $3s; see $PRECACHE_HOME/logs/" >&2; return 1
}

rabbitmq_up() {
  if ! command -v rabbitmq-server >/dev/null; then
    echo "==> installing rabbitmq-server (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >/dev/null; }
  fi
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "==> starting RabbitMQ"
    rabbitmq-server -detached
    for _ in $(seq 1 120); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
    rabbitmqctl -q await_startup --timeout 120 >/dev/null
  fi
  echo "    RabbitMQ ready on 5672"
}

ferretdb_build() {
  # `go install` alone gives a binary that panics at start: FerretDB reads its version
  # from build/version/version.txt, which is generated in their release process.
  local bin="$PRECACHE_HOME/bin/ferretdb"
  [ -x "$bin" ] && return 0
  echo "==> building FerretDB $FERRETDB_VERSION with Go (one-off, ~1 min)"
  local dir src
  dir="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  src="$(mktemp -d)"
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
  (cd "$src" && go build -o "$bin" ./cmd/ferretdb)
  rm -rf "$src"
}

mongo_up() {
  if [ "$MONGO_URI" != "mongodb://127.0.0.1:$MONGO_PORT/integration" ]; then
    echo "    MongoDB: using MONGO_URI (not starting FerretDB)"; return 0
  fi
  if port_open "$MONGO_PORT"; then echo "    MongoDB protocol ready on $MONGO_PORT"; return 0; fi
  ferretdb_build
  mkdir -p "$PRECACHE_HOME/ferretdb"
  echo "==> starting FerretDB (SQLite in $PRECACHE_HOME/ferretdb)"
  setsid nohup "$PRECACHE_HOME/bin/ferretdb" --handler=sqlite --sqlite-url="file:$PRECACHE_HOME/ferretdb/" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$PRECACHE_HOME/ferretdb" --debug-addr=- \
    --telemetry=disable --log-level=warn > "$PRECACHE_HOME/logs/ferretdb.log" 2>&1 < /dev/null &
  echo $! > "$PRECACHE_HOME/ferretdb.pid"
  wait_port FerretDB "$MONGO_PORT" 30
  echo "    MongoDB protocol ready on $MONGO_PORT"
}

standin_up() {  # name port args...
  local name=$1 port=$2; shift 2
  if port_open "$port"; then echo "    $name ready on $port"; return 0; fi
  echo "==> starting $name stand-in"
  setsid nohup "$VENV/bin/python" -m "standins.$name" --host 127.0.0.1 --port "$port" "$@" \
    > "$PRECACHE_HOME/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$PRECACHE_HOME/$name.pid"
  wait_port "$name" "$port" 30
  echo "    $name ready on $port"
}

down() {
  for n in tts_proxy portal ferretdb; do
    if [ -f "$PRECACHE_HOME/$n.pid" ]; then kill "$(cat "$PRECACHE_HOME/$n.pid")" 2>/dev/null || true; rm -f "$PRECACHE_HOME/$n.pid"; fi
  done
  rabbitmqctl -q stop >/dev/null 2>&1 || true
}

case "${1:-up}" in
  up)
    rabbitmq_up
    mongo_up
    standin_up portal "$PORTAL_PORT" --builds-dir "$REPO/standins/builds"
    standin_up tts_proxy "$TTS_PORT" --store "$PRECACHE_HOME/tts-store" \
      --latency-ms "${TTS_LATENCY_MS:-50}" --capacity "${TTS_CAPACITY:-32}"
    ;;
  down) down ;;
  status)
    for p in 5672 "$MONGO_PORT" "$PORTAL_PORT" "$TTS_PORT"; do port_open "$p" && echo "$p up" || echo "$p down"; done ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
