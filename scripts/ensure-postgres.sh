#!/usr/bin/env bash
# Make sure the PostgreSQL 15 server binaries the dev database and the tests
# use are installed (Debian's postgresql-15), with the hypopg extension that
# analyze_query uses to verify index advice, installing what is missing.
set -euo pipefail
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_SHARE="${PG_SHARE:-/usr/share/postgresql/15}"
if [ -x "$PG_BIN/initdb" ] && command -v psql >/dev/null && [ -f "$PG_SHARE/extension/hypopg.control" ]; then
  exit 0
fi
echo "PostgreSQL 15 server binaries or hypopg not found: installing postgresql-15 and postgresql-15-hypopg" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install postgresql-15 yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 postgresql-15-hypopg >/dev/null
