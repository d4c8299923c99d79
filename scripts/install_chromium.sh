#!/usr/bin/env bash
# Install Debian's Chromium for the leaderboard's browser test (tests/ui/test_browser.py drives it through
# Playwright with executable_path=/usr/bin/chromium; no `playwright install` download is needed).
# Idempotent: does nothing when Chromium is already there. Needs root (or sudo) and apt.
set -euo pipefail

CHROMIUM="${HARNESS_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed at $CHROMIUM"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
"$CHROMIUM" --version 2>/dev/null || true
echo "chromium installed at $CHROMIUM"
