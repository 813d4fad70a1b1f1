#!/usr/bin/env bash
# The benchmark of docs/PERFORMANCE.md (issue 5): services up (idempotent; running ones are left
# alone), then python -m bench.run with the given arguments (e.g. --smoke, --records 5000).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
bash scripts/bootstrap.sh
bash scripts/services.sh up
export AIRFLOW_HOME="${BENCH_AIRFLOW_HOME:-$PRECACHE_HOME/bench-airflow}"
mkdir -p "$AIRFLOW_HOME"
exec python -m bench.run "$@"
