-- pg-idempotency 0005: a deletion's progress record names the customer by its server-made id only.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0005_deletion_records_by_customer_id.sql  (after 0004)
-- migrate() and kysely-ctl run this same file, as described in 0001.
--
-- Why: the record outlives the customer, and idempotent_identifier is the client's own name for
-- it (often the client's user id). Kept there, a deleted customer stayed traceable by it. The
-- values are cleared before the column is dropped, because DROP COLUMN alone leaves them in the
-- table's pages.
--
-- For the DBA: the UPDATE touches every deletion record once (a small table: one row per deleted
-- customer). Run VACUUM on customer_deletions afterwards so the old row versions, which still hold
-- the identifiers, are removed. pg-boss keeps the output of completed deletion jobs, which until
-- this release held the identifier too: see docs/customer-deletion.md for the statement that
-- clears it.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

-- The UPDATE must be skipped once the column is gone (re-running this file); psql fills in no
-- variables inside a $$ block, so the block reads the schema name from this transaction's setting.
SELECT set_config('pg_idempotency.schema', :'schema', true);

DO $$
DECLARE
  s text := current_setting('pg_idempotency.schema');
BEGIN
  IF EXISTS (SELECT 1 FROM pg_attribute
              WHERE attrelid = format('%I.customer_deletions', s)::regclass
                AND attname = 'idempotent_identifier' AND NOT attisdropped) THEN
    EXECUTE format('ALTER TABLE %I.customer_deletions ALTER COLUMN idempotent_identifier DROP NOT NULL', s);
    EXECUTE format('UPDATE %I.customer_deletions SET idempotent_identifier = NULL', s);
  END IF;
END
$$;

ALTER TABLE :"schema".customer_deletions DROP COLUMN IF EXISTS idempotent_identifier;

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (5, 'deletion_records_by_customer_id')
ON CONFLICT (version) DO NOTHING;

COMMIT;
