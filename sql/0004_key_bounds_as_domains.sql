-- pg-idempotency 0004: the key table's bounds move from table CHECK constraints to domains.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0004_key_bounds_as_domains.sql  (after 0003)
-- migrate() and kysely-ctl run this same file, as described in 0001.
--
-- Why: PostgreSQL reads and prepares a table's CHECK constraints again for every INSERT
-- statement, while a domain's checks are prepared once per session. Storing a key paid about
-- 40 us of server CPU for its five table checks (measured: npm run bench); the same bounds as
-- domains cost a third of that. The bounds themselves do not change.
--
-- For the DBA: changing a column to a domain with checks rewrites the table and its indexes
-- under an ACCESS EXCLUSIVE lock, and claims queue behind it (and behind the longest open
-- transaction it waits for). On a large key table, run it in a quiet hour, after a sweep, with no
-- REPEATABLE READ transaction open: one whose snapshot predates the rewrite sees an empty table
-- (its claim then fails with a retryable serialization error). The lock is waited for at most
-- 5 s below: if it times out, nothing has changed; run the file again.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

-- Not to queue every claim behind a long transaction while waiting for the table lock.
SET LOCAL lock_timeout = '5s';

-- CREATE DOMAIN has no IF NOT EXISTS; the block below makes each one only when it is missing.
-- It reads the schema name from this transaction's setting, since psql fills in no variables
-- inside a $$ block.
SELECT set_config('pg_idempotency.schema', :'schema', true);

DO $$
DECLARE
  s text := current_setting('pg_idempotency.schema');
BEGIN
  IF to_regtype(format('%I.idempotency_scope', s)) IS NULL THEN
    EXECUTE format('CREATE DOMAIN %I.idempotency_scope AS text COLLATE "C"
                      CHECK (char_length(VALUE) BETWEEN 1 AND 512)', s);
  END IF;
  IF to_regtype(format('%I.idempotency_key', s)) IS NULL THEN
    EXECUTE format('CREATE DOMAIN %I.idempotency_key AS text COLLATE "C"
                      CHECK (char_length(VALUE) BETWEEN 1 AND 255)', s);
  END IF;
  -- SHA-256 of the request's RFC 8785 canonical JSON.
  IF to_regtype(format('%I.idempotency_fingerprint', s)) IS NULL THEN
    EXECUTE format('CREATE DOMAIN %I.idempotency_fingerprint AS bytea
                      CHECK (octet_length(VALUE) = 32)', s);
  END IF;
  IF to_regtype(format('%I.idempotency_status', s)) IS NULL THEN
    EXECUTE format($f$CREATE DOMAIN %I.idempotency_status AS text
                      CHECK (VALUE IN ('claimed', 'completed', 'failed'))$f$, s);
  END IF;
END
$$;

-- Re-running this is a no-op: a column that already has its domain is left as it is.
ALTER TABLE :"schema".idempotency_keys
  ALTER COLUMN scope       TYPE :"schema".idempotency_scope,
  ALTER COLUMN key         TYPE :"schema".idempotency_key,
  ALTER COLUMN fingerprint TYPE :"schema".idempotency_fingerprint,
  ALTER COLUMN status      TYPE :"schema".idempotency_status,
  DROP CONSTRAINT IF EXISTS idempotency_keys_scope_check,
  DROP CONSTRAINT IF EXISTS idempotency_keys_key_check,
  DROP CONSTRAINT IF EXISTS idempotency_keys_fingerprint_check,
  DROP CONSTRAINT IF EXISTS idempotency_keys_status_check,
  -- A completed or failed row always has its response: the library, the table's only writer,
  -- writes both in one INSERT (or one UPDATE of a placeholder); 'claimed' rows are never replayed.
  DROP CONSTRAINT IF EXISTS idempotency_keys_done_has_response;

-- Sessions that ran the claim function before this file keep its compiled plans, typed for the
-- old columns: their next claim would fail (42804). Touching the function's catalog row makes
-- every session compile it afresh on its next call; the setting itself does not change.
ALTER FUNCTION :"schema".claim_idempotency_key(text, text, bytea, boolean, integer) SET enable_seqscan = off;

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (4, 'key_bounds_as_domains')
ON CONFLICT (version) DO NOTHING;

COMMIT;
