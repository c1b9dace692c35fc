#!/usr/bin/env bash
# Make sure headless Chromium is present for the browser tests (tests/report/test_browser.py).
# Installs Debian's package when running as root with apt-get; otherwise says why it cannot, and the
# browser tests then skip naming the reason (under CI=true a skip fails the run: tests/conftest.py).
set -u
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and cannot install it here (needs root and apt-get); the browser tests will skip" >&2
  exit 0
fi
echo "chromium: not found, installing Debian's package (apt-get install -y chromium, about a minute)"
if ! { apt-get update -qq >/dev/null 2>&1 && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; then
  echo "chromium: apt-get install failed; the browser tests will skip" >&2
fi
exit 0
