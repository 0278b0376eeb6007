#!/usr/bin/env bash
# Make sure the PostgreSQL 15 server binaries the dev database and the tests
# use are installed (Debian's postgresql-15), installing them when missing.
set -euo pipefail
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ -x "$PG_BIN/initdb" ] && command -v psql >/dev/null; then
  exit 0
fi
echo "PostgreSQL 15 server binaries not found in $PG_BIN: installing postgresql-15" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install postgresql-15 yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
