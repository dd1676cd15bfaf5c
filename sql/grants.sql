-- pg-idempotency: what the application role needs at run time, and nothing more. No DDL.
--
-- Run by hand:  psql -v schema=idempotency -v role=app_user -f sql/grants.sql
-- grantAccess(db, { role }) runs this same file. Re-run it after each migration.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

GRANT USAGE ON SCHEMA :"schema" TO :"role";
-- Claims read and insert keys; an expired key is deleted and replaced; REPEATABLE READ
-- placeholders are updated.
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".idempotency_keys TO :"role";
GRANT SELECT ON :"schema".schema_migrations TO :"role";
GRANT EXECUTE ON FUNCTION :"schema".claim_idempotency_key(text, text, bytea, boolean, integer) TO :"role";
-- Customers are created, looked up, marked for deletion and finally deleted by the job, which
-- also records its progress.
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".customers TO :"role";
GRANT SELECT, INSERT, UPDATE ON :"schema".customer_deletions TO :"role";
-- emit() inserts events; the relay reads and marks them; deletion and cleanup delete them.
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".outbox_events TO :"role";
-- The relay reads how far event ids have been handed out (order per key).
GRANT SELECT ON SEQUENCE :"schema".outbox_events_id_seq TO :"role";

COMMIT;
