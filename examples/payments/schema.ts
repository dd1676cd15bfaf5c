import { sql, type Generated, type Kysely } from 'kysely'

export interface PaymentsDatabase {
  api_clients: { id: Generated<string>; name: string; key_sha256: Buffer; created_at: Generated<Date> }
  accounts: { id: Generated<string>; owner_client_id: string; person_id: string; currency: string; balance: Generated<string>; created_at: Generated<Date> }
  ledger: { id: Generated<string>; account_id: string; kind: 'deposit' | 'withdrawal'; amount: string; created_at: Generated<Date> }
  link_tokens: { token: Generated<string>; client_user_id: string; created_at: Generated<Date>; expires_at: Date }
  financial_accounts: { id: Generated<string>; customer_id: string; name: string; created_at: Generated<Date> }
}

/** The example service's own tables (the idempotency schema comes from `migrate()`). */
export async function createPaymentsTables(db: Kysely<any>): Promise<void> {
  await sql`
    -- The service's API clients; only a hash of each key is kept.
    create table if not exists api_clients (
      id uuid primary key default gen_random_uuid(),
      name text not null,
      key_sha256 bytea not null unique,
      created_at timestamptz not null default now()
    );
    -- An account belongs to the API client that opened it: no other client can move its money.
    create table if not exists accounts (
      id uuid primary key default gen_random_uuid(),
      owner_client_id uuid not null references api_clients,
      person_id text not null,
      currency text not null check (currency ~ '^[A-Z]{3}$'),
      balance bigint not null default 0 check (balance >= 0),
      created_at timestamptz not null default now()
    );
    create table if not exists ledger (
      id bigserial primary key,
      account_id uuid not null references accounts,
      kind text not null check (kind in ('deposit', 'withdrawal')),
      amount bigint not null check (amount > 0),
      created_at timestamptz not null default now()
    );
    -- A customer's accounts: the foreign key is how the deletion job finds them.
    create table if not exists financial_accounts (
      id uuid primary key default gen_random_uuid(),
      customer_id uuid not null references idempotency.customers,
      name text not null,
      created_at timestamptz not null default now()
    );
    create index if not exists financial_accounts_customer_id_idx on financial_accounts (customer_id);
    create table if not exists link_tokens (
      token uuid primary key default gen_random_uuid(),
      client_user_id text not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null
    )`.execute(db)
}
