# Source me: the environment every script, test and demo of this repo runs in.
# Everything can be overridden from the caller's environment.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO
export PRECACHE_HOME="${PRECACHE_HOME:-$REPO/.run}"
export VENV="${VENV:-$REPO/.venv}"
export PATH="$VENV/bin:$PRECACHE_HOME/bin:$PATH"
export PYTHONPATH="$REPO/plugins:$REPO${PYTHONPATH:+:$PYTHONPATH}"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$PRECACHE_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"

# Ports of the local services (stand-ins and brokers).
export PORTAL_PORT="${PORTAL_PORT:-8081}"
export TTS_PORT="${TTS_PORT:-8082}"
export MONGO_PORT="${MONGO_PORT:-27017}"
# MONGO_URI points the whole stack at another MongoDB-protocol server (e.g. a real mongod).
export MONGO_URI="${MONGO_URI:-mongodb://127.0.0.1:$MONGO_PORT/integration}"

export AIRFLOW_CONN_MONGO_DEFAULT="${AIRFLOW_CONN_MONGO_DEFAULT:-${MONGO_URI/mongodb:/mongo:}}"
export AIRFLOW_CONN_PORTAL_API="${AIRFLOW_CONN_PORTAL_API:-http://127.0.0.1:$PORTAL_PORT}"
export AIRFLOW_CONN_TTS_PROXY="${AIRFLOW_CONN_TTS_PROXY:-http://127.0.0.1:$TTS_PORT}"
export AIRFLOW_CONN_RABBITMQ_DEFAULT="${AIRFLOW_CONN_RABBITMQ_DEFAULT:-amqp://guest:guest@127.0.0.1:5672/%2F}"
