#!/usr/bin/env bash
# Make sure a tool from a Debian package is installed, installing the package when it is missing.
#   scripts/ensure-debian-package.sh COMMAND-OR-PATH PACKAGE
# Used for promtool (package prometheus: the tests check monitoring/ with it; no server is started),
# pgbouncer (the tests and `make bench` start it themselves as the postgres user) and wrk (`make bench`).
set -euo pipefail
tool="$1"
package="$2"
if [ -x "$tool" ] || command -v "$tool" >/dev/null; then
  exit 0
fi
echo "$tool not found: installing the $package package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install $package yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
