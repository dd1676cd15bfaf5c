import { sql, type Kysely, type Transaction } from 'kysely'

/** A small business table the tests write through, to count side effects. */
export interface LedgerDatabase {
  ledger: { id: Generated<number>; account: string; amount: number }
}

type Generated<T> = import('kysely').Generated<T>

export async function createLedger(db: Kysely<any>): Promise<void> {
  await sql`create table if not exists ledger (id bigserial primary key, account text not null, amount integer not null)`.execute(db)
}

export async function insertEntry(tx: Transaction<LedgerDatabase>, account: string, amount: number) {
  return tx.insertInto('ledger').values({ account, amount }).returningAll().executeTakeFirstOrThrow()
}

export async function countEntries(db: Kysely<LedgerDatabase>, account: string): Promise<number> {
  const row = await db.selectFrom('ledger').select((eb) => eb.fn.countAll<string>().as('n')).where('account', '=', account).executeTakeFirstOrThrow()
  return Number(row.n)
}

export async function countKeys(db: Kysely<any>, key: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*) as n from idempotency.idempotency_keys where key = ${key}`.execute(db)
  return Number(rows[0]?.n)
}
