#!/usr/bin/env bash
# The whole test suite: dependencies, services, then the three tiers.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
bash scripts/bootstrap.sh
bash scripts/services.sh up
python -m pytest tests/dags tests/unit tests/integration "$@"
