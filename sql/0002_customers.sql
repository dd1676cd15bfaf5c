-- pg-idempotency 0002: customers addressed by the client's own identifier, and the progress of
-- their deletions.
--
-- Run by hand:  psql -v schema=idempotency -f sql/0002_customers.sql  (after 0001)
-- migrate() and kysely-ctl run this same file, as described in 0001.
\if :{?schema}
\else
\set schema idempotency
\endif
\set ON_ERROR_STOP on

BEGIN;

SELECT pg_advisory_xact_lock(hashtextextended('pg-idempotency:migrate:' || :'schema', 0));

-- A customer of one API client. The client names it by its own idempotent_identifier; the
-- server names it by customer_id. Application tables point at customer_id with foreign keys,
-- and the deletion job follows those keys.
CREATE TABLE IF NOT EXISTS :"schema".customers (
  customer_id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  client_id             text        COLLATE "C" NOT NULL CHECK (char_length(client_id) BETWEEN 1 AND 255),
  idempotent_identifier text        COLLATE "C" NOT NULL CHECK (char_length(idempotent_identifier) BETWEEN 1 AND 255),
  -- The context given when the customer was created; a repeat create does not change it.
  customer_type         text        CHECK (char_length(customer_type) BETWEEN 1 AND 64),
  region                text        CHECK (char_length(region) BETWEEN 1 AND 64),
  locale                text        CHECK (char_length(locale) BETWEEN 1 AND 35),
  -- deleting: the deletion job is removing its data; the identifier stays taken until the row goes.
  status                text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleting')),
  created_at            timestamptz NOT NULL DEFAULT now(),
  deletion_requested_at timestamptz,
  -- One customer per identifier and client while the customer exists.
  CONSTRAINT customers_client_identifier_key UNIQUE (client_id, idempotent_identifier)
);

-- What each deletion has done so far. It outlives the customer row, so progress stays readable.
CREATE TABLE IF NOT EXISTS :"schema".customer_deletions (
  customer_id           uuid        PRIMARY KEY,
  client_id             text        COLLATE "C" NOT NULL,
  idempotent_identifier text        COLLATE "C" NOT NULL,
  state                 text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done')),
  -- {"table": rows deleted}, updated in the same transaction as each batch.
  deleted_rows          jsonb       NOT NULL DEFAULT '{}',
  requested_at          timestamptz NOT NULL DEFAULT now(),
  started_at            timestamptz,
  finished_at           timestamptz
);

INSERT INTO :"schema".schema_migrations (version, name)
VALUES (2, 'customers')
ON CONFLICT (version) DO NOTHING;

COMMIT;
