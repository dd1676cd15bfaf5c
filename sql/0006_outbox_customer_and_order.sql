-- pg-idempotency 0006: an event names an existing customer, and the relay's indexes for order per key.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0006_outbox_customer_and_order.sql  (after 0005)
-- migrate() and kysely-ctl run this same file, as described in 0001.
--
-- Why: an event naming a customer whose deletion had finished was still inserted (no row left to
-- check) and published. A foreign key refuses it, as it does for the application's own tables.
--
-- For the DBA: the key is added NOT VALID, so adding it reads no existing rows and holds its
-- locks (SHARE ROW EXCLUSIVE on both tables: emits and customer writes wait) only for a moment;
-- it is enforced for every new event. Events written before it that name no customer stay as
-- they were, except those of customers whose deletion finished (those are deleted below). Once
-- no such events remain (they are delivered and pruned after 7 days), you may run
--   ALTER TABLE idempotency.outbox_events VALIDATE CONSTRAINT outbox_events_customer_id_fkey;
-- Upgrade the processes that emit before the relays: the relay's order check relies on the lock
-- that emit() now takes for each ordering key.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

-- Not to queue every emit behind a long transaction while waiting for the tables' locks; if it
-- times out, nothing has changed: run the file again.
SET LOCAL lock_timeout = '5s';
-- The IF EXISTS below say "skipping" on a first run; that is expected, not worth a line.
SET LOCAL client_min_messages = warning;

-- Events that slipped in after their customer's deletion had finished.
DELETE FROM :"schema".outbox_events AS e
 WHERE e.customer_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM :"schema".customers AS c WHERE c.customer_id = e.customer_id)
   AND EXISTS (SELECT 1 FROM :"schema".customer_deletions AS d WHERE d.customer_id = e.customer_id);

-- Dropped and added again, so running this file twice is harmless.
ALTER TABLE :"schema".outbox_events
  DROP CONSTRAINT IF EXISTS outbox_events_customer_id_fkey,
  ADD CONSTRAINT outbox_events_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES :"schema".customers (customer_id) NOT VALID;

-- The relay walks the ordering keys through outbox_events_pending_key_idx, one key at a time, and
-- takes events without a key from this one; the pending index by id is then unused.
CREATE INDEX IF NOT EXISTS outbox_events_pending_unordered_idx
  ON :"schema".outbox_events (next_attempt_at) WHERE status = 'pending' AND ordering_key IS NULL;
DROP INDEX IF EXISTS :"schema".outbox_events_pending_idx;
-- The txid column is no longer read: order per key now rests on emit()'s lock per key, not on the
-- oldest running transaction, so a long transaction elsewhere no longer holds delivery back.

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (6, 'outbox_customer_and_order')
ON CONFLICT (version) DO NOTHING;

COMMIT;
