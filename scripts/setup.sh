#!/usr/bin/env bash
# Create .venv and install the harness with the given extras (default: leaderboard). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-leaderboard}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# torch/torchvision are pinned in pyproject.toml to the builds this environment installs from local disk.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
