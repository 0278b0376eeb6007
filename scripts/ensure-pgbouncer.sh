#!/usr/bin/env bash
# Make sure PgBouncer (Debian's pgbouncer, 1.18) is installed: the tests and
# `make bench` put it in transaction mode in front of a throwaway PostgreSQL
# (pgmcp_http/devpooler.py starts it as the postgres user; the package's own
# service is never started).
set -euo pipefail
if [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
echo "pgbouncer not found: installing the pgbouncer package" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (or install pgbouncer yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
