#!/usr/bin/env bash
# Creates .venv with the pinned dependencies and migrates Airflow's SQLite metadata DB.
# Idempotent: does nothing when requirements and constraints have not changed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
stamp="$VENV/.installed-$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> creating $VENV (Python $(python3 --version 2>&1))"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r requirements.txt -c constraints.txt
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/.migrated" ] || [ "$AIRFLOW_HOME/.migrated" -ot "$stamp" ]; then
  echo "==> airflow db migrate ($AIRFLOW_HOME)"
  airflow db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/migrate.log"; exit 1; }
  touch "$AIRFLOW_HOME/.migrated"
fi
