-- Create (or bring up to date) the login role pgmcp-http connects as: it may
-- read the listed schemas and nothing else. Run it as the owner of the tables
-- (or a superuser), in the target database:
--
--   psql -v role=mcp_readonly -v password='change-me' -v schemas=public,app \
--        -d mydb -f scripts/create-readonly-role.sql
--
-- It is idempotent: run it again after adding a schema.

\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec

-- No superuser, no role or database creation, no replication, and no
-- BYPASSRLS: row-level security policies apply to this role.
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
              :'role', :'password')
\gexec

-- Read-only by default at the role level too: a client that forgets to ask
-- for a read-only transaction still gets one.
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', :'role')
\gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role')
\gexec

-- Per schema: use it, read every table, view and sequence in it now and in the
-- future, call its functions; never create anything in it.
SELECT stmt
FROM unnest(string_to_array(:'schemas', ',')) AS s(name),
LATERAL (VALUES
    (format('GRANT USAGE ON SCHEMA %I TO %I', trim(s.name), :'role')),
    (format('REVOKE CREATE ON SCHEMA %I FROM %I', trim(s.name), :'role')),
    (format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', trim(s.name), :'role')),
    (format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', trim(s.name), :'role')),
    (format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', trim(s.name), :'role')),
    -- Default privileges apply to objects that the role running this script
    -- creates later; run it as the role that owns your migrations.
    (format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', trim(s.name), :'role')),
    (format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON SEQUENCES TO %I', trim(s.name), :'role'))
) AS g(stmt)
\gexec
