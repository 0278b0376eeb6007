#!/usr/bin/env bash
# Make sure promtool (Debian's `prometheus` package) is installed: the tests
# check monitoring/alerts.yml and monitoring/prometheus.yml with it.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
echo "promtool not found: installing the prometheus package (only promtool is used; no server is started)" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install the prometheus package yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
