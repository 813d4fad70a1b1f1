#!/usr/bin/env bash
# The whole test suite: dependencies, services, then the three tiers.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
bash scripts/bootstrap.sh
bash scripts/services.sh up
# The UI test drives Debian's Chromium through Playwright (Playwright's own browser download
# is not reachable from CI).
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium (for tests/integration/live/test_ui.py)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
python -m pytest tests/dags tests/unit tests/integration "$@"
