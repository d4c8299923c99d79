#!/usr/bin/env bash
# Install (from Debian) and start the services the test suite uses. Each step says what it did; a step that
# cannot run leaves its tests to skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
for step in start_docker.sh start_postgres.sh install_chromium.sh; do
  if [ -x "scripts/$step" ]; then
    echo "== scripts/$step"
    "scripts/$step" || echo "scripts/$step failed: its tests will skip with the reason" >&2
  fi
done
# Exported for the tests by the steps above (e.g. the PostgreSQL URL), if they wrote any.
true
