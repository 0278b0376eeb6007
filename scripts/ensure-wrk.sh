#!/usr/bin/env bash
# Make sure wrk (Debian's package) is installed: `make bench` drives every server with it.
set -euo pipefail
if command -v wrk >/dev/null; then
  exit 0
fi
echo "wrk not found: installing the wrk package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install wrk yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
