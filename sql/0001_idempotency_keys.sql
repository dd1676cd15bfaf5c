-- pg-idempotency 0001: the idempotency key table and the function that claims a key.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0001_idempotency_keys.sql
-- (schema defaults to "idempotency"). migrate() and kysely-ctl run this same file: they drop the
-- psql lines that start with a backslash and the BEGIN/COMMIT lines, and run the rest inside
-- their own transaction after checking schema_migrations. Every statement is safe to re-run.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

-- Two runners at once: the second waits here, then finds everything in place.
SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

CREATE SCHEMA IF NOT EXISTS :"schema";

CREATE TABLE IF NOT EXISTS :"schema".schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (scope, key) that has completed. A row is written only at the end of the
-- caller's transaction, so it commits or rolls back with the business write. The primary key
-- is the only unique index: it is what makes a second execution impossible.
CREATE TABLE IF NOT EXISTS :"schema".idempotency_keys (
  -- Keys are opaque: byte-wise "C" comparison is the right equality and the cheapest.
  scope        text        COLLATE "C" NOT NULL CHECK (char_length(scope) BETWEEN 1 AND 512),
  key          text        COLLATE "C" NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  -- SHA-256 of the RFC 8785 canonical JSON of the request the key was first used with.
  fingerprint  bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
  -- claimed: a placeholder written under REPEATABLE READ / SERIALIZABLE; committed alone only
  -- when a caller swallows fn's error, and then treated as absent.
  -- completed: fn returned. failed: fn threw a FinalFailure, which is replayed like a success.
  status       text        NOT NULL CHECK (status IN ('claimed', 'completed', 'failed')),
  -- json, not jsonb: a replay returns the very text the first call stored, key order included.
  response     json,
  customer_id  uuid,
  created_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (scope, key),
  CONSTRAINT idempotency_keys_done_has_response
    CHECK (status = 'claimed' OR (response IS NOT NULL AND completed_at IS NOT NULL))
);

-- The expiry sweep reads oldest first.
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at_idx
  ON :"schema".idempotency_keys (expires_at);

-- Deleting a customer deletes its keys; most keys have no customer and stay out of this index.
CREATE INDEX IF NOT EXISTS idempotency_keys_customer_id_idx
  ON :"schema".idempotency_keys (customer_id) WHERE customer_id IS NOT NULL;

-- claim_idempotency_key: take the key's transaction-scoped advisory lock, then look the key up.
--
-- Returns one row: outcome 'found' (a live completed or failed row: replay it), 'busy' (p_wait
-- is false and another transaction holds the lock), 'new' (the caller runs its work and then
-- inserts the row), or 'new_placeholder' (as 'new', but a placeholder row was inserted and must
-- be updated instead).
--
-- Why a function: its statements each take a fresh snapshot under READ COMMITTED, so the lookup
-- after the lock wait sees the row the previous holder committed, all in one round trip.
-- Under REPEATABLE READ / SERIALIZABLE the snapshot is older than the lock; there the
-- placeholder insert raises a serialization failure (40001) when a twin committed after the
-- snapshot was taken, before any work is done.
--
-- The advisory lock only orders waiters: two keys whose hashes collide cost a wait, never a
-- wrong answer, because the primary key decides.
CREATE OR REPLACE FUNCTION :"schema".claim_idempotency_key(
  p_scope text,
  p_key text,
  p_fingerprint bytea,
  p_wait boolean,
  p_wait_timeout_ms integer,
  OUT outcome text,
  OUT status text,
  OUT fingerprint bytea,
  OUT response json,
  OUT created_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
-- The body names tables without a schema (psql does not fill in variables inside $$ quotes).
SET search_path TO pg_catalog, :"schema", pg_temp
-- The lookup must use the primary key even when its plan was cached while the table was empty.
SET enable_seqscan = off
AS $$
DECLARE
  v_lock constant bigint := hashtextextended(p_scope || E'\n' || p_key, 1105);
  v_row idempotency_keys%ROWTYPE;
  v_locked boolean;
  v_lock_timeout text;
BEGIN
  -- Uncontended keys take the lock at once; only a wait pays for setting lock_timeout, which is
  -- put back afterwards (if the wait times out, the transaction is aborted anyway).
  v_locked := pg_try_advisory_xact_lock(v_lock);
  IF NOT v_locked AND p_wait THEN
    v_lock_timeout := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', p_wait_timeout_ms::text, true);
    PERFORM pg_advisory_xact_lock(v_lock);
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
    v_locked := true;
  END IF;

  SELECT * INTO v_row FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key;

  IF FOUND AND v_row.status <> 'claimed' AND v_row.expires_at > clock_timestamp() THEN
    outcome := 'found';
    status := v_row.status;
    fingerprint := v_row.fingerprint;
    response := v_row.response;
    created_at := v_row.created_at;
    RETURN;
  END IF;

  IF NOT v_locked THEN
    outcome := 'busy';
    RETURN;
  END IF;

  -- An expired row, or a placeholder whose transaction committed without completing it (the
  -- caller caught fn's error and committed anyway): the key is new. A sweep may hold the row;
  -- wait for it no longer than for the key.
  IF FOUND THEN
    v_lock_timeout := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', p_wait_timeout_ms::text, true);
    BEGIN
      DELETE FROM idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key;
    EXCEPTION WHEN serialization_failure THEN
      -- REPEATABLE READ: the sweep deleted the expired row after this snapshot. It is gone, which
      -- is all this DELETE wanted; a twin's new row still stops the placeholder insert below.
      NULL;
    END;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
  END IF;

  created_at := now();
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    INSERT INTO idempotency_keys (scope, key, fingerprint, status, expires_at)
    VALUES (p_scope, p_key, p_fingerprint, 'claimed', now())
    ON CONFLICT DO NOTHING;
    outcome := 'new_placeholder';
    RETURN;
  END IF;
  outcome := 'new';
END
$$;

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (1, 'idempotency_keys')
ON CONFLICT (version) DO NOTHING;

COMMIT;
