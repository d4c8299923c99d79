#!/usr/bin/env bash
# Regenerate the locks from pyproject.toml: the exact version and the hashes of every transitive dependency,
# so that `make demo` and `make test` install on a fresh machine exactly what the suite ran with.
#
#   scripts/lock.sh              keep the locked versions that still satisfy pyproject.toml (after adding a dependency)
#   scripts/lock.sh --upgrade    move every package to the newest version pyproject.toml allows
#
# requirements/pip.txt: pip itself, installed first;
# requirements/test.txt: the harness with the dev, leaderboard, ray, postgres and server extras (`make test`);
# requirements/demo.txt: the harness with the leaderboard and server extras (`make demo`), constrained to test.txt's
# versions.
# The locks are resolved for CPython 3.11 on Linux x86_64 (the machines the README names). pip-tools is pinned
# here and runs in a throw-away environment; pip's own configuration (indexes, find-links) is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"${PYTHON:-python3}" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip-tools==7.7.0"
compile=(
    "$tools/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host "$@"
)
mkdir -p requirements
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "${compile[@]}" -o requirements/pip.txt requirements/pip.in
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "${compile[@]}" \
    --extra dev --extra leaderboard --extra ray --extra postgres --extra server -o requirements/test.txt pyproject.toml
CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "${compile[@]}" \
    --extra leaderboard --extra server --constraint requirements/test.txt -o requirements/demo.txt pyproject.toml
echo "wrote requirements/test.txt ($(grep -c '==' requirements/test.txt) packages) and requirements/demo.txt ($(grep -c '==' requirements/demo.txt) packages)"
