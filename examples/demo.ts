// `npm run demo`: a short, scripted story of one deposit endpoint made safe to retry.
// Uses DATABASE_URL when set, otherwise starts an embedded PostgreSQL and removes it afterwards.
import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { IdempotencyError, migrate, withIdempotency } from '../src/index.ts'
import { connect, createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'

interface Bank {
  accounts: { id: string; balance: number }
  ledger: { id: import('kysely').Generated<number>; account_id: string; amount: number }
}

const ACCOUNT = 'acct_42'

/** POST /accounts/acct_42/deposits: lock the account, write the ledger, update the balance. */
function deposit(db: Kysely<Bank>, key: string, body: { amount: number }) {
  return db.transaction().execute((tx) =>
    withIdempotency(tx, { scope: `${ACCOUNT}:POST /deposits`, key, request: body }, async (tx) => {
      await tx.selectFrom('accounts').select('id').where('id', '=', ACCOUNT).forUpdate().executeTakeFirstOrThrow()
      const entry = await tx.insertInto('ledger').values({ account_id: ACCOUNT, amount: body.amount }).returning('id').executeTakeFirstOrThrow()
      const account = await tx
        .updateTable('accounts')
        .set((eb) => ({ balance: eb('balance', '+', body.amount) }))
        .where('id', '=', ACCOUNT)
        .returning('balance')
        .executeTakeFirstOrThrow()
      return { status: 201, body: { ledgerId: entry.id, balance: account.balance } }
    }),
  )
}

async function describe(attempt: Promise<Awaited<ReturnType<typeof deposit>>>): Promise<string> {
  try {
    const outcome = await attempt
    return `${outcome.value.status}${outcome.replayed ? ' replayed' : ' executed'}  ${JSON.stringify(outcome.value.body)}`
  } catch (error) {
    if (error instanceof IdempotencyError) return `${error.httpStatus} ${error.code}`
    throw error
  }
}

async function ledgerRows(db: Kysely<Bank>): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from ledger`.execute(db)
  return rows[0]?.n ?? 0
}

async function main() {
  const server = await startLocalPostgres()
  console.log(`PostgreSQL: ${server.description}\n`)
  const name = uniqueDatabaseName('pgidem_demo')
  await createDatabase(server.url, name)
  const db = connect<Bank>(withDatabase(server.url, name), 50)
  try {
    await migrate(db)
    await sql`create table accounts (id text primary key, balance integer not null)`.execute(db)
    await sql`create table ledger (id bigserial primary key, account_id text not null references accounts, amount integer not null)`.execute(db)
    await sql`insert into accounts values (${ACCOUNT}, 0)`.execute(db)

    const key = randomUUID()
    const steps: Array<[string, () => Promise<string>]> = [
      ['deposit 100 with a new Idempotency-Key', () => describe(deposit(db, key, { amount: 100 }))],
      ['the same request again (the client timed out)', () => describe(deposit(db, key, { amount: 100 }))],
      ['and once more', () => describe(deposit(db, key, { amount: 100 }))],
      ['same key, amount changed to 150', () => describe(deposit(db, key, { amount: 150 }))],
    ]
    for (const [label, step] of steps) {
      console.log(`${label.padEnd(48)} -> ${await step()}   ledger rows: ${await ledgerRows(db)}`)
    }

    const burstKey = randomUUID()
    const burst = await Promise.all(Array.from({ length: 50 }, () => deposit(db, burstKey, { amount: 25 })))
    const executed = burst.filter((o) => !o.replayed).length
    console.log(
      `${'50 concurrent duplicates of a deposit of 25'.padEnd(48)} -> ${executed} executed, ${burst.length - executed} replayed   ledger rows: ${await ledgerRows(db)}`,
    )

    const { balance } = await db.selectFrom('accounts').select('balance').where('id', '=', ACCOUNT).executeTakeFirstOrThrow()
    console.log(`\nbalance of ${ACCOUNT}: ${balance} (100 + 25: every deposit counted once)`)
  } finally {
    await db.destroy()
    await dropDatabase(server.url, name)
    await server.stop()
  }
}

await main()
