-- The billing example's own tables (schema.ts declares them for Drizzle). The idempotency
-- schema, with the outbox that payment events go to, comes from pg-idempotency's migrate().
create schema if not exists billing;

create table if not exists billing.api_clients (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  key_sha256 text not null unique,
  created_at timestamptz not null default now()
);

create table if not exists billing.invoices (
  id uuid primary key default gen_random_uuid(),
  client_id uuid not null references billing.api_clients,
  customer text not null,
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  amount_due bigint not null check (amount_due > 0),
  amount_paid bigint not null default 0 check (amount_paid between 0 and amount_due),
  status text not null default 'open' check (status in ('open', 'paid', 'void')),
  created_at timestamptz not null default now()
);

create table if not exists billing.payments (
  id uuid primary key default gen_random_uuid(),
  invoice_id uuid not null references billing.invoices,
  amount bigint not null check (amount > 0),
  created_at timestamptz not null default now()
);
create index if not exists payments_invoice_id on billing.payments (invoice_id);
