#!/usr/bin/env bash
# CI service for the docker runner's tests: install docker.io from Debian if missing, start dockerd (as root,
# in the background, logging to a file), wait until `docker info` answers, and build the local sandbox image.
#
#   sudo scripts/start_docker.sh                 # then: pytest -m docker tests/security
#   DOCKERD_LOG=/tmp/dockerd.log IMAGE=harness-sandbox:local PYTHON=.venv/bin/python scripts/start_docker.sh
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
IMAGE="${IMAGE:-harness-sandbox:local}"
WAIT_S="${WAIT_S:-60}"

if [ "$(id -u)" != 0 ]; then
    echo "start_docker.sh installs packages and starts dockerd: run it as root" >&2
    exit 2
fi

if ! command -v dockerd >/dev/null; then
    echo "installing docker.io from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi

if docker info >/dev/null 2>&1; then
    echo "dockerd already running"
else
    echo "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq "$WAIT_S"); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not answer within ${WAIT_S} s; the end of its log:" >&2
        tail -n 30 "$DOCKERD_LOG" >&2
        exit 1
    fi
fi
docker info --format 'docker {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, {{.NCPU}} CPUs'

if docker image inspect "$IMAGE" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
    echo "image $IMAGE present (REBUILD=1 to build it again)"
else
    "$ROOT_DIR/docker/build-local-image.sh" "$IMAGE"
fi
