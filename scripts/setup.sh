#!/usr/bin/env bash
# Create .venv and install the harness from a lock: exact versions and hashes of every dependency, so that a
# fresh machine gets what the suite ran with. Idempotent.
#
#   scripts/setup.sh demo    requirements/demo.txt (the harness + the leaderboard + the server)
#   scripts/setup.sh test    requirements/test.txt (+ dev, ray, postgres, server)
# The locks are generated from pyproject.toml by scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
lock="requirements/${1:-demo}.txt"
[ -f "$lock" ] || { echo "setup: no lock $lock (use demo or test)" >&2; exit 2; }
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
# pip itself first (its version is locked too), then every dependency by hash, then the project without
# resolving anything: --no-deps and no build isolation, so nothing outside the lock is fetched.
"${pip[@]}" install --quiet --require-hashes -r requirements/pip.txt
"${pip[@]}" install --quiet --require-hashes -r "$lock"
"${pip[@]}" install --quiet --no-deps --no-build-isolation -e .
