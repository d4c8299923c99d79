#!/usr/bin/env bash
# Build the docker runner's sandbox image on a machine with no registry access (no `docker pull`).
#
# The image is a tiny root filesystem made from this host: a non-root user, /etc files, and only the
# system shared libraries that the Python environment links against (found with ldd), imported with
# `docker import`. It holds no Python: the runner mounts the host's interpreter, its virtual environment
# and the harness code read-only at their host paths when a container starts (the image's label
# org.harness.python=host says so). Rebuild after upgrading system libraries.
#
#   docker/build-local-image.sh [IMAGE]          default IMAGE: harness-sandbox:local
#   PYTHON=/path/to/venv/bin/python docker/build-local-image.sh
# PYTHON (default: .venv/bin/python, else python3) must be the interpreter that runs `harness`: its
# environment is what the sandbox mounts.
set -euo pipefail

IMAGE="${1:-harness-sandbox:local}"
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT_DIR/.venv/bin/python" ]; then PYTHON="$ROOT_DIR/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
SANDBOX_UID=10001

command -v docker >/dev/null || { echo "docker CLI not found: install docker.io" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "no Docker daemon reachable: start dockerd (scripts/start_docker.sh)" >&2; exit 2; }

mapfile -t PREFIXES < <("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.prefix)); print(os.path.realpath(sys.base_prefix))' | sort -u)
INTERPRETER="$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
echo "interpreter: $INTERPRETER"
echo "environment: ${PREFIXES[*]}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{etc,tmp,usr}
chmod 1777 "$ROOTFS/tmp"

# Mirror the host's merged-/usr layout so that the ELF interpreter path (/lib64/ld-linux-*.so.2) resolves.
for dir in bin sbin lib lib64; do
    if [ -L "/$dir" ]; then
        ln -s "$(readlink "/$dir")" "$ROOTFS/$dir"
        mkdir -p "$ROOTFS/$(readlink -f "/$dir" | sed 's|^/||')"
    elif [ -d "/$dir" ]; then
        mkdir -p "$ROOTFS/$dir"
    fi
done

# Every shared library that the interpreter and the environment's extension modules need, outside the
# environment itself (which is mounted at run time).
EXCLUDE_RE="^($(printf '%s|' "${PREFIXES[@]}" | sed 's/|$//'))/"
{
    echo "$INTERPRETER"
    find "${PREFIXES[@]}" -type f \( -name '*.so' -o -name '*.so.*' \) 2>/dev/null
} | tr '\n' '\0' | xargs -0 -n 64 ldd 2>/dev/null \
    | awk '/=> \// {print $3} /^[[:space:]]+\/[^ ]+ \(0x/ {print $1}' \
    | grep -Ev "$EXCLUDE_RE" | sort -u > "$WORK/libs.txt"
echo "system libraries: $(wc -l < "$WORK/libs.txt")"
while read -r lib; do
    [ -e "$lib" ] || continue
    cp -L --parents "$lib" "$ROOTFS/"
done < "$WORK/libs.txt"

# The loader's search path: every folder a library was copied into, cached for the image's root.
xargs -n1 dirname < "$WORK/libs.txt" | sort -u > "$ROOTFS/etc/ld.so.conf"
ldconfig -r "$ROOTFS" 2>/dev/null || true

cat > "$ROOTFS/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/nonexistent
sandbox:x:${SANDBOX_UID}:${SANDBOX_UID}:harness sandbox:/tmp:/nonexistent
nobody:x:65534:65534:nobody:/nonexistent:/nonexistent
PASSWD
cat > "$ROOTFS/etc/group" <<GROUP
root:x:0:
sandbox:x:${SANDBOX_UID}:
nogroup:x:65534:
GROUP
echo "passwd: files" > "$ROOTFS/etc/nsswitch.conf"
echo "group: files" >> "$ROOTFS/etc/nsswitch.conf"
echo "hosts: files" >> "$ROOTFS/etc/nsswitch.conf"

tar -C "$ROOTFS" --numeric-owner -cf "$WORK/rootfs.tar" .
echo "root filesystem: $(du -sh "$WORK/rootfs.tar" | cut -f1)"
docker import \
    --change "LABEL org.harness.python=host" \
    --change "USER ${SANDBOX_UID}:${SANDBOX_UID}" \
    --change "WORKDIR /tmp" \
    --change "ENV HOME=/tmp" \
    "$WORK/rootfs.tar" "$IMAGE" >/dev/null
echo "built $IMAGE"

# Prove it: the runner's own self-test starts a container exactly as an evaluation would.
PYTHONPATH="$ROOT_DIR${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m harness.runners.docker selftest --image "$IMAGE"
