-- pg-idempotency 0003: the transactional outbox.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0003_outbox.sql  (after 0002)
-- migrate() and kysely-ctl run this same file, as described in 0001.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

-- Events written by emit() in the same transaction as the business write: a rollback leaves
-- none, a commit exactly one. The relay delivers them and marks them delivered.
CREATE TABLE IF NOT EXISTS :"schema".outbox_events (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Stable across retries of the request that emitted it: consumers deduplicate on it.
  event_id        uuid        NOT NULL UNIQUE,
  topic           text        COLLATE "C" NOT NULL CHECK (char_length(topic) BETWEEN 1 AND 255),
  -- Events with the same ordering key are delivered in order (the customer id by default).
  ordering_key    text        COLLATE "C" CHECK (char_length(ordering_key) BETWEEN 1 AND 255),
  customer_id     uuid,
  payload         jsonb       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- The writing transaction: the relay only takes events older than every transaction still
  -- running, so an event committed late can never be overtaken by a later one of its key.
  txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
  status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  delivered_at    timestamptz
);

-- What the relay reads: pending events in order.
CREATE INDEX IF NOT EXISTS outbox_events_pending_idx
  ON :"schema".outbox_events (id) WHERE status = 'pending';
-- The ordering check looks for an earlier pending event of the same key.
CREATE INDEX IF NOT EXISTS outbox_events_pending_key_idx
  ON :"schema".outbox_events (ordering_key, id) WHERE status = 'pending';
-- Deleting a customer deletes its events.
CREATE INDEX IF NOT EXISTS outbox_events_customer_id_idx
  ON :"schema".outbox_events (customer_id) WHERE customer_id IS NOT NULL;

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (3, 'outbox')
ON CONFLICT (version) DO NOTHING;

COMMIT;
