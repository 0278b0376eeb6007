#!/usr/bin/env bash
# Start the server. Without DATABASE_URL (or DATABASE_URL_FILE), first start a
# throwaway local PostgreSQL with the sample database (data in .devdb/) and
# connect as its read-only role.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ] && [ -z "${DATABASE_URL_FILE:-}" ]; then
  DATABASE_URL="$(.venv/bin/python -m devkit.devdb up)"
  export DATABASE_URL
fi
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
