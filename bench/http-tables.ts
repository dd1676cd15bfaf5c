import { sql, type Generated, type Kysely } from 'kysely'

export interface HttpBenchDatabase {
  bench_http_accounts: { id: number; balance: Generated<string> }
  bench_http_ledger: { id: Generated<string>; account_id: number; amount: number }
}

export const HTTP_ACCOUNTS = 1000

export async function createHttpTables(db: Kysely<any>): Promise<void> {
  await sql`create table bench_http_accounts (id integer primary key, balance bigint not null default 0)`.execute(db)
  await sql`create table bench_http_ledger (id bigserial primary key, account_id integer not null references bench_http_accounts, amount integer not null)`.execute(db)
  await sql`insert into bench_http_accounts (id) select generate_series(1, ${HTTP_ACCOUNTS})`.execute(db)
  await sql`analyze bench_http_accounts`.execute(db)
}
