#!/bin/sh
# Run by the postgres image's entrypoint on first start, after 10-sample-data.sql:
# creates the role the server connects as (scripts/create-readonly-role.sql:
# no superuser, read-only by default, SELECT on public and app) with the password
# from MCP_READONLY_PASSWORD.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role=mcp_readonly -v password="$MCP_READONLY_PASSWORD" -v schemas=public,app \
  -f /opt/pgmcp/create-readonly-role.sql
