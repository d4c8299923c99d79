#!/usr/bin/env bash
# Install everything the tests need (Python packages, and the services: Docker daemon, PostgreSQL, Chromium),
# start the services, and run the whole test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/services.sh
set +e
.venv/bin/python -m pytest -p no:cacheprovider -m "not heavy_benchmark" --durations=30 "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": that is a failure of this script, not a success.
exit $status
